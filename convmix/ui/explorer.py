"""The explorer page's cached work and its URL-bound view state (Streamlit only; layout stays in the page).

Cached functions live here rather than in the page (a function defined in a page keeps the page's
globals alive). Those whose results hold translated sentences take the language as an argument.
Measurements are cached for the whole server, per configuration, device, dtype, implementation,
timing effort and attempt: a visitor who asks again for a noisy configuration gets a new attempt.

`view_tabs` draws st.tabs whose open tab is carried in the URL by a language-neutral code
(`?explorer_view=latency`, convmix.ui.widgets.url_tabs): Streamlit would write the translated label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import streamlit as st

from convmix import bench, sweep
from convmix.budget import memory_budget, time_limit
from convmix.ui.widgets import url_tabs

VIEW = "explorer_view"  # the URL parameter and the base of the tabs' widget key


@st.cache_data(max_entries=32, show_spinner=False)
def sweep_counts(base, axes: tuple[tuple[str, tuple], ...], language: str):
    """Valid configurations, the number skipped with notes on why (in `language`), and the exact
    count rows. The seed changes no count: the caller passes a base with seed 0."""
    grid = sweep.expand_grid(base, dict(axes))
    return grid.configs, len(grid.skipped), grid.skip_notes(), sweep.count_rows(grid.configs)


@st.cache_data(max_entries=32, show_spinner=False)
def runnable_as_fixed(base, axes: tuple[tuple[str, tuple], ...]) -> int:
    return len(sweep.expand_grid(base.with_(variant="fixed"), dict(axes)).configs)


@st.cache_data(max_entries=2048, show_spinner=False)
def measured_row(config, device: str, dtype: str, impl: str, budget: str, attempt: int = 0,
                 _still_wanted=None) -> dict:
    """One configuration measured on this server; shared by all visitors (per configuration, device,
    dtype, implementation, effort and attempt). Within the server's memory budget and time limit;
    dropped while queued once `_still_wanted()` says the visitor has gone."""
    return bench.measure_config(config, device=device, dtype=dtype, impl=impl,
                                budget=bench.BUDGETS[budget], memory_limit=memory_budget(),
                                time_limit=time_limit(), still_wanted=_still_wanted)


@st.cache_data(max_entries=16, show_spinner=False)
def read_upload(data: bytes, name: str, language: str) -> pd.DataFrame:
    return sweep.read_results(data, name)


@st.cache_data(max_entries=8, show_spinner=False)
def read_reference(path: str, modified: float, language: str) -> pd.DataFrame:
    """A built-in reference data set (read again when the file changes)."""
    with open(path, "rb") as f:
        return sweep.read_results(f.read(), path.rsplit("/", 1)[-1])


@st.cache_data(max_entries=4096, show_spinner=False)
def time_estimates(config, impl: str, budget: str) -> tuple[float, float]:
    """(the shortest measurement, the whole measurement) in seconds, estimated (CPU)."""
    effort = bench.BUDGETS[budget]
    return bench.measurement_seconds(config, impl, effort), bench.expected_seconds(config, impl, effort)


def view_tabs(views: Mapping[str, str], default: str) -> tuple[str, list]:
    """The explorer's tabs, their open one in `?explorer_view=` (convmix.ui.widgets.url_tabs)."""
    return url_tabs(VIEW, views, default)


def chart_grid(items: Sequence, draw: Callable, columns: int = 2) -> None:
    """Draw `draw(item)` for each item, `columns` to a row (Streamlit stacks them on a phone)."""
    items = list(items)
    if len(items) == 1:
        draw(items[0])
        return
    for start in range(0, len(items), columns):
        cols = st.columns(columns)
        for col, item in zip(cols, items[start:start + columns], strict=False):
            with col:
                draw(item)
