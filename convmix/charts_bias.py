"""Altair charts for the bias page: arrays in, alt.Chart out. No Streamlit.

Every label is translated here, in the language active when the chart is built (convmix.i18n);
titles passed in are translated by the caller. Each chart is at most PHONE_WIDTH pixels wide, or
stretches to its container, so that nothing scrolls sideways on a phone.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from .i18n import N_, _, pgettext

# pool_for_display's default largest side: 112, the seed layer's output side on a 224² input.
MAX_MAP_SIDE = 112
# A phone's main column is about 358 pixels wide at a 390-pixel viewport: charts of fixed size
# stay within this, axes and labels included.
PHONE_WIDTH = 340
IN_CHANNEL_NAMES = {1: (N_("grey"),), 3: ("R", "G", "B")}  # by the layer's input channels
PATCH_PANEL = 100  # a patch panel's largest side in pixels: three side by side fit a phone
# Streamlit's default autosize "fit" squeezes the plot to make room for a long title or legend;
# "pad" keeps the cells at the size asked for and grows the chart around them.
_PAD = alt.AutoSizeParams(type="pad")


def pool_for_display(arr: np.ndarray, max_side: int = MAX_MAP_SIDE) -> tuple[np.ndarray, int]:
    """Block-mean a 2-D map so neither side exceeds max_side; returns (map, block size).

    Edge blocks that stick out are averaged over the cells they do cover.
    """
    arr = np.asarray(arr, dtype=np.float64)
    f = max(1, math.ceil(max(arr.shape) / max_side))
    if f == 1:
        return arr, 1
    h, w = arr.shape
    ph, pw = math.ceil(h / f) * f, math.ceil(w / f) * f
    padded = np.full((ph, pw), np.nan)
    padded[:h, :w] = arr
    blocks = padded.reshape(ph // f, f, pw // f, f)
    return np.nanmean(blocks, axis=(1, 3)), f


def _ticks(n: int, block: int) -> list[int]:
    """About six axis labels on a 1-2-5 step, in the original map's units."""
    raw = max(1.0, n / 6)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(int(m * mag) for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * block for i in range(0, n, step)]


def _cell_size(h: int, w: int, size: int) -> dict[str, int]:
    """Width and height giving every cell the same whole number of pixels (about size / side):
    fractional cells leave anti-aliasing seams that look like a grid."""
    cell = max(1, round(size / max(h, w)))
    return {"width": cell * w, "height": cell * h}


# Colour ramps of the feature maps: stops spread evenly over the scale's domain and interpolated
# linearly in RGB, by `ramp_colours` for the picture and by Vega for the legend (`interpolate="rgb"`
# with the same stops), so that the two agree. Diverging: ColorBrewer's RdBu, blue below zero;
# sequential: viridis.
DIVERGING = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
             "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f")
SEQUENTIAL = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
              "#addc30", "#fde725")
MISSING_COLOUR = (204, 204, 204)  # a value that is not a number (none in a layer's output)


def _rgb(stop: str) -> tuple[int, int, int]:
    return tuple(int(stop[i:i + 2], 16) for i in (1, 3, 5))


def ramp_colours(values: np.ndarray, stops: tuple[str, ...], low: float, high: float) -> np.ndarray:
    """(..., 3) uint8 colours of `values` on `stops` spread evenly from low to high; values outside
    take the end colours."""
    if not high > low:
        raise ValueError(f"a colour ramp needs low < high, not {low} … {high}")
    values = np.asarray(values, dtype=np.float64)
    grid = np.linspace(low, high, len(stops))
    rgb = np.array([_rgb(s) for s in stops], dtype=np.float64)
    clipped = np.clip(np.nan_to_num(values, nan=low), low, high)
    out = np.stack([np.interp(clipped, grid, rgb[:, k]) for k in range(3)], axis=-1)
    out = np.rint(out).astype(np.uint8)
    out[np.isnan(values)] = MISSING_COLOUR
    return out


def png_data_url(rgb: np.ndarray) -> str:
    """An (h, w, 3) uint8 picture as a data: URL (PNG), for a Vega image mark."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def map_domain(arr: np.ndarray, signed: bool, domain: tuple[float, float] | None) -> tuple[float, float]:
    """The colour scale's ends: `domain` when given; else ±max|value| (signed, centred on 0) or the
    values' range. Ends that coincide (a constant map) are widened by ±0.5 around the value, so that
    it takes the ramp's middle colour in the picture and in the legend alike."""
    if domain is not None:
        low, high = float(domain[0]), float(domain[1])
    else:
        finite = np.asarray(arr, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            low, high = 0.0, 0.0
        elif signed:
            m = float(np.abs(finite).max())
            low, high = -m, m
        else:
            low, high = float(finite.min()), float(finite.max())
    if high > low:
        return low, high
    middle = (low + high) / 2
    return middle - 0.5, middle + 0.5


def map_heatmap(
    arr: np.ndarray,
    title: str,
    value_title: str,
    *,
    signed: bool = True,
    domain: tuple[float, float] | None = None,
    size: int = 260,
    max_side: int | None = None,
) -> alt.LayerChart:
    """A 2-D feature map drawn as one picture, at most about `size` pixels a side plus its axes
    (keep `size` ≤ 270 for a phone), the colour legend below it.

    The map is one PNG image mark (each value a block of pixels, not smoothed), not a rectangle per
    value: the browser draws it at once, where thousands of marks took it seconds, and every value
    is shown, not means. Maps with more values than pixels a side (`max_side`, default `size`) are
    block-averaged and the title says so. `signed`: the diverging ramp, centred on 0 (sign matters
    before a ReLU); else sequential. A fixed `domain` makes a moving slider visible as a colour
    change; values beyond it take the end colours.
    """
    pooled, block = pool_for_display(arr, max_side or size)
    h, w = pooled.shape
    low, high = map_domain(pooled, signed, domain)
    stops = DIVERGING if signed else SEQUENTIAL
    subtitle = _("shown as means of {block}×{block} blocks", block=block) if block > 1 else alt.Undefined
    row_title, col_title = _("row"), _("column")
    pixels = _cell_size(h, w, size)
    # Cell i spans i - 0.5 … i + 0.5 (in the map's own units), so that ticks sit on cell centres.
    x_scale = alt.Scale(domain=[-0.5, w * block - 0.5], nice=False, zero=False)
    y_scale = alt.Scale(domain=[-0.5, h * block - 0.5], nice=False, zero=False, reverse=True)
    values = np.asarray(arr, dtype=np.float64)
    picture = pd.DataFrame({"url": [png_data_url(ramp_colours(pooled, stops, low, high))],
                            "left": [-0.5], "top": [-0.5],
                            "smallest": [float(np.nanmin(values))], "largest": [float(np.nanmax(values))]})
    image = (
        alt.Chart(picture)
        .mark_image(width=pixels["width"], height=pixels["height"], align="left", baseline="top",
                    smooth=False, aspect=False)
        .encode(
            x=alt.X("left:Q", title=col_title, scale=x_scale,
                    axis=alt.Axis(values=_ticks(w, block), grid=False, labelAngle=0)),
            y=alt.Y("top:Q", title=row_title, scale=y_scale, axis=alt.Axis(values=_ticks(h, block), grid=False)),
            url="url:N",
            # One picture has one tooltip: the map's extremes (a value per cell would be a mark per cell).
            tooltip=[alt.Tooltip("smallest:Q", title=_("smallest value"), format=".4f"),
                     alt.Tooltip("largest:Q", title=_("largest value"), format=".4f")],
        )
    )
    # The legend: an invisible layer whose colour scale holds the picture's stops.
    ends = pd.DataFrame({"value": [low, high]})
    legend = (
        alt.Chart(ends)
        .mark_point(opacity=0, size=0)
        .encode(color=alt.Color(
            "value:Q", title=value_title,
            scale=alt.Scale(domain=list(np.linspace(low, high, len(stops))), range=list(stops),
                            interpolate="rgb", clamp=True),
            legend=alt.Legend(orient="bottom", direction="horizontal", gradientLength=160)))
    )
    return alt.layer(image, legend, title=alt.TitleParams(title, subtitle=subtitle, anchor="start")).properties(
        **pixels, autosize=_PAD)


def mask_rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int, bool]]:
    """The mask as rectangles of equal cells, (row0, row1, col0, col1, value) with ends exclusive:
    runs along each row, merged down the rows that repeat them. A padding mask is a few rectangles
    where a cell each would be tens of thousands of marks for the browser to draw."""
    mask = np.asarray(mask, dtype=bool)
    out: list[tuple[int, int, int, int, bool]] = []
    open_runs: dict[tuple[int, int, bool], int] = {}  # (col0, col1, value) -> first row
    previous: tuple = ()
    for r, line in enumerate(mask):
        edges = np.flatnonzero(np.diff(line.astype(np.int8))) + 1
        starts, ends = np.r_[0, edges], np.r_[edges, line.size]
        runs = tuple((int(a), int(b), bool(line[a])) for a, b in zip(starts, ends, strict=True))
        if runs != previous:
            out += [(first, r, *run) for run, first in open_runs.items()]
            open_runs, previous = {run: r for run in runs}, runs
    out += [(first, mask.shape[0], *run) for run, first in open_runs.items()]
    return sorted(out)


def mask_heatmap(mask: np.ndarray, title: str, true_label: str, false_label: str) -> alt.Chart:
    """Two-colour map of a boolean mask (e.g. windows that see only padding), drawn exactly as its
    rectangles of equal cells (mask_rectangles); the tooltip names the rows and columns of each."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    row_title, col_title = _("row"), _("column")

    def span(a: int, b: int) -> str:
        return str(a) if b - a == 1 else f"{a}–{b - 1}"

    df = pd.DataFrame(
        # Cell i spans i − 0.5 to i + 0.5 on the axes, so that a tick at i names it.
        [{"top": r0 - 0.5, "bottom": r1 - 0.5, "left": c0 - 0.5, "right": c1 - 0.5,
          "rows": span(r0, r1), "cols": span(c0, c1),
          "value": true_label if value else false_label}
         for r0, r1, c0, c1, value in mask_rectangles(mask)]
    )

    def axis(n: int) -> alt.Axis:
        return alt.Axis(values=_ticks(n, 1), format="d", labelAngle=0, grid=False)

    def scale(n: int, reverse: bool = False) -> alt.Scale:
        return alt.Scale(domain=[-0.5, n - 0.5], nice=False, zero=False, reverse=reverse)

    return (
        alt.Chart(df, title=alt.TitleParams(title, anchor="start"))
        .mark_rect()
        .encode(
            x=alt.X("left:Q", title=col_title, axis=axis(w), scale=scale(w)),
            x2="right:Q",
            y=alt.Y("top:Q", title=row_title, axis=axis(h), scale=scale(h, reverse=True)),
            y2="bottom:Q",
            color=alt.Color(
                "value:N",
                title=None,
                scale=alt.Scale(domain=[true_label, false_label], range=["#d62728", "#e8e8e8"]),
                legend=alt.Legend(orient="bottom", direction="vertical"),
            ),
            tooltip=[
                alt.Tooltip("rows:N", title=row_title),
                alt.Tooltip("cols:N", title=col_title),
                alt.Tooltip("value:N", title=_("window")),
            ],
        )
        .properties(**_cell_size(h, w, 240), autosize=_PAD)
    )


def patch_frame(
    patch: np.ndarray, weights: np.ndarray, products: np.ndarray, is_padding: np.ndarray,
    top: int, left: int,
) -> pd.DataFrame:
    """Long form of the (C, k, k) patch, weights and products (C = 1 or 3), with input
    coordinates.

    `quantity` names the row and states its largest |value|; `relative` is value / that maximum,
    so one colour scale serves three quantities of very different size.
    """
    c, k = patch.shape[:2]
    ch, dy, dx = np.indices((c, k, k))
    padding = np.broadcast_to(is_padding, (c, k, k)).ravel()
    base = {
        "in_channel": np.array([_(name) for name in IN_CHANNEL_NAMES[c]])[ch.ravel()],
        "dy": dy.ravel(),
        "dx": dx.ravel(),
        "input_row": (top + dy).ravel(),
        "input_col": (left + dx).ravel(),
        "padding": padding,
        "in_padding": np.where(padding, pgettext("answer", "yes"), pgettext("answer", "no")),
    }
    names = (N_("input patch (max |·| {peak})"), N_("weights W[c] (max |·| {peak})"),
             N_("patch × weights (max |·| {peak})"))
    frames = []
    for order, (name, arr) in enumerate(zip(names, (patch, weights, products), strict=True)):
        values = np.asarray(arr, dtype=np.float64).ravel()
        peak = float(np.abs(values).max())
        frames.append(
            pd.DataFrame(
                {
                    **base,
                    "quantity": _(name, peak=format(peak, ".3g")),
                    "order": order,
                    "value": values,
                    "relative": values / peak if peak > 0 else np.zeros_like(values),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def patch_cell(kernel: int) -> int:
    """Pixels per tap: a k×k panel at most PATCH_PANEL wide, cells between 4 and 28 pixels."""
    return max(4, min(28, PATCH_PANEL // kernel))


def patch_chart(df: pd.DataFrame, cell: int | None = None) -> alt.VConcatChart:
    """A grid of k×k panels: rows patch, weights, products; columns the input channels (R, G, B
    or grey). Padding taps grey.

    Colour is value / the row's largest |value| (stated in the row's title), red positive, blue
    negative; tooltips give the values themselves. Each row is titled above its panels and the
    legend sits below the grid, so the chart is as wide as its panels (at most about 320 pixels: it
    fits a phone); cells shrink for large kernels (`patch_cell`).
    """
    k = int(df["dy"].max()) + 1
    cell = cell or patch_cell(k)
    channels = list(dict.fromkeys(df["in_channel"]))
    rows = list(df.sort_values("order")["quantity"].unique())
    value_title = _("value / row max")
    base = (
        alt.Chart(df)
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("dx:O", title=None, axis=None),
            y=alt.Y("dy:O", title=None, axis=None),
            color=alt.condition(
                "datum.padding",
                alt.value("#cccccc"),
                alt.Color(
                    "relative:Q",
                    title=value_title,
                    scale=alt.Scale(scheme="redblue", reverse=True, domain=[-1, 1]),
                    legend=alt.Legend(orient="bottom", direction="horizontal", gradientLength=160),
                ),
            ),
            tooltip=[
                alt.Tooltip("quantity:N", title=_("quantity")),
                alt.Tooltip("in_channel:N", title=_("input channel")),
                alt.Tooltip("input_row:Q", title=_("input row")),
                alt.Tooltip("input_col:Q", title=_("input column")),
                alt.Tooltip("value:Q", title=_("value"), format=".5f"),
                alt.Tooltip("in_padding:N", title=_("in the padding")),
            ],
        )
        .properties(width=cell * k, height=cell * k)
    )
    panels = [
        base.transform_filter(alt.datum.order == order)
        .facet(
            column=alt.Column("in_channel:N", title=None, sort=channels,
                              header=alt.Header(labels=order == 0, labelPadding=2)),
            spacing=10,
        )
        .properties(title=alt.TitleParams(name, anchor="start", fontSize=12, fontWeight="normal",
                                          limit=PHONE_WIDTH))
        for order, name in enumerate(rows)
    ]
    return alt.vconcat(*panels, spacing=8)


def survival_chart(
    biases: np.ndarray, fractions: np.ndarray, current: float, learned: float
) -> alt.LayerChart:
    """Fraction of positions a ReLU keeps as b varies; rules at the slider and the layer's bias.
    Stretches to its container's width."""
    bias_title, kept_title = _("bias b"), _("fraction kept")
    slider, layer = _("slider"), _("the layer's bias")
    line_df = pd.DataFrame({"bias": np.asarray(biases), "kept": np.asarray(fractions)})
    marks_df = pd.DataFrame({"bias": [current, learned], "which": [slider, layer]})
    line = (
        alt.Chart(line_df, title=alt.TitleParams(_("Positions kept by ReLU(conv(x) + b) as b varies"),
                                                 anchor="start"))
        .mark_line()
        .encode(
            x=alt.X("bias:Q", title=bias_title, scale=alt.Scale(nice=False)),
            y=alt.Y("kept:Q", title=kept_title, axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip("bias:Q", title=bias_title, format=".3f"),
                     alt.Tooltip("kept:Q", title=kept_title, format=".2%")],
        )
    )
    rules = (
        alt.Chart(marks_df)
        .mark_rule(strokeWidth=2)
        .encode(
            x="bias:Q",
            color=alt.Color(
                "which:N",
                title=None,
                scale=alt.Scale(domain=[slider, layer], range=["#d62728", "#7f7f7f"]),
                legend=alt.Legend(orient="bottom"),
            ),
            strokeDash=alt.StrokeDash(
                "which:N",
                scale=alt.Scale(domain=[slider, layer], range=[[1, 0], [4, 3]]),
                legend=None,
            ),
            tooltip=[alt.Tooltip("which:N", title=_("line")),
                     alt.Tooltip("bias:Q", title=bias_title, format=".3f")],
        )
    )
    return alt.layer(line, rules).properties(height=260)


def agreement_chart(
    first: np.ndarray, second: np.ndarray, first_title: str, second_title: str, title: str,
    highlight: int | None = None,
) -> alt.LayerChart:
    """One point per channel, first vs second, on the identity line: agreement made visible.
    Stretches to its container's width."""
    df = pd.DataFrame(
        {"channel": np.arange(len(first)), "first": np.asarray(first, dtype=np.float64),
         "second": np.asarray(second, dtype=np.float64)}
    )
    df["chosen"] = df["channel"] == highlight
    lo, hi = float(min(df["first"].min(), df["second"].min())), float(
        max(df["first"].max(), df["second"].max())
    )
    diagonal = alt.Chart(pd.DataFrame({"v": [lo, hi]})).mark_line(
        color="#999999", strokeDash=[4, 3]
    ).encode(x="v:Q", y="v:Q")
    points = alt.Chart(df, title=alt.TitleParams(title, anchor="start")).mark_circle(size=60).encode(
        x=alt.X("first:Q", title=first_title),
        y=alt.Y("second:Q", title=second_title),
        color=alt.condition("datum.chosen", alt.value("#d62728"), alt.value("#1f77b4")),
        tooltip=[
            alt.Tooltip("channel:Q", title=_("output channel")),
            alt.Tooltip("first:Q", title=first_title, format=".3e"),
            alt.Tooltip("second:Q", title=second_title, format=".3e"),
        ],
    )
    return alt.layer(diagonal, points).properties(height=280)
