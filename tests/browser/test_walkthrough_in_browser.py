"""The walkthrough in Chromium: every section, in English and Chinese, at a phone's 390×844 and at
1400 px, with nothing scrolling sideways in the main area and no exception; the same for a layer of
the authors' ResNet and for the layer trained on the "Train it live" page (trained here by a click).

The server runs torch on one thread (CONVMIX_THREADS=1), as the training page's browser test does:
its time check then measures what a visitor on a small host would get.
"""

from __future__ import annotations

import pytest

from convmix import walkthrough as wt

from .server import running_app, wait_idle

pytestmark = pytest.mark.browser

TINY_TRAIN = "train_width=4&train_head=1&train_kernel_att=3&train_batch=256&train_epochs=2"
RESNET = "net=resnet26&net_seed=0&layer=layer2.0.conv2&picture=rocket&image_size=64"
TABS = "[data-testid='stTab']"


@pytest.fixture(scope="module")
def base():
    with running_app(env={"CONVMIX_THREADS": "1"}) as url:
        yield url


def main_overflow(pg) -> int:
    """How far the main area scrolls sideways (0: not at all)."""
    width, client = pg.locator("[data-testid='stMain']").evaluate("e => [e.scrollWidth, e.clientWidth]")
    return width - client


def every_section(pg, where: str) -> None:
    tabs = pg.locator(TABS)
    assert tabs.count() == len(wt.SECTION_IDS)
    for i, section in enumerate(wt.SECTION_IDS):
        tabs.nth(i).click()
        wait_idle(pg)
        if i:
            assert f"section={section}" in pg.url, (where, section, pg.url)  # the URL's value is the id
        assert main_overflow(pg) <= 0, (where, section, main_overflow(pg))
        assert pg.locator("[data-testid='stException']").count() == 0, (where, section)
        assert pg.locator("[data-testid='stMain'] [data-testid='stAlertContentError']").count() == 0, (where, section)


def open_page(browser, url: str, width: int):
    context = browser.new_context(viewport={"width": width, "height": 844})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.goto(url)
    wait_idle(pg)
    return context, pg


# Each language at one width: tests/browser/test_phone.py covers every section at 390 px in both.
@pytest.mark.parametrize(("lang", "width"), [("zh", 390), ("en", 1400)])
def test_every_section_on_a_photograph(browser, base, lang, width):
    context, pg = open_page(browser, f"{base}/walkthrough?lang={lang}", width)
    assert pg.locator("[data-testid='stMain'] [data-testid='stImage'] img").count() >= 1  # the photograph
    every_section(pg, f"{lang} {width}")
    assert pg.errors == []
    context.close()


@pytest.mark.parametrize(("lang", "width"), [("zh", 390), ("en", 1400)])
def test_every_section_of_a_resnet_layer(browser, base, lang, width):
    context, pg = open_page(browser, f"{base}/walkthrough?lang={lang}&{RESNET}", width)
    every_section(pg, f"resnet {lang} {width}")
    assert "layer=layer2.0.conv2" in pg.url and pg.errors == []
    context.close()


@pytest.mark.parametrize(("lang", "width"), [("zh", 390), ("en", 1400)])
def test_the_trained_layer_from_the_training_page(browser, base, lang, width):
    context, pg = open_page(browser, f"{base}/train?lang={lang}&{TINY_TRAIN}", width)
    pg.locator(".st-key-run_start button").click()
    pg.locator("[data-testid='stAlertContentSuccess']").wait_for(timeout=180_000)
    wait_idle(pg)
    pg.locator(".st-key-run_walkthrough button:visible").first.click()
    pg.wait_for_url("**/walkthrough**", timeout=60_000)
    wait_idle(pg)
    assert "layer=mixer" in pg.url and "picture=digit-0" in pg.url and "net=digits-" in pg.url
    assert pg.locator("[data-testid='stMain'] [data-testid='stImage'] img").count() >= 1  # the digit
    every_section(pg, f"digits {lang} {width}")
    assert pg.errors == []
    context.close()
