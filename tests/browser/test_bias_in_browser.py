"""The bias page in Chromium, in English and Chinese: at a phone's 390 × 844 the main area never
scrolls sideways, each chart fits inside its column, and each formula fits or scrolls in its own
box; at 1400 px the same holds, with every chart drawn and no error. Each of the page's lazily drawn
sections (tabs) is opened by a click, as a visitor does."""

from __future__ import annotations

import pytest

from convmix.i18n import _, language
from tests.bias_sections import SECTIONS

from .app_pages import DRAWN as ALL_DRAWN
from .app_pages import settle
from .server import wait_idle

pytestmark = pytest.mark.browser

MAIN_OVERFLOW = "e => [e.scrollWidth, e.clientWidth]"
# Charts wider than the block that holds them (a column, or the main block), and formulas wider than
# a box that neither fits nor scrolls them.
SPILLS = """() => {
    const out = [];
    for (const chart of document.querySelectorAll("[data-testid='stMain'] [data-testid='stVegaLiteChart']")) {
        const box = chart.closest("[data-testid='stColumn']") || chart.closest("[data-testid='stMainBlockContainer']");
        const c = chart.getBoundingClientRect(), b = box.getBoundingClientRect();
        if (c.right > b.right + 1 || c.left < b.left - 1) out.push(["chart", Math.round(c.width), Math.round(b.width)]);
    }
    for (const formula of document.querySelectorAll("[data-testid='stMain'] .katex-display")) {
        const scrolls = ["auto", "scroll"].includes(getComputedStyle(formula).overflowX);
        if (formula.scrollWidth > formula.clientWidth + 2 && !scrolls)
            out.push(["formula", formula.scrollWidth, formula.clientWidth]);
    }
    return out;
}"""
DRAWN = "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"
VIEWS = ["", "&bias_size=448&bias_in=1&bias_kernel=9&bias_stride=2&bias_pad=4&bias_out=16"]


def open_page(browser, url: str, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=width < 500)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.goto(url)
    settle(pg)  # every element's code loaded and every chart drawn (up to 60 s on a busy machine)
    return context, pg


def each_section(pg, lang: str):
    """Open every section's tab in turn by a click; yield its code once it has run and drawn."""
    for code, english in SECTIONS.items():
        if code != "sum":  # the first tab is open
            with language(lang):
                label = _(english)
            pg.get_by_role("tab", name=label, exact=True).click()
            wait_idle(pg)
            pg.wait_for_function(ALL_DRAWN, timeout=60_000, polling=100)
            pg.wait_for_timeout(300)
        yield code


def check_layout(pg, where) -> None:
    scroll, client = pg.locator("[data-testid='stMain']").evaluate(MAIN_OVERFLOW)
    assert scroll <= client, (where, scroll, client)
    assert pg.evaluate(SPILLS) == [], where
    assert pg.locator("[data-testid='stException']").count() == 0, where
    assert pg.errors == [], where


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("view", VIEWS, ids=["default", "grey-k9-448"])
def test_on_a_phone_nothing_scrolls_sideways(browser, app_url, lang, view):
    context, pg = open_page(browser, f"{app_url}/bias?lang={lang}{view}", 390, 844)
    try:
        charts = 0
        for code in each_section(pg, lang):
            charts += pg.locator(DRAWN).count()
            check_layout(pg, (lang, view, 390, code))
        assert charts >= 8
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_at_desktop_width_every_chart_fits_its_column(browser, app_url, lang):
    context, pg = open_page(browser, f"{app_url}/bias?lang={lang}", 1400, 1000)
    try:
        # The patch grid stands beside the sum it explains, not above it.
        grid = pg.locator("[data-testid='stVegaLiteChart']").first.bounding_box()
        total = pg.locator("[data-testid='stMetric']", has_text="layer(x)").first.bounding_box()
        assert total["x"] > grid["x"] + grid["width"] - 1
        charts = 0
        for code in each_section(pg, lang):
            charts += pg.locator(DRAWN).count()
            check_layout(pg, (lang, 1400, code))
        assert charts >= 8
        assert "bias_view=article" in pg.url  # the open section is in the URL
    finally:
        context.close()


def test_lowering_the_size_in_the_browser_clamps_the_row(browser, app_url):
    """The reported bug, as a visitor meets it: a row chosen at 448, then the smallest input."""
    context, pg = open_page(browser, f"{app_url}/bias?bias_size=448&bias_row=200", 1400, 1000)
    try:
        thumb = pg.locator(".st-key-bias_size input[type='range']")  # the slider's thumb
        thumb.focus()
        thumb.press("Home")  # the size slider to its first stop, 8
        wait_idle(pg)
        assert pg.locator("[data-testid='stException']").count() == 0
        body = pg.locator("[data-testid='stMain']").inner_text()
        assert "Output row 200 does not exist at this size; showing row 3, the last." in body
        assert "bias_row=3" in pg.url and "bias_size=8" in pg.url
        assert pg.errors == []
    finally:
        context.close()
