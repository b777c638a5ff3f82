"""convmix.charts through their Vega-Lite specs: encodings, scales, the shared selection, titles, devices.

Measured columns here are fixture values (labelled as such in the device name), not measurements.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from convmix import charts, presets, sweep
from convmix.config import ACmixConfig

GPU = {"device": "cuda", "device_name": "Fixture GPU", "dtype": "bfloat16", "threads": 16,
       "tf32_matmul": False, "impl": "reference"}
CPU = {"device": "cpu", "device_name": "Fixture CPU", "dtype": "float32", "threads": 2, "impl": "reference"}


def counts(axes: dict, x: str) -> pd.DataFrame:
    grid = sweep.expand_grid(ACmixConfig(), axes)
    return sweep.add_labels(sweep.count_rows(grid.configs), x)


def fixture_measurements(df: pd.DataFrame, device: dict, scale: float = 1.0) -> pd.DataFrame:
    """Deterministic stand-in latencies (proportional to FLOPs) for spec tests."""
    out = df.copy()
    out["latency_ms"] = out["flops"] / 1e8 * scale
    out["latency_ms_p25"], out["latency_ms_p75"] = out["latency_ms"] * 0.9, out["latency_ms"] * 1.2
    for part, share in (("stage1", 0.2), ("attention_path", 0.5), ("conv_path", 0.2), ("conv2d", 0.1),
                        ("local_attention", 0.7)):
        out[f"{part}_ms"] = out["latency_ms"] * share
        out[f"{part}_ms_p25"], out[f"{part}_ms_p75"] = out[f"{part}_ms"] * 0.9, out[f"{part}_ms"] * 1.1
    out["peak_bytes"] = out["flops"] * 4
    out["estimated_peak_bytes"] = out["peak_bytes"]
    out["compulsory_bytes"] = out["params"] * 4
    out["floor_ms"] = out["latency_ms"] / 50
    out["floor_ratio"] = 50.0
    out["floor_bound"] = "compute"
    out["peak_flops_per_s"], out["peak_bytes_per_s"] = 1e12, 1e11
    for k, v in device.items():
        out[k] = v
    out["torch_version"] = "2.13.0"
    return out


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return counts({"kernel_att": [3, 5, 7], "channels": [16, 64, 512]}, "kernel_att")


@pytest.fixture(scope="module")
def measured(frame) -> pd.DataFrame:
    return fixture_measurements(frame, GPU)


def layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def encodings(spec: dict) -> list[dict]:
    return [layer.get("encoding", {}) for layer in layers(spec)]


def dataset(spec: dict, layer: dict | None = None) -> list[dict]:
    name = (layer or spec).get("data", spec.get("data", {})).get("name") or spec["data"]["name"]
    return spec["datasets"][name]


def the_selection(spec: dict) -> dict:
    params = list(spec.get("params", []))
    if "layer" in spec:
        params += [p for layer in spec["layer"] for p in layer.get("params", [])]
    (param,) = [p for p in params if p["name"] == charts.SELECTION]
    return param


def assert_selection(spec: dict, highlight: str | None = None) -> None:
    param = the_selection(spec)
    assert param["select"]["type"] == "point"
    assert param["select"]["fields"] == ["config"]
    if highlight:
        assert param["value"] == [{"config": highlight}]
    else:
        assert "value" not in param
    assert any(
        enc.get("opacity", {}).get("condition", {}).get("param") == charts.SELECTION for enc in encodings(spec)
    )


def test_totals_chart(frame):
    pick = frame["config"].iloc[4]
    spec = charts.totals_chart(frame, "kernel_att", "flops", pick).to_dict()
    assert_selection(spec, pick)
    point = encodings(spec)[1]
    assert point["x"]["field"] == "kernel_att" and point["x"]["title"].startswith("kernel_att (")
    assert point["y"]["title"] == "floating-point operations per forward (FLOPs)"
    assert point["y"]["scale"]["type"] == "log"  # 16 to 512 channels: FLOPs span orders of magnitude
    tips = {t["field"]: t for t in point["tooltip"]}
    assert tips["params"]["format"] == "," and tips["flops"]["format"] == ","
    rows = dataset(spec)
    assert {r["flops"] for r in rows} == set(frame["flops"])  # exact values travel to the tooltip
    assert spec["width"] == "container"  # fits a phone as well as a desktop


def test_a_narrow_range_gets_a_scale_that_fits_it():
    """Issue 15: head changes the parameters by about 90 in 17,822; from zero the lines lay on top of
    each other. The scale must not include zero, and the axis must print the exact counts."""
    df = counts({"kernel_att": [3, 5, 7, 9], "head": [1, 2, 4, 8]}, "kernel_att")
    spec = charts.totals_chart(df, "kernel_att", "params").to_dict()
    y = encodings(spec)[1]["y"]
    # Fixed-point: a format without a type gets the ticks' significant digits from Vega (d3's
    # tickFormat), which printed 1.782e+4 on this axis.
    assert y["scale"] == {"zero": False} and y["axis"]["format"] == ",~f"
    assert encodings(spec)[1]["y"]["title"] == "parameters (count)"
    values = sorted({r["params"] for r in dataset(spec)})
    assert values == [17_816, 17_822, 17_885, 17_906]  # four distinct lines, head not monotonic


def test_channels_axis_is_log2():
    df = counts({"channels": [8, 64, 512]}, "channels")
    x = encodings(charts.totals_chart(df, "channels").to_dict())[1]["x"]
    assert x["field"] == "out_planes" and x["scale"] == {"type": "log", "base": 2}
    assert x["axis"]["values"] == [8, 64, 512]


def test_relative_view_draws_the_change_against_the_baseline():
    df = counts({"kernel_att": [3, 7], "head": [1, 4, 8]}, "kernel_att")
    baseline = sweep.short_id(ACmixConfig(kernel_att=7, head=4))
    rel = sweep.relative_to(df, ["params"], baseline)
    spec = charts.totals_chart(rel, "kernel_att", "params", relative=True, baseline="ka=7 h=4").to_dict()
    y = encodings(spec)[1]["y"]
    assert y["field"] == "params_rel" and y["axis"]["format"] == "+.1%" and y["title"] == "change against the baseline"
    assert spec["title"]["subtitle"][0] == "change against ka=7 h=4"
    base_params = sweep.count_row(ACmixConfig(kernel_att=7, head=4))["params"]
    for r in dataset(spec):  # an independent division, row by row
        assert r["params_rel"] == pytest.approx(r["params"] / base_params - 1)


def test_layer_axis_is_nominal_in_the_network_order():
    df = counts({"layer": list(presets.RESNET_LAYERS)[::-1], "head": [1, 4]}, "layer")
    x = encodings(charts.totals_chart(df, "layer").to_dict())[1]["x"]
    assert x["field"] == "layer" and x["type"] == "nominal"
    assert x["sort"] == list(presets.RESNET_LAYERS)
    assert x["axis"]["labelOverlap"] is False


def test_facets_split_in_reading_order_with_their_own_scales():
    grid = sweep.expand_grid(ACmixConfig(), {"layer": ["layer4.1", "layer1.0", "layer2.0"], "head": [1, 8],
                                             "kernel_att": [3, 7]})
    df = sweep.add_labels(sweep.count_rows(grid.configs), "kernel_att", "layer")
    parts = charts.facets(df, "layer")
    assert [t.split(" ·")[0] for t, _rows in parts] == ["layer1.0", "layer2.0", "layer4.1"]
    assert parts[1][0] == "layer2.0 · C=128 · 56×56 → 28×28 · s=2"
    for title, rows in parts:
        spec = charts.totals_chart(rows, "kernel_att", "params", facet=title).to_dict()
        assert spec["title"]["text"] == ["Parameters against kernel_att", title]
        data = dataset(spec)
        assert {r["series"] for r in data} == {"h=1", "h=8"}  # the facet's own lines only
        assert {r["params"] for r in data} == set(rows["params"])
        assert "domain" not in encodings(spec)[1]["y"]["scale"]  # each fitted to its own data
    assert charts.facets(df, None) == [("", df)]
    by_head = sweep.add_labels(sweep.count_rows(grid.configs), "kernel_att", "head")
    assert [t for t, _rows in charts.facets(by_head, "head")] == ["h=1", "h=8"]


@pytest.mark.parametrize("quantity", ["params", "flops", "macs"])
def test_breakdown_chart(frame, quantity):
    spec = charts.breakdown_chart(frame, quantity).to_dict()
    assert_selection(spec)
    enc = spec["encoding"]
    assert spec["mark"]["type"] == "bar"
    assert enc["x"]["stack"] == "zero" and enc["x"]["title"] == charts.QUANTITY_TITLES[quantity]
    assert enc["y"]["sort"] == list(frame["label"])
    rows = pd.DataFrame(dataset(spec))
    sums = rows.groupby("config")["value"].sum()
    assert (sums == frame.set_index("config")[quantity].loc[sums.index]).all()  # the stack adds up
    expected = ["conv1", "conv2", "conv3", "conv_p", "fc", "dep_conv", "rate1, rate2"] if quantity == "params" \
        else list(sweep.COMPONENTS)
    assert enc["color"]["scale"]["domain"] == expected


def test_every_bar_has_its_own_labelled_row(frame):
    """Issue 15: the grouped bar charts labelled only every other configuration."""
    spec = charts.breakdown_chart(frame, "params").to_dict()
    assert spec["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert spec["height"] == charts.BAR_STEP * len(frame)


def test_breakdown_labels_leave_out_the_facet():
    grid = sweep.expand_grid(ACmixConfig(), {"layer": ["layer1.0", "layer3.0"], "head": [1, 8]})
    df = sweep.add_labels(sweep.count_rows(grid.configs), "head", "layer")
    title, rows = charts.facets(df, "layer")[1]
    spec = charts.breakdown_chart(rows, "params", facet=title).to_dict()
    assert spec["encoding"]["y"]["sort"] == ["h=1", "h=8"]
    assert {r["label"] for r in dataset(spec)} == {"layer3.0 h=1", "layer3.0 h=8"}  # the tooltip says all


def test_breakdown_chart_shares(frame):
    spec = charts.breakdown_chart(frame, "flops", normalize=True).to_dict()
    assert spec["encoding"]["x"]["stack"] == "normalize"
    assert spec["encoding"]["x"]["axis"]["format"] == "%"
    assert spec["encoding"]["x"]["title"] == "share of the total"


def test_stage_share_chart():
    df = counts({"channels": list(sweep.AXES["channels"].choices), "kernel_att": [3, 7]}, "channels")
    spec = charts.stage_share_chart(df, "macs", mark_channels=64).to_dict()
    assert_selection(spec)
    points = encodings(spec)[3]
    assert points["x"]["scale"] == {"type": "log", "base": 2}
    assert points["y"]["axis"]["format"] == "%" and points["y"]["scale"]["domain"] == [0, 1]
    assert points["y"]["title"] == "Stage I share of multiply-adds"
    assert points["shape"]["condition"]["test"] == "datum.share > 0.5"
    rule = layers(spec)[0]
    assert rule["mark"]["type"] == "rule" and dataset(spec, rule)[0]["y"] == 0.5
    rows = pd.DataFrame(dataset(spec, layers(spec)[3]) if "data" in layers(spec)[3] else dataset(spec))
    assert (rows["share"] > 0.5).any() and (rows["share"] < 0.5).any()  # both sides of the claim
    assert "sidebar: C = 64" in str(spec)


def test_latency_chart_names_the_device_and_draws_the_iqr(measured):
    pick = measured["config"].iloc[0]
    spec = charts.latency_chart(measured, "kernel_att", pick).to_dict()
    assert_selection(spec, pick)
    assert spec["title"]["text"] == ["ACmix latency", "measured on Fixture GPU, bfloat16"]
    iqr, line, point = layers(spec)
    assert iqr["mark"]["type"] == "rule"
    assert iqr["encoding"]["y"]["field"] == "latency_ms_p25" and iqr["encoding"]["y2"]["field"] == "latency_ms_p75"
    assert point["encoding"]["y"]["field"] == "latency_ms"
    assert iqr["encoding"]["y"]["title"] == "latency per forward (ms)"
    assert iqr["encoding"]["y"]["scale"]["type"] == "log"  # fixture latencies span over 20×
    tips = {t["title"] for t in point["encoding"]["tooltip"]}
    assert {"median (ms)", "25th percentile (ms)", "75th percentile (ms)", "measured on",
            "spread (interquartile range / median)"} <= tips


def test_a_noisy_latency_is_flagged_and_cannot_flatten_the_others():
    """Issue 15: one measurement with median 110 ms and 75th percentile 852 ms dominated its chart."""
    df = counts({"kernel_att": [3, 5, 7, 9]}, "kernel_att")
    df = df.assign(latency_ms=[10.0, 12.0, 110.0, 16.0], device="cpu", device_name="Fixture CPU",
                   dtype="float32", threads=2)
    df["latency_ms_p25"], df["latency_ms_p75"] = df["latency_ms"] * 0.95, df["latency_ms"] * 1.05
    df.loc[2, ["latency_ms_p25", "latency_ms_p75"]] = [100.0, 852.0]
    spec = charts.latency_chart(df, "kernel_att").to_dict()
    iqr, line, point = layers(spec)
    rows = dataset(spec)
    assert [r["noisy"] for r in rows] == [False, False, True, False]
    assert [r["noise"] for r in rows] == ["steady", "steady", "noisy (spread > 25%)", "steady"]
    assert point["encoding"]["shape"]["scale"]["range"] == ["circle", "diamond"]
    lo, hi = iqr["encoding"]["y"]["scale"]["domain"]
    assert lo <= 9.5 and 110 <= hi < 852  # every median and steady quartile; not the noisy 852
    assert iqr["mark"]["clip"] is True
    assert "diamonds: noisy measurements," in spec["title"]["subtitle"]


def test_relative_latency_uses_the_baselines_median_for_the_quartiles(measured):
    baseline = measured["config"].iloc[0]
    rows = charts.measured_rows(measured)
    rel = sweep.relative_to(rows, ["latency_ms", "latency_ms_p25", "latency_ms_p75"], baseline, ["measured_on"],
                            {"latency_ms_p25": "latency_ms", "latency_ms_p75": "latency_ms"})
    spec = charts.latency_chart(rel, "kernel_att", relative=True, baseline="b").to_dict()
    iqr, line, point = layers(spec)
    assert point["encoding"]["y"]["field"] == "latency_ms_rel"
    assert iqr["encoding"]["y"]["field"] == "latency_ms_p25_rel"
    ref = measured["latency_ms"].iloc[0]
    for r in dataset(spec):
        assert r["latency_ms_p75_rel"] == pytest.approx(r["latency_ms_p75"] / ref - 1)


def test_latency_chart_with_two_devices(frame, measured):
    both = sweep.add_labels(pd.concat([measured, fixture_measurements(frame, CPU, 30)], ignore_index=True),
                            "kernel_att")
    spec = charts.latency_chart(both, "kernel_att").to_dict()
    assert spec["title"]["text"] == ["ACmix latency", "measured on Fixture GPU, bfloat16",
                                     "and on Fixture CPU, float32, 2 threads"]
    lines = {r["line"] for r in dataset(spec)}
    assert "C=16 · Fixture CPU, float32, 2 threads" in lines and "C=16 · Fixture GPU, bfloat16" in lines


def test_cuda_float32_label_says_tf32():
    df = pd.DataFrame([dict(GPU, dtype="float32", tf32_matmul=True)])
    assert charts.device_labels(df).iloc[0] == "Fixture GPU, float32, TF32 on"


@pytest.mark.parametrize("builder, names", [(charts.parts_chart, charts.PART_NAMES),
                                            (charts.baselines_chart, charts.BASELINE_NAMES)])
def test_grouped_latency_charts(measured, builder, names):
    spec = builder(measured).to_dict()
    assert_selection(spec)
    assert spec["title"]["text"][1] == "measured on Fixture GPU, bfloat16"
    bars, whiskers = layers(spec)
    assert bars["encoding"]["yOffset"]["field"] == "what"
    assert bars["encoding"]["color"]["scale"]["domain"] == list(names.values())
    assert bars["encoding"]["x"]["title"] == "latency per forward (ms)"
    assert bars["encoding"]["y"]["axis"]["labelOverlap"] is False  # every configuration labelled
    assert whiskers["encoding"]["x"]["field"] == "p25" and whiskers["encoding"]["x2"]["field"] == "p75"
    rows = dataset(spec)
    assert len(rows) == len(measured) * len(names)
    acmix = [r for r in rows if r["what"] == names["acmix"]]
    assert all(r["vs_acmix"] == 1.0 for r in acmix)
    assert spec["height"] == len(measured) * (len(names) * 9 + 12)


def test_roofline_chart(measured):
    spec = charts.roofline_chart(measured).to_dict()
    assert_selection(spec)
    guides, guide_text, points = layers(spec)
    assert points["encoding"]["x"]["title"] == "roofline floor (ms)"
    assert points["encoding"]["y"]["title"] == "measured median latency (ms)"
    assert points["encoding"]["x"]["scale"]["type"] == "log" and points["encoding"]["y"]["scale"]["type"] == "log"
    assert spec["title"]["text"] == ["Latency against the roofline floor", "measured on Fixture GPU, bfloat16"]
    ratios = {r["ratio"] for r in dataset(spec, guides)}
    assert {"1×", "10×", "100×", "1,000×"} <= ratios
    tips = {t["field"] for t in points["encoding"]["tooltip"]}
    assert {"floor_ratio", "bound", "peak_gflops", "peak_gbps"} <= tips


def test_memory_chart(measured):
    spec = charts.memory_chart(measured, "kernel_att").to_dict()
    assert_selection(spec)
    enc = encodings(spec)[1]
    assert enc["y"]["title"] == "peak memory (MiB)"
    assert spec["title"]["text"] == ["Peak memory", "measured on Fixture GPU, bfloat16"]
    tips = {t["field"]: t for t in enc["tooltip"]}
    assert tips["peak_bytes"]["format"] == "," and "estimated_peak_bytes" in tips


def test_rows_without_latency_are_left_out_of_latency_charts(frame, measured):
    mixed = pd.concat([measured.head(2), frame.tail(3)], ignore_index=True)
    assert len(charts.measured_rows(mixed)) == 2
    assert len(dataset(charts.latency_chart(mixed, "kernel_att").to_dict())) == 2


def test_is_wide():
    assert charts.is_wide([1, 20]) and not charts.is_wide([1, 19.9])
    assert not charts.is_wide([0, 0]) and not charts.is_wide([])


def test_grouped_bars_on_a_log_scale_start_at_a_positive_baseline(measured):
    spec = charts.parts_chart(measured).to_dict()
    bars = layers(spec)[0]
    assert bars["encoding"]["x"]["scale"]["type"] == "log"
    assert bars["encoding"]["x2"]["field"] == "bar_base"  # a log scale has no 0 to start a bar from
    rows = dataset(spec)
    smallest = min(r["p25"] for r in rows)
    assert {r["bar_base"] for r in rows} == {10 ** math.floor(math.log10(smallest))}


def test_bars_on_a_linear_scale_start_at_zero(measured):
    narrow = measured.head(1)
    bars = layers(charts.baselines_chart(narrow).to_dict())[0]
    assert bars["encoding"]["x"]["scale"] == {"zero": True} and "x2" not in bars["encoding"]


def test_roofline_guides_stay_inside_the_view(measured):
    spec = charts.roofline_chart(measured).to_dict()
    x_domain = layers(spec)[2]["encoding"]["x"]["scale"]["domain"]
    y_domain = layers(spec)[2]["encoding"]["y"]["scale"]["domain"]
    for r in dataset(spec, layers(spec)[0]):
        assert x_domain[0] <= r["floor_ms"] * (1 + 1e-9) and r["floor_ms"] <= x_domain[1] * (1 + 1e-9)
        assert y_domain[0] <= r["latency_ms"] * (1 + 1e-9) and r["latency_ms"] <= y_domain[1] * (1 + 1e-9)
    points = pd.DataFrame(dataset(spec, layers(spec)[2]) if "data" in layers(spec)[2] else dataset(spec))
    assert points["floor_ms"].between(*x_domain).all() and points["latency_ms"].between(*y_domain).all()


def test_roofline_floor_is_called_an_estimate(measured):
    """The floor rests on measured peaks and a counting convention: the chart says so."""
    subtitle = " ".join(charts.roofline_chart(measured).to_dict()["title"]["subtitle"])
    assert "an estimate, not a bound" in subtitle
