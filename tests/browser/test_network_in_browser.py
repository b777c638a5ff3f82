"""The "ACmix in ResNet" page in Chromium: both tabs draw their charts without errors at 1400 px (each
when it is opened, the URL naming the open one), and at a phone's 390 × 844 the main area never
scrolls sideways, in English and in Chinese."""

from __future__ import annotations

import pytest

from .server import wait_idle

pytestmark = pytest.mark.browser

MAIN_OVERFLOW = """() => {
    const main = document.querySelector("[data-testid='stMain']");
    return [main.scrollWidth, main.clientWidth];
}"""


def open_tab(pg, index: int) -> None:
    pg.locator("[data-testid='stTab']").nth(index).click()
    wait_idle(pg)


def charts_drawn(pg) -> int:
    """Charts whose Vega view has been drawn (an svg or a canvas inside the chart element)."""
    pg.wait_for_timeout(500)
    return pg.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").count()


def test_both_tabs_draw_at_desktop_width(page, app_url):
    page.goto(f"{app_url}/network?lang=en")
    wait_idle(page)
    page.get_by_text("The three networks beside the README table").wait_for(timeout=60_000)
    assert charts_drawn(page) >= 3
    open_tab(page, 1)
    page.get_by_text("8 ACmix layers found").wait_for(timeout=60_000)
    page.get_by_text("1 × 64 × 56 × 56").wait_for(timeout=60_000)  # the preview ran the network
    # Only the open tab is drawn: the five across-depth charts and the input's map.
    assert charts_drawn(page) >= 6
    assert "network_view=weights" in page.url and "net=resnet26" in page.url
    open_tab(page, 0)
    page.get_by_text("The three networks beside the README table").wait_for(timeout=60_000)
    assert charts_drawn(page) >= 3
    assert "network_view" not in page.url and "net=" not in page.url
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.js_errors == []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_sideways_scroll_on_a_phone(browser, app_url, lang):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    pg = context.new_page()
    try:
        pg.goto(f"{app_url}/network?lang={lang}")
        wait_idle(pg)
        for tab in (0, 1):
            open_tab(pg, tab)
            assert charts_drawn(pg) >= 1
            scroll, client = pg.evaluate(MAIN_OVERFLOW)
            assert scroll <= client, (lang, tab, scroll, client)
        assert pg.locator("[data-testid='stException']").count() == 0
    finally:
        context.close()
