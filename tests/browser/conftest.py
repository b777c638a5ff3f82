"""Browser fixtures: one app server and one Chromium for all browser tests.

Without a usable Chromium the tests skip locally, but under CI=true a missing browser fails them.
"""

from __future__ import annotations

import os

import pytest

from .server import CHROMIUM_ARGS, chromium_path, running_app


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc})")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure means no browser here
            _unavailable(f"Chromium could not start ({exc}); set CONVMIX_CHROMIUM or install chromium")
        yield b
        b.close()


@pytest.fixture(scope="session")
def app_url():
    with running_app() as base:
        yield base


def _benign(url: str) -> bool:
    # On a page below the root, Streamlit's frontend first probes /<page>/_stcore/health and
    # /<page>/_stcore/host-config to find the server's base path; the 404s are expected.
    return url.endswith(("/_stcore/health", "/_stcore/host-config"))


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.js_errors = []
    pg.on("pageerror", lambda exc: pg.js_errors.append(f"page error: {exc}"))
    # Failed requests are judged by their URL (below); the console's copy of them carries none.
    pg.on("console", lambda msg: pg.js_errors.append(msg.text)
          if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    pg.on("response", lambda resp: pg.js_errors.append(f"HTTP {resp.status} {resp.url}")
          if resp.status >= 400 and not _benign(resp.url) else None)
    yield pg
    context.close()
