"""The training page in Chromium: a short run started by a click updates its progress and charts
while it trains and finishes; at 390×844, in English and Chinese, nothing scrolls sideways.

The server runs torch on one thread (CONVMIX_THREADS=1), as a small shared host should: the run's
time check then measures what a visitor would get.
"""

from __future__ import annotations

import time

import pytest

from .server import running_app, wait_idle

pytestmark = pytest.mark.browser

# A small network: 30 steps an epoch, logged (and drawn) every 10 steps, 3 epochs.
SHORT = "train_width=8&train_head=2&train_kernel_att=3&train_batch=48&train_epochs=3"
START = {"en": "Start", "zh": "开始"}
FINISHED = {"en": "Finished", "zh": "训练完成"}


@pytest.fixture(scope="module")
def train_url():
    with running_app(env={"CONVMIX_THREADS": "1"}) as base:
        yield f"{base}/train"


def no_sideways_scroll(pg) -> bool:
    width, client = pg.locator("[data-testid='stMain']").evaluate("e => [e.scrollWidth, e.clientWidth]")
    return width <= client


def start(pg, lang: str) -> None:
    pg.locator(".st-key-run_start button").click()
    pg.locator("[data-testid='stProgress']").first.wait_for(timeout=60_000)


def progress_text(pg) -> str:
    return pg.locator("[data-testid='stProgress']").first.inner_text()


def wait_finished(pg, lang: str, timeout_s: float = 180) -> None:
    pg.locator("[data-testid='stAlertContentSuccess']", has_text=FINISHED[lang]).wait_for(timeout=timeout_s * 1000)


def test_a_run_updates_its_charts_while_it_trains(browser, train_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{train_url}?lang=en&{SHORT}")
    wait_idle(pg)
    start(pg, "en")
    chart = pg.locator("[data-testid='stVegaLiteChart']").first
    chart.wait_for(timeout=60_000)
    seen_progress, seen_charts = {progress_text(pg)}, {chart.screenshot()}
    deadline = time.monotonic() + 120
    while (len(seen_progress) < 3 or len(seen_charts) < 3) and time.monotonic() < deadline:
        pg.wait_for_timeout(400)
        if pg.locator("[data-testid='stAlertContentSuccess']").count():
            break
        seen_progress.add(progress_text(pg))
        seen_charts.add(chart.screenshot())
    assert len(seen_progress) >= 3, seen_progress  # the bar moved while the run trained
    assert len(seen_charts) >= 3  # and the loss chart was redrawn with new points
    # The page answers while it trains: pause stops the run where it is.
    pg.locator(".st-key-run_pause button").click()
    pg.locator(".st-key-run_resume button").wait_for(timeout=30_000)
    wait_idle(pg)
    paused = progress_text(pg)
    pg.wait_for_timeout(1500)
    assert progress_text(pg) == paused
    pg.locator(".st-key-run_resume button").click()
    wait_finished(pg, "en")
    assert "step 90 of 90" in progress_text(pg)
    assert pg.locator("[data-testid='stException']").count() == 0 and errors == []
    assert pg.locator(".st-key-run_download button").count() == 1
    context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_on_a_phone_nothing_scrolls_sideways(browser, train_url, lang):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    pg = context.new_page()
    pg.goto(f"{train_url}?lang={lang}&{SHORT}")
    wait_idle(pg)
    assert no_sideways_scroll(pg)
    start(pg, lang)
    pg.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=60_000)
    assert no_sideways_scroll(pg)
    wait_finished(pg, lang)
    wait_idle(pg)
    assert no_sideways_scroll(pg)
    assert pg.locator("[data-testid='stVegaLiteChart']").count() >= 9  # curves, rates, bias, digit, 4 windows
    assert pg.locator("[data-testid='stException']").count() == 0
    context.close()
