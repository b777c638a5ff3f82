"""The explorer page under AppTest: the default preset, presets in one click, facets and the relative
view, every choice in the URL, the plan stated before measuring, noise flags and re-measuring, the
server's load, uploads valid and invalid, the built-in reference, refusals, and both languages."""

from __future__ import annotations

import json
import re

import pytest
import torch

from convmix import bench, i18n, sweep
from convmix.config import ACmixConfig
from convmix.presets import DEFAULT_PRESET, PRESETS
from convmix.ui import explorer as ui
from tests.i18n_text import english_left

PAGE = "pages/explorer.py"
# A sweep that measures in moments: 8×8 inputs, 8 and 16 channels, two windows, quick timing.
TINY = {"height": "8", "width": "8", "explorer_vary": "channels,kernel_att", "explorer_values_channels": "8,16",
        "explorer_values_kernel_att": "3,5", "explorer_budget": "quick"}
LATENCY = {**TINY, "explorer_view": "latency"}


def specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def chart_rows(at) -> list[list[dict]]:
    """Each chart's data rows (Streamlit ships them beside the spec, as Arrow tables), first table."""
    import pyarrow as pa

    out = []
    for el in at.get("vega_lite_chart"):
        tables = [pa.ipc.open_stream(d.data.data).read_all().to_pylist() for d in el.proto.datasets]
        out.append(tables[0] if tables else [])
    return out


def titles(at) -> list[str]:
    """Each chart's title, lines joined by ", "."""
    out = []
    for spec in specs(at):
        title = spec.get("title", "")
        text_ = title.get("text", "") if isinstance(title, dict) else title
        out.append(", ".join(text_) if isinstance(text_, list) else text_)
    return out


def text(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption]
                     + [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success])


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def param(at, key: str) -> str | None:
    """The URL parameter `key` as the app wrote it (AppTest keeps a value or a list of values)."""
    value = at.query_params.get(key)
    return value[-1] if isinstance(value, list) else value


def widget(at, kind: str, key: str, lang: str = "en"):
    """A menu drawn by convmix.ui.widgets.choice (its widget key carries the language)."""
    return getattr(at, kind)(key=f"{key}__{lang}")


@pytest.fixture
def open_page(app):
    def make(params: dict | None = None):
        at = app(PAGE, params)
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


@pytest.fixture
def small_peaks(monkeypatch):
    """Peaks from small sizes, so that measuring in tests does not spend time on a large matmul."""
    cpu = torch.device("cpu")
    peaks = bench.measure_peaks(cpu, "float32", matmul_size=64, copy_elements=1 << 12, repeats=2)
    monkeypatch.setitem(bench._PEAKS, (str(cpu), "float32"), peaks)


def fake_row(latency: float = 1.0, spread: float = 0.1, device_name: str = "Fixture CPU") -> dict:
    """A measured row with stand-in values (test data, not a measurement)."""
    return {"impl": "reference", "latency_ms": latency, "latency_ms_p25": latency * (1 - spread / 2),
            "latency_ms_p75": latency * (1 + spread / 2), "timed_samples": 5, "peak_bytes": 4096,
            "others_cpu_share": 0.4, "load_avg_1m": 2.5, "cpus": 2, "device": "cpu",
            "device_name": device_name, "dtype": "float32", "threads": 2, "torch_version": torch.__version__}


# -- the sweep ------------------------------------------------------------------------------------------
def test_defaults_are_the_resnet_preset_one_chart_per_layer(open_page):
    at = open_page()
    assert_clean(at)
    body = text(at)
    assert "**112** configurations" in body
    assert "This is the preset “ACmix ResNet stages”" in body
    assert widget(at, "multiselect", "explorer_vary").value == ["layer", "kernel_att", "head"]
    assert widget(at, "selectbox", "explorer_x").value == "kernel_att"
    assert widget(at, "selectbox", "explorer_facet").value == "layer"
    t = titles(at)
    assert t[0] == "Parameters against kernel_att, layer1.0 · C=64 · 56×56"
    assert t[1] == "Parameters against kernel_att, layer2.0 · C=128 · 56×56 → 28×28 · s=2"
    assert len([x for x in t if x.startswith("Parameters against")]) == 7
    assert not [x for x in t if "per submodule" in x]  # the breakdown is drawn once asked for
    assert not at.toggle(key="explorer_per_submodule__en").value
    assert not at.dataframe and not at.toggle(key="explorer_table__en").value  # the table too, once asked for
    assert "Attention window kernel_att changes no parameter count" in body
    assert "**Parameters** 17,816 to 831,005" in body
    assert param(at, "explorer_vary") is None  # defaults stay out of the URL


def test_the_table_of_configurations_on_demand(open_page):
    """Off by default; switched on, one row per configuration with the counts the charts show, and
    the switch in the URL."""
    at = open_page()
    at.toggle(key="explorer_table__en").set_value(True).run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert len(table) == 112 and param(at, "explorer_table") == "true"
    configs = sweep.expand_grid(ACmixConfig(), PRESETS[DEFAULT_PRESET].axes_dict()).configs
    built = {}  # parameters of the modules as built, per shape that sets them
    for c in configs:
        shape = (c.in_planes, c.out_planes, c.head, c.kernel_conv)
        if shape not in built:
            built[shape] = sum(p.numel() for p in c.build().parameters())
    assert sorted(table["params"]) == sorted(built[(c.in_planes, c.out_planes, c.head, c.kernel_conv)]
                                             for c in configs)
    copy = open_page({"explorer_table": "true"})
    assert len(copy.dataframe[0].value) == 112


def test_a_preset_in_one_click(open_page):
    at = open_page()
    at.button(key="explorer_preset_kernel-head-stride").click().run()
    assert_clean(at)
    assert "**32** configurations" in text(at)
    assert widget(at, "multiselect", "explorer_vary").value == ["kernel_att", "head", "stride"]
    assert widget(at, "selectbox", "explorer_facet").value == "stride"
    assert [t.split(", ")[1] for t in titles(at)[:2]] == ["s=1", "s=2"]
    assert param(at, "explorer_vary") == "kernel_att,head,stride"
    at.button(key="explorer_preset_resnet-stages").click().run()
    assert "**112** configurations" in text(at) and "explorer_vary" not in at.query_params


def test_changed_axes(open_page):
    at = open_page({"explorer_vary": "head,stride,resolution", "explorer_values_head": "1,2,8",
                    "explorer_values_resolution": "16,32", "explorer_x": "resolution", "explorer_facet": ""})
    assert_clean(at)
    assert "**12** configurations" in text(at)
    spec = specs(at)[0]
    assert spec["layer"][1]["encoding"]["x"]["field"] == "height"
    widget(at, "radio", "explorer_quantity").set_value("flops").run()
    assert titles(at) == ["FLOPs against H = W"]
    at.toggle(key="explorer_per_submodule__en").set_value(True).run()
    assert titles(at) == ["FLOPs against H = W", "FLOPs per component"]
    assert specs(at)[1]["encoding"]["x"].get("stack") != "normalize"
    widget(at, "radio", "explorer_breakdown").set_value("shares").run()
    assert_clean(at)
    assert specs(at)[1]["encoding"]["x"]["stack"] == "normalize"
    assert param(at, "explorer_per_submodule") == "true" and param(at, "explorer_breakdown") == "shares"
    copy = open_page({k: param(at, k) for k in at.query_params})  # a copied URL shows the breakdown too
    assert titles(copy) == titles(at) and specs(copy)[1]["encoding"]["x"]["stack"] == "normalize"


def test_nothing_varied_is_one_configuration(open_page):
    at = open_page()
    widget(at, "multiselect", "explorer_vary").set_value([]).run()
    assert_clean(at)
    assert "**1** configuration of" in text(at)


def test_skipped_combinations_are_explained_and_fixed_is_offered(open_page):
    at = open_page({"explorer_vary": "kernel_conv,head", "explorer_values_kernel_conv": "3,5",
                    "explorer_values_head": "4,64,32"})
    assert not at.exception
    warning = at.warning[0].value
    assert "3 of 6 combinations cannot run with the **official** variant" in warning
    assert "pads by 1 whatever kernel_conv is" in warning  # the quirk in words, no bare code
    assert "The **fixed** variant runs 6 of the 6 combinations" in at.info[0].value
    at.sidebar.radio(key="variant").set_value("fixed").run()
    assert_clean(at)
    assert "**6** configurations" in text(at)


def test_nothing_runnable_too_many_and_conflicting_axes(open_page):
    at = open_page({"explorer_vary": "head", "explorer_values_head": "64", "out_planes": "32"})
    assert "No configuration of this sweep can run" in at.error[0].value
    every = ",".join(str(v) for v in sweep.AXES["resolution"].choices)
    at = open_page({"explorer_vary": "kernel_att,head,channels,resolution",
                    "explorer_values_kernel_att": "1,3,5,7,9,11,13,15", "explorer_values_head": "1,2,4,8,16,32,64",
                    "explorer_values_channels": "8,16,32,64,128,256,512,1024,2048", "explorer_values_resolution": every})
    assert "at most 1,000 are counted at once" in at.error[0].value
    at = open_page({"explorer_vary": "layer,stride"})
    assert "both set stride: vary only one of them" in at.error[0].value


def test_facets_and_the_relative_view(open_page):
    at = open_page({"explorer_scale": "relative"})
    assert_clean(at)
    assert widget(at, "selectbox", "explorer_baseline").value == sweep.short_id(
        ACmixConfig(64, 64, kernel_att=7, head=4))  # the paper's setting, by default
    first = specs(at)[0]
    assert first["layer"][1]["encoding"]["y"]["field"] == "params_rel"
    rows = chart_rows(at)[0]
    # layer1.0 compared with its own kernel_att 7, head 4: 17,822 parameters (ACMIX.md).
    for r in rows:
        assert r["params_rel"] == pytest.approx(r["params"] / 17_822 - 1)
    assert param(at, "explorer_scale") == "relative"


def test_highlight_reaches_every_chart_and_the_url(open_page):
    chosen = sweep.short_id(ACmixConfig(64, 64, 5, 4))
    at = open_page({"explorer_highlight": chosen})
    assert_clean(at)
    assert widget(at, "selectbox", "explorer_highlight").value == chosen
    for spec in specs(at):
        params = spec.get("params", []) + [p for layer in spec.get("layer", []) for p in layer.get("params", [])]
        (pick,) = [p for p in params if p["name"] == "pick"]
        assert pick["value"] == [{"config": chosen}]
    widget(at, "selectbox", "explorer_highlight").set_value("").run()
    assert "explorer_highlight" not in at.query_params


def test_a_copied_url_reproduces_every_choice(open_page):
    """Axes, values, chart choices, highlight and the open tab go to the URL; a new session opened on
    that URL draws the same charts."""
    at = open_page()
    at.button(key="explorer_preset_kernel-head-stride").click().run()
    widget(at, "multiselect", "explorer_values_head").set_value([1, 8]).run()
    widget(at, "selectbox", "explorer_x").set_value("head").run()
    widget(at, "selectbox", "explorer_facet").set_value("kernel_att").run()
    widget(at, "radio", "explorer_quantity").set_value("macs").run()
    widget(at, "radio", "explorer_scale").set_value("relative").run()
    chosen = sweep.short_id(ACmixConfig(kernel_att=5, head=8, stride=2))
    widget(at, "selectbox", "explorer_highlight").set_value(chosen).run()
    assert_clean(at)
    url = {k: param(at, k) for k in at.query_params}
    assert url["explorer_values_head"] == "1,8" and url["explorer_x"] == "head"
    assert url["explorer_highlight"] == chosen and url["explorer_quantity"] == "macs"
    copy = open_page(url)
    assert_clean(copy)
    assert specs(copy) == specs(at) and chart_rows(copy) == chart_rows(at)
    assert text(copy) == text(at)


def test_hostile_explorer_urls_get_a_note_not_a_traceback(open_page):
    for params in ({"explorer_vary": "colour,<b>x</b>"}, {"explorer_values_head": "1,abc"},
                   {"explorer_values_layer": "layer9.9"}, {"explorer_x": "../../etc"}, {"explorer_view": "x" * 500},
                   {"explorer_highlight": "![p](http://127.0.0.1:9/x.png)"}, {"explorer_scale": "1e400"},
                   {"explorer_facet": "head", "explorer_vary": "head"}, {"explorer_per_submodule": "<i>1</i>"}):
        at = open_page(params)
        assert not at.exception, (params, [e.value for e in at.exception])
        assert not at.error, params
    at = open_page({"explorer_values_head": "1,abc"})
    assert any("explorer_values_head" in w.value and "is not one of this menu's choices" in w.value
               for w in at.warning)
    # Menus and switches below the notes read the URL too: their notes show in the same first run.
    at = open_page({"explorer_quantity": "bytes", "explorer_per_submodule": "<i>1</i>"})
    notes = [w.value for w in at.warning]
    assert any("explorer_quantity='bytes'" in n and "is not one of this menu's choices" in n for n in notes)
    assert any("explorer_per_submodule='i1i'" in n and "is neither true nor false" in n for n in notes)
    assert "explorer_per_submodule" not in at.query_params
    at.run()
    assert not at.warning  # said once


# -- measuring -----------------------------------------------------------------------------------------------
def test_measure_on_tiny_sizes(open_page, small_peaks):
    at = open_page(LATENCY)
    assert_clean(at)
    body = text(at)
    assert "This sweep has 4 configurations: 0 measured here, 4 to measure." in body
    assert "One click measures all 4 left" in body
    at.button(key="explorer_measure").click().run()
    assert not at.exception
    assert at.button(key="explorer_measure").label == "All 4 configurations that can run here are measured"
    device = bench.environment(bench.pick_device("auto"), "float32").device_name
    measured = [x for x in titles(at) if "measured on" in x]
    assert len(measured) == 5 and all(device in x for x in measured)
    table = at.dataframe[-1].value
    assert len(table) == 4 and (table["source"] == "this server").all()
    assert (table["latency_ms_p25"] <= table["latency_ms"]).all()
    assert {"spread", "others_cpu_share", "load_avg_1m"} <= set(table.columns)
    assert "The server's load while it measured: other processes used" in text(at)
    assert "Nothing measured yet" not in text(at)


def test_a_quick_click_is_never_announced_as_zero_seconds(open_page, monkeypatch):
    """Four tiny configurations estimated at 0.1 s each: the page rounds the click's 0.4 s up."""
    monkeypatch.setattr(bench, "measurement_seconds", lambda c, impl, budget: 0.1)
    monkeypatch.setattr(bench, "expected_seconds", lambda c, impl, budget: 0.1)
    body = text(open_page(LATENCY))
    assert "One click measures all 4 left, about 1 s by the estimate." in body
    assert "about 0 s" not in body


def test_the_plan_is_stated_before_measuring_and_nothing_is_cut_silently(open_page, monkeypatch):
    """Issue 15: measuring stopped at 24 configurations and said all were measured. Now the page says
    how many one click measures, which ones, what is left for later and the command for all of them."""
    monkeypatch.setattr(bench, "measurement_seconds", lambda c, impl, budget: 40.0 if c.kernel_att == 9 else 5.0)
    monkeypatch.setattr(bench, "expected_seconds", lambda c, impl, budget: 10.0)
    calls = []
    monkeypatch.setattr(ui, "measured_row", lambda c, *args: calls.append(c) or fake_row())
    at = open_page({**LATENCY, "explorer_values_kernel_att": "3,5,7,9"})  # 8 configurations
    body = text(at)
    assert "This sweep has 8 configurations: 0 measured here, 8 to measure." in body
    assert "1 is estimated to take longer than this server's limit of 30 s per request, so it is left out " \
           "here: `C=8 ka=9`." in body
    assert "the next 3 (`C=8 ka=3`, `C=8 ka=5`, `C=8 ka=7`), about 30 s by the estimate" in body
    assert "The other 4 stay for the clicks after it." in body
    code = [c.value for c in at.code]
    assert any(c.startswith("python -m convmix sweep --in-planes 8 16 --kernel-att 3 5 7 9") for c in code)
    assert at.button(key="explorer_measure").label == "Measure the next 3 configurations"
    at.button(key="explorer_measure").click().run()
    assert [c.kernel_att for c in calls] == [3, 5, 7]
    assert "3 measured here, 5 to measure." in text(at)
    assert "2 are estimated to take longer than this server's limit" in text(at)
    at.button(key="explorer_measure").click().run()
    assert [c.kernel_att for c in calls] == [3, 5, 7] * 2
    assert "6 measured here, 2 to measure." in text(at)
    assert at.button(key="explorer_measure").disabled


def test_noisy_measurements_are_flagged_and_measured_again(open_page, monkeypatch):
    def measured(config, device, dtype, impl, budget, attempt=0, still_wanted=None):
        noisy = config.kernel_att == 3 and attempt == 0
        return fake_row(110.0 if noisy else 10.0, 6.8 if noisy else 0.1)

    monkeypatch.setattr(ui, "measured_row", measured)
    at = open_page(LATENCY)
    at.button(key="explorer_measure").click().run()
    warning = " ".join(w.value for w in at.warning)
    assert "2 latencies measured here are noisy" in warning and "`C=8 ka=3`, `C=16 ka=3`" in warning
    index = next(i for i, s in enumerate(specs(at)) if s["title"]["text"][0] == "ACmix latency")
    rows = chart_rows(at)[index]
    assert sorted(r["noise"] for r in rows) == ["noisy (spread > 25%)"] * 2 + ["steady"] * 2
    table = at.dataframe[-1].value
    assert sorted(table["noisy_text"]) == ["", "", "noisy", "noisy"]
    at.button(key="explorer_remeasure").click().run()
    assert not at.exception
    assert "noisy" not in " ".join(w.value for w in at.warning)
    assert (at.dataframe[-1].value["noisy_text"] == "").all()


def fixture_file(device_name: str = "Fixture GPU (test data)") -> bytes:
    """A result file as the CLI writes it, with stand-in measured values (test data, not a measurement)."""
    configs = sweep.expand_grid(ACmixConfig(), {"kernel_att": [3, 5, 7]}).configs
    rows = {c: {"latency_ms": 1.0 + i, "latency_ms_p25": 0.9 + i, "latency_ms_p75": 1.2 + i,
                "peak_bytes": 1000 * (i + 1), "device": "cuda", "device_name": device_name,
                "dtype": "bfloat16", "torch_version": "2.13.0"} for i, c in enumerate(configs)}
    return sweep.to_csv(sweep.sweep_frame(configs, rows))


def test_upload_valid_and_invalid_files(open_page):
    at = open_page({"explorer_view": "latency"})
    bad = fixture_file().replace(b"official", b"unofficial", 1)
    at.file_uploader(key="explorer_upload").set_value(
        [("gpu.csv", fixture_file(), "text/csv"), ("broken.csv", bad, "text/csv")]).run()
    assert not at.exception
    (error,) = at.error
    assert "`broken.csv` was not loaded" in error.value
    assert "Column variant: line 2 must be one of official, fixed (found `unofficial`)" in error.value
    assert "`gpu.csv`: 3 rows, 3 with latency, measured on `Fixture GPU (test data), bfloat16`." in text(at)
    # The file's rows are the ResNet's layer1.0 shape: drawn in that layer's chart.
    assert titles(at) == ["ACmix latency, measured on Fixture GPU (test data), bfloat16, layer1.0 · C=64 · 56×56",
                          "Peak memory, measured on Fixture GPU (test data), bfloat16, layer1.0 · C=64 · 56×56"]
    # The file holds only the required columns: no parts, baselines or floor to draw.
    assert "The results shown hold no measurement of the parts, the baselines, the roofline floor" in text(at)


def test_uploads_are_drawn_beside_live_results(open_page, small_peaks):
    at = open_page(LATENCY)
    at.button(key="explorer_measure").click().run()
    at.file_uploader(key="explorer_upload").set_value(("gpu.csv", fixture_file(), "text/csv")).run()
    assert not at.exception
    latency = [t for t in titles(at) if t.startswith("ACmix latency")]
    device = bench.environment(bench.pick_device("auto"), "float32").device_name
    assert latency[0].startswith(f"ACmix latency, measured on {device}, float32")
    assert latency[0].endswith(", and on Fixture GPU (test data), bfloat16")


def test_a_built_in_reference_is_drawn_labelled_with_its_device(open_page, monkeypatch, tmp_path):
    configs = sweep.expand_grid(ACmixConfig(height=8, width=8), {"channels": [8, 16], "kernel_att": [3, 5]}).configs
    rows = {c: {k: v for k, v in fake_row(2.0, device_name="Fixture H200 (test data)").items()}
            | {"device": "cuda", "dtype": "bfloat16"} for c in configs}
    (tmp_path / "fixture-gpu.csv").write_bytes(sweep.to_csv(sweep.sweep_frame(configs, rows)))
    monkeypatch.setattr(sweep, "REFERENCE_DIR", tmp_path)
    at = open_page(LATENCY)
    assert not at.exception
    menu = widget(at, "multiselect", "explorer_reference")
    assert menu.value == ["fixture-gpu"]
    assert "Fixture H200 (test data), bfloat16 (fixture-gpu.csv)" in menu.options
    assert "ACmix latency, measured on Fixture H200 (test data), bfloat16" in titles(at)
    assert set(at.dataframe[-1].value["source"]) == {"built-in reference fixture-gpu.csv"}
    other = open_page({**LATENCY, "explorer_values_channels": "32"})
    assert "holds none of this sweep's configurations" in text(other)


def test_memory_refusal_is_explained(open_page, monkeypatch):
    monkeypatch.setenv("CONVMIX_MEMORY_BUDGET", "1MiB")
    at = open_page({"explorer_view": "latency"})
    assert not at.exception
    assert "over this server's memory budget of 1.0 MiB" in text(at)
    assert at.button(key="explorer_measure").disabled


# -- issue 11 --------------------------------------------------------------------------------------------
def test_user_text_is_shown_as_text_not_markdown(open_page):
    """Item 11: upload names and the file's device_name were rendered as markdown (a link and a
    remote image appeared, and the browser fetched it)."""
    at = open_page({"explorer_view": "latency"})
    image = "![p](http://127.0.0.1:9/probe.png)"
    name = "[click](http://127.0.0.1:9/x) :red[red] $x^2$.csv"
    at.file_uploader(key="explorer_upload").set_value(
        [(name, fixture_file(device_name=image), "text/csv"),
         ("**bold**.csv", fixture_file().replace(b"official", b"![q](http://127.0.0.1:9/q.png)", 1), "text/csv")]
    ).run()
    assert not at.exception
    success = at.success[0].value
    assert success.startswith(f"`{name}`: 3 rows") and f"`{image}, bfloat16`" in success
    (error,) = at.error
    assert error.value.startswith("`**bold**.csv` was not loaded")
    assert "(found `![q](http://127.0.0.…`)" in error.value
    for shown in (success, error.value):  # every visitor-supplied piece of text sits inside a code span
        outside = "".join(part for i, part in enumerate(shown.split("`")) if i % 2 == 0)
        assert "](" not in outside and ":red[" not in outside and "**" not in outside


def test_uploads_beyond_the_limit_are_dropped(open_page, monkeypatch):
    """Item 12: 150 files of 1.9 MB raised the server to 1 GB and held it after the tab closed."""
    from convmix.ui import session

    dropped = []
    # The page imports the name on every run, so it gets this stand-in (which records what it drops).
    monkeypatch.setattr(session, "discard_uploads", lambda files: dropped.extend(files) or len(files))
    at = open_page()
    files = [(f"r{i}.csv", fixture_file(), "text/csv") for i in range(11)]
    at.file_uploader(key="explorer_upload").set_value(files).run()
    assert not at.exception
    assert [s.value.split(":")[0] for s in at.success] == [f"`r{i}.csv`" for i in range(8)]
    assert "Only the first 8 files are read; the other 3 were discarded" in text(at)
    assert [f.name for f in dropped] == ["r8.csv", "r9.csv", "r10.csv"]


def test_a_measurement_whose_baseline_does_not_fit_is_refused_before_the_click(open_page):
    """Item 1: with both "vary" chips removed, this configuration passed at an estimated 1,011 MiB and
    peaked at 4.9 GB (its plain Conv2d baseline alone is 3.8 GB)."""
    at = open_page({"in_planes": "2048", "out_planes": "2048", "kernel_conv": "15", "kernel_att": "1",
                    "height": "8", "width": "8", "variant": "fixed", "explorer_view": "latency"})
    widget(at, "multiselect", "explorer_vary").set_value([]).run()
    assert not at.exception
    body = text(at)
    assert "Measuring Cin=2048 C=2048 ka=1 h=4 kc=15" in body and "over this server's memory budget" in body
    assert at.button(key="explorer_measure").disabled


def test_a_measurement_over_the_time_limit_is_stated_before_the_click(open_page, monkeypatch):
    """Item 7: a measurement estimated beyond the time limit is not run; the page says so beforehand."""
    monkeypatch.setenv("CONVMIX_TIME_LIMIT", "0.001")
    at = open_page(LATENCY)
    assert not at.exception
    assert "4 are estimated to take longer than this server's limit of 0.001 s per request" in text(at)
    assert at.button(key="explorer_measure").disabled


def test_a_click_stops_at_the_time_limit_and_says_so(open_page, monkeypatch):
    """When the estimates were short, the click stops at the limit and says how far it got."""
    monkeypatch.setattr(bench, "measurement_seconds", lambda c, impl, budget: 0.0)
    monkeypatch.setattr(bench, "expected_seconds", lambda c, impl, budget: 0.0)
    monkeypatch.setattr(ui, "measured_row", lambda *args: fake_row())
    monkeypatch.setenv("CONVMIX_TIME_LIMIT", "0.001")
    at = open_page(LATENCY)
    assert at.button(key="explorer_measure").label == "Measure 4 configurations"
    monkeypatch.setattr(ui, "measured_row", lambda *args: __import__("time").sleep(0.01) or fake_row())
    at.button(key="explorer_measure").click().run()
    assert not at.exception
    assert "This click reached its limit of 0.001 s after 1 configuration, fewer than planned" in text(at)
    assert "1 measured here, 3 to measure." in text(at)


# -- languages ------------------------------------------------------------------------------------------------
def test_no_english_left_in_chinese(open_page, monkeypatch, tmp_path):
    monkeypatch.setattr(ui, "measured_row", lambda c, device, dtype, impl, budget, attempt=0, still_wanted=None:
                        fake_row(110.0 if c.kernel_att == 3 else 10.0, 6.8 if c.kernel_att == 3 else 0.1, "AMD"))
    with i18n.language("zh"):
        at = open_page({"lang": "zh", "explorer_per_submodule": "true", "explorer_table": "true"})
        assert_clean(at)
        assert english_left(at, "main") == []
        assert "**112** 个配置" in text(at)
        assert len([t for t in titles(at) if t.startswith("各子模块的参数量")]) == 7
        for view in ("share", "latency"):
            at = open_page({"lang": "zh", "explorer_view": view, "explorer_scale": "relative"})
            assert_clean(at)
            assert english_left(at, "main") == []
        at = open_page({**LATENCY, "lang": "zh"})
        widget(at, "radio", "explorer_scale", "zh").set_value("relative").run()
        at.button(key="explorer_measure").click().run()
        at.file_uploader(key="explorer_upload").set_value(
            [("gpu.csv", fixture_file("H200"), "text/csv"),
             ("bad.csv", fixture_file().replace(b"official", b"x", 1), "text/csv")]).run()
        assert not at.exception and at.error
        assert english_left(at, "main") == []
        at = open_page({"lang": "zh", "explorer_vary": "layer,stride"})
        assert at.error and english_left(at, "main") == []
        # The constraint's own sentence comes from convmix.constraints (translated there, not here).
        at = open_page({"lang": "zh", "explorer_values_head": "64", "explorer_vary": "head", "out_planes": "32"})
        library = " ".join(p.sentence() for p in ACmixConfig(64, 32, head=64).problems())
        words = set(re.findall(r"[A-Za-z]+", library))
        assert at.error and [run for run, _where in english_left(at, "main") if not set(run.split()) <= words] == []


def test_english_and_chinese_show_the_same_numbers(open_page):
    en = open_page()
    with i18n.language("zh"):
        zh = open_page({"lang": "zh"})
    rows, rows_zh = chart_rows(en), chart_rows(zh)
    numbers = [[{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in d] for d in rows]
    numbers_zh = [[{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in d] for d in rows_zh]
    assert numbers == numbers_zh


# -- issue 16: the stopping rule is stated ----------------------------------------------------------------
@pytest.mark.parametrize("effort", ["quick", "standard", "thorough"])
def test_the_stopping_rule_is_stated_with_the_chosen_effort(open_page, effort):
    budget = bench.BUDGETS[effort]
    at = open_page({**LATENCY, "explorer_budget": effort})
    assert_clean(at)
    rule = next(c.value for c in at.caption if c.value.startswith("When to stop timing"))
    assert f"after at least {budget.min_rounds} rounds" in rule
    assert f"known within ±{budget.precision:.0%}" in rule and f"{bench.CONFIDENCE:.0%} confidence interval" in rule
    assert f"once {budget.seconds:g} s have passed, and after {budget.max_rounds} rounds at most" in rule
    radio = widget(at, "radio", "explorer_budget")
    assert f"{budget.min_rounds} to {budget.max_rounds} rounds" in radio.help
    with i18n.language("zh"):
        at = open_page({**LATENCY, "explorer_budget": effort, "lang": "zh"})
        assert_clean(at)
        rule = next(c.value for c in at.caption if c.value.startswith("何时停止计时"))
        assert f"至少测完 {budget.min_rounds} 轮" in rule and f"±{budget.precision:.0%}" in rule
        assert english_left(at, "main") == []
