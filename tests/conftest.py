"""Shared fixtures: clean Streamlit caches, and AppTest that behaves like a real session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

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


@pytest.fixture(autouse=True)
def _keep_memory_budget_setting(monkeypatch):
    # The app may set $CONVMIX_MEMORY_BUDGET from a secret; no test may leave it behind.
    from convmix.budget import BUDGET_ENV

    monkeypatch.setenv(BUDGET_ENV, os.environ.get(BUDGET_ENV, ""))
    yield


@pytest.fixture(autouse=True)
def _clear_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


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
