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
    image, legend = spec["layer"]
    assert legend["encoding"]["color"]["legend"]["orient"] == "bottom"
    assert spec["width"] <= 270 and spec["height"] <= 270  # plus its axis: within a phone's width
    assert spec["title"]["subtitle"] == "shown as means of 3×3 blocks"
    assert image["mark"]["type"] == "image" and image["mark"]["smooth"] is False


def picture_of(spec: dict) -> np.ndarray:
    """The (h, w, 3) pixels of a map chart's image mark, decoded from its data URL."""
    import base64
    import io

    from PIL import Image

    (row,) = spec["datasets"][spec["layer"][0]["data"]["name"]]
    assert row["url"].startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(row["url"].split(",", 1)[1]))).convert("RGB"))


def legend_scale(spec: dict) -> dict:
    return spec["layer"][1]["encoding"]["color"]["scale"]


@pytest.mark.parametrize("signed", [True, False])
def test_a_map_is_one_picture_whose_colours_are_its_legends(signed):
    """Every value is a pixel, in its place (row 0 at the top); a value at one of the legend's stops
    has exactly the legend's colour there, values between two stops lie between their colours, and
    values beyond a fixed domain take the end colours."""
    rng = np.random.default_rng(1)
    h, w = 9, 13
    low, high = (-2.0, 2.0) if signed else (0.0, 2.0)
    scale = charts.map_heatmap(np.zeros((h, w)), "t", "v", signed=signed, domain=(low, high)).to_dict()
    stops, colours = legend_scale(scale)["domain"], legend_scale(scale)["range"]
    assert legend_scale(scale)["interpolate"] == "rgb" and len(stops) == len(colours)
    arr = rng.uniform(low - 1, high + 1, size=(h, w))
    arr.flat[: len(stops)] = stops  # the first cells hold the stops themselves
    spec = charts.map_heatmap(arr, "t", "v", signed=signed, domain=(low, high), size=h * w)
    pixels = picture_of(spec.to_dict())
    assert pixels.shape == (h, w, 3)  # a pixel a value; the browser scales it up unsmoothed
    hexes = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in pixels.reshape(-1, 3)]
    assert hexes[: len(stops)] == list(colours)
    for value, colour in zip(arr.ravel(), pixels.reshape(-1, 3), strict=True):
        if value <= low:
            assert f"#{colour[0]:02x}{colour[1]:02x}{colour[2]:02x}" == colours[0]
        elif value >= high:
            assert f"#{colour[0]:02x}{colour[1]:02x}{colour[2]:02x}" == colours[-1]
        else:
            i = int(np.searchsorted(stops, value)) - 1
            ends = np.array([[int(c[k:k + 2], 16) for k in (1, 3, 5)] for c in colours[i:i + 2]])
            assert (colour >= ends.min(0) - 1).all() and (colour <= ends.max(0) + 1).all()


def test_a_signed_map_is_centred_on_zero_and_its_tooltip_gives_its_extremes():
    arr = np.array([[-1.0, 0.0], [0.5, 3.0]])
    spec = charts.map_heatmap(arr, "t", "v").to_dict()
    stops = legend_scale(spec)["domain"]
    assert stops[0] == -3.0 and stops[-1] == 3.0 and stops[len(stops) // 2] == 0.0
    pixels = picture_of(spec)
    assert tuple(pixels[0, 1]) == (0xf7, 0xf7, 0xf7)  # zero: the ramp's white middle
    assert pixels[0, 0, 2] > pixels[0, 0, 0] and pixels[1, 1, 0] > pixels[1, 1, 2]  # blue below, red above
    (row,) = spec["datasets"][spec["layer"][0]["data"]["name"]]
    assert (row["smallest"], row["largest"]) == (-1.0, 3.0)
    titles = [t["title"] for t in spec["layer"][0]["encoding"]["tooltip"]]
    assert titles == ["smallest value", "largest value"]


@pytest.mark.parametrize("signed, value, domain", [(False, 2.5, None), (True, 0.0, None), (False, 0.0, (0.0, 0.0))])
def test_a_constant_map_takes_the_middle_colour_in_the_picture_and_the_legend(signed, value, domain):
    spec = charts.map_heatmap(np.full((4, 5), value), "t", "v", signed=signed, domain=domain).to_dict()
    stops, colours = legend_scale(spec)["domain"], legend_scale(spec)["range"]
    assert stops[0] < value < stops[-1] and np.isclose(stops[len(stops) // 2], value)
    middle = colours[len(colours) // 2]
    assert {f"#{r:02x}{g:02x}{b:02x}" for r, g, b in picture_of(spec).reshape(-1, 3)} == {middle}


def test_a_map_wider_than_its_pixels_is_shown_as_block_means():
    arr = np.arange(400 * 300, dtype=np.float64).reshape(400, 300)
    spec = charts.map_heatmap(arr, "t", "v", signed=False, size=200).to_dict()
    pixels = picture_of(spec)
    assert pixels.shape == (200, 150, 3)
    assert spec["title"]["subtitle"] == "shown as means of 2×2 blocks"
    x, y = (spec["layer"][0]["encoding"][axis]["scale"] for axis in "xy")
    assert x["domain"] == [-0.5, 299.5] and y["domain"] == [-0.5, 399.5]  # ticks on cell centres
    assert y["reverse"] is True  # row 0 at the top, where the picture's first row is


def test_heatmap_masks_stay_small():
    arr = np.random.default_rng(0).normal(size=(60, 60))
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
