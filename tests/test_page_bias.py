"""The bias page under AppTest: defaults, every widget moved to its limits, good and bad uploads,
values that no longer fit after a change, and the memory budget held while the page computes.
(Translations: tests/test_page_bias_i18n.py.)"""

from __future__ import annotations

import contextvars
import io
import json
import re

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from convmix import bias as cb
from convmix import budget
from convmix.config import ACmixConfig
from convmix.ui.code import code_span
from tests.bias_sections import SECTIONS, each_section, open_section

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


def number(shown: str) -> float:
    """A metric's number: sci() writes an exact zero as "0 (exact)"."""
    return 0.0 if shown == "0 (exact)" else float(shown.split()[0])


def specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def chart_rows(at, title_part: str) -> list[dict]:
    """Every row of every dataset of the first chart whose spec mentions title_part."""
    el = next(e for e in at.get("vega_lite_chart") if title_part in e.proto.spec)
    rows = []
    for ds in el.proto.datasets:
        rows += pa.ipc.open_stream(ds.data.data).read_all().to_pylist()
    return rows


def read_all(at) -> tuple[dict[str, str], str, list[dict]]:
    """Every section's metrics, text and chart specs, each section opened in turn."""
    found, said, charts = {}, [], []
    for _code in each_section(at):
        assert_clean(at)
        found.update(metrics(at))
        said.append(text(at))
        charts += specs(at)
    return found, "\n".join(said), charts


def ranged(at, kind: str, key: str):
    """The widget behind `?key=`: its Streamlit key carries its range (`key__<max>`)."""
    (found,) = [w for w in getattr(at, kind) if w.key and w.key.startswith(f"{key}__")]
    return found


def channel(at):
    return ranged(at, "number_input", "bias_channel")


def row(at):
    return ranged(at, "slider", "bias_row")


def col(at):
    return ranged(at, "slider", "bias_col")


def source(at):
    (found,) = [w for w in at.radio if w.key and w.key.startswith("bias_source__")]
    return found


@pytest.fixture
def open_page(app, monkeypatch):
    def open_(lang: str = "en", **params):
        # AppTest formats a menu's labels in the test's own thread: speak the page's language there too.
        monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default=lang))
        return app(PAGE, query_params={"lang": lang, **params} if lang != "en" else params or None)

    return open_


@pytest.fixture
def page(open_page):
    at = open_page()
    assert_clean(at)
    return at


def test_defaults(page):
    assert dict(page.query_params) == {}  # defaults are not written into the URL
    assert (row(page).value, col(page).value, channel(page).value) == (56, 56, 0)
    m, body, charts = read_all(page)
    assert m["parameters, bias=True"] == "9,472"
    assert m["parameters, bias=False"] == "9,408"
    assert m["weight shape"] == "64 × 3 × 7 × 7"
    assert "64 × 112 × 112 for a 224×224 input" in body
    assert "Built-in scene" in body
    # The opened-up value: the float64 sum equals the forward's value to the shown digits.
    assert m["= sum"] == m["value in layer(x)"]
    assert float(m["max |y − y_no_bias − b|"]) < 1e-6
    assert m["largest |y − b[c]| there, all channels"] == "0 (exact)"
    assert float(m["largest |∂L/∂b| through the BN"]) < 1e-6
    assert float(m["max |b.grad − Σ y.grad|"]) < 1e-6
    assert "**17,822**" in body and "**17,886**" in body
    assert len(charts) >= 8
    assert all("tooltip" in json.dumps(c) for c in charts)
    assert (row(page).value, col(page).value, channel(page).value) == (56, 56, 0)
    open_section(page, "sum")
    assert dict(page.query_params) == {}  # the first section is the default: not in the URL either
    assert budget.reserved_bytes() == 0  # the page's reservation ended with its work


def test_only_the_open_section_is_drawn_and_the_url_names_it(open_page):
    """The sections after the pickers are tabs: the first opens by default and only the open one is
    drawn; ?bias_view= names any other, so that a copied URL opens it; a look at another section
    keeps the bias and padding sliders where they were."""
    at = open_page()
    assert [t.label for t in at.tabs] == list(SECTIONS.values())
    assert len(specs(at)) == 1 and "= sum" in metrics(at)
    assert not [s for s in at.slider if s.key in ("bias_value", "bias_padding")]
    open_section(at, "shift")
    assert_clean(at)
    assert at.query_params["bias_view"] == "shift" and "= sum" not in metrics(at)
    at.slider(key="bias_value").set_value(at.slider(key="bias_value").max).run()
    at.slider(key="bias_padding").set_value(9).run()
    kept = at.slider(key="bias_value").value
    open_section(at, "batchnorm")
    assert not [s for s in at.slider if s.key in ("bias_value", "bias_padding")]
    open_section(at, "shift")
    assert (at.slider(key="bias_value").value, at.slider(key="bias_padding").value) == (kept, 9)
    for code in SECTIONS:
        opened = open_page(bias_view=code)
        assert_clean(opened)
        assert opened.session_state["_bias_view_value"] == code
        assert opened.query_params.get("bias_view") == (None if code == "sum" else code)
    # A URL naming no section opens the first one.
    assert "= sum" in metrics(open_page(bias_view="<script>"))


def test_bias_slider_to_both_ends_moves_the_relu_survival(page):
    open_section(page, "shift")
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
    open_section(page, "shift")
    page.slider(key="bias_value").set_value(page.slider(key="bias_value").max).run()
    channel(page).set_value(63).run()
    assert_clean(page)
    expected = float(cb.seed_layer().bias.detach()[63])  # exactly the layer's bias, not rounded
    assert page.slider(key="bias_value").value == pytest.approx(expected, abs=1e-12)
    assert page.slider(key="bias_value").label == "Bias b[63]"
    assert metrics(page)["b[63]"] == f"{float(cb.seed_layer().bias.detach()[63]):+.7f}"
    assert page.query_params["bias_channel"] == "63"


@pytest.mark.parametrize("size,out", [(8, 4), (448, 224), (112, 56)])
def test_input_size_extremes(page, size, out):
    page.select_slider(key="bias_size").set_value(size).run()
    assert_clean(page)
    assert f"64 × {out} × {out} for a {size}×{size} input" in text(page)
    assert row(page).max == out - 1 and row(page).value == out // 2  # the untouched row follows the middle
    m = metrics(page)
    assert m["= sum"] == m["value in layer(x)"]


@pytest.mark.parametrize("r,c", [(0, 0), (111, 111), (0, 111), (111, 0)])
def test_output_position_corners_show_padding(page, r, c):
    row(page).set_value(r).run()
    col(page).set_value(c).run()
    assert_clean(page)
    assert "fall in the zero padding" in text(page)
    m = metrics(page)
    assert m["= sum"] == m["value in layer(x)"]


def test_the_output_value_opened_survives_a_visit_to_another_page(page):
    """Streamlit forgets a widget that a run did not draw: coming back, the row and column are the
    ones left (or the middle ones, unchanged and out of the URL), not the slider's minimum."""
    page.switch_page("pages/home.py").run()
    page.switch_page(PAGE).run()
    assert_clean(page)
    assert (row(page).value, col(page).value) == (56, 56)
    assert "bias_row" not in page.query_params and "bias_col" not in page.query_params
    row(page).set_value(9).run()
    page.switch_page("pages/home.py").run()
    page.switch_page(PAGE).run()
    assert (row(page).value, col(page).value) == (9, 56)
    assert page.query_params["bias_row"] == "9" and "bias_col" not in page.query_params


def test_lowering_the_size_clamps_the_row_and_column_with_a_note(page):
    """The reported bug: 448 → 16 → 8 raised StreamlitValueAboveMaxError from the URL-bound row."""
    page.select_slider(key="bias_size").set_value(448).run()
    row(page).set_value(200).run()
    col(page).set_value(223).run()
    assert page.query_params["bias_row"] == "200" and page.query_params["bias_col"] == "223"
    page.select_slider(key="bias_size").set_value(16).run()
    assert_clean(page)
    assert (row(page).max, row(page).value, col(page).value) == (7, 7, 7)
    notes = [w.value for w in page.main.warning]
    assert notes == ["Output row 200 does not exist at this size; showing row 7, the last.",
                     "Output column 223 does not exist at this size; showing column 7, the last."]
    assert page.query_params["bias_row"] == "7"
    assert any("Output `y[0, 7, 7]`" in m.value for m in page.markdown)
    page.select_slider(key="bias_size").set_value(8).run()
    assert_clean(page)
    assert (row(page).value, col(page).value) == (3, 3)
    assert len(page.main.warning) == 2  # said again, for this change
    page.run()
    assert not page.main.warning  # and only once
    m = metrics(page)
    assert m["= sum"] == m["value in layer(x)"]


def test_fewer_output_channels_clamp_the_channel_with_a_note(page):
    open_section(page, "shift")
    channel(page).set_value(50).run()
    page.number_input(key="bias_out").set_value(8).run()
    assert_clean(page)
    assert channel(page).value == 7 and channel(page).max == 7
    assert [w.value for w in page.main.warning] == [
        "Output channel 50 does not exist in this layer; showing channel 7, the last."]
    assert page.slider(key="bias_value").label == "Bias b[7]"
    assert page.query_params["bias_channel"] == "7"


# All-padding windows counted by hand: rows i with 2i + 6 < p or 2i ≥ p + 224, likewise columns.
@pytest.mark.parametrize(
    "pad,all_padding", [(0, "0 of"), (6, "0 of"), (7, "231 of 13,456"), (12, "1,416 of 14,641")]
)
def test_padding_slider(page, pad, all_padding):
    open_section(page, "shift")
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
    source(page).set_value("upload").run()
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
    source(page).set_value("upload").run()
    page.get("file_uploader")[0].set_value((name, data, "image/png"))
    page.run()
    assert not page.exception
    errors = [e.value for e in page.error]
    assert len(errors) == 1 and message in errors[0] and "PNG or JPEG" in errors[0]
    assert "Built-in scene" in text(page)  # the page carries on with the built-in image


def test_acmix_section_follows_the_sidebar_and_survives_an_invalid_config(page):
    open_section(page, "acmix")
    page.number_input(key="out_planes").set_value(32).run()
    assert_clean(page)
    total = 3 * (64 * 32 + 32) + 3 * 8 + 3 * 4 * 9 + 32 * 81 + 2  # ACMIX.md's formula
    assert f"**{total:,}**" in text(page) and f"**{total + 32:,}**" in text(page)
    page.number_input(key="head").set_value(3).run()  # 32 % 3 != 0: cannot be built
    assert not page.exception
    assert any("default `ACmix(64, 64)`" in w.value for w in page.warning)
    assert "**17,822**" in text(page)


def test_url_opens_the_same_output_value(app):
    at = app(PAGE, query_params={"bias_size": 112, "bias_channel": 5, "bias_row": 3, "bias_col": 40})
    assert not at.exception
    assert at.select_slider(key="bias_size").value == 112
    assert channel(at).value == 5
    assert (row(at).value, col(at).value) == (3, 40)
    assert any("y[5, 3, 40]" in m.value for m in at.markdown)
    # and the URL keeps them: a copied link opens this value again
    assert {k: at.query_params[k] for k in ("bias_channel", "bias_row", "bias_col")} == {
        "bias_channel": "5", "bias_row": "3", "bias_col": "40"}


def test_the_bias_slider_starts_at_the_layers_bias_so_both_percentages_agree(page):
    open_section(page, "shift")
    bias0 = float(cb.seed_layer().bias.detach()[0])
    assert page.slider(key="bias_value").value == pytest.approx(bias0, abs=1e-12)
    said = next(m.value for m in page.markdown if "keeps only positive values" in m.value)
    shares = re.findall(r"\*\*([\d.]+%)\*\*", said)
    assert len(shares) == 2 and shares[0] == shares[1]


def test_the_article_is_named_and_the_sidebar_says_what_applies(page):
    body = text(page)
    assert cb.ARTICLE_TITLE in body and "CSDN" in body
    assert "seed article" not in body
    assert any("applies only to the section *Bias inside ACmix*" in c.value for c in page.sidebar.caption)


def test_claims_are_precise_about_linearity(page):
    open_section(page, "article")
    body = text(page)
    assert f"**Imprecise.** “{cb.QUOTE_NONLINEAR}” (it increases" in body
    assert "positively homogeneous" in body and "does not make the layer less linear" not in body
    assert "affine rather than linear" in text(open_section(page, "shift"))


@pytest.mark.parametrize("params,note,widget,value", [
    ({"bias_channel": "1e400"}, "`bias_channel=1e400` is not a whole number; using 0.", "bias_channel", 0),
    ({"bias_channel": "8.5"}, "`bias_channel=8.5` is not a whole number; using 0.", "bias_channel", 0),
    ({"bias_channel": "70"}, "`bias_channel=70` is outside 0 to 63: this layer has 64 output channels; "
     "using channel 0.", "bias_channel", 0),
    ({"bias_row": "3.5"}, "`bias_row=3.5` is not a whole number; using 56.", "bias_row", 56),
    ({"bias_col": "112"}, "`bias_col=112` is outside 0 to 111: this layer's output is 112×112; using 56.",
     "bias_col", 56),
    ({"bias_size": "999"}, "`bias_size=999` is not one of 8, 16, 32, 64, 112, 160, 224, 320, 448; "
     "using 224.", "bias_size", 224),
    ({"bias_kernel": "inf"}, "`bias_kernel=inf` is not a whole number; using 7.", "bias_kernel", 7),
])
def test_bias_url_values_out_of_range_are_told(app, params, note, widget, value):
    at = app(PAGE, query_params=params)
    assert not at.exception
    warnings = [w.value for w in at.main.warning]
    assert warnings == [f"URL parameter {note}"]
    found = {"bias_channel": channel, "bias_row": row, "bias_col": col}.get(widget)
    if found is not None:
        assert found(at).value == value
    else:
        kind = {"bias_size": "select_slider"}.get(widget, "number_input")
        assert getattr(at, kind)(key=widget).value == value


LAYERS = [
    {"bias_in": "1", "bias_out": "8", "bias_kernel": "3", "bias_stride": "1", "bias_pad": "1",
     "bias_size": "32"},
    {"bias_out": "5", "bias_kernel": "1", "bias_stride": "3", "bias_pad": "0", "bias_bias": "false",
     "bias_size": "64"},
    {"bias_in": "1", "bias_out": "256", "bias_kernel": "15", "bias_stride": "8", "bias_pad": "15",
     "bias_size": "64"},
    {"bias_out": "16", "bias_kernel": "5", "bias_stride": "2", "bias_pad": "0", "bias_size": "16"},
    {"bias_out": "4", "bias_kernel": "15", "bias_stride": "1", "bias_pad": "4", "bias_size": "8"},
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
    assert any(m.value == code_span(f"self.conv1 = {spec.line}") for m in at.markdown)
    infos = []
    m, body = {}, []
    for _code in each_section(at):
        assert_clean(at)
        m.update(metrics(at))
        body.append(text(at))
        infos += [i.value for i in at.info]
    body = "\n".join(body)
    assert m["weight shape"] == " × ".join(map(str, reference.weight.shape))
    with_bias = sum(p.numel() for p in torch.nn.Conv2d(
        spec.in_channels, spec.out_channels, spec.kernel, bias=True).parameters())
    assert m["parameters, bias=True"] == f"{with_bias:,}"
    assert m["parameters, bias=False"] == f"{reference.weight.numel():,}"
    out = reference(torch.zeros(1, spec.in_channels, view.size, view.size)).shape[-1]
    assert f"{spec.out_channels} × {out} × {out} for a {view.size}×{view.size} input" in body
    assert m["= sum"] == m["value in layer(x)"]
    if spec.bias:
        assert number(m["max |y − y_no_bias − b|"]) < 1e-5
        assert number(m["max |b.grad − Σ y.grad|"]) < 1e-5
        assert m["largest |y − b[c]| there, all channels"] == "0 (exact)"
        assert "**Imprecise.**" in body
    else:
        assert m["+ bias b[c]"] == "none"
        assert any("no bias to learn" in i for i in infos)
    assert number(m["largest |BN(conv(x)) − conv′(x)|, all channels"]) < 1e-3
    # every widget at its limits: the last channel, the corner, the smallest and largest demo padding
    open_section(at, "shift")
    channel(at).set_value(spec.out_channels - 1).run()
    row(at).set_value(row(at).max).run()
    at.slider(key="bias_padding").set_value(at.slider(key="bias_padding").min).run()
    assert_clean(at)
    at.slider(key="bias_padding").set_value(at.slider(key="bias_padding").max).run()
    assert_clean(at)
    open_section(at, "sum")
    assert_clean(at)
    assert metrics(at)["= sum"] == metrics(at)["value in layer(x)"]


def test_a_kernel_that_does_not_fit_the_input_is_a_message(app):
    at = app(PAGE, query_params={"bias_kernel": "15", "bias_pad": "0", "bias_size": "8"})
    assert not at.exception
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1 and "does not fit a 8×8 input with padding 0" in errors[0]
    assert "**17,822**" in text(at)  # the ACmix section still stands


# -- the memory budget -----------------------------------------------------------------------------
WIDE = {"bias_out": "256", "bias_kernel": "3", "bias_stride": "1", "bias_pad": "1", "bias_size": "448"}


def test_a_layer_over_the_memory_budget_is_refused_with_a_size_that_fits(app, headroom):
    spec = cb.view_from_query_params(WIDE)[0].layer
    headroom(cb.page_bytes(spec, 160) + (48 << 20))  # 448 does not fit; 160 does
    at = app(PAGE, query_params=WIDE)
    assert not at.exception
    (error,) = [e.value for e in at.main.error]
    assert "over this server's memory budget" in error and "A smaller input that fits" in error
    fit = int(re.search(r"fits: (\d+)×", error).group(1))
    assert 64 <= fit < 448 and cb.page_bytes(spec, fit) < cb.page_bytes(spec, 448)
    assert "**17,822**" in text(at)  # the ACmix section still stands
    assert budget.reserved_bytes() == 0


def test_the_reservation_holds_while_the_page_computes(app, monkeypatch):
    """Everything the page computes runs inside its reservation of cb.page_bytes (convmix.budget):
    another request admitted meanwhile sees it."""
    seen = []
    original = cb.page_results

    def watched(*args, **kwargs):
        seen.append(budget.reserved_bytes())
        return original(*args, **kwargs)

    monkeypatch.setattr(cb, "page_results", watched)
    at = app(PAGE, query_params={"bias_size": "112"})
    assert_clean(at)
    assert seen == [cb.page_bytes(cb.LayerSpec(), 112)]
    assert budget.reserved_bytes() == 0  # released when the work ended
    row(at).set_value(3).run()  # a rerun on the cached results computes nothing, reserves nothing
    assert_clean(at)
    assert len(seen) == 1


def test_what_other_requests_reserved_counts_against_the_page(app, headroom):
    need = cb.page_bytes(cb.LayerSpec(), 224)
    limit = headroom(need + (96 << 20))
    # Another visitor's work holds most of the headroom while this page opens.
    with budget.admitted(ACmixConfig(), limit, lambda _config: need + (64 << 20)):
        at = app(PAGE)
    assert not at.exception
    (error,) = [e.value for e in at.main.error]
    assert "would need about" in error and "so it was not run" in error
    # Once that work is done the same page runs.
    at.run()
    assert_clean(at)
    assert metrics(at)["= sum"] == metrics(at)["value in layer(x)"]


def test_decoding_an_upload_is_admitted_too(open_page, headroom):
    at = open_page(bias_size="32")
    big = io.BytesIO()
    Image.new("RGB", (2000, 2000), (10, 200, 30)).save(big, "PNG")
    data = big.getvalue()
    assert cb.upload_bytes(data, 32) > (48 << 20) > cb.page_bytes(cb.LayerSpec(), 32)
    headroom(48 << 20)
    source(at).set_value("upload").run()
    at.get("file_uploader")[0].set_value(("big.png", data, "image/png"))
    at.run()
    assert not at.exception
    (error,) = [e.value for e in at.main.error]
    assert error.startswith("Decoding this image would need about") and "built-in scene" in error
    assert "Built-in scene, drawn at 32×32" in text(at)
    assert budget.reserved_bytes() == 0


def test_a_padding_demonstration_over_the_budget_is_a_warning(page, headroom):
    open_section(page, "shift")  # its demonstration at the first padding is computed and cached
    headroom(1 << 20)  # nothing new fits
    row(page).set_value(10).run()  # the cached page itself is never refused
    assert_clean(page)
    page.slider(key="bias_padding").set_value(10).run()
    assert not page.exception and not page.error
    (warning,) = [w.value for w in page.main.warning]
    assert warning.startswith("The demonstration at padding=10 would need about")
