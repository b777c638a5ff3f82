"""The whole app on a phone: at 390 × 844, in English and in Chinese, every page and every section of
the walkthrough opens without an exception, and the main area does not scroll sideways.

`[data-testid='stMain']` is the element that scrolls in Streamlit (the document itself never does, so
a check on `document` proves nothing). The views are listed by tests/browser/app_pages.py: each page
of convmix.ui.navigation, the walkthrough once per `?section=` value.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from .app_pages import (
    LANGS,
    MAIN_OVERFLOW,
    PHONE,
    SECTION_PARAM,
    WIDER_THAN_MAIN,
    exceptions,
    settle,
    views,
    walkthrough_sections,
)

pytestmark = pytest.mark.browser

VIEWS = views()


def test_every_section_of_the_walkthrough_is_visited():
    sections = walkthrough_sections()
    assert len(sections) >= 5 and len(set(sections)) == len(sections)
    assert [v.section for v in VIEWS if v.section is not None] == sections


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("view", VIEWS, ids=[v.name for v in VIEWS])
def test_no_sideways_scroll_on_a_phone(browser, app_url, view, lang):
    context = browser.new_context(**PHONE)
    pg = context.new_page()
    try:
        pg.goto(view.url(app_url, lang))
        settle(pg)
        assert exceptions(pg) == []
        query = parse_qs(urlparse(pg.url).query)
        assert query.get("lang") == [lang]
        if view.section is not None:
            # The section was understood: the URL still names it (the first one, the default, may
            # be dropped from it) and no menu refused it.
            assert query.get(SECTION_PARAM) == [view.section] or view.section == walkthrough_sections()[0]
            assert pg.locator("[data-testid='stSidebar'] [data-testid='stAlert']", has_text="section").count() == 0
        scroll, client = pg.evaluate(MAIN_OVERFLOW)
        assert scroll <= client, (scroll, client, pg.evaluate(WIDER_THAN_MAIN))
    finally:
        context.close()
