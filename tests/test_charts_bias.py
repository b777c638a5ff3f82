"""The bias page's charts (convmix.charts_bias) through chart.to_dict(): sizes that fit a phone, and
every label in the visitor's language."""

from __future__ import annotations

import numpy as np
import pytest

from convmix import charts_bias as charts
from convmix.i18n import language
from tests.i18n_text import _spec_strings, english_runs


def patch_df(channels: int, k: int, padded: bool = True):
    rng = np.random.default_rng(k)
    patch, weights = rng.normal(size=(channels, k, k)), rng.normal(size=(channels, k, k))
    is_padding = np.zeros((k, k), bool)
    if padded:
        is_padding[0] = True
    return charts.patch_frame(patch * ~is_padding, weights, patch * weights * ~is_padding, is_padding, -1, 5)


def fixed_width(spec: dict) -> int:
    """The drawn width of the patch grid's widest row: panels and the spacing between them."""
    widths = []
    for row in spec["vconcat"]:
        panels = len(row["facet"]["column"]["sort"])
        widths.append(panels * row["spec"]["width"] + (panels - 1) * row["spacing"])
    return max(widths)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 7, 9, 11, 15])
def test_the_patch_grid_fits_a_phone_for_every_kernel(channels, k):
    spec = charts.patch_chart(patch_df(channels, k)).to_dict()
    assert fixed_width(spec) <= charts.PHONE_WIDTH
    assert [row["title"]["text"] for row in spec["vconcat"]] == list(
        dict.fromkeys(patch_df(channels, k).sort_values("order")["quantity"]))
    cell = charts.patch_cell(k)
    assert spec["vconcat"][0]["spec"]["width"] == cell * k and 4 <= cell <= 28


def test_the_patch_frame_keeps_each_quantity_and_its_scale():
    df = patch_df(3, 3)
    assert len(df) == 3 * 3 * 9
    for order in range(3):
        part = df[df["order"] == order]
        assert np.isclose(np.abs(part["relative"]).max(), 1.0)
        peak = np.abs(part["value"]).max()
        assert part["quantity"].iloc[0].endswith(f"{peak:.3g})")
    assert set(df["in_padding"]) == {"yes", "no"}


def test_heatmaps_keep_their_legend_below_and_their_size_small():
    arr = np.random.default_rng(0).normal(size=(60, 60))
    spec = charts.map_heatmap(arr, "title", "value", max_side=20).to_dict()
    assert spec["encoding"]["color"]["legend"]["orient"] == "bottom"
    assert spec["width"] <= 270 and spec["height"] <= 270  # plus its axis: within a phone's width
    assert spec["title"]["subtitle"] == "shown as means of 3×3 blocks"
    mask = charts.mask_heatmap(arr > 2, "t", "a", "b").to_dict()
    assert mask["width"] <= 270 and mask["encoding"]["color"]["legend"]["orient"] == "bottom"


def test_a_mask_is_drawn_as_rectangles_that_tile_it_exactly():
    """Painted back from the chart's own data, the rectangles give the mask cell for cell, none
    overlapping; the padding picture of a 116×116 output is five of them, not 13,456 cells."""
    rng = np.random.default_rng(3)
    for _ in range(100):
        mask = rng.random((rng.integers(1, 14), rng.integers(1, 14))) < rng.random()
        rows = charts.mask_heatmap(mask, "t", "yes", "no").to_dict()
        (data,) = rows["datasets"].values()
        painted = np.full(mask.shape, "", dtype=object)
        for rect in data:  # cell i spans i - 0.5 to i + 0.5 on the chart's axes
            rows = slice(int(rect["top"] + 0.5), int(rect["bottom"] + 0.5))
            area = painted[rows, int(rect["left"] + 0.5):int(rect["right"] + 0.5)]
            assert (area == "").all()
            area[...] = rect["value"]
        assert (painted == np.where(mask, "yes", "no")).all()
    border = np.ones((116, 116), dtype=bool)
    border[7:-7, 7:-7] = False
    (data,) = charts.mask_heatmap(border, "t", "yes", "no").to_dict()["datasets"].values()
    assert len(data) == 5
    assert {(r["rows"], r["cols"]) for r in data if r["value"] == "no"} == {("7–108", "7–108")}


def test_line_charts_stretch_to_their_container():
    survival = charts.survival_chart(np.linspace(-1, 1, 5), np.linspace(0, 1, 5), 0.1, 0.0).to_dict()
    agreement = charts.agreement_chart(np.arange(4.0), np.arange(4.0), "a", "b", "t", highlight=1).to_dict()
    assert "width" not in survival and "width" not in agreement


def chart_strings(chart) -> list[str]:
    spec = chart.to_dict()
    return list(_spec_strings(spec))


def test_every_label_is_translated():
    with language("zh"):
        built = [
            charts.patch_chart(patch_df(3, 7)),
            charts.patch_chart(patch_df(1, 3)),
            charts.map_heatmap(np.ones((60, 60)), "标题", "数值", max_side=20),
            charts.mask_heatmap(np.eye(8, dtype=bool), "标题", "是", "否"),
            charts.survival_chart(np.linspace(-1, 1, 5), np.linspace(0, 1, 5), 0.1, 0.0),
            charts.agreement_chart(np.arange(4.0), np.arange(4.0), "甲", "乙", "标题", highlight=1),
        ]
        for chart in built:
            strings = chart_strings(chart)
            assert strings and not [s for s in strings if english_runs(s)], strings
            # tooltips carry titles of their own: no field name reaches the visitor
            tooltips = [t for t in _tooltips(chart.to_dict())]
            assert tooltips and all("title" in t for t in tooltips)
        assert "灰度" in chart_strings(charts.patch_chart(patch_df(1, 3)))
        survival = chart_strings(charts.survival_chart(np.zeros(3), np.zeros(3), 0.0, 0.0))
        assert "滑块" in survival and "这一层的偏置" in survival


def _tooltips(spec):
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "tooltip":
                yield from (value if isinstance(value, list) else [value])
            else:
                yield from _tooltips(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _tooltips(item)
