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
    section = View("pages/walkthrough.py", "walkthrough", "Stage I")
    assert section.url("http://h", "en") == "http://h/walkthrough?section=Stage+I&lang=en"
    assert section.name == "walkthrough-stage-i"


@pytest.mark.parametrize(
    ("source", "sections"),
    [
        ('SECTIONS = ["Overview", "Stage I"]\n', ["Overview", "Stage I"]),
        ('SECTIONS = (N_("Overview"), "fc")\n', ["Overview", "fc"]),
        ('SECTIONS: dict = {"overview": N_("Overview"), "stage1": N_("Stage I")}\n', ["overview", "stage1"]),
    ],
)
def test_walkthrough_sections_are_read_from_the_page(tmp_path, source, sections):
    page = tmp_path / "walkthrough.py"
    page.write_text("import streamlit as st\n" + source)
    assert walkthrough_sections(page) == sections


@pytest.mark.parametrize("source", ["SECTIONS = make_sections()\n", "SECTIONS = [label(x) for x in y]\n", "X = 1\n"])
def test_a_section_list_it_cannot_read_is_an_error(tmp_path, source):
    page = tmp_path / "walkthrough.py"
    page.write_text(source)
    with pytest.raises(ValueError):
        walkthrough_sections(page)
