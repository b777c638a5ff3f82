"""convmix.charts through their Vega-Lite specs: encodings, scales, the shared selection, titles, devices.

Measured columns here are fixture values (labelled as such in the device name), not measurements.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from convmix import charts, sweep
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


def test_totals_chart_linear_when_the_range_is_narrow():
    df = counts({"kernel_att": [3, 5]}, "kernel_att")
    spec = charts.totals_chart(df, "kernel_att", "params").to_dict()
    assert "type" not in encodings(spec)[1]["y"].get("scale", {})
    assert encodings(spec)[1]["y"]["title"] == "parameters (count)"


def test_channels_axis_is_log2():
    df = counts({"channels": [8, 64, 512]}, "channels")
    x = encodings(charts.totals_chart(df, "channels").to_dict())[1]["x"]
    assert x["field"] == "out_planes" and x["scale"] == {"type": "log", "base": 2}
    assert x["axis"]["values"] == [8, 64, 512]


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


def test_breakdown_chart_shares(frame):
    spec = charts.breakdown_chart(frame, "flops", normalize=True).to_dict()
    assert spec["encoding"]["x"]["stack"] == "normalize"
    assert spec["encoding"]["x"]["axis"]["format"] == "%"
    assert spec["encoding"]["x"]["title"].endswith("(%)")


def test_stage_share_chart():
    df = counts({"channels": list(sweep.AXES["channels"].choices), "kernel_att": [3, 7]}, "channels")
    spec = charts.stage_share_chart(df, "macs", mark_channels=64).to_dict()
    assert_selection(spec)
    points = encodings(spec)[3]
    assert points["x"]["scale"] == {"type": "log", "base": 2}
    assert points["y"]["axis"]["format"] == "%" and points["y"]["scale"]["domain"] == [0, 1]
    assert points["y"]["title"] == "Stage I share of multiply-adds (%)"
    assert points["shape"]["scale"]["domain"] == ["Stage I dominates", "Stage II dominates"]
    rule = layers(spec)[0]
    assert rule["mark"]["type"] == "rule" and dataset(spec, rule)[0]["y"] == 0.5
    rows = pd.DataFrame(dataset(spec, layers(spec)[3]) if "data" in layers(spec)[3] else dataset(spec))
    assert set(rows["dominates"]) == {"Stage I dominates", "Stage II dominates"}  # both sides of the claim
    assert "sidebar: C = 64" in str(spec)


def test_latency_chart_names_the_device_and_draws_the_iqr(measured):
    pick = measured["config"].iloc[0]
    spec = charts.latency_chart(measured, "kernel_att", pick).to_dict()
    assert_selection(spec, pick)
    assert spec["title"]["text"] == ["ACmix latency", "measured on Fixture GPU, bfloat16"]
    band, iqr, line, point = layers(spec)
    assert band["mark"]["type"] == "area"
    assert band["encoding"]["y"]["field"] == "latency_ms_p25" and band["encoding"]["y2"]["field"] == "latency_ms_p75"
    assert iqr["mark"]["type"] == "rule"
    assert point["encoding"]["y"]["field"] == "latency_ms"
    assert band["encoding"]["y"]["title"] == "latency per forward (ms)"
    assert band["encoding"]["y"]["scale"]["type"] == "log"  # fixture latencies span over 20×
    tips = {t["title"] for t in point["encoding"]["tooltip"]}
    assert {"median (ms)", "25th percentile (ms)", "75th percentile (ms)", "measured on"} <= tips


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
    assert bars["encoding"]["xOffset"]["field"] == "what"
    assert bars["encoding"]["color"]["scale"]["domain"] == list(names.values())
    assert bars["encoding"]["y"]["title"] == "latency per forward (ms)"
    assert whiskers["encoding"]["y"]["field"] == "p25" and whiskers["encoding"]["y2"]["field"] == "p75"
    rows = dataset(spec)
    assert len(rows) == len(measured) * len(names)
    acmix = [r for r in rows if r["what"] == names["acmix"]]
    assert all(r["vs_acmix"] == 1.0 for r in acmix)


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
    assert {"floor_ratio", "floor_bound", "peak_gflops", "peak_gbps"} <= tips


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
    assert bars["encoding"]["y"]["scale"]["type"] == "log"
    assert bars["encoding"]["y2"]["field"] == "bar_base"  # a log scale has no 0 to start a bar from
    rows = dataset(spec)
    smallest = min(r["p25"] for r in rows)
    assert {r["bar_base"] for r in rows} == {10 ** math.floor(math.log10(smallest))}


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
    assert "an estimate, not a bound" in subtitle and "convention" in subtitle
