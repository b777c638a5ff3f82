"""Built-in photographs (with their licences) and uploaded photos, as RGB arrays.

The pictures come from scikit-image's sample data, under licences that allow redistribution; the
list in data/images/pictures.json (title, author, licence, source, URL) is what the code and the
README's attribution read. Uploads go through convmix.bias's validation (`decode_upload`), so the
same limits and messages apply everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .bias import decode_upload, square_crop
from .format import join_items
from .i18n import _

IMAGES_DIR = Path(__file__).resolve().parent / "data" / "images"
CATALOGUE = IMAGES_DIR / "pictures.json"


@dataclass(frozen=True)
class Picture:
    id: str
    file: str
    title: str
    author: str
    licence: str
    source_package: str
    url: str

    @property
    def path(self) -> Path:
        return IMAGES_DIR / self.file

    def credit(self) -> str:
        """One line of attribution (Markdown, English: the README's list; pages word their own)."""
        return f"*{self.title}*, by {self.author}, {self.licence}; from {self.source_package}, <{self.url}>"


@lru_cache(maxsize=1)
def pictures() -> tuple[Picture, ...]:
    """Every built-in picture, in the catalogue's order."""
    data = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return tuple(Picture(**entry) for entry in data["pictures"])


def picture(picture_id: str) -> Picture:
    for p in pictures():
        if p.id == picture_id:
            return p
    raise ValueError(_("No built-in picture is called {name}; the pictures are {names}.",
                       name=repr(picture_id), names=join_items(p.id for p in pictures())))


def load_picture(picture_id: str) -> Image.Image:
    """The built-in picture as an RGB PIL image."""
    with Image.open(picture(picture_id).path) as img:
        return img.convert("RGB")


def crop_to(img: Image.Image, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8: the centre of `img` at the target's aspect ratio, resized.

    Squares use convmix.bias.square_crop (ResNet's preprocessing: shorter side resized, centre
    cropped); other shapes crop the centre to the target's aspect ratio first, then resize.
    """
    if height < 1 or width < 1:
        raise ValueError(_("The picture size must be at least 1×1, not {height}×{width}.", height=height,
                           width=width))
    if height == width:
        return square_crop(img, height)
    w, h = img.size
    if w * height > h * width:  # too wide: keep the full height
        crop_w, crop_h = max(1, round(h * width / height)), h
    else:
        crop_w, crop_h = w, max(1, round(w * height / width))
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    box = img.crop((left, top, left + crop_w, top + crop_h))
    return np.asarray(box.resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8)


def picture_rgb(picture_id: str, height: int, width: int | None = None) -> np.ndarray:
    """A built-in picture as a (height, width, 3) uint8 array."""
    return crop_to(load_picture(picture_id), height, height if width is None else width)


def upload_rgb(data: bytes, height: int, width: int | None = None) -> np.ndarray:
    """An uploaded PNG or JPEG as a (height, width, 3) uint8 array; raises convmix.bias.ImageError
    with a clear message for anything decode_upload refuses."""
    return crop_to(decode_upload(data), height, height if width is None else width)


def attribution_markdown() -> str:
    """The README's "Pictures" list: one credit line per built-in picture."""
    return "\n".join(f"- {p.credit()}" for p in pictures())
