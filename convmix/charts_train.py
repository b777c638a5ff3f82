"""Altair charts for the training page: DataFrames of a run (convmix.train_frames) in, charts out.

Every title, axis title and category label is translated here (convmix.i18n), so the frames keep
their stable English keys. No Streamlit.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import torch

from .i18n import N_, _

HEIGHT = 220
SPLIT_LABELS = {"training": N_("training"), "held-out": N_("held-out")}
RATE_LABELS = {"rate1": N_("rate1 (attention)"), "rate2": N_("rate2 (convolution)")}
PARAMETER_TITLES = {
    "stem bias": N_("Stem convolution's bias, one line per channel"),
    "BatchNorm bias": N_("BatchNorm's bias β, one line per channel"),
}
# The page's cells and windows: this many pixels per side at most and at least.
CELL_MAX, CELL_MIN, WINDOW_SIDE = 20, 6, 126
# Streamlit's default autosize "fit" counts title, axes and legend into the height and squeezes the
# plot: curves stretch to the container's width and keep their plot height ("fit-x"); heatmaps keep
# their cell size and grow around it ("pad").
_FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
_PAD = alt.AutoSizeParams(type="pad", contains="padding")


def _legend() -> alt.Legend:
    # Below the plot: a legend at the right takes a third of a phone's width.
    return alt.Legend(orient="top", title=None, labelLimit=260)


def _epoch_x(epochs: int | None) -> alt.X:
    """The epoch axis; spanning the whole run (`epochs`) while it trains, so the curves grow into a
    fixed frame instead of the frame rescaling under them."""
    scale = alt.Scale(domain=[0, epochs], nice=False) if epochs else alt.Undefined
    return alt.X("epoch:Q", title=_("epoch"), axis=alt.Axis(tickMinStep=1), scale=scale)


def curve_chart(frame: pd.DataFrame, metric: str, epochs: int | None = None) -> alt.Chart:
    """Training and held-out `metric` ("loss" or "accuracy") against the epoch (0 to `epochs`)."""
    data = frame.loc[frame["metric"] == metric, ["step", "epoch", "split", "value"]].assign(
        split=lambda d: d["split"].map(lambda s: _(SPLIT_LABELS[s])))
    title = _("Loss (F.cross_entropy)") if metric == "loss" else _("Accuracy")
    y_scale = alt.Scale(domain=[0, 1]) if metric == "accuracy" else alt.Scale(zero=True)
    return alt.Chart(data, title=title, height=HEIGHT).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=_epoch_x(epochs),
        y=alt.Y("value:Q", title=_("loss") if metric == "loss" else _("accuracy"), scale=y_scale),
        color=alt.Color("split:N", legend=_legend(), sort=[_(v) for v in SPLIT_LABELS.values()]),
        tooltip=[alt.Tooltip("split:N", title=_("data")), alt.Tooltip("step:Q", title=_("step")),
                 alt.Tooltip("epoch:Q", title=_("epoch"), format=".2f"),
                 alt.Tooltip("value:Q", title=_("value"), format=".4f")],
    ).properties(autosize=_FIT_X)


def rates_chart(frame: pd.DataFrame, epochs: int | None = None) -> alt.Chart:
    """rate1 and rate2 of every ACmix layer against the epoch (one dash style per layer)."""
    data = frame.assign(rate=lambda d: d["rate"].map(lambda r: _(RATE_LABELS[r])))
    layers = frame["layer"].nunique()
    encoding = {
        "x": _epoch_x(epochs),
        "y": alt.Y("value:Q", title=_("value")),
        "color": alt.Color("rate:N", legend=_legend(), sort=[_(v) for v in RATE_LABELS.values()]),
        "tooltip": [alt.Tooltip("layer:N", title=_("layer")), alt.Tooltip("rate:N", title=_("rate")),
                    alt.Tooltip("step:Q", title=_("step")),
                    alt.Tooltip("value:Q", title=_("value"), format=".4f")],
    }
    if layers > 1:
        encoding["strokeDash"] = alt.StrokeDash("layer:N", legend=_legend())
    return alt.Chart(data, title=_("rate1 and rate2 of each ACmix layer"), height=HEIGHT).mark_line(
        point=alt.OverlayMarkDef(size=18)).encode(**encoding).properties(autosize=_FIT_X)


def bias_chart(frame: pd.DataFrame, parameter: str, epochs: int | None = None) -> alt.Chart:
    """One line per channel of `parameter` ("stem bias" or "BatchNorm bias") against the epoch."""
    data = frame.loc[frame["parameter"] == parameter, ["step", "epoch", "channel", "value"]]
    return alt.Chart(data, title=_(PARAMETER_TITLES[parameter]), height=HEIGHT).mark_line(
        opacity=0.7, strokeWidth=1.5).encode(
        x=_epoch_x(epochs),
        y=alt.Y("value:Q", title=_("value")),
        detail="channel:N",
        color=alt.Color("channel:Q", legend=None, scale=alt.Scale(scheme="viridis")),
        tooltip=[alt.Tooltip("channel:Q", title=_("channel")), alt.Tooltip("step:Q", title=_("step")),
                 alt.Tooltip("value:Q", title=_("value"), format=".4f")],
    ).properties(autosize=_FIT_X)


def window_bounds(row: int, col: int, stride: int, kernel_att: int, size: int) -> tuple[int, int, int, int]:
    """Rows and columns (first, last, inclusive) of the input that the attention window of output
    query (row, col) covers, clipped to the image: centre (row·stride, col·stride), half-width
    kernel_att // 2; outside the image the authors' reflection padding repeats the image's edge."""
    half = kernel_att // 2
    cy, cx = row * stride, col * stride
    return max(0, cy - half), min(size - 1, cy + half), max(0, cx - half), min(size - 1, cx + half)


def digit_chart(pixels: torch.Tensor, title: str, query: tuple[int, int] | None = None,
                window: tuple[int, int, int, int] | None = None) -> alt.LayerChart | alt.Chart:
    """The digit (raw pixel values 0-16, ink dark), with the query pixel and its attention window
    (rows and columns first..last, inclusive) outlined."""
    image = pixels.reshape(pixels.shape[-2], pixels.shape[-1])
    height, width = image.shape
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    data = pd.DataFrame({"row": rows.flatten().numpy(), "col": cols.flatten().numpy(),
                         "value": image.flatten().numpy()})
    data = data.assign(row2=data["row"] + 1, col2=data["col"] + 1)
    side = WINDOW_SIDE
    x = alt.X("col:Q", axis=None, scale=alt.Scale(domain=[0, width], nice=False))
    y = alt.Y("row:Q", axis=None, scale=alt.Scale(domain=[0, height], nice=False, reverse=True))
    cells = alt.Chart(data, title=title, width=side, height=side).mark_rect().encode(
        x=x, x2="col2:Q", y=y, y2="row2:Q",
        color=alt.Color("value:Q", scale=alt.Scale(scheme="greys", domain=[0, 16]), legend=None),
        tooltip=[alt.Tooltip("row:Q", title=_("row")), alt.Tooltip("col:Q", title=_("column")),
                 alt.Tooltip("value:Q", title=_("pixel value"))],
    )
    layers = [cells]
    if window is not None:
        r0, r1, c0, c1 = window
        box = pd.DataFrame({"row": [r0], "row2": [r1 + 1], "col": [c0], "col2": [c1 + 1]})
        layers.append(alt.Chart(box).mark_rect(fill=None, stroke="#e4572e", strokeWidth=2).encode(
            x=x, x2="col2:Q", y=y, y2="row2:Q"))
    if query is not None:
        row, col = query
        spot = pd.DataFrame({"row": [row], "row2": [row + 1], "col": [col], "col2": [col + 1]})
        layers.append(alt.Chart(spot).mark_rect(fill="#e4572e", opacity=0.55).encode(
            x=x, x2="col2:Q", y=y, y2="row2:Q"))
    if len(layers) == 1:
        return cells.properties(autosize=_PAD)
    return alt.layer(*layers).properties(autosize=_PAD)


def attention_window_frame(frame: pd.DataFrame, head: int | None) -> pd.DataFrame:
    """The window weights of one head, or their mean over heads (head None): dy, dx, weight, with
    dy and dx as offsets from the window's centre."""
    data = frame if head is None else frame[frame["head"] == head]
    data = data.groupby(["dy", "dx"], as_index=False)["weight"].mean()
    centre = int(data["dy"].max()) // 2
    return data.assign(dy=data["dy"] - centre, dx=data["dx"] - centre)


def attention_chart(window: pd.DataFrame, title: str, subtitle: str | None = None,
                    max_weight: float | None = None) -> alt.Chart:
    """Heatmap of a window's attention weights (attention_window_frame): where one query looks,
    darker for more weight. `max_weight` fixes the top of the colour scale, so that several
    checkpoints compare; the page states the scale (no legend: five of them do not fit a row)."""
    ka = int(window["dx"].max() - window["dx"].min()) + 1
    cell = max(CELL_MIN, min(CELL_MAX, WINDOW_SIDE // ka))
    heading = alt.TitleParams(title, subtitle=subtitle) if subtitle else title
    ends = sorted({int(window["dx"].min()), 0, int(window["dx"].max())})
    scale = (alt.Scale(scheme="blues", domain=[0, max_weight]) if max_weight is not None
             else alt.Scale(scheme="blues", domainMin=0))
    return alt.Chart(window, title=heading, width=cell * ka, height=cell * ka).mark_rect().encode(
        x=alt.X("dx:O", title=None, axis=alt.Axis(labelAngle=0, values=ends)),
        y=alt.Y("dy:O", title=None, axis=alt.Axis(values=ends)),
        color=alt.Color("weight:Q", title=None, scale=scale, legend=None),
        tooltip=[alt.Tooltip("dy:O", title=_("row offset")), alt.Tooltip("dx:O", title=_("column offset")),
                 alt.Tooltip("weight:Q", title=_("weight"), format=".3f")],
    ).properties(autosize=_PAD)


def ablation_chart(frame: pd.DataFrame, order: list[str], epochs: int | None = None) -> alt.Chart:
    """Held-out accuracy against the epoch, one line per network: columns network (its label),
    epoch, accuracy; `order` lists the labels in the legend's order."""
    return alt.Chart(frame, title=_("Held-out accuracy during training"), height=HEIGHT).mark_line(
        point=alt.OverlayMarkDef(size=18)).encode(
        x=_epoch_x(epochs),
        y=alt.Y("accuracy:Q", title=_("held-out accuracy"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("network:N", sort=order, scale=alt.Scale(domain=order, scheme="category10"),
                        legend=alt.Legend(orient="top", title=None, columns=1, labelLimit=320)),
        tooltip=[alt.Tooltip("network:N", title=_("network")),
                 alt.Tooltip("epoch:Q", title=_("epoch"), format=".1f"),
                 alt.Tooltip("accuracy:Q", title=_("held-out accuracy"), format=".4f")],
    ).properties(autosize=_FIT_X)
