"""AppTest of the ACmix walkthrough page: every section at several configurations, the fallback to
the fixed variant, the memory refusal, and the inspector and rate widgets (which must not run the
forward again)."""

from __future__ import annotations

import pytest

from convmix import ACmix, budget
from convmix.config import ACmixConfig
from convmix.format import human_bytes

PAGE = "pages/walkthrough.py"
SECTIONS = ["Overview", "Stage I", "Attention path", "Convolution path", "Mix",
            "Attention inspector", "conv_p", "fc", "dep_conv", "Channel grouping"]


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
    at.session_state["section"] = section
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
    assert forwards["n"] == 1  # one forward for the whole tour


def test_steps_show_source_formula_and_costs(app):
    at = show(app(PAGE), "Attention path")
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
    at = show(app(PAGE), "Attention inspector")
    assert not at.exception
    assert forwards["n"] == 1
    at.number_input(key="wt_qrow").set_value(5).run()
    at.number_input(key="wt_qcol").set_value(50).run()
    at.number_input(key="wt_qhead").set_value(3).run()
    assert not at.exception
    assert any("Query (5, 50)" in c.value for c in at.caption)
    output = at.dataframe[-1].value
    assert output["output channel"].tolist() == list(range(48, 64))
    assert (output["Σ_j w_j · v_j"] - output["out_att entry"]).abs().max() < 1e-5
    show(at, "Mix")
    at.slider(key="wt_rate1").set_value(0.0).run()
    assert metrics(at)["attention share"] == "0.0%"
    at.slider(key="wt_rate1").set_value(1.0).run()
    at.slider(key="wt_rate2").set_value(0.0).run()
    assert metrics(at)["convolution share"] == "0.0%"
    assert not at.exception
    assert forwards["n"] == 1


def test_inspector_numbers_against_the_trace(app):
    """The displayed out_att entries are the tensor's entries at the chosen query."""
    from convmix.ui.cache import get_trace

    at = show(app(PAGE, query_params={"height": 16, "width": 16}), "Attention inspector")
    at.number_input(key="wt_qrow").set_value(0).run()
    at.number_input(key="wt_qcol").set_value(15).run()
    at.number_input(key="wt_qhead").set_value(2).run()
    assert not at.exception
    trace = get_trace(ACmixConfig(height=16, width=16))
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
    for section in ("Attention inspector", "dep_conv", "Mix", "Convolution path", "Channel grouping"):
        show(at, section)
        assert not at.exception, section
    show(at, "dep_conv")
    assert float(metrics(at)["Largest |out_conv − shift sum|"]) < 1e-5


def test_official_invalid_falls_back_to_fixed(app):
    at = app(PAGE, query_params={"kernel_conv": 5})
    assert not at.exception
    error = at.main.error[0].value
    assert "official variant cannot run" in error and "kernel_conv = 5" in error
    assert "return self.rate1 * out_att + self.rate2 * out_conv" in error  # the line that breaks
    assert any("fixed" in i.value and "instead" in i.value for i in at.info)
    assert any("variant='fixed'" in c.value for c in at.code)
    fixed = ACmixConfig(kernel_conv=5, variant="fixed").build()
    assert metrics(at)["Parameters"] == f"{sum(p.numel() for p in fixed.parameters()):,}"
    show(at, "Attention inspector")
    assert not at.exception


def test_odd_size_with_stride_falls_back(app):
    at = app(PAGE, query_params={"stride": 2, "height": 15, "width": 15})
    assert not at.exception
    assert "15x15 is not divisible by 2" in at.main.error[0].value
    assert "(1, 64, 8, 8)" in at.code[0].value


def test_nothing_runs_is_a_message(app, forwards):
    at = app(PAGE, query_params={"head": 5})
    assert not at.exception
    assert "head (5) must divide out_planes (64)" in at.main.error[0].value
    assert "Nor can the fixed variant" in at.main.error[1].value
    assert at.warning and not at.metric
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
    at = show(app(PAGE), "Convolution path")
    at.number_input(key="wt_head").set_value(3).run()
    at.number_input(key="wt_channel").set_value(15).run()
    assert any("qkv_groups[0, 11, 15, :]" in c.value for c in at.caption)
    # Fewer heads and channels: the stored choices fall back into range instead of failing.
    at.sidebar.number_input(key="head").set_value(2).run()
    at.sidebar.number_input(key="out_planes").set_value(8).run()
    assert not at.exception
    assert at.number_input(key="wt_head").value == 0
    assert at.number_input(key="wt_channel").value == 0


# -- issue 11 --------------------------------------------------------------------------------------------
ROOMY = ACmixConfig(in_planes=8, out_planes=64, kernel_att=1, head=4, kernel_conv=1, height=64, width=64,
                    batch=4, variant="fixed")


def test_each_sections_extra_work_is_checked_beside_the_trace(app, headroom):
    """Item 4: a section's own work (float64 copies for the mix, the shift check, ...) is estimated
    and refused before it allocates, when it does not fit beside what the server holds."""
    from convmix import walkthrough as wt

    app(PAGE)  # imports and first-run allocations are not what this test is about
    admission = budget.trace_bytes(ROOMY) - budget.module_bytes(ROOMY)
    headroom(admission + (8 << 20))  # the trace fits; what is left after it is ~45 MiB
    at = app(PAGE, query_params=ROOMY.to_query_params(only_changed=True))
    assert not at.exception and not at.main.error  # the overview fits
    show(at, "dep_conv")
    assert not at.exception and not at.main.error
    assert wt.section_extra_bytes(ROOMY, "Mix") > 50 << 20
    show(at, "Mix")
    assert not at.exception
    (error,) = at.main.error
    assert "The section Mix of this walkthrough would need about" in error.value


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
