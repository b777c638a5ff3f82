"""The shared parts of every page in Chromium, measured on screen: the home diagram's labels are at
least 11 px high and inside their boxes (the narrow layout on a phone, the wide one on a desktop), the
home page's links wrap instead of being cut, and on a phone the sidebar lists the parameters in the
constructor's order. English and Chinese."""

from __future__ import annotations

import pytest

from .app_pages import DESKTOP, LANGS, PHONE, settle

pytestmark = pytest.mark.browser

LEGIBLE_PX = 11
PARAMETERS = ["in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride", "dilation",
              "height", "width", "batch", "seed"]
SIZES = {"phone": PHONE, "desktop": DESKTOP}

# For each diagram drawn: which layout, the smallest label on screen (its font size times the
# drawing's scale), and how far the widest label sticks out of its box (negative: room to spare).
DIAGRAMS = """() => [...document.querySelectorAll("[data-testid='stGraphVizChart']")]
  .filter(chart => chart.offsetParent !== null)
  .map(chart => {
    const svg = chart.querySelector('svg:has(g.graph)');
    const texts = [...svg.querySelectorAll('g.graph text')];
    const px = texts.map(t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a);
    const outside = [...svg.querySelectorAll('g.node')].flatMap(node => {
      const box = node.querySelector('path, polygon').getBBox();
      return [...node.querySelectorAll('text')].map(t => {
        const b = t.getBBox();
        return Math.max(box.x - b.x, b.x + b.width - (box.x + box.width));
      });
    });
    const layout = chart.closest('[class*="st-key-acmix_diagram_"]').className.match(/st-key-acmix_diagram_(\\w+)/)[1];
    return {layout, labels: texts.length, smallestPx: Math.min(...px), outsidePt: Math.max(...outside)};
  })"""


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("size", SIZES)
def test_diagram_labels_are_legible_and_inside_their_boxes(browser, app_url, size, lang):
    context = browser.new_context(**SIZES[size])
    pg = context.new_page()
    try:
        pg.goto(f"{app_url}/?lang={lang}")
        settle(pg)
        (shown,) = pg.evaluate(DIAGRAMS)  # exactly one of the two layouts is visible
        assert shown["layout"] == ("narrow" if size == "phone" else "wide")
        assert shown["labels"] >= 20
        assert shown["smallestPx"] >= LEGIBLE_PX, shown
        assert shown["outsidePt"] <= 0, shown
    finally:
        context.close()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("size", SIZES)
def test_page_links_wrap_instead_of_being_cut(browser, app_url, size, lang):
    context = browser.new_context(**SIZES[size])
    pg = context.new_page()
    try:
        pg.goto(f"{app_url}/?lang={lang}")
        settle(pg)
        cut = pg.evaluate("""() => [...document.querySelectorAll(
            "[data-testid='stMain'] [data-testid='stPageLink-NavLink'] [data-testid='stMarkdownContainer']")]
            .filter(label => label.parentElement.scrollWidth > label.parentElement.clientWidth + 1)
            .map(label => label.innerText)""")
        assert pg.locator("[data-testid='stMain'] [data-testid='stPageLink-NavLink']").count() == 5
        assert cut == []
    finally:
        context.close()


@pytest.mark.parametrize("lang", LANGS)
def test_phone_sidebar_lists_the_parameters_in_order(browser, app_url, lang):
    context = browser.new_context(**PHONE)
    pg = context.new_page()
    try:
        pg.goto(f"{app_url}/?lang={lang}")
        settle(pg)
        pg.locator("[data-testid='stExpandSidebarButton']").click()
        pg.locator("[data-testid='stSidebar'] input[aria-label='seed']").wait_for(state="visible")
        pg.wait_for_timeout(500)  # the sidebar slides in
        boxes = pg.evaluate("""() => [...document.querySelectorAll(
            "[data-testid='stSidebar'] [data-testid='stNumberInput'] input")].map(input => {
              const box = input.getBoundingClientRect();
              return [input.getAttribute('aria-label'), box.top, box.left];
            })""")
        # Reading order on screen: top to bottom, then left to right within a row.
        reading = [name for name, top, left in sorted(boxes, key=lambda b: (round(b[1]), b[2]))]
        assert reading == PARAMETERS
    finally:
        context.close()
