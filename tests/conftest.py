"""Shared fixtures: clean Streamlit caches, and AppTest that behaves like a real session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from convmix.ui.warmup import scan_components_once, share_compiled_scripts

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")

# AppTest resets PagesManager.uses_pages_directory before every run, and the folder `pages/`
# then switches it to the legacy multipage mode, in which a rerun executes only the page file and
# skips streamlit_app.py (and so the shared sidebar). A real server keeps the flag False once
# st.navigation has run; keep it so in tests too.
_original_init = PagesManager.__init__


def _init_as_navigation_app(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    PagesManager.uses_pages_directory = False


PagesManager.__init__ = _init_as_navigation_app

# Each new AppTest scans every installed package for Streamlit components (about 0.5 s): once per
# test process is enough.
scan_components_once()
# AppTest compiles the app and its page on every run (20-50 ms): one compilation per script and
# test process, as a server keeps one.
share_compiled_scripts()


def headroom_budget(nbytes: int) -> str:
    """A process budget that leaves `nbytes` for requests beside what this process holds now
    (garbage of earlier tests collected first, so that it is not counted and then freed)."""
    import gc

    from convmix.budget import held_bytes

    gc.collect()
    return str(held_bytes() + nbytes)


@pytest.fixture(autouse=True)
def _keep_memory_budget_setting(monkeypatch):
    # The app may set $CONVMIX_MEMORY_BUDGET and $CONVMIX_TIME_LIMIT from secrets; no test may leave
    # them behind. The budget limits the whole process (convmix.budget), and this test process holds
    # far more than a fresh server (every earlier test's imports and leftovers), so unless the run
    # sets one, each test starts with 1 GiB for its requests on top of what the process holds: the
    # headroom a server has, whatever ran before.
    from convmix.budget import BUDGET_ENV, TIME_LIMIT_ENV

    monkeypatch.setenv(BUDGET_ENV, os.environ.get(BUDGET_ENV, "") or headroom_budget(1 << 30))
    monkeypatch.setenv(TIME_LIMIT_ENV, os.environ.get(TIME_LIMIT_ENV, ""))
    yield


@pytest.fixture
def headroom(monkeypatch):
    """Set the process budget to leave the given bytes for requests (see headroom_budget)."""
    from convmix.budget import BUDGET_ENV

    def set_headroom(nbytes: int) -> int:
        value = headroom_budget(nbytes)
        monkeypatch.setenv(BUDGET_ENV, value)
        return int(value)

    return set_headroom


@pytest.fixture(autouse=True)
def _clear_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread, and a busy machine does not stall them in OpenMP
    barriers; the thread count is restored for the tests that follow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def app():
    """Factory: an AppTest of the whole app, run once, optionally on a page and with URL parameters."""
    from streamlit.testing.v1 import AppTest

    def make(page: str | None = None, query_params: dict | None = None, timeout: float = 120):
        at = AppTest.from_file(APP, default_timeout=timeout)
        if query_params:
            at.query_params.update({k: str(v) for k, v in query_params.items()})
        at.run()
        if page is not None:
            at.switch_page(page).run()
        return at

    return make
