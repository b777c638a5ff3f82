"""AppTest of the ACmix walkthrough page: every section at several configurations, the fallback to
the fixed variant, the memory refusal, and the inspector and rate widgets (which must not run the
forward again). Sources (which module on which input), languages and URLs: test_page_walkthrough_sources.py."""

from __future__ import annotations

import pytest

from convmix import ACmix, budget
from convmix.config import ACmixConfig
from convmix.format import human_bytes

PAGE = "pages/walkthrough.py"
SECTIONS = ["overview", "stage_i", "attention_path", "convolution_path", "mix", "attention_inspector", "conv_p",
            "fc", "dep_conv", "channel_grouping", "quirks"]


@pytest.fixture
def forwards(monkeypatch):
    """Counts every ACmix forward run in this process."""
    calls = {"n": 0}
    original = ACmix.forward

    def counted(self, x):
        calls["n"] += 1
        return original(self, x)

    monkeypatch.setattr(ACmix, "forward", counted)
    return calls


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def show(at, section: str):
    at.session_state["wt_section"] = section
    return at.run()


def all_text(at) -> str:
    return "\n".join(
        [m.value for m in at.markdown] + [c.value for c in at.caption]
        + [e.value for e in at.error] + [i.value for i in at.info] + [w.value for w in at.warning]
    )


def test_defaults_every_section(app, forwards):
    at = app(PAGE)
    assert not at.exception and not at.main.error
    assert metrics(at)["Parameters"] == "17,822"
    assert "17,822" in all_text(at)  # the per-submodule line of the overview
    table = at.dataframe[0].value
    assert table["step"].tolist()[:3] == ["q", "k", "v"] and table["step"].tolist()[-1] == "out"
    for section in SECTIONS[1:]:
        show(at, section)
        assert not at.exception, section
        assert not at.main.error, section
    # one traced forward for the whole tour, plus conv_p's gradient check (float64 and float32)
    assert forwards["n"] == 3


def test_steps_show_source_formula_and_costs(app):
    at = show(app(PAGE), "attention_path")
    assert not at.exception
    codes = [c.value for c in at.code]
    assert any("coordinate_grid" in c for c in codes)  # this project's line
    assert any("position(h, w, x.is_cuda)" in c for c in codes)  # the authors' line
    assert at.latex
    # Open the unfold step: its heatmap is built only while open.
    charts_before = len(at.get("vega_lite_chart"))
    at.session_state["wt_step_unfold_k"] = True
    at.run()
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == charts_before + 1
    assert any("unfold_k[0, 0, 24, :, :]" in c.value for c in at.caption)
    assert "49 copies of the keys" in all_text(at) or "K = 49 copies" in all_text(at)


def test_inspector_and_rates_do_not_rerun_the_forward(app, forwards):
    at = show(app(PAGE), "attention_inspector")
    assert not at.exception
    assert forwards["n"] == 1
    at.number_input(key="wt_qrow").set_value(5).run()
    at.number_input(key="wt_qcol").set_value(50).run()
    at.number_input(key="wt_head").set_value(3).run()
    assert not at.exception
    assert any("Query (5, 50)" in c.value for c in at.caption)
    output = at.dataframe[-1].value
    assert output["output channel"].tolist() == list(range(48, 64))
    assert (output["Σ_j w_j · v_j"] - output["out_att entry"]).abs().max() < 1e-5
    show(at, "mix")
    at.slider(key="wt_rate1").set_value(0.0).run()
    assert metrics(at)["attention share"] == "0.0%"
    at.slider(key="wt_rate1").set_value(1.0).run()
    at.slider(key="wt_rate2").set_value(0.0).run()
    assert metrics(at)["convolution share"] == "0.0%"
    assert not at.exception
    assert forwards["n"] == 1


def test_inspector_numbers_against_the_trace(app):
    """The displayed out_att entries are the tensor's entries at the chosen query."""
    from convmix import sources
    from convmix.ui.cache import get_walk

    at = show(app(PAGE, query_params={"height": 16, "width": 16}), "attention_inspector")
    at.number_input(key="wt_qrow").set_value(0).run()
    at.number_input(key="wt_qcol").set_value(15).run()
    at.number_input(key="wt_head").set_value(2).run()
    assert not at.exception
    trace = get_walk(sources.RandomInitPicture(ACmixConfig(height=16, width=16),
                                               sources.BuiltinPicture("chelsea"))).trace
    out_att = trace["out_att"].tensor[0, 32:48, 0, 15]
    shown = at.dataframe[-1].value["out_att entry"].to_numpy()
    assert abs(shown - out_att.double().numpy()).max() < 1e-9


@pytest.mark.parametrize(
    "params",
    [
        {"variant": "fixed"},
        {"stride": 2},
        {"kernel_att": 3, "height": 24, "width": 24},
        {"kernel_att": 11, "height": 24, "width": 20},
        {"variant": "fixed", "kernel_conv": 5, "dilation": 2, "stride": 2, "height": 15, "width": 13},
        {"head": 1, "out_planes": 8, "in_planes": 3, "batch": 2, "height": 6, "width": 6,
         "kernel_att": 5},
    ],
    ids=["fixed", "stride2", "ka3", "ka11", "fixed-kc5-dil2-odd", "one-head-tiny"],
)
def test_configurations(app, params):
    at = app(PAGE, query_params=params)
    assert not at.exception and not at.main.error
    config = ACmixConfig(**params)
    module = config.build()
    assert metrics(at)["Parameters"] == f"{sum(p.numel() for p in module.parameters()):,}"
    for section in ("attention_inspector", "dep_conv", "mix", "convolution_path", "channel_grouping"):
        show(at, section)
        assert not at.exception, section
    show(at, "dep_conv")
    assert float(metrics(at)["Largest |out_conv − shift sum|"]) < 1e-5


def said_in(at, words: str) -> list[str]:
    """Every element, main area and sidebar, whose text contains `words`."""
    return [e.value for kind in ("markdown", "caption", "error", "warning", "info")
            for e in getattr(at, kind) if words in e.value]


def test_official_invalid_falls_back_to_fixed(app):
    at = app(PAGE, query_params={"kernel_conv": 5})
    assert not at.exception and not at.main.error
    assert len(said_in(at, "kernel_conv = 5 changes the conv path")) == 1  # in the sidebar only
    assert any("official variant cannot run" in i.value and "instead" in i.value for i in at.info)
    assert any("variant='fixed'" in m.value for m in at.markdown if m.value.startswith("`"))
    fixed = ACmixConfig(kernel_conv=5, variant="fixed").build()
    assert metrics(at)["Parameters"] == f"{sum(p.numel() for p in fixed.parameters()):,}"
    show(at, "attention_inspector")
    assert not at.exception


def test_odd_size_with_stride_falls_back(app):
    at = app(PAGE, query_params={"stride": 2, "height": 15, "width": 15})
    assert not at.exception
    assert len(said_in(at, "15×15 is not divisible by 2")) == 1
    assert "15×15 is not divisible by 2" in at.sidebar.error[0].value
    headline = next(m.value for m in at.markdown if m.value.startswith("`ACmix("))
    assert "->  output (1, 64, 8, 8)`" in headline


def test_nothing_runs_is_said_once(app, forwards):
    """head = 3 fails in both variants: the sidebar says why, once; the page points there."""
    at = app(PAGE, query_params={"head": 3})
    assert not at.exception and not at.main.error and not at.main.warning
    assert len(said_in(at, "head (3) must divide out_planes (64)")) == 1
    assert any("Neither variant" in i.value and "sidebar" in i.value for i in at.main.info)
    assert not at.metric
    assert forwards["n"] == 0


def test_too_large_is_refused_before_allocating(app, forwards):
    params = {"batch": 16, "height": 128, "width": 128}
    at = app(PAGE, query_params=params)
    assert not at.exception
    text = at.main.error[0].value
    need = human_bytes(budget.trace_bytes(ACmixConfig(**params)))
    assert f"about {need}" in text and "budget of" in text and "A nearby configuration that fits" in text
    assert forwards["n"] == 0 and not at.metric


def test_slice_selector_follows_the_configuration(app):
    at = show(app(PAGE), "convolution_path")
    at.number_input(key="wt_head").set_value(3).run()
    at.number_input(key="wt_channel").set_value(15).run()
    assert any("qkv_groups[0, 11, 15, :]" in c.value for c in at.caption)
    # Fewer heads and channels: the stored choices fall back into range instead of failing.
    at.sidebar.number_input(key="head").set_value(2).run()
    at.sidebar.number_input(key="out_planes").set_value(8).run()
    assert not at.exception
    assert at.number_input(key="wt_head").value == 0
    assert at.number_input(key="wt_channel").value == 0


def test_the_inspector_reads_the_one_slice_selector(app):
    """No second batch/head/channel selector: the inspector follows the slice box above it."""
    at = show(app(PAGE, query_params={"height": 16, "width": 16}), "attention_inspector")
    keys = {w.key for w in at.number_input}
    assert {"wt_batch", "wt_head", "wt_channel", "wt_qrow", "wt_qcol"} <= keys
    assert not keys & {"wt_qbatch", "wt_qhead", "wt_qchannel"}
    at.number_input(key="wt_head").set_value(3).run()
    at.number_input(key="wt_channel").set_value(5).run()
    assert not at.exception
    output = at.dataframe[-1].value
    assert output["output channel"].tolist() == list(range(48, 64))  # head 3 of 4, d = 16
    assert any("k_pad, head 3, channel 5" in json_spec for json_spec in
               (c.proto.spec for c in at.get("vega_lite_chart")))


def test_conv_offsets_say_what_a_and_e_are(app):
    at = show(app(PAGE), "convolution_path")
    offset = at.selectbox(key="wt_offset__en")
    assert offset.format_func(4) == "i=4: kernel row 1, column 1 (shift +0, +0)"
    assert offset.format_func(0) == "i=0: kernel row 0, column 0 (shift -1, -1)"


def test_every_quirk_code_is_explained_where_it_appears(app):
    """Wherever a code Q1..Q11 is shown, its short name stands beside it, and the quirks tab
    lists all eleven with their evidence."""
    import re

    from convmix.quirks import QUIRKS

    at = app(PAGE)
    for section in SECTIONS:
        show(at, section)
        for kind in ("markdown", "caption", "info", "error"):
            for element in getattr(at, kind):
                for code in re.findall(r"\bQ\d+\b", element.value):
                    if "Q1–Q11" in element.value and code in ("Q1", "Q11"):
                        continue
                    assert QUIRKS[code].name in element.value, (section, code, element.value)
    show(at, "quirks")
    listed = [m.value for m in at.markdown if m.value.startswith("**Q")]
    assert len(listed) == 11 and all("*Evidence:*" in m for m in listed)


def test_fc_quotes_the_papers_figure_correctly(app):
    at = show(app(PAGE), "fc")
    text = all_text(at)
    assert "3N_head × k²N_conv" in text and "issue 5" in text
    assert "3N × k²N (N = heads)" not in text


def test_conv_p_bias_gradient_is_shown_as_rounding(app):
    """The page's ratio ‖∂L/∂bias‖/‖∂L/∂weight‖: float64 rounding, float32 rounding."""
    at = show(app(PAGE), "conv_p")
    assert not at.exception
    shown = metrics(at)
    assert float(shown["`‖∂L/∂conv_p.bias‖ / ‖∂L/∂conv_p.weight‖`, float64"]) < 1e-12
    assert float(shown["the same, float32"]) < 1e-4
    assert "dead parameter" in all_text(at)


# -- issue 11 --------------------------------------------------------------------------------------------
ROOMY = ACmixConfig(in_planes=8, out_planes=64, kernel_att=1, head=4, kernel_conv=1, height=64, width=64,
                    batch=4, variant="fixed")


def test_each_sections_extra_work_is_checked_beside_the_trace(app, headroom):
    """Item 4: a section's own work (float64 copies for the mix, the shift check, ...) is estimated
    and refused before it allocates, when it does not fit beside what the server holds."""
    from convmix import walkthrough as wt

    at = app(PAGE, query_params=ROOMY.to_query_params(only_changed=True))
    assert not at.exception and not at.main.error  # the trace is built and held (cached)
    need = wt.section_extra_bytes(ROOMY, "mix")
    shift = wt.section_extra_bytes(ROOMY, "dep_conv")
    assert need > 50 << 20 and shift < need // 2
    headroom((need + shift) // 2)  # beside the held trace: room for the shift check, not for the mix
    show(at, "dep_conv")
    assert not at.exception and not at.main.error
    show(at, "mix")
    assert not at.exception
    (error,) = at.main.error
    assert "The section “Mix” of this walkthrough would need about" in error.value


def test_a_trace_that_fits_the_budget_but_not_the_server_now_is_a_message(app, headroom, forwards):
    """Item 5: the budget counts what the server holds; a trace that would fit an idle server but not
    this one now is refused at build time, with the same kind of message."""
    app(PAGE)
    big = ROOMY.with_(batch=16)
    headroom(budget.trace_bytes(big) // 4)
    assert wt_plan_fits(big)
    at = app(PAGE, query_params=big.to_query_params(only_changed=True))
    assert not at.exception
    (error,) = at.main.error
    assert "this server holds now" in error.value and "A nearby configuration that fits" in error.value
    assert forwards["n"] == 1  # the warm-up's default configuration only


def wt_plan_fits(config) -> bool:
    from convmix import walkthrough as wt

    return wt.plan_walkthrough(config).shown == config
