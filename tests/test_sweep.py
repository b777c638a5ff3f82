"""convmix.sweep: grids, exact counts against the running modules, labels, result files and their checks."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from opcount import count_steps

from convmix import sweep
from convmix.config import ACmixConfig
from convmix.counting import SUBMODULES


# -- grids -------------------------------------------------------------------------------------------
def test_grid_is_the_product_with_invalid_combinations_skipped_with_reasons():
    grid = sweep.expand_grid(ACmixConfig(), {"kernel_att": [3, 5, 7], "head": [1, 3, 4]})
    assert len(grid.configs) == 6 and len(grid.skipped) == 3
    assert {c.head for c in grid.configs} == {1, 4}
    assert {c.kernel_att for c in grid.configs} == {3, 5, 7}
    assert all(c.out_planes == 64 and c.height == 56 for c in grid.configs)  # the rest from the base
    (note,) = grid.skip_notes()
    assert note.startswith("3 configurations skipped, e.g. Cin=64 C=64 ka=3 h=3")
    assert "head (3) must divide out_planes (64)" in note


def test_channels_and_resolution_set_two_fields_each():
    grid = sweep.expand_grid(ACmixConfig(), {"channels": [8, 16], "resolution": [8, 12]})
    assert {(c.in_planes, c.out_planes) for c in grid.configs} == {(8, 8), (16, 16)}
    assert {(c.height, c.width) for c in grid.configs} == {(8, 8), (12, 12)}


def test_official_variant_skips_what_fixed_runs():
    axes = {"kernel_conv": [3, 5], "stride": [1, 2], "resolution": [7, 8]}
    official = sweep.expand_grid(ACmixConfig(), axes)
    fixed = sweep.expand_grid(ACmixConfig(variant="fixed"), axes)
    assert len(official.configs) == 3  # kc = 3 only; 7×7 only with stride 1, 8×8 with both
    assert len(fixed.configs) == 8
    assert any("pads by 1 whatever kernel_conv is" in n for n in official.skip_notes())


def test_grid_size_limit_and_unknown_axis():
    with pytest.raises(sweep.SweepError, match="1,001 configurations; at most 1,000"):
        sweep.expand_grid(ACmixConfig(), {"batch": list(range(1, 8)), "in_planes": list(range(1, 144))})
    with pytest.raises(sweep.SweepError, match="Unknown sweep axis 'colour'"):
        sweep.expand_grid(ACmixConfig(), {"colour": [1]})


def test_duplicate_values_are_counted_once():
    grid = sweep.expand_grid(ACmixConfig(), {"head": [4, 4, 2]})
    assert [c.head for c in grid.configs] == [4, 2]


# -- counts --------------------------------------------------------------------------------------------
COUNT_CASES = [
    ACmixConfig(),
    ACmixConfig(in_planes=3, out_planes=8, kernel_att=5, head=2, height=9, width=7),
    ACmixConfig(in_planes=16, out_planes=32, kernel_conv=5, head=8, stride=2, height=10, width=9, variant="fixed"),
    ACmixConfig(in_planes=8, out_planes=12, kernel_att=3, head=3, kernel_conv=1, stride=3, height=9, width=12,
                batch=2, variant="fixed"),
    ACmixConfig(in_planes=1, out_planes=1, kernel_att=1, head=1, kernel_conv=7, height=5, width=5, variant="fixed"),
]


def own_counts(module) -> dict[str, int]:
    """Parameters per submodule from named_parameters, owner = name before the first dot."""
    out: dict[str, int] = {}
    for name, p in module.named_parameters():
        out[name.split(".")[0]] = out.get(name.split(".")[0], 0) + p.numel()
    return out


@pytest.mark.parametrize("config", COUNT_CASES, ids=lambda c: c.describe())
def test_row_params_equal_the_modules_own_count(config):
    row = sweep.count_row(config)
    module = config.build()
    assert row["params"] == sum(p.numel() for p in module.parameters())
    own = own_counts(module)
    for name in SUBMODULES:
        assert row[f"params_{name}"] == own[name], name


def test_row_params_for_the_documented_example():
    assert sweep.count_row(ACmixConfig(64, 64, 7, 4, 3))["params"] == 17_822  # ACMIX.md


@pytest.mark.parametrize("config", COUNT_CASES[1:], ids=lambda c: c.describe())
def test_row_operations_equal_executed_operations(config):
    counted, unknown = count_steps(config.build(), config.make_input())
    assert not unknown
    row = sweep.count_row(config)
    assert row["macs"] == sum(m for m, _ in counted.values())
    assert row["flops"] == sum(f for _, f in counted.values())
    # Stage I: the three projections q, k, v; conv path: fc and dep_conv.
    assert row["flops_stage1"] == sum(counted[s][1] for s in ("q", "k", "v"))
    assert row["flops_conv_path"] == counted["f_all"][1] + counted["out_conv"][1]
    assert row["macs_dep_conv"] == counted["out_conv"][0]
    assert row["flops_conv1"] == counted["q"][1]
    parts = [sweep.component_column("flops", c) for c in sweep.COMPONENTS]
    assert sum(row[p] for p in parts) == row["flops"]
    stages = [f"flops_{s}" for s in sweep.STAGE_COLUMNS.values()]
    assert sum(row[s] for s in stages) == row["flops"]
    assert row["stage1_share_flops"] == pytest.approx(row["flops_stage1"] / row["flops"])


def stage1_mac_share(c: int, kc: int = 3, ka: int = 7, head: int = 4) -> float:
    """ACMIX.md's cost section with Cin = C, stride 1: Stage I 3NC², fc 3kc²NC, dep_conv kc⁴NC,
    attention 2K·NC, conv_p 2dN (per position N)."""
    stage1 = 3 * c * c
    rest = 3 * kc * kc * c + kc**4 * c + 2 * ka * ka * c + 2 * (c // head)
    return stage1 / (stage1 + rest)


@pytest.mark.parametrize("channels", [8, 64, 512, 2048])
def test_stage1_share_against_the_documented_formula(channels):
    row = sweep.count_row(ACmixConfig(in_planes=channels, out_planes=channels))
    assert row["stage1_share_macs"] == pytest.approx(stage1_mac_share(channels))


def test_stage1_crossover_per_series():
    grid = sweep.expand_grid(ACmixConfig(), {"channels": sweep.AXES["channels"].choices, "kernel_att": [3, 7]})
    df = sweep.add_labels(sweep.count_rows(grid.configs), "channels")
    start = sweep.stage1_crossover(df, "macs")
    # From the formula: the smallest C (power of two) with 3C² > the rest.
    for ka in (3, 7):
        expected = min(c for c in sweep.AXES["channels"].choices if stage1_mac_share(c, ka=ka) > 0.5)
        assert start[f"ka={ka}"] == expected
    assert start["ka=3"] < start["ka=7"]  # a wider window makes Stage II heavier


def test_crossover_needs_the_share_to_stay_above_half():
    df = pd.DataFrame({"out_planes": [8, 16, 32, 64], "stage1_share_flops": [0.6, 0.4, 0.7, 0.8],
                       "series": ["s"] * 4})
    assert sweep.stage1_crossover(df) == {"s": 32}
    assert sweep.stage1_crossover(df.assign(stage1_share_flops=0.3)) == {"s": None}


def test_count_rows_are_fast_for_hundreds_of_configurations():
    axes = {"channels": [8, 16, 32, 64, 128, 256, 512, 1024], "head": [1, 2, 4, 8], "kernel_att": [3, 5, 7, 9, 11]}
    grid = sweep.expand_grid(ACmixConfig(), axes)
    df = sweep.count_rows(grid.configs)
    assert len(df) == 160
    assert df["params"].is_unique is False  # kernel_att changes no parameter
    assert df.groupby(["out_planes", "head"])["params"].nunique().eq(1).all()


# -- labels ----------------------------------------------------------------------------------------------
def test_labels_name_what_varies():
    grid = sweep.expand_grid(ACmixConfig(), {"channels": [8, 16], "kernel_att": [3, 5]})
    df = sweep.add_labels(sweep.count_rows(grid.configs), "kernel_att")
    assert list(df["label"]) == ["C=8 ka=3", "C=8 ka=5", "C=16 ka=3", "C=16 ka=5"]
    assert list(df["series"]) == ["C=8", "C=8", "C=16", "C=16"]
    assert df["config"].iloc[0] == "Cin=8 C=8 ka=3 h=4 kc=3 s=1 dil=1 56×56 B=1 official"
    assert df["config"].iloc[0] == sweep.short_id(grid.configs[0])
    single = sweep.add_labels(sweep.count_rows([ACmixConfig()]), "kernel_att")
    assert single["label"].iloc[0] == "this configuration" and single["series"].iloc[0] == "all"


# -- measuring a sweep --------------------------------------------------------------------------------------
def test_measure_configs_turns_failures_into_notes():
    configs = [ACmixConfig(head=h) for h in (1, 2, 4)]
    seen = []

    def measure(config):
        if config.head == 2:
            raise ValueError("too big for this test")
        return {"latency_ms": float(config.head)}

    results, notes = sweep.measure_configs(configs, measure, lambda i, n, c, row, err: seen.append((i, n, err)))
    assert set(results) == {configs[0], configs[2]}
    assert notes == [f"{sweep.short_id(configs[1])} not measured: too big for this test"]
    assert seen == [(1, 3, None), (2, 3, "too big for this test"), (3, 3, None)]
    df = sweep.sweep_frame(configs, results)
    assert list(df["latency_ms"].isna()) == [False, True, False]


# -- result files -------------------------------------------------------------------------------------------
MEASURED = {
    "latency_ms": 2.5, "latency_ms_p25": 2.25, "latency_ms_p75": 3.0, "peak_bytes": 123_456_789_012,
    "device": "cuda", "device_name": "Test GPU (fixture)", "dtype": "bfloat16", "torch_version": "2.13.0",
    "threads": 16,
}


def result_csv(n: int = 3, measured: bool = True) -> bytes:
    configs = [ACmixConfig(kernel_att=k) for k in (3, 5, 7, 9, 11)[:n]]
    rows = {c: dict(MEASURED, latency_ms=1.0 + i, latency_ms_p25=0.5 + i, latency_ms_p75=2.0 + i)
            for i, c in enumerate(configs)}
    return sweep.to_csv(sweep.sweep_frame(configs, rows if measured else None))


def edit(data: bytes, column: str, line: int, value: str) -> bytes:
    """Replace one cell (line numbers as in the file, header = 1)."""
    df = pd.read_csv(pd.io.common.BytesIO(data), dtype=str, keep_default_na=False)
    df.loc[line - 2, column] = value
    return df.to_csv(index=False).encode()


def test_result_file_round_trip():
    df = sweep.read_results(result_csv(), "gpu.csv")
    assert len(df) == 3
    assert list(df["kernel_att"]) == [3, 5, 7]
    assert list(df["latency_ms"]) == [1.0, 2.0, 3.0]
    assert df["peak_bytes"].iloc[0] == 123_456_789_012  # byte counts stay exact
    assert (df["device_name"] == "Test GPU (fixture)").all() and (df["source"] == "gpu.csv").all()
    assert list(df["params"]) == [17_822] * 3
    header = result_csv().decode().splitlines()[0].split(",")
    assert header[: len(sweep.REQUIRED_COLUMNS)] == list(sweep.REQUIRED_COLUMNS)


def test_result_file_without_measurements_is_accepted():
    df = sweep.read_results(result_csv(measured=False))
    assert df["latency_ms"].isna().all() and len(df) == 3


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: edit(d, "head", 3, "four"), "Column head: line 3 must hold whole numbers"),
        (lambda d: edit(d, "head", 2, "2.5"), "Column head: line 2 must hold whole numbers"),
        (lambda d: edit(d, "batch", 4, "0"), "Column batch: line 4 must hold whole numbers of at least 1"),
        (lambda d: edit(d, "latency_ms", 2, "-1"), "Column latency_ms: line 2 must be a non-negative number"),
        (lambda d: edit(d, "latency_ms", 3, "fast"), "Column latency_ms: line 3 must be a non-negative number"),
        (lambda d: edit(d, "latency_ms_p25", 2, "9"), "Latency quartiles out of order on line 2"),
        (lambda d: edit(d, "latency_ms_p75", 2, ""), "latency_ms_p75: missing on line 2, where a latency is given"),
        (lambda d: edit(d, "variant", 4, "mine"), "Column variant: line 4 must be one of official, fixed"),
        (lambda d: edit(d, "dtype", 2, "int8"), "Column dtype: line 2 must be one of"),
        (lambda d: edit(d, "device", 2, ""), "Column device: missing on line 2, where a latency is given"),
        (lambda d: edit(d, "params", 3, "17823"), "params disagrees with ACmix's parameter count on line 3 "
                                                  "(line 3: 17,823, expected 17,822)"),
        (lambda d: edit(d, "head", 2, "3"), "head must divide out_planes, which fails on line 2"),
        (lambda d: edit(d, "kernel_att", 2, "99"), "Column kernel_att: values outside 1 to 31 on line 2"),
        (lambda d: edit(d, "device_name", 2, "x" * 200), "Column device_name: text longer than 120 characters on line 2"),
        (lambda d: d.replace(b"latency_ms_p75,", b"p75,", 1), "Missing column: latency_ms_p75"),
        (lambda d: b"", "It is empty"),
        (lambda d: d.splitlines()[0] + b"\n", "It has a header but no rows"),
        (lambda d: b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (lambda d: b'a,b\n"1,2\n', "could not be read as CSV"),
    ],
)
def test_result_file_problems_are_named(change, message):
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(change(result_csv()), "upload.csv")
    text = " ".join(err.value.problems)
    assert message in text
    assert str(err.value).startswith("upload.csv: ")


def test_result_file_limits(monkeypatch):
    monkeypatch.setattr(sweep, "MAX_ROWS", 2)
    with pytest.raises(sweep.ResultFileError, match="It has more than 2 rows; the limit is 2"):
        sweep.read_results(result_csv())
    monkeypatch.setattr(sweep, "MAX_BYTES", 100)
    with pytest.raises(sweep.ResultFileError, match="the limit is 0 MB|the limit is"):
        sweep.read_results(result_csv())


def test_every_problem_is_listed_at_once():
    data = edit(edit(edit(result_csv(), "head", 2, "x"), "latency_ms", 3, "-2"), "head", 4, "3")
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(data)
    assert len(err.value.problems) == 3
    assert "head must divide out_planes, which fails on line 4" in err.value.problems[2]


def test_rows_of_a_real_measurement_survive_the_file(tmp_path):
    """A measured frame written and read back keeps every required value (as the CLI and page use it)."""
    configs = [ACmixConfig(in_planes=4, out_planes=4, head=2, kernel_att=3, height=6, width=6)]
    row = dict(MEASURED, device="cpu", device_name="cpu", dtype="float32", torch_version=torch.__version__)
    df = sweep.sweep_frame(configs, {configs[0]: row})
    path = tmp_path / "r.csv"
    path.write_bytes(sweep.to_csv(df))
    back = sweep.read_results(path.read_bytes())
    for col in sweep.REQUIRED_COLUMNS:
        a, b = df[col].iloc[0], back[col].iloc[0]
        assert a == b or (isinstance(a, float) and math.isclose(a, b)), col


# -- issue 11: hostile result files ----------------------------------------------------------------------
def test_thousands_of_columns_are_refused_before_any_work():
    """Item 6: a 73 KB file with 12,000 column names took 164 s of CPU before it was refused."""
    import time

    header = ",".join(f"c{i}" for i in range(12_000)) + "\n"
    data = (header + ",".join("1" for _ in range(12_000)) + "\n").encode()
    assert len(data) < 100_000
    start = time.process_time()
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(data)
    assert err.value.problems == ["Its header line has 72,889 characters; a result file's has at most 16,000."]
    assert time.process_time() - start < 5  # generous; it is milliseconds
    short = ",".join(f"{i}" for i in range(300)) + "\n" + ",".join("1" for _ in range(300)) + "\n"
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(short.encode())
    assert err.value.problems == ["It has 300 columns; the limit is 256."]
    repeated = ("device," * 200 + "x\n" + "1," * 200 + "1\n").encode()
    with pytest.raises(sweep.ResultFileError, match="Repeated column: `device`"):
        sweep.read_results(repeated)
    with pytest.raises(sweep.ResultFileError, match="header line has 20,000 characters"):
        sweep.read_results(("x" * 20_000 + "\n1\n").encode())


def test_a_repeated_header_is_caught_before_pandas_renames_it():
    """Item 10: pandas renamed a second `device` to `device.1`, so the check never fired."""
    data = result_csv().replace(b"torch_version", b"device", 1)
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(data)
    assert "Repeated column: `device`." in err.value.problems
    assert "Missing column: torch_version." in err.value.problems


@pytest.mark.parametrize(
    "column, value, message",
    [
        # Item 9: these raised IntCastingNaNError, OverflowError or TypeError.
        ("macs", "1e400", "Column macs: line 2 must hold whole numbers of at least 1 (found `1e400`)"),
        ("flops", "inf", "Column flops: line 2 must hold whole numbers of at least 1 (found `inf`)"),
        ("dilation", "1e400", "Column dilation: line 2 must hold whole numbers of at least 1"),
        ("threads", "1e400", "Column threads: line 2 must hold whole numbers of at least 1"),
        ("timed_samples", "nan", "Column timed_samples: line 2 must hold whole numbers"),
        # Item 10: these became -9,223,372,036,854,775,808 or were accepted.
        ("flops", "1e30", "Column flops: line 2 must hold whole numbers of at least 1 (found `1e30`)"),
        ("macs", "9" * 30, "Column macs: values outside 1 to 1,000,000,000,000,000,000 on line 2"),
        ("dilation", "999999", "Column dilation: values outside 1 to 8 on line 2"),
        ("threads", "100000", "Column threads: values outside 1 to 4,096 on line 2"),
        ("peak_bytes", "1e300", "Column peak_bytes: line 2 must be a non-negative number up to 9.01e+15"),
        ("latency_ms", "1e308", "Column latency_ms: line 2 must be a non-negative number up to 6.05e+08"),
        ("floor_ratio", "inf", "Column floor_ratio: line 2 must be a non-negative number up to 1e+12"),
    ],
)
def test_every_column_is_range_checked(column, value, message):
    data = result_csv()
    if column.encode() not in data.splitlines()[0]:
        data = add_column(data, column, "1")
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(edit(data, column, 2, value))
    assert message in " ".join(err.value.problems)


def add_column(data: bytes, column: str, value: str) -> bytes:
    lines = data.decode().splitlines()
    return "\n".join([lines[0] + "," + column] + [line + "," + value for line in lines[1:]]).encode() + b"\n"


def test_a_row_with_an_extra_field_is_named():
    """Item 9: one extra field made pandas use the first column as the index (TypeError at raw.index + 2)."""
    lines = result_csv().decode().splitlines()
    lines[2] += ",surplus"
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(("\n".join(lines) + "\n").encode())
    assert err.value.problems == [f"Line 3 must hold {len(lines[0].split(','))} fields, as the header does."]


def test_values_quoted_in_problems_cannot_become_markdown():
    """Item 11: what a file says is shown as text: quoted values are code spans, never links or images."""
    hostile = "![p](http://127.0.0.1:9/x.png)"
    with pytest.raises(sweep.ResultFileError) as err:
        sweep.read_results(edit(result_csv(), "variant", 2, hostile))
    text = " ".join(err.value.problems)
    assert "(found `![p](http://127.0.0.…`)" in text
    df = sweep.read_results(edit(result_csv(), "device_name", 2, hostile))
    assert df["device_name"].iloc[0] == hostile  # kept as data; pages show it as text


def test_big_valid_values_stay_exact():
    data = edit(edit(result_csv(), "macs", 2, str(10**18)), "peak_bytes", 2, str(2**53))
    df = sweep.read_results(data)
    assert int(df["macs"].iloc[0]) == 10**18 and df["peak_bytes"].iloc[0] == 2**53
    assert sweep.read_results(sweep.to_csv(df))["macs"].iloc[0] == 10**18  # and survive a round trip


# -- issue 15: layers, facets, relative values, noise, plans, references ---------------------------------
def test_the_layer_axis_sets_five_fields_and_refuses_unknown_layers():
    grid = sweep.expand_grid(ACmixConfig(), {"layer": ["layer2.0", "layer4.1"]})
    assert [(c.in_planes, c.out_planes, c.height, c.width, c.stride) for c in grid.configs] == [
        (128, 128, 56, 56, 2), (512, 512, 7, 7, 1)]
    with pytest.raises(sweep.SweepError, match="Unknown value `layer9.9` for layer"):
        sweep.expand_grid(ACmixConfig(), {"layer": ["layer9.9"]})


@pytest.mark.parametrize("other", ["channels", "stride", "resolution"])
def test_axes_that_set_the_same_field_cannot_vary_together(other):
    with pytest.raises(sweep.SweepError, match="both set .*: vary only one of them"):
        sweep.expand_grid(ACmixConfig(), {"layer": ["layer1.0"], other: [sweep.AXES[other].choices[1]]})


def test_labels_name_layers_and_leave_the_facet_out_of_rows():
    grid = sweep.expand_grid(ACmixConfig(), {"layer": ["layer1.0", "layer2.0"], "kernel_att": [3, 7],
                                             "head": [1, 4]})
    df = sweep.add_labels(sweep.count_rows(grid.configs), "kernel_att", "layer")
    first = df.iloc[0]
    assert first["layer"] == "layer1.0" and first["label"] == "layer1.0 ka=3 h=1"
    assert first["series"] == "h=1" and first["row"] == "ka=3 h=1"
    assert first["facet"] == "layer1.0 · C=64 · 56×56"
    assert sweep.facet_order(df, "layer") == ["layer1.0 · C=64 · 56×56", "layer2.0 · C=128 · 56×56 → 28×28 · s=2"]
    by_x = sweep.add_labels(sweep.count_rows(grid.configs), "layer")
    assert by_x["series"].iloc[0] == "ka=3 h=1" and (by_x["facet"] == "").all()
    # Shapes that are no ResNet layer keep their numbers.
    plain = sweep.add_labels(sweep.count_rows(sweep.expand_grid(ACmixConfig(), {"channels": [8, 16]}).configs))
    assert list(plain["layer"]) == ["", ""] and list(plain["label"]) == ["C=8", "C=16"]


def test_relative_values_within_each_facet_against_an_independent_loop():
    grid = sweep.expand_grid(ACmixConfig(), {"layer": ["layer1.0", "layer3.0"], "head": [1, 4, 8],
                                             "kernel_att": [3, 7]})
    df = sweep.add_labels(sweep.count_rows(grid.configs), "kernel_att", "layer")
    baseline = sweep.short_id(grid.configs[0].with_(kernel_att=7, head=4))
    out = sweep.relative_to(df, ["params", "flops"], baseline, ["layer"])
    for _i, row in out.iterrows():
        ref = next(r for r in grid.configs if (r.in_planes, r.stride) == (row["in_planes"], row["stride"])
                   and r.kernel_att == 7 and r.head == 4)
        ref_row = sweep.count_row(ref)
        assert row["params_rel"] == pytest.approx(row["params"] / ref_row["params"] - 1)
        assert row["flops_rel"] == pytest.approx(row["flops"] / ref_row["flops"] - 1)
    # Without a facet, every row against the baseline itself.
    whole = sweep.relative_to(df, ["flops"], baseline)
    base_flops = sweep.count_row(grid.configs[0].with_(kernel_att=7, head=4))["flops"]
    assert whole["flops_rel"].tolist() == pytest.approx([f / base_flops - 1 for f in df["flops"]])
    # A baseline that is not among the rows gives no values rather than wrong ones.
    assert sweep.relative_to(df, ["flops"], "nothing")["flops_rel"].isna().all()


def test_relative_values_with_a_missing_reference_are_left_empty():
    df = pd.DataFrame({"config": ["a", "b", "c"], "in_planes": [8, 8, 16], "kernel_att": [3, 5, 3],
                       "facet": ["x", "x", "y"], "latency_ms": [2.0, 3.0, 5.0]})
    out = sweep.relative_to(df, ["latency_ms"], "a", ["facet"])
    # Facet y has no row with the baseline's settings (in_planes 8, kernel_att 3): no reference, no value.
    assert out["latency_ms_rel"].tolist()[:2] == pytest.approx([0.0, 0.5])
    assert math.isnan(out["latency_ms_rel"].iloc[2])


def test_noise_flags():
    df = pd.DataFrame({"latency_ms": [10.0, 110.0, 4.0, math.nan], "latency_ms_p25": [9.5, 100.0, 3.0, math.nan],
                       "latency_ms_p75": [10.5, 852.0, 4.0, math.nan]})
    out = sweep.flag_noise(df)
    assert out["spread"].tolist()[:3] == pytest.approx([0.1, 752 / 110, 0.25])
    assert out["noisy"].tolist() == [False, True, False, False]  # 25% exactly is not above the limit


def test_a_plan_fits_the_limit_and_names_what_cannot():
    configs = [ACmixConfig(head=h) for h in (1, 2, 4, 8, 16)]
    estimates = {1: (2, 10), 2: (40, 50), 4: (3, 12), 8: (3, 12), 16: (1, 2)}
    plan = sweep.plan_batch(configs, 30, lambda c: estimates[c.head])
    assert [c.head for c in plan.batch] == [1, 4] and plan.seconds == 22
    assert [c.head for c in plan.too_slow] == [2]
    one = sweep.plan_batch(configs[3:], 5, lambda c: (3, 12))
    assert len(one.batch) == 1  # a click always measures something that fits alone
    assert sweep.plan_batch(configs, 30, lambda c: (1, 1), examine=2).batch == configs[:2]


def test_load_columns_are_read_and_checked():
    data = add_column(add_column(result_csv(), "others_cpu_share", "0.25"), "load_avg_1m", "2.5")
    df = sweep.read_results(add_column(data, "cpus", "2"))
    assert df["others_cpu_share"].tolist() == [0.25] * 3 and df["cpus"].tolist() == [2.0] * 3
    with pytest.raises(sweep.ResultFileError, match="others_cpu_share: line 2 must be a non-negative number up to 1"):
        sweep.read_results(edit(data, "others_cpu_share", 2, "1.5"))


def test_reference_files(tmp_path):
    assert sweep.reference_files(tmp_path / "none") == []
    (tmp_path / "b.csv").write_bytes(result_csv())
    (tmp_path / "a.csv").write_bytes(result_csv())
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in sweep.reference_files(tmp_path)] == ["a.csv", "b.csv"]
    assert not sweep.REFERENCE_DIR.exists() or all(
        len(sweep.read_results(p.read_bytes(), p.name)) for p in sweep.reference_files())


# -- issue 16: the threads of a sweep ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "idle, expected",
    [(8.0, 8), (7.8, 8), (7.7, 7), (1.75, 2), (1.7, 1), (0.3, 1), (0.0, 1), (40.0, 8), (None, 8)],
)
def test_a_sweep_uses_the_cpus_others_leave_idle(monkeypatch, idle, expected):
    monkeypatch.setattr("convmix.runtime.usable_cpus", lambda root="/sys/fs/cgroup": 8)
    assert sweep.sweep_threads(None, environ={}, idle=lambda: idle) == expected


def test_asked_threads_and_the_variable_come_first(monkeypatch):
    monkeypatch.setattr("convmix.runtime.usable_cpus", lambda root="/sys/fs/cgroup": 8)
    assert sweep.sweep_threads(3, environ={"CONVMIX_THREADS": "5"}, idle=lambda: 0.0) == 3
    assert sweep.sweep_threads(None, environ={"CONVMIX_THREADS": "5"}, idle=lambda: 0.0) == 5
    assert sweep.sweep_threads(None, environ={"CONVMIX_THREADS": " "}, idle=lambda: 2.0) == 2


def test_idle_cpus_reads_the_machine():
    from convmix.bench import cpu_snapshot

    free = sweep.idle_cpus(0.05)
    if cpu_snapshot() is None:
        assert free is None
    else:
        assert 0.0 <= free <= cpu_snapshot().cpus


def test_idle_cpus_counts_what_others_kept_busy_and_the_load_average(monkeypatch):
    import time

    from convmix import load

    since = load.CpuSnapshot(wall=time.monotonic() - 1.0, busy=100.0, own=5.0, cpus=4)
    # 2.5 busy CPU-seconds in 1 s, 0.5 of them this process's: others kept 2 of the 4 CPUs busy.
    after = load.CpuSnapshot(wall=since.wall + 1.0, busy=102.5, own=5.5, cpus=4)
    monkeypatch.setattr(load, "cpu_snapshot", lambda: after)
    monkeypatch.setattr(load, "load_average", lambda: 0.5)
    assert sweep.idle_cpus(0.5, since=since) == pytest.approx(2.0)
    monkeypatch.setattr(load, "load_average", lambda: 3.0)  # busier over the last minute than just now
    assert sweep.idle_cpus(0.5, since=since) == pytest.approx(1.0)
    monkeypatch.setattr(load, "load_average", lambda: 9.0)
    assert sweep.idle_cpus(0.5, since=since) == 0.0
    assert sweep.idle_cpus(0.5, since=since, load_average_floor=False) == pytest.approx(2.0)  # the benchmark's
    monkeypatch.setattr(load, "cpu_snapshot", lambda: None)
    assert sweep.idle_cpus(0.5) is None
