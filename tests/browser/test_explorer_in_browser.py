"""The explorer in Chromium: a copied URL reproduces the view (axes, values, chart choices, highlight,
open tab), and at 390×844, in English and Chinese, nothing scrolls sideways, before and after a
measurement."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from .server import running_app, wait_idle

pytestmark = pytest.mark.browser

# A sweep that measures in seconds: 8×8 inputs, 8 and 16 channels, two windows, quick timing.
TINY = ("height=8&width=8&explorer_vary=channels%2Ckernel_att&explorer_values_channels=8%2C16"
        "&explorer_values_kernel_att=3%2C5&explorer_budget=quick")
MEASURE_DONE = {"en": "All 4 configurations that can run here are measured", "zh": "这里能运行的 4 个配置都已测量"}


@pytest.fixture(scope="module")
def explorer_url():
    with running_app(env={"CONVMIX_THREADS": "1"}) as base:
        yield f"{base}/explorer"


def main_text(pg) -> str:
    return pg.locator("[data-testid='stMain']").inner_text()


def no_sideways_scroll(pg) -> bool:
    width, client = pg.locator("[data-testid='stMain']").evaluate("e => [e.scrollWidth, e.clientWidth]")
    return width <= client


def choose(pg, key: str, option: str) -> None:
    """Pick `option` in the select box whose (language-keyed) widget key is `key`.

    The menu draws only the options in view, so the option is typed first to filter the list."""
    box = pg.locator(f".st-key-{key} input[role='combobox']")
    box.click()
    box.press_sequentially(option)
    pg.locator("[role='option']", has_text=option).first.click()
    wait_idle(pg)


def test_a_copied_url_reproduces_the_view(browser, explorer_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.goto(f"{explorer_url}?lang=en")
    wait_idle(pg)
    pg.get_by_role("button", name="Kernel, heads and stride").first.click()
    wait_idle(pg)
    choose(pg, "explorer_x__en", "heads")
    pg.locator(".st-key-explorer_scale__en label", has_text="relative to a baseline").click()
    wait_idle(pg)
    choose(pg, "explorer_highlight__en", "ka=5 h=2 s=2")
    pg.get_by_role("tab", name="Stage I vs Stage II").click()
    wait_idle(pg)
    copied = pg.url
    query = parse_qs(urlparse(copied).query)
    assert query["explorer_vary"] == ["kernel_att,head,stride"] and query["explorer_x"] == ["head"]
    assert query["explorer_scale"] == ["relative"] and query["explorer_view"] == ["share"]
    assert query["explorer_highlight"][0].startswith("Cin=64 C=64 ka=5 h=2 kc=3 s=2")
    before = main_text(pg)
    charts_before = pg.locator("[data-testid='stVegaLiteChart']").count()

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    other = fresh.new_page()
    other.goto(copied)
    wait_idle(other)
    assert main_text(other) == before
    assert other.locator("[data-testid='stVegaLiteChart']").count() == charts_before
    assert other.get_by_role("tab", name="Stage I vs Stage II").get_attribute("aria-selected") == "true"
    assert other.locator(".st-key-explorer_highlight__en input[role='combobox']").input_value() == "ka=5 h=2 s=2"
    assert other.locator(".st-key-explorer_x__en input[role='combobox']").input_value() == "heads"
    assert other.locator("[data-testid='stException']").count() == 0
    fresh.close()
    context.close()


def test_the_url_is_language_neutral(browser, explorer_url):
    """The same choices in Chinese write the same URL values (codes, not translated labels)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.goto(f"{explorer_url}?lang=zh")
    wait_idle(pg)
    pg.get_by_role("button", name="窄层与宽层").first.click()
    wait_idle(pg)
    pg.get_by_role("tab", name="延迟与内存").click()
    wait_idle(pg)
    query = parse_qs(urlparse(pg.url).query)
    assert query["explorer_vary"] == ["channels,kernel_att"] and query["explorer_view"] == ["latency"]
    english = pg.url.replace("lang=zh", "lang=en")
    pg.goto(english)
    wait_idle(pg)
    assert pg.get_by_role("tab", name="Latency and memory").get_attribute("aria-selected") == "true"
    assert "**" not in main_text(pg) and "10 configurations of" in main_text(pg)
    context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_on_a_phone_nothing_scrolls_sideways(browser, explorer_url, lang):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    pg = context.new_page()
    pg.goto(f"{explorer_url}?lang={lang}&explorer_per_submodule=true")
    wait_idle(pg)
    assert pg.locator("[data-testid='stVegaLiteChart']").count() >= 14  # one per ResNet layer, two kinds
    assert no_sideways_scroll(pg)
    pg.goto(f"{explorer_url}?lang={lang}&{TINY}&explorer_view=latency")
    wait_idle(pg)
    assert no_sideways_scroll(pg)
    pg.locator(".st-key-explorer_measure button").first.click()
    pg.locator(".st-key-explorer_measure button", has_text=MEASURE_DONE[lang]).wait_for(timeout=240_000)
    wait_idle(pg)
    assert pg.locator("[data-testid='stVegaLiteChart']").count() >= 5
    assert no_sideways_scroll(pg)
    widths = pg.locator("[data-testid='stVegaLiteChart']").evaluate_all(
        "charts => charts.map(c => c.getBoundingClientRect().right)")
    main_right = pg.locator("[data-testid='stMain']").evaluate("e => e.getBoundingClientRect().right")
    assert max(widths) <= main_right  # every chart fits the phone's width
    assert pg.locator("[data-testid='stException']").count() == 0
    context.close()


def test_the_download_holds_the_sweep_with_what_was_measured(browser, explorer_url, tmp_path):
    """The CSV is made when the button is pressed: one row per configuration shown, the parameter
    count of each module as built, and the latency of each measured one."""
    import pandas as pd

    from convmix.config import ACmixConfig
    from convmix.sweep import CONFIG_COLUMNS

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.goto(f"{explorer_url}?lang=en&{TINY}&explorer_view=latency")
    wait_idle(pg)
    pg.locator(".st-key-explorer_measure button").first.click()
    pg.locator(".st-key-explorer_measure button", has_text=MEASURE_DONE["en"]).wait_for(timeout=240_000)
    wait_idle(pg)
    with pg.expect_download() as download:
        pg.locator(".st-key-explorer_download button:visible").click()
    path = tmp_path / "sweep.csv"
    download.value.save_as(path)
    rows = pd.read_csv(path)
    assert len(rows) == 4
    assert sorted(zip(rows["out_planes"], rows["kernel_att"], strict=True)) == [(8, 3), (8, 5), (16, 3), (16, 5)]
    for row in rows.to_dict("records"):
        module = ACmixConfig(**{c: row[c] for c in CONFIG_COLUMNS}).build()
        assert row["params"] == sum(p.numel() for p in module.parameters())
    assert rows["latency_ms"].gt(0).all()
    assert pg.locator("[data-testid='stException']").count() == 0
    context.close()
