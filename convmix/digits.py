"""scikit-learn's 8x8 handwritten digits, read from the file the package ships, and a fixed split.

The file (`sklearn/datasets/data/digits.csv.gz`: 1,797 rows of 64 pixel values 0-16 and a label)
is located through the import system without importing sklearn, which would load numpy, scipy and
joblib for nothing (memory matters on a 1 GB host). Nothing is downloaded. The parsed data is
checked (row count, 65 integer columns, pixel range, the count of each label) before use, so a
changed or truncated file fails with a clear message (in the visitor's language, convmix.i18n)
instead of training on something else.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from .i18n import _

SIZE = 8  # images are SIZE x SIZE
CLASSES = 10
PIXEL_MAX = 16
# How many images of each digit 0-9 the file holds (the UCI optical digits test set).
LABEL_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
ROWS = sum(LABEL_COUNTS)  # 1,797
RELATIVE_PATH = ("datasets", "data", "digits.csv.gz")
HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0  # the split is fixed: every training seed is judged on the same held-out digits


class DataError(RuntimeError):
    """The digits file is missing or is not the data this module expects."""


@dataclass(frozen=True)
class Digits:
    images: torch.Tensor  # (1797, 1, 8, 8) float32, values 0-16; shared: never modify in place
    labels: torch.Tensor  # (1797,) int64, 0-9


@dataclass(frozen=True)
class Split:
    train: torch.Tensor  # indices into Digits, sorted
    held_out: torch.Tensor  # indices into Digits, sorted; disjoint from train


def digits_path() -> Path:
    """Where the installed scikit-learn keeps the digits file (sklearn itself is not imported)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(_(
            "scikit-learn is not installed, and its bundled 8x8 digits are the training data: "
            "install it with `pip install scikit-learn` (it is listed in requirements.txt)."
        ))
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*RELATIVE_PATH)
        if path.is_file():
            return path
    raise DataError(_(
        "scikit-learn is installed but has no {path}; reinstall it with "
        "`pip install --force-reinstall scikit-learn`.", path="/".join(RELATIVE_PATH)))


def parse_digits(text: str) -> Digits:
    """Rows of 64 pixels and a label, comma-separated; verified against the known counts."""
    rows = [line for line in text.splitlines() if line.strip()]
    if len(rows) != ROWS:
        raise DataError(_("the digits file has {count:,} rows; expected {expected:,}.", count=len(rows),
                          expected=ROWS))
    try:
        values = [[int(float(v)) for v in row.split(",")] for row in rows]
    except ValueError as err:
        raise DataError(_("the digits file holds a value that is not a number ({reason}).", reason=err)) from None
    widths = {len(row) for row in values}
    if widths != {SIZE * SIZE + 1}:
        raise DataError(_("the digits file's rows have {widths} columns; expected {expected}.",
                          widths=sorted(widths), expected=SIZE * SIZE + 1))
    table = torch.tensor(values, dtype=torch.int64)
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > PIXEL_MAX:
        raise DataError(_("pixel values must lie in 0 to {high}; found {found_low} to {found_high}.",
                          high=PIXEL_MAX, found_low=int(pixels.min()), found_high=int(pixels.max())))
    counts = tuple(torch.bincount(labels, minlength=CLASSES).tolist()) if labels.min() >= 0 else ()
    if counts != LABEL_COUNTS:
        raise DataError(_("the digits file's label counts are {counts}; expected {expected}.", counts=counts,
                          expected=LABEL_COUNTS))
    images = pixels.to(torch.float32).reshape(ROWS, 1, SIZE, SIZE)
    return Digits(images=images, labels=labels)


@functools.lru_cache(maxsize=1)
def load_digits() -> Digits:
    """The 1,797 digits (cached: one copy per process, about 0.5 MB)."""
    path = digits_path()
    try:
        text = gzip.decompress(path.read_bytes()).decode("ascii")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataError(_("cannot read {path}: {reason}", path=path, reason=err)) from None
    return parse_digits(text)


def stratified_split(labels: torch.Tensor, fraction: float = HELD_OUT_FRACTION, seed: int = SPLIT_SEED) -> Split:
    """Hold out round(fraction * count) images of each class, chosen by a private generator."""
    gen = torch.Generator().manual_seed(seed)
    held: list[torch.Tensor] = []
    for digit in range(CLASSES):
        members = torch.nonzero(labels == digit).flatten()
        take = round(fraction * len(members))
        held.append(members[torch.randperm(len(members), generator=gen)[:take]])
    held_out = torch.cat(held).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_out] = False
    return Split(train=torch.nonzero(mask).flatten(), held_out=held_out)


@functools.lru_cache(maxsize=1)
def default_split() -> Split:
    """The fixed split every run uses: 1,438 training and 359 held-out digits."""
    return stratified_split(load_digits().labels)
