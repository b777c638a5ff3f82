"""The language goes along with every link, in Chromium: the home page's links and the navigation
menu, clicked in Chinese, open the page in Chinese with `?lang=zh` in the URL once and the
configuration once; a link opened in a new tab keeps the language too (its address names it); a
language chosen in the menu, not in the URL, is carried the same way."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from convmix.i18n import _, language
from convmix.ui.navigation import PAGE_SPECS, url_path

from .app_pages import DESKTOP, exceptions, settle

pytestmark = pytest.mark.browser

TARGETS = PAGE_SPECS[1:]
CONFIG = {"kernel_att": "5", "stride": "2"}


def chinese(text: str) -> str:
    with language("zh"):
        return _(text)


def open_page(browser, url: str):
    context = browser.new_context(**DESKTOP)
    pg = context.new_page()
    pg.goto(url)
    settle(pg)
    return context, pg


def assert_in_chinese_with_the_configuration(pg, spec) -> None:
    assert urlparse(pg.url).path.strip("/") == url_path(spec)
    query = parse_qs(urlparse(pg.url).query)
    assert query.get("lang") == ["zh"], pg.url  # once, and Chinese
    assert {k: query.get(k) for k in CONFIG} == {k: [v] for k, v in CONFIG.items()}, pg.url
    sidebar = pg.locator("[data-testid='stSidebar']")
    assert sidebar.get_by_text(chinese("ACmix configuration"), exact=True).count() == 1
    assert sidebar.locator("input[aria-label='kernel_att']").input_value() == "5"
    menu = pg.locator("[data-testid='stSidebarNav']").inner_text()
    assert all(chinese(s.title) in menu for s in PAGE_SPECS), menu
    assert exceptions(pg) == []


def start_url(base: str) -> str:
    return f"{base}/?lang=zh&" + "&".join(f"{k}={v}" for k, v in CONFIG.items())


@pytest.mark.parametrize("spec", TARGETS, ids=[s.title for s in TARGETS])
def test_home_links_carry_the_language(browser, app_url, spec):
    context, pg = open_page(browser, start_url(app_url))
    try:
        link = pg.locator("[data-testid='stMain'] [data-testid='stPageLink-NavLink']",
                          has_text=chinese(spec.title))
        assert parse_qs(urlparse(link.get_attribute("href")).query) == {"lang": ["zh"]}
        link.click()
        pg.wait_for_url(f"**/{url_path(spec)}?**")
        settle(pg)
        assert_in_chinese_with_the_configuration(pg, spec)
    finally:
        context.close()




@pytest.mark.parametrize("spec", TARGETS, ids=[s.title for s in TARGETS])
def test_the_menu_carries_the_language_there_and_back(browser, app_url, spec):
    context, pg = open_page(browser, start_url(app_url))
    try:
        nav = pg.locator("[data-testid='stSidebarNav']")
        nav.get_by_text(chinese(spec.title), exact=True).click()
        pg.wait_for_url(f"**/{url_path(spec)}?**")
        settle(pg)
        assert_in_chinese_with_the_configuration(pg, spec)
        nav.get_by_text(chinese(PAGE_SPECS[0].title), exact=True).click()
        pg.wait_for_url(lambda url: urlparse(url).path in ("", "/"))
        settle(pg)
        assert_in_chinese_with_the_configuration(pg, PAGE_SPECS[0])
        assert pg.locator("h1", has_text="convmix").count() == 1
    finally:
        context.close()


def test_a_link_opened_in_a_new_tab_keeps_the_language(browser, app_url):
    context, pg = open_page(browser, f"{app_url}/?lang=zh")
    try:
        href = pg.locator("[data-testid='stMain'] [data-testid='stPageLink-NavLink']").last.get_attribute("href")
        other = context.new_page()  # a new tab: a new Streamlit session that knows only the address
        other.goto(f"{app_url}/{href}")
        settle(other)
        assert parse_qs(urlparse(other.url).query).get("lang") == ["zh"]
        assert other.locator("[data-testid='stSidebar']").get_by_text(chinese("ACmix configuration"),
                                                                       exact=True).count() == 1
    finally:
        context.close()


def test_a_language_chosen_in_the_menu_is_carried(browser, app_url):
    context, pg = open_page(browser, f"{app_url}/?" + "&".join(f"{k}={v}" for k, v in CONFIG.items()))
    try:
        assert "lang" not in parse_qs(urlparse(pg.url).query)  # the browser's language, English here
        pg.locator("[data-testid='stSidebar'] label", has_text="中文").click()
        pg.wait_for_url("**lang=zh**")
        settle(pg)
        spec = next(s for s in TARGETS if s.path == "pages/explorer.py")
        pg.locator("[data-testid='stSidebarNav']").get_by_text(chinese(spec.title), exact=True).click()
        pg.wait_for_url(f"**/{url_path(spec)}?**")
        settle(pg)
        assert_in_chinese_with_the_configuration(pg, spec)
    finally:
        context.close()
