"""The "ACmix in ResNet" page under AppTest: the paper numbers equal convmix.paper's, uploads good and
bad, the layer chosen for the walkthrough, hostile URLs, and the page in Chinese."""

from __future__ import annotations

import io
import json
import urllib.parse
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from safetensors.torch import save as save_safetensors

from convmix import images, paper, sources
from convmix.acmix import ACmix
from convmix.i18n import language
from convmix.models import DEPTHS, acmix_resnet
from convmix.ui import walkthrough_source as ws
from tests.i18n_text import english_left

PAGE = "pages/network.py"
WEIGHTS = {"network_view": "weights"}  # the tab that is drawn only when open
AUTHORS = [p.author for p in images.pictures()]  # people's names stay as they are in every language


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def r26_state():
    return acmix_resnet(26, seed=4).state_dict()


def clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [h.value for h in at.subheader]
                     + [x.value for x in at.info] + [x.value for x in at.success] + [x.value for x in at.warning]
                     + [x.value for x in at.error])


def chart_rows(at, title_part: str) -> list[dict]:
    """The data rows of the first chart whose title contains `title_part` (rule layers left out)."""
    el = next(e for e in at.get("vega_lite_chart") if title_part in str(json.loads(e.proto.spec).get("title")))
    rows = []
    for ds in el.proto.datasets:
        rows += pa.ipc.open_stream(ds.data.data).read_all().to_pylist()
    return [r for r in rows if set(r) != {"y"}]


def upload(at, name: str, data: bytes):
    at.session_state["net_mode"] = "upload"  # set_value would format the option in the test's language
    at.run()
    at.file_uploader(key="net_upload").set_value((name, data, "application/octet-stream")).run()
    return at


# -- the paper check ------------------------------------------------------------------------------


def test_paper_numbers_equal_convmix_paper(app):
    at = app(PAGE)
    clean(at)
    table = at.dataframe[0].value
    assert list(table.columns)[1:] == [f"ResNet-{d}" for d in DEPTHS]
    rows = {r[0]: r[1:] for r in table.itertuples(index=False)}
    for i, d in enumerate(DEPTHS):
        meta = acmix_resnet(d, device="meta")  # counted independently of convmix.paper
        assert rows["parameters, released code"][i] == f"{sum(p.numel() for p in meta.parameters()):,}"
        assert rows["parameters, README table"][i] == f"{paper.README_TABLE[d][0]} M"
        assert rows["multiply-adds of convolutions and linear layers"][i] == f"{paper.conv_linear_macs(d) / 1e9:.3f} G"
        with_att = paper.conv_linear_macs(d) + paper.attention_product_macs(d)
        assert rows["… plus the attention dot products"][i] == f"{with_att / 1e9:.3f} G"
        assert rows["all FLOPs (this project's count)"][i] == \
            f"{paper.totals(paper.network_entries(d)).flops / 1e9:.3f} G"
    assert rows["code + Σ C·kc⁴"][0].endswith("✓")


def test_findings_are_shown_with_their_status(app):
    at = app(PAGE)
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    labels = {"established": "established", "does not hold": "does not hold", "hypothesis": "hypothesis"}
    assert [next(k for k in labels if f" {labels[k]}]" in b) for b in badges] == [f.status for f in paper.findings()]
    body = texts(at)
    assert "2.155050 / 2.761063 / 3.367076 G" in body  # the audit's figures, reproduced live
    assert "48.2 %" in body and "does not hold" in body


def test_stage1_chart_and_charts_follow_the_widgets(app):
    at = app(PAGE)
    rows = chart_rows(at, "Stage I's share of each ACmix layer")
    expected = {s.module: s.share_macs for s in paper.stage1_shares(50)}
    got = {r["module"]: r["stage1_share"] for r in rows}
    assert got == pytest.approx(expected)
    at.segmented_control(key="net_share_depth").set_value(26).run()
    at.segmented_control(key="net_measure").set_value("flops").run()
    clean(at)
    assert {r["module"] for r in chart_rows(at, "Stage I's share")} == {s.module for s in paper.stage1_shares(26)}
    stage_rows = chart_rows(at, "FLOPs per stage")
    assert sum(r["flops"] for r in stage_rows if r["depth"] == 26) == paper.totals(paper.network_entries(26)).flops


# -- the weights ----------------------------------------------------------------------------------


def test_built_network_says_random_init_and_lists_its_layers(app):
    at = app(PAGE, WEIGHTS)
    clean(at)
    assert "Random initialisation, drawn from seed 0" in texts(at)
    layers = next(d.value for d in at.dataframe if "where the stride comes from" in d.value.columns)
    assert list(layers["layer"]) == [s.acmix_name.removesuffix(".conv2") for s in sources.block_layout(26)]
    assert "kernel_att is not stored in the weights" in texts(at)
    rates = chart_rows(at, "Learned rate1 and rate2")
    assert {r["value"] for r in rates} == {0.5}


@pytest.mark.parametrize("form", ["bare", "wrapped", "module.", "safetensors"])
def test_good_checkpoints_in_every_form(app, r26_state, form):
    state = {**r26_state, "layer3.1.conv2.rate1": torch.tensor([0.25])}
    if form == "bare":
        name, data = "r26.pth", saved(state)
    elif form == "wrapped":
        name, data = "ckpt.pt", saved({"model": state, "epoch": 90})
    elif form == "module.":
        name, data = "dp.pth", saved({"state_dict": {f"module.{k}": v for k, v in state.items()}, "arch": "x"})
    else:
        name, data = "r26.safetensors", save_safetensors({k: v.contiguous() for k, v in state.items()})
    at = upload(app(PAGE, WEIGHTS), name, data)
    clean(at)
    assert "The whole network runs: ACmix ResNet-26 with 1,000 classes" in texts(at)
    summary = {r[0]: r[1] for r in next(d.value for d in at.dataframe if "value" in d.value.columns).itertuples(index=False)}
    assert summary["file"] == name
    assert summary["format"] == ("safetensors" if form == "safetensors" else "PyTorch")
    assert summary["key prefix removed"] == ("module." if form == "module." else "none")
    rates = chart_rows(at, "Learned rate1 and rate2")
    assert [r["value"] for r in rates if r["layer"] == "layer3.1" and r["series"].startswith("rate1")] == [0.25]


def test_a_bare_acmix_layer_opens_alone(app):
    state = {f"block.{k}": v for k, v in ACmix(16, 16, head=4).state_dict().items()}
    at = upload(app(PAGE, WEIGHTS), "one.pth", saved(state))
    clean(at)
    body = texts(at)
    assert "not one of the authors' ACmix ResNets" in body and "1 ACmix layer found" in body
    assert at.number_input(key="net_alone_kernel_att").value == 7
    at.selectbox(key="net_picture").set_value("__noise__").run()
    clean(at)
    assert any(m.value == "1 × 16 × 56 × 56" for m in at.metric)


def test_a_malicious_pickle_is_refused_and_nothing_runs(app, tmp_path):
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return (Path.write_text, (marker, "code ran"))

    at = upload(app(PAGE, WEIGHTS), "weights.pth", saved({"w": torch.zeros(2), "x": RunsCode()}))
    assert not at.exception
    assert len(at.error) == 1 and "refused" in at.error[0].value and "weights_only=True" in at.error[0].value
    assert not marker.exists()


@pytest.mark.parametrize(("name", "data", "phrase"), [
    ("garbage.pth", b"\x00garbage" * 100, "not a file saved by torch.save"),
    ("cut.safetensors", b"\x07", "too short to be a safetensors file"),
    ("empty.pt", b"", "The file is empty"),
])
def test_garbage_is_refused_with_a_message(app, name, data, phrase):
    at = upload(app(PAGE, WEIGHTS), name, data)
    assert not at.exception
    assert len(at.error) == 1 and phrase in at.error[0].value


def stored_zip(nbytes: int) -> bytes:
    """A torch.save-like archive whose one record holds `nbytes` (its tensors' size, as read before decoding)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data/0", b"\0" * nbytes)
    return buf.getvalue()


def test_an_oversized_checkpoint_is_refused_before_reading(app, headroom):
    """The uploader's limit is what reading would be admitted for beside what the server holds (three
    copies of the file: the server's, the page's, the tensors); a file read anyway is admitted again."""
    headroom(48 << 20)
    at = app(PAGE, WEIGHTS)
    at.session_state["net_mode"] = "upload"
    at.run()
    limit_mb = at.file_uploader(key="net_upload").proto.max_upload_size_mb
    assert 1 <= limit_mb <= 48 // 3
    ballast = torch.ones(64 << 18)  # the server holds 64 MiB more (all the headroom) by the time the file comes
    at.file_uploader(key="net_upload").set_value(("big.pth", stored_zip(limit_mb << 20), "application/octet-stream")).run()
    assert not at.exception and float(ballast[0]) == 1.0
    assert "Reading this checkpoint would need about" in at.error[0].value
    assert "this server holds now, over this server's memory budget" in at.error[0].value
    assert at.file_uploader(key="net_upload").proto.max_upload_size_mb == limit_mb  # kept: the file stays


def test_a_hostile_file_name_stays_text(app):
    name = "**bold** [x](javascript:alert(1)) :red[y] $x$ <b>.pth"
    at = upload(app(PAGE, WEIGHTS), name, b"nonsense")
    assert name not in at.error[0].value
    at = upload(app(PAGE, WEIGHTS), name, saved({"blk." + k: v for k, v in ACmix(8, 8, head=2).state_dict().items()}))
    summary = next(d.value for d in at.dataframe if "value" in d.value.columns)
    assert summary.iloc[0, 1] == name  # shown in a table cell, as text


def test_a_large_built_network_is_refused_under_a_small_budget(app, headroom):
    headroom(16 << 20)  # ResNet-26's weights alone take 40 MiB
    at = app(PAGE, WEIGHTS)
    assert not at.exception
    assert "Building ResNet-26 would need about 40.1 MiB on top of" in texts(at)


# -- one layer for the walkthrough ----------------------------------------------------------------


def test_choosing_a_layer_for_the_walkthrough(app):
    at = app(PAGE, WEIGHTS)
    at.selectbox(key="net_layer").set_value("layer3.0.conv2").run()
    at.selectbox(key="net_picture").set_value("rocket").run()
    at.select_slider(key="net_image_size").set_value(64).run()
    clean(at)
    assert any(m.value == "1 × 256 × 8 × 8" for m in at.metric)
    assert ws.CHOICE_KEY not in at.session_state  # nothing changes for the walkthrough until asked
    at.button(key="net_choose").click().run()
    clean(at)
    chosen = at.session_state[ws.CHOICE_KEY]
    assert chosen == sources.NetworkLayer(sources.ResNetRef(26, 0), "layer3.0.conv2", sources.BuiltinPicture("rocket"), 64)
    (link,) = [p for p in at.get("page_link") if p.proto.page == "walkthrough"]
    query = dict(urllib.parse.parse_qsl(link.proto.query_string))
    assert query == {"net": "resnet26", "net_seed": "0", "layer": "layer3.0.conv2", "picture": "rocket",
                     "image_size": "64", "lang": "en"}
    assert at.query_params["layer"] == "layer3.0.conv2"  # this page's own URL reproduces it
    at.button(key="net_forget").click().run()
    assert ws.CHOICE_KEY not in at.session_state


def test_the_url_reproduces_the_choice(app):
    at = app(PAGE, {"net": "resnet38", "net_seed": "9", "layer": "layer2.2.conv2", "picture": "coffee",
                    "image_size": "128"})
    at.switch_page(PAGE).run()
    clean(at)
    assert at.segmented_control(key="net_depth").value == 38
    assert at.number_input(key="net_seed").value == 9
    assert at.selectbox(key="net_layer").value == "layer2.2.conv2"
    assert at.selectbox(key="net_picture").value == "coffee"
    assert at.select_slider(key="net_image_size").value == 128


def open_tab(at, label: str):
    """Click a tab of the English page as the browser does: the tabs' value, and what their on_change
    callback keeps (AppTest runs no callback for a value set through the session state)."""
    at.session_state["network_view__en"] = label
    at.session_state["_network_view_value"] = {"Paper check": "paper", "Weights and layers": "weights"}[label]
    return at.run()


def test_only_the_open_tab_is_drawn_and_the_url_names_it(app):
    """The paper tab opens by default and draws none of the weights tab's widgets; the weights tab,
    opened, writes ?network_view=weights and its network to the URL; back on the paper tab the URL
    names neither, so that a copied URL always reproduces the view."""
    at = app(PAGE)
    clean(at)
    assert not [r for r in at.radio if r.key == "net_mode"]
    assert "network_view" not in at.query_params and "net" not in at.query_params
    open_tab(at, "Weights and layers")
    clean(at)
    assert at.radio(key="net_mode").value == "built"
    assert at.query_params["network_view"] == "weights" and at.query_params["net"] == "resnet26"
    open_tab(at, "Paper check")
    clean(at)
    assert not [k for k in ("network_view", *sources.QUERY_KEYS) if k in at.query_params]


def test_the_weights_tab_keeps_its_choices_across_a_look_at_the_paper(app):
    at = app(PAGE, WEIGHTS)
    at.segmented_control(key="net_depth").set_value(38).run()
    at.selectbox(key="net_layer").set_value("layer2.2.conv2").run()
    at.session_state["net_measure"] = "flops"
    open_tab(at, "Paper check")
    clean(at)
    assert at.segmented_control(key="net_measure").value == "flops"
    open_tab(at, "Weights and layers")
    clean(at)
    assert at.segmented_control(key="net_depth").value == 38
    assert at.selectbox(key="net_layer").value == "layer2.2.conv2"
    assert at.query_params["layer"] == "layer2.2.conv2"


HOSTILE_VALUES = ["-1", "1e400", "<script>alert(1)</script>", "９", "", "layer1.0.conv2\x00", "9" * 40,
                  "upload-" + "a" * 12]


@pytest.mark.parametrize("key", sources.QUERY_KEYS)
def test_hostile_query_parameters(app, key, headroom):
    headroom(160 << 20)  # ResNet-26 fits; anything costly is refused
    for value in HOSTILE_VALUES:
        params = {"net": "resnet26", "net_seed": "1", "layer": "layer1.0.conv2", "picture": "chelsea",
                  "image_size": "64", key: value}
        at = app(PAGE, params)
        assert not at.exception, (key, value, [e.value for e in at.exception])
        assert not at.error, (key, value)


# -- languages ------------------------------------------------------------------------------------


def english_in_main(at) -> list:
    return [(run, where) for run, where in english_left(at, area="main")
            if not any(run in author for author in AUTHORS)]


def test_no_english_left_in_chinese(app, r26_state):
    # AppTest formats widget options in the test's own thread: translate there too.
    with language("zh"):
        chinese_page_checks(app, r26_state)


def chinese_page_checks(app, r26_state):
    at = app(PAGE, {"lang": "zh"})  # the paper tab
    clean(at)
    assert english_in_main(at) == []
    at = app(PAGE, {**WEIGHTS, "lang": "zh"})
    clean(at)
    assert english_in_main(at) == []
    at = upload(at, "r26.pth", saved({"state_dict": {f"module.{k}": v for k, v in r26_state.items()}}))
    clean(at)
    assert english_in_main(at) == []
    at = upload(app(PAGE, {**WEIGHTS, "lang": "zh"}), "x.pth", b"garbage")
    assert at.error and english_in_main(at) == []
    state = {f"b.{k}": v for k, v in ACmix(8, 8, head=2).state_dict().items() if k != "rate2"}
    at = upload(app(PAGE, {**WEIGHTS, "lang": "zh"}), "broken.pth", saved(state))
    assert not at.exception and english_in_main(at) == []
    assert any("b 缺少 rate2" in str(d.value.iloc[:, 0].tolist()) for d in at.dataframe)  # the library's words


def test_every_refusal_of_the_page_in_chinese(app, headroom):
    with language("zh"):
        refusal_checks(app, headroom)


def refusal_checks(app, headroom):
    shown = []

    def check(at):
        clean_enough(at)
        assert english_in_main(at) == []
        shown.extend(x.value for x in [*at.error, *at.warning, *at.info])

    # a bare ACmix layer (not a ResNet: the network cannot run) and a ResNet that does not match
    state = {f"blk.{k}": v for k, v in ACmix(16, 16, head=4).state_dict().items()}
    check(upload(app(PAGE, {**WEIGHTS, "lang": "zh"}), "one.pth", saved(state)))
    partial = {k: v for k, v in acmix_resnet(26, device="meta").state_dict().items() if k != "fc.bias"}
    check(upload(app(PAGE, {**WEIGHTS, "lang": "zh"}), "r.pth", saved({k: torch.zeros(v.shape) for k, v in partial.items()})))
    # every refusal of the checkpoint reader the uploader can meet
    for name, data in [("x.bin.pth", b""), ("s.safetensors", b"\x07"), ("o.pth", b"\x80\x02" + b"x" * 40),
                       ("d.pth", b"PK\x03\x04" + b"\0" * 40), ("l.pth", saved([torch.zeros(2)])),
                       ("m.pth", saved(torch.nn.Linear(2, 2))), ("n.pth", saved({"epoch": 3}))]:
        check(upload(app(PAGE, {**WEIGHTS, "lang": "zh"}), name, data))
    # hostile URL values: a note for each
    check(app(PAGE, {"lang": "zh", "net": "resnet99", "layer": "x"}))
    check(app(PAGE, {"lang": "zh", "net": "resnet26", "net_seed": "-1", "layer": "layer9.conv2"}))
    check(app(PAGE, {"lang": "zh", "net": "resnet26", "layer": "layer1.0.conv2", "picture": "nope",
                     "image_size": "100"}))
    check(app(PAGE, {"lang": "zh", "net": "upload-" + "a" * 12, "layer": "layer1.0.conv2"}))
    # a picture the reader refuses
    at = app(PAGE, {**WEIGHTS, "lang": "zh"})
    at.selectbox(key="net_picture").set_value("__upload__").run()
    at.file_uploader(key="net_picture_upload").set_value(("p.png", b"not an image", "image/png")).run()
    check(at)
    # the memory budget: a forward that does not fit, then a network that does not
    headroom(160 << 20)
    check(app(PAGE, {"lang": "zh", "net": "resnet26", "layer": "layer4.0.conv2", "image_size": "512"}))
    headroom(16 << 20)
    check(app(PAGE, {**WEIGHTS, "lang": "zh"}))
    assert len(shown) >= 14, shown


def clean_enough(at):
    assert not at.exception, [e.value for e in at.exception]


def test_a_layer_whose_input_does_not_fit_cannot_be_chosen(app, headroom):
    headroom(160 << 20)  # ResNet-26 is built, a 512² forward to layer4 is not
    at = app(PAGE, {"net": "resnet26", "layer": "layer4.0.conv2", "image_size": "512"})
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("Running the network up to layer4.0.conv2 would need about" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "net_choose"]
