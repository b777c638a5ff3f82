"""What a visitor reads in an AppTest run, and the English left in it (for the translation tests).

`visible_texts(at)` walks every element of the rendered app (main area and sidebar) and returns
the text a visitor sees: titles, prose, captions, alerts, widget labels, help and options, metric
labels and values, expander and tab labels, table headers and text cells, chart titles, axis and
legend titles, tooltips and category labels, and diagram labels. Code blocks and formulas are left
out: they are the same in every language.

`english_runs(text)` finds English prose in a text: two or more consecutive English words, after
code spans, formulas, URLs, identifiers (snake_case, CamelCase, words with digits), numbers, units
and the allowed names below are removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable


def _device_name() -> str:
    import torch

    from convmix.bench import device_name

    return device_name(torch.device("cpu"))


# Names and symbols that stay as they are in every language: libraries, layers and functions,
# units, file formats, and ACmix's own vocabulary as used in code.
ALLOWED = {
    "acmix", "pytorch", "torch", "streamlit", "altair", "pandas", "numpy", "resnet", "imagenet",
    "relu", "softmax", "batchnorm", "bn", "conv", "conv2d", "unfold", "cuda", "cpu", "gpu", "cudnn",
    "mkldnn", "flops", "flop", "macs", "mac", "tf32", "fp32", "fp16", "bf16", "float32", "float64",
    "float16", "bfloat16", "b", "kb", "kib", "mb", "mib", "gb", "gib", "tib", "ms", "s", "px",
    "url", "csv", "png", "jpeg", "jpg", "mpo", "exif", "pth", "pt", "safetensors", "json", "dot",
    "cvpr", "arxiv", "pan", "et", "al", "id", "iqr", "rss", "api", "cli", "docker", "vega", "lite",
    "q", "k", "v", "x", "y", "i", "j", "c", "d", "h", "w", "n", "p", "a", "e", "l",
    "official", "fixed", "reference", "fast", "stage", "ii", "q1", "q2", "q3", "q4", "q5", "q6",
    "q7", "q8", "q9", "q10", "q11", "mnist", "sklearn", "scikit", "learn", "github", "leaplabthu",
    "csdn", "tensorflow", "playground", "kaiming", "noto", "sans", "cjk", "adam", "sgd", "adamw",
    "lr", "nan", "inf", "true", "false", "none", "pe", "rpe", "qkv", "fc", "att", "gamma", "beta",
}

# Proper names that are English in every language: the paper's title, and the name of the machine's
# processor (the explorer names the device it measures on; "Intel(R) Xeon(R) Processor" is two
# English words to the rule below).
ALLOWED_PHRASES = tuple(p for p in ("On the Integration of Self-Attention and Convolution", _device_name()) if p)

_STRIP = [
    re.compile(r"```.*?```", re.S),  # fenced code
    re.compile(r"`[^`]*`"),  # inline code
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\$[^$]*\$"),  # inline math
    re.compile(r"https?://\S+"),  # URLs
    re.compile(r"\]\([^)]*\)"),  # markdown link targets
    re.compile(r":material/[a-z_]+:"),  # icons
    re.compile(r":[a-z]+(?:-[a-z]+)*\["),  # Streamlit's directives: :green-badge[...], :red[...]
    re.compile(r"\b\w*[_\d]\w*\b"),  # identifiers and numbers: conv_p, kernel_att, x2, 1e-5
    re.compile(r"\b[A-Za-z]+[A-Z][A-Za-z]*\b"),  # CamelCase: ACmix, BatchNorm, PyTorch, FLOPs
]
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
_SEPARATOR = re.compile(r"^[\s\-–—,;:()/·×*]*$")


def english_runs(text: str) -> list[str]:
    """English prose left in `text`: runs of two or more consecutive English words (see module doc)."""
    for phrase in ALLOWED_PHRASES:
        text = text.replace(phrase, " \x00 ")
    for pattern in _STRIP:
        text = pattern.sub(" \x00 ", text)
    runs: list[str] = []
    current: list[str] = []
    last_end = 0
    for match in _WORD.finditer(text):
        word = match.group(0)
        between = text[last_end:match.start()]
        if current and not _SEPARATOR.match(between):
            _close(current, runs)
            current = []
        if word.lower() in ALLOWED:
            _close(current, runs)
            current = []
        else:
            current.append(word)
        last_end = match.end()
    _close(current, runs)
    return runs


def _close(words: list[str], runs: list[str]) -> None:
    if len(words) >= 2 and any(len(w) >= 3 for w in words):
        runs.append(" ".join(words))


# -- collecting the visible text of an AppTest run ---------------------------------------------------
_TEXT_FIELDS = {"label", "body", "help", "placeholder", "options", "caption", "delta", "text",
                "default_value", "display_value", "title"}


def _repeated(field) -> bool:
    # protobuf >= 5 deprecates FieldDescriptor.label in favour of is_repeated
    repeated = getattr(field, "is_repeated", None)
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED


def _proto_strings(message) -> Iterable[str]:
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            items = value if _repeated(field) else [value]
            for item in items:
                yield from _proto_strings(item)
        elif field.type == field.TYPE_STRING and field.name in _TEXT_FIELDS:
            yield from (value if _repeated(field) else [value])


def _spec_strings(spec: object, in_data: bool = False) -> Iterable[str]:
    """Titles, labels and string data values of a Vega-Lite spec."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in ("title", "text", "description", "labelExpr") and isinstance(value, str):
                yield value
            elif key == "title" and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            elif key in ("datasets", "values", "data"):
                yield from _spec_strings(value, in_data=True)
            elif key not in ("field", "type", "name", "$schema", "param", "url", "format", "scheme",
                             "mark", "fontStyle", "font", "expr", "test", "empty", "fields", "on",
                             "clear", "encodings", "bind", "as", "op", "aggregate", "timeUnit",
                             "calculate", "filter", "sort", "stack", "shape", "strokeDash",
                             "interpolate", "align", "baseline", "orient", "anchor", "format"):
                yield from _spec_strings(value, in_data)
    elif isinstance(spec, list):
        for item in spec:
            yield from _spec_strings(item, in_data)
    elif isinstance(spec, str) and in_data and not spec.startswith("data:image/"):
        yield spec  # an image mark's data URL is pixels, not words (so in Arrow data below)


def _arrow_strings(payload: bytes) -> Iterable[str]:
    import pyarrow as pa

    table = pa.ipc.open_stream(payload).read_all()
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            yield from (v for v in column.to_pylist() if isinstance(v, str) and not v.startswith("data:image/"))


_DOT_LABEL = re.compile(r'label="((?:[^"\\]|\\.)*)"')


def _element_texts(element) -> Iterable[str]:
    kind = getattr(element, "type", "")
    proto = getattr(element, "proto", None)
    if proto is None or kind in ("code", "exception"):
        return
    if kind == "markdown" and getattr(proto, "element_type", 0) == type(proto).Type.Value("LATEX"):
        return
    if kind == "arrow_vega_lite_chart" or kind == "vega_lite_chart":
        yield from _spec_strings(json.loads(proto.spec))
        # Streamlit ships the chart's data apart from its spec: category labels, legends and
        # tooltips come from these tables.
        for dataset in getattr(proto, "datasets", []):
            yield from _arrow_strings(dataset.data.data)
        return
    if kind == "graphviz_chart":
        yield from (label.replace("\\n", " ") for label in _DOT_LABEL.findall(proto.spec))
        return
    if kind in ("arrow_data_frame", "dataframe", "table"):
        frame = element.value
        yield from (str(c) for c in frame.columns)
        for column in frame.columns:
            if frame[column].dtype == object:
                yield from (v for v in frame[column].tolist() if isinstance(v, str))
        return
    yield from _proto_strings(proto)


def _walk(node) -> Iterable:
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        children = children.values()
    for child in children or []:
        yield child
        yield from _walk(child)


def visible_texts(at, area: str = "all") -> list[str]:
    """Every text a visitor reads in the last run of `at`: area "all", "main" or "sidebar"."""
    root = {"all": at._tree, "main": at.main, "sidebar": at.sidebar}[area]
    texts: list[str] = []
    for node in _walk(root):
        texts.extend(t for t in _element_texts(node) if t and t.strip())
    return texts


def english_left(at, area: str = "all") -> list[tuple[str, str]]:
    """(English run, the text it stands in) for every visible text of `at` that still has English."""
    found = []
    for text in visible_texts(at, area):
        for run in english_runs(text):
            found.append((run, text[:160]))
    return found
