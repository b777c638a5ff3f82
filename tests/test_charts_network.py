"""Frames and charts of the ACmix-in-ResNet page, checked through their data and chart.to_dict()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from convmix import charts_network as charts
from convmix import paper
from convmix.checkpoint import find_acmix_layers, layer_statistics, statistics_frame
from convmix.i18n import language
from convmix.models import DEPTHS, acmix_resnet, block_layout
from tests.i18n_text import english_runs


def spec_strings(spec) -> list[str]:
    from tests.i18n_text import _spec_strings

    return list(_spec_strings(spec))


@pytest.mark.parametrize("by", ["stage", "kind"])
def test_totals_frames_add_up_to_the_networks_parameters(by):
    df = charts.totals_frame(by)
    for depth in DEPTHS:
        meta = acmix_resnet(depth, device="meta")
        assert df[df["depth"] == depth]["params"].sum() == sum(p.numel() for p in meta.parameters())
        assert df[df["depth"] == depth]["macs"].sum() == paper.totals(paper.network_entries(depth)).macs


def test_parameters_per_stage_match_the_modules_of_each_stage():
    df = charts.totals_frame("stage")
    meta = acmix_resnet(50, device="meta")
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        counted = df[(df["depth"] == 50) & (df["key"] == stage)]["params"].item()
        assert counted == sum(p.numel() for p in meta.get_submodule(stage).parameters())


def test_stage_share_frame_against_the_layer_shapes():
    df = charts.stage_share_frame(50)
    layout = block_layout(50)
    assert df["position"].nunique() == len(layout)
    for spec in layout:
        rows = df[df["module"] == spec.acmix_name]
        assert rows["share"].sum() == pytest.approx(1.0)
        (h, w), c = spec.in_size, spec.width
        stage1 = rows[rows["part_order"] == 0]["macs"].item()
        assert stage1 == 3 * c * c * h * w  # three 1x1 projections at the input's resolution
        assert rows["shape"].iloc[0] == f"{c}×{h}×{w}"


def test_totals_chart_specs():
    df = charts.totals_frame("stage")
    spec = charts.totals_chart(df, "macs", "stage").to_dict()
    assert spec["encoding"]["xOffset"]["field"] == "network"
    assert spec["width"] == "container" and spec["autosize"]["type"] == "fit-x"
    kinds = charts.totals_frame("kind")
    spec = charts.totals_chart(kinds, "params", "kind").to_dict()
    shown = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert (shown["params"] > 0).all()  # kinds without parameters (ReLU, pools) are left out


def test_stage_share_chart_has_the_half_line():
    spec = charts.stage_share_chart(charts.stage_share_frame(26)).to_dict()
    assert len(spec["layer"]) == 2
    rule = spec["layer"][1]
    assert rule["mark"]["type"] == "rule"
    assert any(v == [{"y": 0.5}] for v in spec["datasets"].values())


def test_charts_are_translated():
    with language("zh"):
        specs = [
            charts.totals_chart(charts.totals_frame("stage"), "flops", "stage").to_dict(),
            charts.totals_chart(charts.totals_frame("kind"), "macs", "kind").to_dict(),
            charts.stage_share_chart(charts.stage_share_frame(38)).to_dict(),
        ]
    for spec in specs:
        for s in spec_strings(spec):
            assert not english_runs(s), s


@pytest.fixture(scope="module")
def stats():
    state = acmix_resnet(26, seed=0).state_dict()
    state["layer2.1.conv2.rate1"] = torch.tensor([0.9])
    return statistics_frame(layer_statistics(state, find_acmix_layers(state)))


def test_series_frame_and_across_depth_chart(stats):
    df = charts.series_frame(stats, {"rate1": "rate1", "rate2": "rate2"})
    assert len(df) == 2 * len(stats)
    assert df[(df["layer"] == "layer2.1") & (df["series"] == "rate1")]["value"].item() == pytest.approx(0.9)
    spec = charts.across_depth_chart(df, "t", "v", rule=0.5, domain=(0, 1)).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert spec["layer"][0]["encoding"]["x"]["sort"] == [charts.short_layer(n) for n in stats["name"]]
    log = charts.across_depth_chart(df, "t", "v", log=True).to_dict()
    assert log["encoding"]["y"]["scale"]["type"] == "log"


def test_series_frame_skips_missing_values(stats):
    broken = stats.assign(rate_ratio=[None] + [1.0] * (len(stats) - 1))
    assert len(charts.series_frame(broken, {"rate_ratio": "r"})) == len(stats) - 1


def test_activation_heatmap_is_one_picture_of_the_map():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    spec = charts.activation_heatmap(values, "t", "v", size=200).to_dict()
    assert (spec["width"], spec["height"], spec["autosize"]["type"]) == (200, 150, "pad")  # 50 px a value
    image = spec["layer"][0]
    assert image["mark"]["type"] == "image"
    (row,) = spec["datasets"][image["data"]["name"]]
    assert (row["smallest"], row["largest"]) == (0.0, 11.0)


def test_short_layer_names():
    assert charts.short_layer("layer3.4.conv2") == "layer3.4"
    assert charts.short_layer("blk") == "blk" and charts.short_layer("") == "(top level)"


def test_channel_mean_map_block_averages_large_maps():
    x = torch.arange(2 * 130 * 128, dtype=torch.float32).reshape(2, 130, 128)
    small = charts.channel_mean_map(x[:, :10, :12])
    assert np.allclose(small, x[:, :10, :12].mean(0).numpy())
    big = charts.channel_mean_map(x, max_side=64)
    assert big.shape == (44, 43)  # 130 and 128 in blocks of 3, the last block partial
    assert np.isclose(big[0, 0], x.mean(0)[:3, :3].mean().item())


def test_candidate_frames_mark_what_the_findings_found():
    params, flops = charts.candidate_frames()
    findings = {next(iter(f.figures)): f.figures for f in paper.findings()}
    fit = findings["candidates_fit"]["candidates_fit"]
    for row, (key, fits_all) in zip(params.itertuples(index=False), fit.items(), strict=True):
        assert all(cell.endswith("✓") for cell in row[1:]) == fits_all, key
        extra = paper.parameter_candidates(26)[key]
        assert row[1].startswith(f"+{extra:,}")
    match = findings["candidates_match"]["candidates_match"]
    for row, marks in zip(flops.itertuples(index=False), match.values(), strict=True):
        assert [cell.endswith("✓") for cell in row[1:]] == marks
