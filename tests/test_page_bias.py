"""The bias page under AppTest: defaults, every widget moved to its limits, good and bad uploads."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from convmix import bias as cb

PAGE = "pages/bias.py"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def text(at) -> str:
    return "\n".join(
        [m.value for m in at.markdown] + [c.value for c in at.caption]
        + [str(i.value) for i in at.info]
    )


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def chart_rows(at, title_part: str) -> list[dict]:
    """Every row of every dataset of the first chart whose spec mentions title_part."""
    el = next(e for e in at.get("vega_lite_chart") if title_part in e.proto.spec)
    rows = []
    for ds in el.proto.datasets:
        rows += pa.ipc.open_stream(ds.data.data).read_all().to_pylist()
    return rows


@pytest.fixture
def page(app):
    at = app(PAGE)
    assert_clean(at)
    return at


def test_defaults(page):
    m = metrics(page)
    assert m["parameters, bias=True"] == "9,472"
    assert m["parameters, bias=False"] == "9,408"
    assert m["weight shape"] == "64 × 3 × 7 × 7"
    body = text(page)
    assert "64 × 112 × 112 for a 224×224 input" in body
    assert "Built-in scene" in body
    # The opened-up value: the float64 sum equals the forward's value to the shown digits.
    assert m["= sum"] == m["value in layer(x)"]
    assert float(m["max |y − y_no_bias − b|"]) < 1e-6
    assert m["largest |y − b[c]| there, all channels"] == "0 (exact)"
    assert float(m["largest |∂L/∂b| through the BN"]) < 1e-6
    assert float(m["max |b.grad − Σ y.grad|"]) < 1e-6
    assert "**17,822**" in body and "**17,886**" in body
    charts = specs(page)
    assert len(charts) >= 8
    assert all("tooltip" in json.dumps(c) for c in charts)


def test_bias_slider_to_both_ends_moves_the_relu_survival(page):
    slider = page.slider(key="bias_value")
    lo, hi = slider.min, slider.max
    page.slider(key="bias_value").set_value(lo).run()
    assert_clean(page)
    assert "**0.0%**" in text(page)
    page.slider(key="bias_value").set_value(hi).run()
    assert_clean(page)
    assert "**100.0%**" in text(page)
    # The survival chart's slider rule sits at the slider's value.
    rows = chart_rows(page, "Positions kept")
    assert [r["bias"] for r in rows if r.get("which") == "slider"] == [pytest.approx(hi)]
    assert max(r["kept"] for r in rows if "kept" in r) == 1.0


def test_channel_change_resets_the_bias_slider_to_that_channel(page):
    page.slider(key="bias_value").set_value(page.slider(key="bias_value").max).run()
    page.number_input(key="bias_channel").set_value(63).run()
    assert_clean(page)
    expected = float(cb.seed_layer().bias.detach()[63])  # exactly the layer's bias, not rounded
    assert page.slider(key="bias_value").value == pytest.approx(expected, abs=1e-12)
    assert page.slider(key="bias_value").label == "Bias b[63]"
    assert metrics(page)["b[63]"] == f"{float(cb.seed_layer().bias.detach()[63]):+.7f}"


@pytest.mark.parametrize("size,out", [(8, 4), (448, 224), (112, 56)])
def test_input_size_extremes(page, size, out):
    page.select_slider(key="bias_size").set_value(size).run()
    assert_clean(page)
    assert f"64 × {out} × {out} for a {size}×{size} input" in text(page)
    assert page.slider(key="bias_row").max == out - 1
    m = metrics(page)
    assert m["= sum"] == m["value in layer(x)"]


@pytest.mark.parametrize("row,col", [(0, 0), (111, 111), (0, 111), (111, 0)])
def test_output_position_corners_show_padding(page, row, col):
    page.slider(key="bias_row").set_value(row).run()
    page.slider(key="bias_col").set_value(col).run()
    assert_clean(page)
    assert "fall in the zero padding" in text(page)
    m = metrics(page)
    assert m["= sum"] == m["value in layer(x)"]


# All-padding windows counted by hand: rows i with 2i + 6 < p or 2i ≥ p + 224, likewise columns.
@pytest.mark.parametrize(
    "pad,all_padding", [(0, "0 of"), (6, "0 of"), (7, "231 of 13,456"), (12, "1,416 of 14,641")]
)
def test_padding_slider(page, pad, all_padding):
    page.slider(key="bias_padding").set_value(pad).run()
    assert_clean(page)
    m = metrics(page)
    assert m["windows entirely in padding"].startswith(all_padding)
    if pad >= 7:
        assert m["largest |y − b[c]| there, all channels"] == "0 (exact)"
    else:
        assert "No window is all padding" in text(page)


def _png(size=(300, 200)) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_upload_without_file_then_with_a_png(page):
    page.radio(key="bias_source").set_value("Your image").run()
    assert_clean(page)
    assert "No image uploaded yet" in text(page)
    page.get("file_uploader")[0].set_value(("photo.png", _png(), "image/png"))
    page.run()
    assert_clean(page)
    assert "Your image (300×200 pixels)" in text(page)
    m = metrics(page)
    assert m["= sum"] == m["value in layer(x)"]


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("broken.png", b"\x89PNG\r\n\x1a\n not really", "cannot be used"),
        ("huge.png", None, "5,000×5,000"),
    ],
)
def test_bad_upload_gives_a_message_not_a_traceback(page, name, data, message):
    if data is None:
        buf = io.BytesIO()
        Image.new("1", (5000, 5000)).save(buf, "PNG")
        data = buf.getvalue()
    page.radio(key="bias_source").set_value("Your image").run()
    page.get("file_uploader")[0].set_value((name, data, "image/png"))
    page.run()
    assert not page.exception
    errors = [e.value for e in page.error]
    assert len(errors) == 1 and message in errors[0] and "PNG or JPEG" in errors[0]
    assert "Built-in scene" in text(page)  # the page carries on with the built-in image


def test_acmix_section_follows_the_sidebar_and_survives_an_invalid_config(page):
    page.number_input(key="out_planes").set_value(32).run()
    assert_clean(page)
    total = 3 * (64 * 32 + 32) + 3 * 8 + 3 * 4 * 9 + 32 * 81 + 2  # ACMIX.md's formula
    assert f"**{total:,}**" in text(page) and f"**{total + 32:,}**" in text(page)
    page.number_input(key="head").set_value(3).run()  # 32 % 3 != 0: cannot be built
    assert not page.exception
    assert any("default `ACmix(64, 64)`" in w.value for w in page.warning)
    assert "**17,822**" in text(page)


def test_url_opens_the_same_output_value(app):
    at = app("pages/bias.py", query_params={"bias_size": 112, "bias_channel": 5, "bias_row": 3, "bias_col": 40})
    assert not at.exception
    assert at.select_slider(key="bias_size").value == 112
    assert at.number_input(key="bias_channel").value == 5
    assert (at.slider(key="bias_row").value, at.slider(key="bias_col").value) == (3, 40)
    assert any("y[5, 3, 40]" in m.value for m in at.markdown)


def test_the_bias_slider_starts_at_the_layers_bias_so_both_percentages_agree(page):
    bias0 = float(cb.seed_layer().bias.detach()[0])
    assert page.slider(key="bias_value").value == pytest.approx(bias0, abs=1e-12)
    text = next(m.value for m in page.markdown if "keeps only positive values" in m.value)
    shares = re.findall(r"\*\*([\d.]+%)\*\*", text)
    assert len(shares) == 2 and shares[0] == shares[1]


def test_the_article_is_named_and_the_sidebar_says_what_applies(page):
    body = text(page)
    assert cb.ARTICLE_TITLE in body and "CSDN" in body
    assert "seed article" not in body
    assert any("applies only to the section *Bias inside ACmix*" in c.value for c in page.sidebar.caption)


def test_claims_are_precise_about_linearity(page):
    body = text(page)
    assert "**Imprecise.** 用于增加模型的非线性能力" in body
    assert "positively homogeneous" in body and "affine rather than linear" in body
    assert "does not make the layer less linear" not in body


@pytest.mark.parametrize("params,note,widget,value", [
    ({"bias_channel": "1e400"}, "bias_channel='1e400' is not a whole number; using 0.", "bias_channel", 0),
    ({"bias_channel": "8.5"}, "bias_channel='8.5' is not a whole number; using 0.", "bias_channel", 0),
    ({"bias_channel": "70"}, "bias_channel=70 is outside 0 to 63; using 0.", "bias_channel", 0),
    ({"bias_row": "3.5"}, "bias_row='3.5' is not a whole number; using 56.", "bias_row", 56),
    ({"bias_size": "999"}, "bias_size='999' is not one of 8, 16, 32, 64, 112, 160, 224, 320, 448; "
     "using 224.", "bias_size", 224),
    ({"bias_kernel": "inf"}, "bias_kernel='inf' is not a whole number; using 7.", "bias_kernel", 7),
])
def test_bias_url_values_out_of_range_are_told(app, params, note, widget, value):
    at = app(PAGE, query_params=params)
    assert not at.exception
    warnings = [w.value for w in at.main.warning]
    assert warnings == [f"URL parameter {note}"]
    kind = {"bias_row": "slider", "bias_size": "select_slider"}.get(widget, "number_input")
    assert getattr(at, kind)(key=widget).value == value


LAYERS = [
    {"bias_in": "1", "bias_out": "8", "bias_kernel": "3", "bias_stride": "1", "bias_pad": "1",
     "bias_size": "32"},
    {"bias_out": "5", "bias_kernel": "1", "bias_stride": "3", "bias_pad": "0", "bias_bias": "false",
     "bias_size": "64"},
    {"bias_in": "1", "bias_out": "256", "bias_kernel": "15", "bias_stride": "8", "bias_pad": "15",
     "bias_size": "64"},
    {"bias_out": "16", "bias_kernel": "5", "bias_stride": "2", "bias_pad": "0", "bias_size": "16"},
]


@pytest.mark.parametrize("params", LAYERS, ids=lambda p: "-".join(p.values()))
def test_the_whole_page_holds_for_other_layers(app, params):
    at = app(PAGE, query_params=params)
    assert_clean(at)
    view, notes = cb.view_from_query_params(params)
    spec = view.layer
    assert notes == []
    reference = torch.nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride,
                                spec.padding, bias=spec.bias)
    m = metrics(at)
    assert m["weight shape"] == " × ".join(map(str, reference.weight.shape))
    with_bias = sum(p.numel() for p in torch.nn.Conv2d(
        spec.in_channels, spec.out_channels, spec.kernel, bias=True).parameters())
    assert m["parameters, bias=True"] == f"{with_bias:,}"
    assert m["parameters, bias=False"] == f"{reference.weight.numel():,}"
    out = reference(torch.zeros(1, spec.in_channels, view.size, view.size)).shape[-1]
    assert f"{spec.out_channels} × {out} × {out} for a {view.size}×{view.size} input" in text(at)
    assert m["= sum"] == m["value in layer(x)"]
    assert any(c.value == f"self.conv1 = {spec.line}" for c in at.code)
    if spec.bias:
        assert float(m["max |y − y_no_bias − b|"]) < 1e-5
        assert float(m["max |b.grad − Σ y.grad|"]) < 1e-5
        assert m["largest |y − b[c]| there, all channels"] == "0 (exact)"
        assert "**Imprecise.**" in text(at)
    else:
        assert m["+ bias b[c]"] == "none"
        assert any("no bias to learn" in i.value for i in at.info)
    assert float(m["largest |BN(conv(x)) − conv′(x)|, all channels"].split()[0]) < 1e-3
    # every widget at its limits: the last channel, the corner, the largest demo padding
    at.number_input(key="bias_channel").set_value(spec.out_channels - 1).run()
    at.slider(key="bias_row").set_value(at.slider(key="bias_row").max).run()
    at.slider(key="bias_padding").set_value(at.slider(key="bias_padding").max).run()
    assert_clean(at)
    assert metrics(at)["= sum"] == metrics(at)["value in layer(x)"]


def test_a_kernel_that_does_not_fit_the_input_is_a_message(app):
    at = app(PAGE, query_params={"bias_kernel": "15", "bias_pad": "0", "bias_size": "8"})
    assert not at.exception
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1 and "does not fit a 8×8 input with padding 0" in errors[0]
    assert "**17,822**" in text(at)  # the ACmix section still stands


def test_a_layer_over_the_memory_budget_is_refused(app, monkeypatch):
    from convmix import budget

    monkeypatch.setenv(budget.BUDGET_ENV, str(64 << 20))
    params = {"bias_out": "256", "bias_kernel": "3", "bias_stride": "1", "bias_pad": "1",
              "bias_size": "448"}
    at = app(PAGE, query_params=params)
    assert not at.exception
    error = at.main.error[0].value
    need = cb.page_bytes(cb.view_from_query_params(params)[0].layer, 448)
    assert "over this server's memory budget" in error and "A smaller input that fits" in error
    assert str(round(need / 2**30, 1)) in error or "GiB" in error
