"""scripts/screenshots.py: which views it visits and how it refuses names it does not know (the
screenshots themselves need Chromium and a running app: run the script and look at them)."""

from __future__ import annotations

import importlib.util

import pytest

from convmix.ui.navigation import PAGE_SPECS
from tests.browser.app_pages import View, views, walkthrough_sections
from tests.conftest import ROOT


def script():
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_lists_every_page_and_walkthrough_section(capsys):
    assert script().main(["--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names == [view.name for view in views()]
    assert len(names) == len(PAGE_SPECS) - 1 + len(walkthrough_sections())
    assert names[0] == "home" and len(set(names)) == len(names)


@pytest.mark.parametrize("argv", [["--only", "nowhere"], ["--lang", "fr"], ["--size", "tablet"]])
def test_unknown_names_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        script().main(argv)
    assert stop.value.code == 2 and "unknown" in capsys.readouterr().err


def test_view_urls_carry_the_language_and_the_section():
    assert View("pages/home.py", "").url("http://h", "zh") == "http://h/?lang=zh"
    section = View("pages/walkthrough.py", "walkthrough", "stage_i")
    assert section.url("http://h", "en") == "http://h/walkthrough?section=stage_i&lang=en"
    assert section.name == "walkthrough-stage-i"


def test_the_walkthrough_views_are_its_section_ids():
    from convmix.walkthrough import SECTION_IDS

    assert walkthrough_sections() == list(SECTION_IDS)
    assert [v.section for v in views() if v.section is not None] == list(SECTION_IDS)
