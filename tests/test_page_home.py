"""AppTest of the home page: live numbers, constraint messages, URL reproduction, hostile URLs."""

from __future__ import annotations

import re
import statistics
import time

import pytest

from convmix import ACmix
from convmix.config import ACmixConfig
from convmix.i18n import language
from tests.i18n_text import english_left, visible_texts

HOME = "pages/home.py"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def main_errors(at) -> str:
    return "\n".join(e.value for e in at.main.error)


def test_defaults(app):
    at = app()
    assert not at.exception
    shown = metrics(at)
    assert shown["Parameters"] == "17,822"
    assert shown["Output shape"] == "1 × 64 × 56 × 56"
    module = ACmix(64, 64)
    assert shown["Parameters"] == f"{sum(p.numel() for p in module.parameters()):,}"
    assert not at.main.error and not at.sidebar.error and not at.sidebar.warning
    assert any("torch sees" in md.value for md in at.markdown)
    assert at.title[0].value == "convmix"


def every_text(at) -> list[str]:
    """Every piece of text the visitor reads, main area and sidebar."""
    return [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success")
            for e in getattr(at, kind)]


def test_head_that_does_not_divide_the_channels_is_said_once(app):
    at = app()
    at.sidebar.number_input(key="head").set_value(5).run()
    assert not at.exception
    sidebar = at.sidebar.error[0].value
    assert "head (5) must divide out_planes (64)" in sidebar
    assert "Heads that divide 64: 1, 2, 4, 8, 16, 32 and 64." in sidebar
    # said once, in the sidebar where the visitor changes it; the page points there
    said = [t for t in every_text(at) if "must divide out_planes" in t]
    assert len(said) == 1
    assert not at.main.error
    assert any("the sidebar says why" in i.value for i in at.main.info)
    assert not at.metric  # nothing live to show


def test_kernel_conv_5_fixed_runs_official_explains(app):
    at = app()
    at.sidebar.number_input(key="kernel_conv").set_value(5).run()
    assert not at.exception
    sidebar = at.sidebar.error[0].value
    assert "kernel_conv = 5" in sidebar and "The **fixed** variant runs it" in sidebar
    assert [t for t in every_text(at) if "kernel_conv = 5" in t] == [sidebar]
    assert not at.metric

    at.sidebar.radio(key="variant").set_value("fixed").run()
    assert not at.exception and not at.main.error and not at.sidebar.error
    shown = metrics(at)
    module = ACmix(64, 64, kernel_conv=5, variant="fixed")
    assert shown["Parameters"] == f"{sum(p.numel() for p in module.parameters()):,}" == "52,830"
    assert shown["Output shape"] == "1 × 64 × 56 × 56"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_links_to_the_other_pages_carry_only_the_language(app, lang):
    """Each link names the language (a link opened in a new tab keeps it); the URL-bound
    configuration is not repeated: Streamlit carries it across a page switch by itself, and a query
    string with it as well wrote every parameter twice (browser test: test_language_links.py)."""
    from convmix.ui.navigation import PAGE_SPECS, url_path

    with language(lang):
        at = app(query_params={"kernel_att": 5, "stride": 2, "lang": lang})
    links = at.get("page_link")
    assert [link.proto.page for link in links] == [url_path(spec) for spec in PAGE_SPECS[1:]]
    assert all(link.proto.query_string == f"lang={lang}" for link in links)


def test_links_name_the_language_the_browser_chose(app):
    at = app()  # no lang in the URL: the browser's language (English under AppTest)
    assert "lang" not in at.query_params
    assert all(link.proto.query_string == "lang=en" for link in at.get("page_link"))


def test_claims_on_the_home_page_name_their_conventions(app):
    at = app()
    text = "\n".join(every_text(at))
    assert "Every floating-point operation" not in text and "stores only the logits" not in text
    assert "norm" not in text or "‖fast − reference‖ / ‖reference‖" in text
    assert "conv_p.bias" in text and "exactly zero" in text
    assert "quirk Q9 (unfold copies k and v kernel_att² times)" in text
    helps = {m.label: m.proto.help for m in at.metric}
    assert "convention" in helps["FLOPs per forward"]
    assert "upper bound" in helps["Estimated peak memory"]


def test_what_the_fast_path_holds_is_what_it_allocates(app):
    """The home page's sizes for the fast path: its peak is what LiveBytes counts while the fast
    attention runs alone, and the buffers it names have the sizes counted here by hand."""
    import torch

    from convmix.config import ACmixConfig
    from convmix.fast import fast_attention
    from convmix.format import human_bytes
    from convmix.memory import LiveBytes

    at = app()
    text = next(m.value for m in at.markdown if "The fast path does" in m.value)
    config = ACmixConfig()
    module, x = config.build(), config.make_input()
    with torch.no_grad():
        q, k, v = module.conv1(x), module.conv2(x), module.conv3(x)
        inputs = module.attention_inputs(x, q, k, v)
        g = module.geometry(x.shape[0], *x.shape[2:])
        counter = LiveBytes()
        with counter:
            fast_attention(module, *inputs, g)
    assert f"holds, at most, {human_bytes(counter.peak)} in float32" in text
    padded = 64 * (56 + 6) * (56 + 6)  # B·C·(H + 2p)(W + 2p), kernel_att 7 pads by 3
    logits = 4 * 49 * 56 * 56  # B·h·K·Ho·Wo
    output = 64 * 56 * 56  # B·C·Ho·Wo
    assert f"k − pe map ({padded:,} values) and the {logits:,} logits while" in text
    assert f"the weights and the output ({output:,})" in text


def test_url_reproduces_a_configuration(app):
    at = app(query_params={"head": 8, "out_planes": 128, "stride": 2, "variant": "fixed"})
    assert not at.exception
    assert at.sidebar.number_input(key="head").value == 8
    assert at.sidebar.number_input(key="out_planes").value == 128
    assert at.sidebar.radio(key="variant").value == "fixed"
    module = ACmix(64, 128, head=8, stride=2, variant="fixed")
    shown = metrics(at)
    assert shown["Parameters"] == f"{sum(p.numel() for p in module.parameters()):,}"
    assert shown["Output shape"] == "1 × 128 × 28 × 28"
    assert not at.sidebar.warning


HOSTILE_URLS = [
    {"head": "abc", "height": "-5", "variant": "<script>alert(1)</script>"},
    {"stride": "1e400", "width": "inf", "batch": "nan"},
    {"head": "8.5", "seed": "", "kernel_att": "9" * 60},
    {"out_planes": "0x40", "in_planes": "[64]", "dilation": "-inf"},
]


@pytest.mark.parametrize("params", HOSTILE_URLS, ids=lambda p: ",".join(p))
def test_hostile_url_parameters_warn(app, params):
    at = app(query_params=params)
    assert not at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == len(params)
    for name in params:
        assert any(w.startswith(f"URL parameter {name}=") for w in warnings), name
    assert all("<" not in w for w in warnings)
    # every refused value falls back to the default, in the widget as in the message
    for name in params:
        widget = at.sidebar.radio(key=name) if name == "variant" else at.sidebar.number_input(key=name)
        assert widget.value == getattr(ACmixConfig(), name)
    assert metrics(at)["Parameters"] == "17,822"
    # the session goes on: a later change works
    at.sidebar.number_input(key="head").set_value(8).run()
    assert not at.exception
    assert at.sidebar.number_input(key="head").value == 8


def test_good_and_bad_url_values_together(app):
    at = app(query_params={"head": "8", "stride": "1e400", "height": "28"})
    assert not at.exception
    assert at.sidebar.number_input(key="head").value == 8
    assert at.sidebar.number_input(key="height").value == 28
    assert at.sidebar.number_input(key="stride").value == 1
    warnings = [w.value for w in at.sidebar.warning]
    assert warnings == ["URL parameter stride='1e400' is not a whole number; using 1."]
    assert metrics(at)["Output shape"] == "1 × 64 × 28 × 56"


def test_warm_reruns_are_stable_and_timed(app, capsys, record_property):
    """Reruns with warm caches show the same numbers. Their time is measured and reported (printed
    and recorded as a property), never asserted."""
    at = app()
    first = metrics(at)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception
        assert metrics(at) == first
    median_ms = 1000 * statistics.median(times)
    record_property("home_warm_rerun_median_ms", round(median_ms, 1))
    with capsys.disabled():
        print(f"\nhome page warm rerun under AppTest: median {median_ms:.0f} ms of {len(times)}")


# -- languages and the shared chrome -----------------------------------------------------------------
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
LANGUAGE_MENU = {"Language · 语言", "中文"}  # bilingual on purpose (convmix.ui.language)


def test_home_and_sidebar_in_chinese(app):
    with language("zh"):  # AppTest formats widget labels in the test's own thread
        at = app(query_params={"lang": "zh"})
    assert not at.exception
    assert english_left(at, area="main") == []
    assert english_left(at, area="sidebar") == []
    shown = metrics(at)
    assert shown["参数量"] == "17,822" and shown["输出形状"] == "1 × 64 × 56 × 56"
    assert at.sidebar.markdown[0].value == "### ACmix 配置"
    assert [c.value for c in at.sidebar.caption] == ["模块", "输入"]
    assert all(CJK.search(n.help) for n in at.sidebar.number_input)
    diagrams = at.get("graphviz_chart")
    assert len(diagrams) == 2 and all("注意力路径（阶段 II）" in d.proto.spec for d in diagrams)
    assert any("torch 检测到" in m.value for m in at.markdown)


def test_home_and_sidebar_in_english_have_no_chinese(app):
    at = app(query_params={"lang": "en"})
    assert not at.exception
    chinese = [t for t in visible_texts(at) if CJK.search(t) and t not in LANGUAGE_MENU]
    # The only Chinese on the English page is the language menu's own name for Chinese.
    assert chinese == []
    assert at.sidebar.radio(key="lang").options == ["English", "中文"]


def test_a_configuration_that_cannot_run_is_said_in_chinese(app):
    with language("zh"):
        at = app(query_params={"lang": "zh", "kernel_conv": 5})
    assert not at.exception
    box = at.sidebar.error[0].value
    assert box.startswith("**该配置无法运行：**") and "**fixed** 变体可以运行它" in box
    assert CJK.search(at.main.info[0].value)
    assert not at.metric


def test_sidebar_lists_the_parameters_in_the_constructors_order(app):
    """The page's order of the widgets is the order a phone shows them in, where Streamlit stacks
    every row's columns: row by row, two to a row, never one column after the other."""
    at = app()
    assert [n.key for n in at.sidebar.number_input] == [
        "in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride", "dilation",
        "height", "width", "batch", "seed"]
    columns = [[n.key for n in column.number_input] for column in at.sidebar.columns]
    assert columns == [["in_planes"], ["out_planes"], ["kernel_att"], ["head"], ["kernel_conv"], ["stride"],
                       ["dilation"], [], ["height"], ["width"], ["batch"], ["seed"]]


def test_url_notes_are_worded_again_in_the_chosen_language(app, monkeypatch):
    """A note about a URL value is kept for the session and worded in the current language on
    every run, so it follows the language menu."""
    from convmix import i18n

    original = ACmixConfig.from_query_params.__func__

    def worded(cls, params):
        config, notes = original(cls, params)
        return config, [f"{note} [{i18n.get_language()}]" for note in notes]

    monkeypatch.setattr(ACmixConfig, "from_query_params", classmethod(worded))
    at = app(query_params={"head": "abc"})
    assert [w.value for w in at.sidebar.warning] == ["URL parameter head='abc' is not a whole number; using 4. [en]"]
    with language("zh"):
        at.sidebar.radio(key="lang").set_value("zh").run()
    assert [w.value[-4:] for w in at.sidebar.warning] == ["[zh]"]
    at.run()
    assert len(at.sidebar.warning) == 1  # still said, once, on later runs


def test_sidebar_notes_and_page_titles_are_translated():
    from types import SimpleNamespace

    from convmix.ui.navigation import PAGE_SPECS, sidebar_note, url_path

    for spec in PAGE_SPECS:
        page = SimpleNamespace(url_path=url_path(spec))
        with language("zh"):
            note = sidebar_note(page)
        assert bool(note) == bool(spec.sidebar_note)
        assert not note or (CJK.search(note) and not english_left_in(note))
        assert sidebar_note(page) == spec.sidebar_note  # English outside the block
        with language("zh"):
            assert CJK.search(i18n_title(spec.title)), spec.title


def english_left_in(text: str) -> list[str]:
    from tests.i18n_text import english_runs

    return english_runs(text)


def i18n_title(title: str) -> str:
    from convmix.i18n import _

    return _(title)
