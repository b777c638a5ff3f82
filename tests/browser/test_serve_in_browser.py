"""A real server (issue 16): started warm by scripts/serve.py it serves every page at once, without an
exception; every rerun computes on one thread (shown on the home page), and CONVMIX_THREADS sets it."""

from __future__ import annotations

import sys

import pytest

from .app_pages import exceptions, settle
from .server import ROOT, running_app

pytestmark = pytest.mark.browser

PAGES = ["", "bias", "walkthrough", "explorer", "network", "train"]


def device_line(pg) -> str:
    return pg.get_by_text("torch sees:").first.inner_text()


def test_a_warm_server_serves_every_page_and_computes_on_one_thread(browser):
    serve = [sys.executable, str(ROOT / "scripts" / "serve.py")]
    with running_app(env={"CONVMIX_THREADS": ""}, command=serve, timeout=300) as base:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        try:
            for path in PAGES:
                pg.goto(f"{base}/{path}?lang=en")
                settle(pg)
                assert not exceptions(pg), path
                assert pg.locator("[data-testid='stMain'] h1").count(), path  # the page itself, not a bare router
            pg.goto(f"{base}/?lang=en")
            settle(pg)
            pg.reload()  # another rerun, in another thread
            settle(pg)
            assert "CPU only, 1 thread (torch" in device_line(pg)
        finally:
            context.close()


def test_the_variable_sets_the_threads_of_a_real_server(browser):
    with running_app(env={"CONVMIX_THREADS": "2"}) as base:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        try:
            pg.goto(f"{base}/?lang=en")
            settle(pg)
            assert "CPU only, 2 threads (torch" in device_line(pg)
        finally:
            context.close()
