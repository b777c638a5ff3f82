"""Frames and Altair charts of the "ACmix in ResNet" page: DataFrames in, charts out, no Streamlit.

The paper-check frames come straight from convmix.paper (every value a live count); the
per-layer frames from convmix.checkpoint.layer_statistics. Labels are translated where the frames
are built (convmix.network_text), titles where the charts are built, both into the active language.
Every chart takes its container's width, so it fits a phone as well as a desktop.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import paper
from .charts_bias import map_heatmap
from .i18n import _
from .models import DEPTHS
from .network_text import (
    FLOPS_CANDIDATE_LABELS,
    KIND_LABELS,
    MEASURE_LABELS,
    PAPER_SIZE,
    PARAMETER_CANDIDATE_LABELS,
    PART_LABELS,
    STAGE_LABELS,
    label,
    network_name,
)

PALETTE = ["#1f77b4", "#c2185b", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]


def _fit(chart):
    """The container's width; `height` is the plot's own height (Streamlit's theme would otherwise
    fit legend, titles and rotated labels into it too, and squash the plot)."""
    return chart.properties(width="container", autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def _legend(columns: int = 1) -> alt.Legend:
    """Below the plot; one entry a line unless the entries are short (a phone is 350 px wide)."""
    return alt.Legend(title=None, orient="bottom", direction="vertical" if columns == 1 else "horizontal",
                      labelLimit=300, columns=columns)


# ---------------------------------------------------------------------------------------------
# Paper check
# ---------------------------------------------------------------------------------------------


def summary_frame() -> pd.DataFrame:
    """The three networks beside the README table: one row per quantity, one column per network
    (formatted text, translated labels), from convmix.paper.summary_rows."""
    rows = paper.summary_rows()

    def with_dep(r) -> str:
        total = r["parameters (code)"] + r["Σ C·kc⁴ (dep_conv weights)"]
        return f"{total:,}" + (" ✓" if paper.rounds_to(total, r["parameters (table, M)"], 1e6) else " ✗")

    lines = [
        (_("parameters, released code"), lambda r: f"{r['parameters (code)']:,}"),
        (_("parameters, README table"), lambda r: f"{r['parameters (table, M)']} M"),
        (_("code below the table"), lambda r: f"{r['below the table, %']:.2f} %"),
        (_("Σ C·kc⁴ (dep_conv's weights once more)"), lambda r: f"{r['Σ C·kc⁴ (dep_conv weights)']:,}"),
        (_("code + Σ C·kc⁴"), with_dep),
        (_("multiply-adds of convolutions and linear layers"),
         lambda r: f"{r['conv + linear multiply-adds'] / 1e9:.3f} G"),
        (_("… plus the attention dot products"), lambda r: f"{r['+ attention dot products'] / 1e9:.3f} G"),
        (_("all FLOPs (this project's count)"), lambda r: f"{r['all FLOPs'] / 1e9:.3f} G"),
        (_("FLOPs, README table"), lambda r: f"{r['FLOPs (table, G)']} G"),
    ]
    return pd.DataFrame([[what, *map(fmt, rows)] for what, fmt in lines],
                        columns=[_("quantity"), *(r["network"].removeprefix("ACmix ") for r in rows)])


def candidate_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The explanations tried for the parameter gap (extra parameters; ✓ when inside the interval the
    table's rounding allows) and the candidate counts for its FLOPs column (✓ when they print as it)."""
    names = [network_name(d) for d in DEPTHS]
    params = []
    for key in paper.parameter_candidates(next(iter(DEPTHS))):
        cells = []
        for d in DEPTHS:
            extra = paper.parameter_candidates(d)[key]
            low, high = paper.parameter_gap_interval(d)
            cells.append(f"+{extra:,}" + (" ✓" if low <= extra < high else " ✗"))
        params.append([label(PARAMETER_CANDIDATE_LABELS, key), *cells])
    flops = []
    for key in paper.flops_candidates(next(iter(DEPTHS))):
        cells = []
        for d in DEPTHS:
            count = paper.flops_candidates(d)[key]
            ok = paper.rounds_to(count, paper.README_TABLE[d][1], 1e9)
            cells.append(f"{count / 1e9:.3f} G" + (" ✓" if ok else " ✗"))
        flops.append([label(FLOPS_CANDIDATE_LABELS, key), *cells])
    return (pd.DataFrame(params, columns=[_("explanation of the gap"), *names]),
            pd.DataFrame(flops, columns=[_("count"), *names]))


def totals_frame(by: str) -> pd.DataFrame:
    """Parameters, multiply-adds and FLOPs of each network per stage or per kind of module."""
    if by not in ("stage", "kind"):
        raise ValueError(f"by must be 'stage' or 'kind', not {by!r}")
    order = paper.STAGES if by == "stage" else paper.KINDS
    labels = STAGE_LABELS if by == "stage" else KIND_LABELS
    rows = []
    for depth in DEPTHS:
        sums = paper.totals(paper.network_entries(depth), by=by)
        for i, key in enumerate(order):
            t = sums.get(key, paper.Totals())
            rows.append({"depth": depth, "network": network_name(depth), "key": key,
                         "label": label(labels, key), "order": i,
                         "params": t.params, "macs": t.macs, "flops": t.flops})
    return pd.DataFrame(rows)


def totals_chart(df: pd.DataFrame, measure: str, by: str) -> alt.Chart:
    """Grouped bars: one group per stage (columns) or per kind of module (rows), one bar per network."""
    title = label(MEASURE_LABELS, measure)
    data = df[df[measure] > 0] if by == "kind" else df
    sort = alt.SortField("order")
    value = alt.X if by == "kind" else alt.Y
    value_enc = value(f"{measure}:Q", title=title, axis=alt.Axis(format="~s", tickCount=5))
    tooltip = [alt.Tooltip("network:N", title=_("network")),
               alt.Tooltip("label:N", title=_("stage") if by == "stage" else _("kind of module")),
               alt.Tooltip(f"{measure}:Q", title=title, format=",")]
    # Three short names fit one line under the stage chart; under the kind chart the plot starts
    # after the long kind labels, so its legend lists them one a line.
    color = alt.Color("network:N", title=_("network"), legend=_legend(columns=3 if by == "stage" else 1),
                      scale=alt.Scale(range=PALETTE[:3]))
    if by == "stage":
        chart = alt.Chart(data).mark_bar().encode(
            x=alt.X("label:N", title=_("stage"), sort=sort, axis=alt.Axis(labelAngle=0, labelLimit=90)),
            xOffset=alt.XOffset("network:N"), y=value_enc, color=color, tooltip=tooltip,
        ).properties(height=220, title=_("{measure} per stage", measure=title))
    else:
        kinds = data["label"].nunique()
        chart = alt.Chart(data).mark_bar().encode(
            y=alt.Y("label:N", title=None, sort=sort, axis=alt.Axis(labelLimit=170)),
            yOffset=alt.YOffset("network:N"), x=value_enc, color=color, tooltip=tooltip,
        ).properties(height=max(120, 32 * kinds), title=_("{measure} per kind of module", measure=title))
    return _fit(chart)


def stage_share_frame(depth: int, size: int = PAPER_SIZE) -> pd.DataFrame:
    """Each ACmix layer's multiply-adds split into Stage I, attention and convolution path."""
    rows = []
    for position, s in enumerate(paper.stage1_shares(depth, size)):
        c, h, w = s.in_shape
        parts = {"stage1": s.stage1_macs, "attention": s.attention_macs, "conv": s.conv_macs}
        for order, (part, macs) in enumerate(parts.items()):
            rows.append({
                "position": position, "module": s.module, "layer": s.module.removesuffix(".conv2"),
                "stage": s.module.split(".")[0], "shape": f"{c}×{h}×{w}", "stride": s.stride,
                "part": label(PART_LABELS, part), "part_order": order, "macs": macs,
                "share": macs / s.total_macs, "stage1_share": s.share_macs,
            })
    return pd.DataFrame(rows)


def stage_share_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Stacked shares of each layer's multiply-adds, with the half-way line the claim needs."""
    layers = df.drop_duplicates("position")[["position", "layer"]]
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("layer:N", title=_("ACmix layer, in network order"), sort=list(layers["layer"]),
                axis=alt.Axis(labelAngle=-60, labelLimit=80)),
        y=alt.Y("share:Q", title=_("share of the layer's multiply-adds"), stack="zero",
                axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("part:N", title=None, legend=_legend(),
                        sort=list(df.drop_duplicates("part_order").sort_values("part_order")["part"]),
                        scale=alt.Scale(range=[PALETTE[1], PALETTE[0], PALETTE[2]])),
        order=alt.Order("part_order:Q"),
        tooltip=[alt.Tooltip("module:N", title=_("layer")),
                 alt.Tooltip("shape:N", title=_("input C×H×W")),
                 alt.Tooltip("stride:Q", title=_("stride")),
                 alt.Tooltip("part:N", title=_("part")),
                 alt.Tooltip("macs:Q", title=_("multiply-adds"), format=","),
                 alt.Tooltip("share:Q", title=_("share"), format=".1%")],
    )
    half = alt.Chart(pd.DataFrame({"y": [0.5]})).mark_rule(strokeDash=[6, 4], color="#333").encode(y="y:Q")
    return _fit(alt.layer(bars, half).properties(
        height=220, title=_("Stage I's share of each ACmix layer (dashed: half)")))


# ---------------------------------------------------------------------------------------------
# Learned values across depth
# ---------------------------------------------------------------------------------------------


def short_layer(name: str) -> str:
    """'layer3.4.conv2' -> 'layer3.4'; other names as they are."""
    return name.removesuffix(".conv2") if name.startswith("layer") else (name or _("(top level)"))


def series_frame(stats: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Long frame of some statistics columns across layers: position, layer, series label, value."""
    rows = []
    for _i, row in stats.iterrows():
        for column, series in columns.items():
            value = row[column]
            if value is None or pd.isna(value):
                continue
            rows.append({"position": int(row["position"]), "layer": short_layer(row["name"]),
                         "name": row["name"], "series": series, "value": float(value)})
    return pd.DataFrame(rows, columns=["position", "layer", "name", "series", "value"])


def across_depth_chart(df: pd.DataFrame, title: str, y_title: str, *, rule: float | None = None,
                       log: bool = False, domain: tuple[float, float] | None = None,
                       value_format: str = ".4g") -> alt.Chart | alt.LayerChart:
    """Lines with points, one per series, over the ACmix layers in network order. The value axis
    starts at zero (a share or a rate reads against it) unless `log` or `domain` says otherwise."""
    order = list(df.sort_values("position").drop_duplicates("position")["layer"])
    if log:
        scale = alt.Scale(type="log")
    elif domain is not None:
        scale = alt.Scale(domain=list(domain))
    else:
        scale = alt.Scale(zero=True)
    lines = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("layer:N", title=_("ACmix layer, in network order"), sort=order,
                axis=alt.Axis(labelAngle=-60, labelLimit=80)),
        y=alt.Y("value:Q", title=y_title, scale=scale),
        color=alt.Color("series:N", title=None, legend=_legend(columns=2 if df["series"].nunique() > 3 else 1),
                        scale=alt.Scale(range=PALETTE)),
        tooltip=[alt.Tooltip("name:N", title=_("layer")), alt.Tooltip("series:N", title=_("quantity")),
                 alt.Tooltip("value:Q", title=_("value"), format=value_format)],
    )
    chart = lines
    if rule is not None:
        chart = alt.layer(lines, alt.Chart(pd.DataFrame({"y": [rule]})).mark_rule(
            strokeDash=[6, 4], color="#333").encode(y="y:Q"))
    return _fit(chart.properties(height=220, title=title))


def channel_mean_map(x: torch.Tensor, max_side: int = 64) -> np.ndarray:
    """(C, H, W) -> the mean over channels, block-averaged down to at most max_side a side."""
    mean = x.float().mean(0)
    factor = -(-max(mean.shape) // max_side)
    if factor > 1:
        mean = F.avg_pool2d(mean[None, None], factor, ceil_mode=True)[0, 0]
    return mean.numpy()


def activation_heatmap(values: np.ndarray, title: str, value_title: str, size: int = 260) -> alt.LayerChart:
    """The input a layer receives (a 2-D map, e.g. `channel_mean_map`), as one picture about `size`
    pixels a side (narrower than a phone), drawn as the bias page draws its maps."""
    return map_heatmap(values, title, value_title, signed=False, size=size)
