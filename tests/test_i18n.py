"""Translations: the runtime (convmix.i18n), the catalog checks (convmix.i18n_tools), the language
menu, and the English-leftover detector that the page tests use (tests/i18n_text.py)."""

from __future__ import annotations

import threading

import pytest
from babel.messages.catalog import Catalog
from streamlit.testing.v1 import AppTest

from convmix import i18n, i18n_tools
from convmix.i18n import _, get_language, language, ngettext, parse_language, set_language
from tests.conftest import APP
from tests.i18n_text import english_runs

TITLE = "convmix: ACmix and Conv2d bias, explained"


# -- runtime -----------------------------------------------------------------------------------------
def test_english_is_the_default_and_the_source():
    assert get_language() == "en"
    assert _(TITLE) == TITLE
    assert _("not in any catalog {n:,}", n=12345) == "not in any catalog 12,345"


def test_chinese_comes_from_the_compiled_catalog():
    with language("zh"):
        translated = _(TITLE)
    assert translated != TITLE and any("\u4e00" <= ch <= "\u9fff" for ch in translated)
    assert get_language() == "en"  # restored after the block


def test_placeholders_are_filled_in_the_translation():
    message = "URL parameter lang={value} is not a language this app has; showing {language}."
    with language("zh"):
        text = _(message, value="'xx'", language="English")
    assert "'xx'" in text and "English" in text and "{" not in text


def test_untranslated_text_falls_back_to_english():
    with language("zh"):
        assert _("A sentence no catalog has, {n} times.", n=3) == "A sentence no catalog has, 3 times."
        assert ngettext("{n} file", "{n} files", 1, n=1) == "1 file"
        assert ngettext("{n} file", "{n} files", 2, n=2) == "2 files"


def test_each_thread_starts_in_english():
    # Every Streamlit run is a thread of its own: one visitor's language never leaks into another's.
    seen = []
    with language("zh"):
        worker = threading.Thread(target=lambda: seen.append(get_language()))
        worker.start()
        worker.join()
    assert seen == ["en"]


def test_unknown_languages_are_refused():
    with pytest.raises(ValueError, match="unknown language"):
        set_language("xx")
    with pytest.raises(ValueError, match="unknown language"):
        with language("fr"):
            pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [("zh", "zh"), ("zh-CN", "zh"), ("zh_Hans_CN", "zh"), ("EN-us", "en"), ("en", "en"), ("fr-FR", None),
     ("", None), (None, None), ("<b>zh</b>", None), ("zh" * 50, None), (42, None)],
)
def test_parse_language(value, expected):
    assert parse_language(value) == expected


# -- catalogs ----------------------------------------------------------------------------------------
def test_catalogs_are_complete_and_up_to_date():
    """Every message of the source is in each catalog, translated, not fuzzy, with the same placeholders;
    the template and the compiled .mo files match; the glossary is followed."""
    problems = i18n_tools.check()
    assert not problems, "\n".join(problems[:40]) + (f"\n… {len(problems) - 40} more" if len(problems) > 40 else "")


@pytest.mark.parametrize(
    ("english", "chinese", "expected"),
    [
        ("{count:,} parameters", "{count:,} 个参数", []),
        ("{count:,} parameters", "{count} 个参数", ["{count}"]),  # format spec dropped
        ("{count:,} parameters", "{n:,} 个参数", ["{n:,}"]),  # renamed
        ("{a} and {b}", "{a}", ["{a}"]),  # dropped
        ("{a}", "{a} {b}", ["{a}", "{b}"]),  # added
        ("literal {{braces}} and {x}", "字面 {{braces}} 与 {x}", []),
    ],
)
def test_placeholders_compare_names_and_format_specs(english, chinese, expected):
    same = i18n_tools.placeholders(english) == i18n_tools.placeholders(chinese)
    assert same == (expected == [])
    if expected:
        assert i18n_tools.placeholders(chinese) == expected


@pytest.fixture
def scratch_catalogs(tmp_path, monkeypatch):
    """Point the checks at a scratch locale folder holding a one-message source and a zh catalog."""
    monkeypatch.setattr(i18n_tools, "TEMPLATE", tmp_path / "convmix.pot")
    monkeypatch.setattr(i18n_tools, "po_path", lambda lang: tmp_path / lang / "convmix.po")
    monkeypatch.setattr(i18n_tools, "mo_path", lambda lang: tmp_path / lang / "convmix.mo")
    source = Catalog(locale=None)
    source.add("The stride is {s}.")
    source.add("{n} heads")
    monkeypatch.setattr(i18n_tools, "extract", lambda: source)
    i18n_tools._write(source, tmp_path / "convmix.pot")

    def write(translations: dict[str, tuple[str, bool]]) -> list[str]:
        catalog = Catalog(locale="zh")
        for msgid, (msgstr, fuzzy) in translations.items():
            catalog.add(msgid, msgstr, flags=["fuzzy"] if fuzzy else [])
        i18n_tools._write(catalog, tmp_path / "zh" / "convmix.po")
        i18n_tools.compile_catalog("zh")
        return i18n_tools.check()

    return write


def test_check_passes_a_complete_catalog(scratch_catalogs):
    assert scratch_catalogs({"The stride is {s}.": ("步长为 {s}。", False), "{n} heads": ("{n} 个注意力头", False)}) == []


@pytest.mark.parametrize(
    ("translations", "complaint"),
    [
        ({"The stride is {s}.": ("步长为 {s}。", False)}, "not in the catalog"),
        ({"The stride is {s}.": ("", False), "{n} heads": ("{n} 个头", False)}, "untranslated"),
        ({"The stride is {s}.": ("步长为 {s}。", True), "{n} heads": ("{n} 个头", False)}, "fuzzy"),
        ({"The stride is {s}.": ("步长为 {t}。", False), "{n} heads": ("{n} 个头", False)}, "placeholders"),
        ({"The stride is {s}.": ("步幅为 {s}。", False), "{n} heads": ("{n} 个头", False)}, "glossary"),
    ],
)
def test_check_finds_each_kind_of_problem(scratch_catalogs, translations, complaint):
    problems = scratch_catalogs(translations)
    assert any(complaint in p for p in problems), problems


def test_check_finds_a_stale_compiled_catalog(scratch_catalogs, tmp_path):
    assert scratch_catalogs({"The stride is {s}.": ("步长为 {s}。", False), "{n} heads": ("{n} 个头", False)}) == []
    po = tmp_path / "zh" / "convmix.po"
    po.write_text(po.read_text(encoding="utf-8").replace("步长为", "步长是"), encoding="utf-8")
    assert any("out of date" in p for p in i18n_tools.check())


def test_glossary_terms_are_well_formed():
    terms = i18n_tools.glossary()
    assert len(terms) >= 20
    for term in terms:
        assert term.english and term.chinese, term
        assert term.chinese not in term.avoid, term
    chinese = {t.english: t.chinese for t in terms}
    # The standard terms.
    assert chinese["bias"] == "偏置" and chinese["stride"] == "步长" and chinese["attention head"] == "注意力头"
    assert chinese["batch normalization"] == "批归一化" and chinese["receptive field"] == "感受野"


# -- the English-leftover detector -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("The bias is learned in training.", ["The bias is learned in training"]),
        ("偏置在训练中学习。", []),
        ("`conv_p` 的偏置：kernel_att = 7 时 ACmix 有 17,822 个参数（128.3 MiB）", []),
        ("softmax 权重之和为 1，FLOPs 为 184,158,464", []),
        ("$y = Wx + b$ 是仿射的", []),
        ("论文 *On the Integration of Self-Attention and Convolution*（CVPR 2022）", []),
        ("最大差值 1.2e-7（float32 舍入误差）", []),
        ("步长 stride 的作用", []),  # one identifier-like word beside Chinese is allowed
        ("请看 the walkthrough 页面", ["the walkthrough"]),
    ],
)
def test_english_runs(text, runs):
    assert english_runs(text) == runs


# -- the language menu -------------------------------------------------------------------------------
def test_language_menu_is_bound_to_the_url():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception
    menu = at.sidebar.radio(key="lang")
    assert menu.value == "zh"
    assert at.query_params["lang"] == "zh"
    menu.set_value("en").run()
    assert at.query_params["lang"] == "en"  # chosen: a copied link keeps English
    assert not at.exception


def test_without_lang_the_browser_decides_and_the_url_stays_clean():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert at.sidebar.radio(key="lang").value == "en"  # AppTest's browser has no Chinese locale
    assert "lang" not in at.query_params
    at.sidebar.radio(key="lang").set_value("zh").run()
    assert at.query_params["lang"] == "zh"


def test_a_bad_lang_value_is_told_not_crashed():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["lang"] = "x<script>"
    at.run()
    assert not at.exception
    assert at.sidebar.radio(key="lang").value == "en"
    warnings = [w.value for w in at.sidebar.warning]
    assert any("lang=" in w and "script" in w and "<" not in w for w in warnings), warnings


def test_the_language_is_per_session_state():
    english = AppTest.from_file(APP, default_timeout=60)
    english.run()
    chinese = AppTest.from_file(APP, default_timeout=60)
    chinese.query_params["lang"] = "zh"
    chinese.run()
    english.run()
    assert english.sidebar.radio(key="lang").value == "en"
    assert chinese.sidebar.radio(key="lang").value == "zh"
    assert i18n.get_language() == "en"  # the test's own thread is untouched


# -- the CJK web font --------------------------------------------------------------------------------
def font_faces() -> dict[str, dict]:
    """The theme's font faces by file path (relative to the repository)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11; the app itself reads no TOML
    config = tomllib.loads((i18n_tools.ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["enableStaticServing"] is True
    for key in ("font", "headingFont"):
        families = [f.strip().strip("'\"") for f in config["theme"][key].split(",")]
        assert families.index("Source Sans") < families.index("convmix-cjk") < families.index("sans-serif")
    return {face["url"].removeprefix("app/"): face for face in config["theme"]["fontFaces"]}


def declared(unicode_range: str) -> set[int]:
    """The code points of a CSS unicode-range (U+X or U+X-Y items), read independently of i18n_tools."""
    codes: set[int] = set()
    for item in unicode_range.split(","):
        lo, _dash, hi = item.strip().removeprefix("U+").partition("-")
        codes.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return codes


def test_the_shipped_fonts_cover_every_chinese_character_of_the_catalog_and_the_menu():
    pytest.importorskip("fontTools")
    pytest.importorskip("brotli")  # reading WOFF2
    faces = font_faces()
    large, small = faces["static/fonts/convmix-cjk.woff2"], faces["static/fonts/convmix-cjk-menu.woff2"]
    # Each CJK character of the catalog is served by the file whose range holds it, and that file has it.
    served = {path: declared(face["unicodeRange"]) for path, face in faces.items()}
    missing = []
    for ch in sorted(i18n_tools.catalog_characters("zh") | set(i18n.LANGUAGE_MENU_LABEL + "".join(i18n.LANGUAGES.values()))):
        owners = [path for path, codes in served.items() if ord(ch) in codes]
        if not owners:
            # ASCII-range look-alikes (…, ×, −, ², …) come from Source Sans; CJK must have an owner.
            assert not (0x2E80 <= ord(ch) <= 0x9FFF or 0xFF00 <= ord(ch) <= 0xFFEF), ch
            continue
        (owner,) = owners  # no code point in two files' ranges
        if ch not in i18n_tools.font_characters(i18n_tools.ROOT / owner):
            missing.append(ch)
    assert not missing, f"rebuild the fonts (python -m convmix.i18n_tools font): {''.join(missing)}"
    assert large["family"] == small["family"] == "convmix-cjk"


def test_english_pages_need_only_the_small_font_file():
    faces = font_faces()
    small = declared(faces["static/fonts/convmix-cjk-menu.woff2"]["unicodeRange"])
    large = declared(faces["static/fonts/convmix-cjk.woff2"]["unicodeRange"])
    menu = {ord(ch) for ch in i18n.LANGUAGE_MENU_LABEL + "".join(i18n.LANGUAGES.values()) if ord(ch) > 0x7F}
    assert menu - {ord("·")} <= small and not menu & large  # the menu's CJK characters: the small file only
    assert ord("‖") in small and ord("中") in small and ord("字") in large
    assert not small & large
    assert "U+0000" not in str(faces) and all(0x2010 <= c for c in small | large)
    assert (i18n_tools.ROOT / "static/fonts/convmix-cjk-menu.woff2").stat().st_size < 20_000
    assert {i18n_tools.FONT, i18n_tools.MENU_FONT} == {i18n_tools.ROOT / p for p in faces}
    assert {str(p.relative_to(i18n_tools.ROOT)): r for p, r in i18n_tools.font_ranges().items()} == {
        p: f["unicodeRange"] for p, f in faces.items()}
