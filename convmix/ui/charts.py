"""Charts built once per distinct input: the Vega-Lite spec of a chart builder's result, cached.

`st.altair_chart(build(...))` costs a page most of its rerun: Altair validates every encoding as it
builds the chart and the whole spec again when Streamlit converts it (tens of milliseconds a chart,
and the explorer draws fourteen). The builders (convmix.charts*) are pure functions of their
arguments and the language, so their converted spec can be kept:

    place.vega_lite_chart(spec=chart_spec(charts.totals_chart, rows, x, ...), width="stretch", key=...)

sends exactly what `place.altair_chart(charts.totals_chart(rows, x, ...), width="stretch", key=...)`
sends: the spec is Streamlit's own conversion of the chart (its data already as Arrow bytes),
and `st.vega_lite_chart` is the step `st.altair_chart` takes after converting.

The key is the builder, the language and a digest of every argument's content, the same for equal
content whatever its memory layout (a frame that went through st.cache_data is a copy laid out
anew): DataFrames and Series column by column (name, dtype, every value; numbers by their bytes,
text by value) with their index, arrays and tensors by their dtype, shape and bytes, numbers and
strings by type and value. An argument of any other type is not guessed at: the
chart is built and converted afresh, uncached. The cache keeps at most MAX_SPECS specs and 1/SHARE
of the memory budget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import torch
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec

from convmix.bytecache import ByteCache
from convmix.i18n import get_language
from convmix.ui.cache import budget_cache

MAX_SPECS, SHARE = 256, 64  # at most 256 specs and 1/64 of the memory budget (16 MiB of 1 GiB)


class Unkeyable(TypeError):
    """An argument whose content this module does not digest."""


def _digest(value: Any, h) -> None:
    if isinstance(value, pd.DataFrame):
        h.update(f"frame{value.shape}".encode())
        _digest_column(value.index, h)
        for name, column in value.items():
            _digest(name, h)
            _digest_column(column, h)
    elif isinstance(value, pd.Series):
        h.update(b"series")
        _digest(value.name, h)
        _digest_column(value.index, h)
        _digest_column(value, h)
    elif isinstance(value, torch.Tensor):
        _digest(value.detach().cpu().numpy(), h)
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise Unkeyable("an array of Python objects")
        h.update(b"array")
        h.update(repr((str(value.dtype), value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        h.update(repr((type(value).__name__, value)).encode())
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}{len(value)}(".encode())
        for item in value:
            _digest(item, h)
        h.update(b")")
    elif isinstance(value, Mapping):
        h.update(f"map{len(value)}(".encode())
        for k in sorted(value, key=repr):
            _digest(k, h)
            _digest(value[k], h)
        h.update(b")")
    else:
        raise Unkeyable(type(value).__name__)


_SCALARS = (str, int, float, bool, type(None), np.generic)


def _digest_column(column: pd.Series | pd.Index, h) -> None:
    """A column's dtype and values, the same for equal content whatever its memory layout: numbers
    by their bytes, text and other plain values by their repr (anything else is Unkeyable)."""
    h.update(f"{column.dtype}|{len(column)}|".encode())
    values = column.to_numpy()
    if values.dtype.kind in "biufcmM":
        h.update(np.ascontiguousarray(values).tobytes())
        return
    for v in values:
        if not isinstance(v, _SCALARS):
            raise Unkeyable(f"a column holding {type(v).__name__}")
        h.update(repr((type(v).__name__, v)).encode())
        h.update(b"\x1f")


def chart_key(build: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any], language: str) -> str:
    """A digest of the builder, the language and the content of every argument; Unkeyable when an
    argument's content cannot be digested."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{build.__module__}.{build.__qualname__}|{language}|".encode())
    _digest(args, h)
    _digest(dict(kwargs), h)
    return h.hexdigest()


def spec_bytes(spec: Mapping[str, Any]) -> int:
    """What a converted spec holds: its data's Arrow bytes and the rest as JSON."""
    datasets = spec.get("datasets") or {}
    data = sum(len(v) for v in datasets.values() if isinstance(v, (bytes, bytearray)))
    rest = {k: v for k, v in spec.items() if k != "datasets"}
    return data + len(json.dumps(rest, default=str))


@st.cache_resource(show_spinner=False)
def _specs() -> ByteCache:
    return budget_cache(MAX_SPECS, SHARE)


def convert(chart) -> dict[str, Any]:
    """The spec st.altair_chart sends for `chart` (Streamlit's own conversion)."""
    return _convert_altair_to_vega_lite_spec(chart)


def chart_spec(build: Callable[..., Any], *args, **kwargs) -> dict[str, Any]:
    """The Vega-Lite spec of `build(*args, **kwargs)`, built and converted once per distinct input
    and language; a fresh top-level dict each time (Streamlit may edit the top level)."""
    try:
        key = chart_key(build, args, kwargs, get_language())
    except Unkeyable:
        return convert(build(*args, **kwargs))
    spec = _specs().get_or_build(key, lambda: convert(build(*args, **kwargs)), spec_bytes)
    return dict(spec)
