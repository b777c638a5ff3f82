"""Altair charts for the ACmix walkthrough: DataFrames in (from convmix.walkthrough), alt.Chart out.

No Streamlit. Maps are drawn as rectangles on quantitative axes centred on integer cells, so a
block-averaged map keeps its axes in the original cell units, a clicked cell reports its own row
and column, and the charts keep their size under Streamlit's theme.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

DIVERGING = alt.Scale(scheme="redblue", reverse=True, domainMid=0)
SEQUENTIAL = alt.Scale(scheme="viridis")
QUERY_SELECTION = "query"  # name of the point selection on the clickable query map
# Fixed-size charts: Streamlit's default autosize ("fit") squeezes a chart's height when its
# legend sits below it; "pad" keeps the plot at the size asked for.
PAD = alt.AutoSizeParams(type="pad")
OVERLAP = 0.5  # of a cell, see map_heatmap


def _legend(value_title: str, orient: str = "bottom", length: int = 160) -> alt.Legend:
    return alt.Legend(title=value_title, orient=orient, gradientLength=length, titleLimit=220)


def _axis_scale(lo: float, hi: float, reverse: bool = False) -> alt.Scale:
    return alt.Scale(domain=[lo, hi], nice=False, zero=False, reverse=reverse)


def map_heatmap(
    df: pd.DataFrame,
    title: str,
    *,
    value_title: str = "value",
    signed: bool = True,
    size: int = 260,
    select: bool = False,
    marker: tuple[int, int] | None = None,
) -> alt.LayerChart:
    """Heatmap of a map frame (row, col, value, block) with row/column/value tooltips.

    Cell (r, c) covers r − ½ … r + block − ½, so integer ticks sit on cell centres. `select`
    adds a point selection named QUERY_SELECTION on (row, col), for clicking a cell; `marker`
    outlines the block that holds cell (row, col).
    """
    block = int(df["block"].iloc[0]) if len(df) else 1
    n_rows = int(df["row"].max()) + block
    n_cols = int(df["col"].max()) + block
    if block > 1:
        title = f"{title} (means of {block}×{block} blocks)"
    x = alt.X("x0:Q", title="column", scale=_axis_scale(-0.5, n_cols - 0.5),
              axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("y0:Q", title="row", scale=_axis_scale(-0.5, n_rows - 0.5, reverse=True),
              axis=alt.Axis(tickMinStep=1, format="d"))
    # Each rect reaches OVERLAP past its right and bottom edge, under the next rect drawn:
    # neighbours overlap instead of leaving anti-aliased hairlines between them.
    base = alt.Chart(df).transform_calculate(
        x0="datum.col - 0.5", x1=f"datum.col + {block} - 0.5 + {OVERLAP * block}",
        y0="datum.row - 0.5", y1=f"datum.row + {block} - 0.5 + {OVERLAP * block}",
    )
    cells = base.mark_rect(opacity=1, clip=True).encode(  # opaque, so overlaps do not show
        x=x, x2="x1:Q", y=y, y2="y1:Q",
        color=alt.Color("value:Q", scale=DIVERGING if signed else SEQUENTIAL,
                        legend=_legend(value_title)),
        tooltip=[
            alt.Tooltip("row:Q", title="row" if block == 1 else f"row (block of {block})"),
            alt.Tooltip("col:Q", title="column" if block == 1 else f"column (block of {block})"),
            alt.Tooltip("value:Q", title=value_title, format=".5g"),
        ],
    )
    if select:
        cells = cells.add_params(
            alt.selection_point(name=QUERY_SELECTION, fields=["row", "col"], on="click",
                                clear=False)
        )
    layers = [cells]
    if marker is not None:
        r, c = (marker[0] // block) * block, (marker[1] // block) * block
        spot = pd.DataFrame({"x0": [c - 0.5], "x1": [c + block - 0.5],
                             "y0": [r - 0.5], "y1": [r + block - 0.5]})
        layers.append(
            alt.Chart(spot).mark_rect(fill=None, stroke="black", strokeWidth=2.5).encode(
                x="x0:Q", x2="x1:Q", y="y0:Q", y2="y1:Q"
            )
        )
    # The longer side gets `size` pixels, so tall and wide maps both fit their column.
    scale = size / max(n_rows, n_cols)
    width, height = max(40, round(scale * n_cols)), max(40, round(scale * n_rows))
    return alt.layer(*layers, title=title).properties(width=width, height=height, autosize=PAD)


def window_panels(df: pd.DataFrame, *, size: int = 170) -> alt.FacetChart:
    """One kernel_att × kernel_att panel per quantity (a frame from
    convmix.walkthrough.window_panels_frame), side by side, each with its own colour scale.

    Axes are offsets from the query in input pixels; values are written in when a cell is at
    least 24 pixels wide; cells whose key comes from reflection padding have a dashed outline. One
    faceted chart rather than five keeps a rerun cheap.
    """
    k = int(df["dy"].max()) + 1
    lo_x, hi_x = float(df["offset_x"].min()), float(df["offset_x"].max())
    lo_y, hi_y = float(df["offset_y"].min()), float(df["offset_y"].max())
    half = ((hi_x - lo_x) / (k - 1) if k > 1 else 1.0) / 2  # half the window dilation
    ticks = sorted(set(df["offset_x"].tolist()))
    if len(ticks) > 11:
        ticks = ticks[:: (len(ticks) + 10) // 11]
    x = alt.X("x0:Q", title="offset x", scale=_axis_scale(lo_x - half, hi_x + half),
              axis=alt.Axis(values=ticks, format="d", labelOverlap=False))
    y = alt.Y("y0:Q", title="offset y", scale=_axis_scale(lo_y - half, hi_y + half, reverse=True),
              axis=alt.Axis(values=ticks, format="d", labelOverlap=False))
    tooltip = [
        alt.Tooltip("panel:N", title="quantity"),
        alt.Tooltip("j:Q", title="window position j"),
        alt.Tooltip("offset_y:Q", title="offset y"),
        alt.Tooltip("offset_x:Q", title="offset x"),
        alt.Tooltip("key_row:Q", title="key row"),
        alt.Tooltip("key_col:Q", title="key column"),
        alt.Tooltip("reflected:N", title="from reflection padding"),
        alt.Tooltip("value:Q", format=".5g"),
    ]
    rects = alt.Chart().mark_rect(opacity=1).encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q",
        color=alt.Color("value:Q", scale=DIVERGING, legend=_legend(None, "top", size - 30)),
        tooltip=tooltip,
    )
    reflected = alt.Chart().transform_filter("datum.reflected").mark_rect(
        fill=None, stroke="black", strokeWidth=1.5, strokeDash=[3, 2]
    ).encode(x=x, x2="x1:Q", y=y, y2="y1:Q", tooltip=tooltip)
    layers = [rects, reflected]
    if size / k >= 24:  # room for a two-decimal number
        layers.append(
            alt.Chart().mark_text(fontSize=9 if size / k < 32 else 11, color="black").encode(
                x=alt.X("offset_x:Q"), y=alt.Y("offset_y:Q"),
                text=alt.Text("value:Q", format=".2f"), tooltip=tooltip,
            )
        )
    panels = list(dict.fromkeys(df.sort_values("order")["panel"]))
    return (
        alt.layer(*layers, data=df)
        .transform_calculate(
            x0=f"datum.offset_x - {half}", x1=f"datum.offset_x + {half}",
            y0=f"datum.offset_y - {half}", y1=f"datum.offset_y + {half}",
        )
        .properties(width=size, height=size)
        .facet(column=alt.Column("panel:N", title=None, sort=panels,
                                 header=alt.Header(labelFontWeight="bold", labelLimit=size + 40)))
        .resolve_scale(color="independent")
        .properties(autosize=PAD)
    )


def key_window_chart(df: pd.DataFrame, query: tuple[int, int], title: str,
                     cell: int = 20) -> alt.LayerChart:
    """The padded key map around a query: faded cells are reflection padding, the window's
    cells are outlined, the query is ringed. Rows and columns are input coordinates."""
    n_rows = int(df["row"].max() - df["row"].min()) + 1
    n_cols = int(df["col"].max() - df["col"].min()) + 1
    base = alt.Chart(df).transform_calculate(
        x0="datum.col - 0.5", x1="datum.col + 0.5", y0="datum.row - 0.5", y1="datum.row + 0.5"
    )
    x = alt.X("x0:Q", title="input column",
              scale=_axis_scale(df["col"].min() - 0.5, df["col"].max() + 0.5),
              axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("y0:Q", title="input row",
              scale=_axis_scale(df["row"].min() - 0.5, df["row"].max() + 0.5, reverse=True),
              axis=alt.Axis(tickMinStep=1, format="d"))
    tooltip = [
        alt.Tooltip("row:Q", title="row"),
        alt.Tooltip("col:Q", title="column"),
        alt.Tooltip("padding:N", title="reflection padding"),
        alt.Tooltip("source:N", title="copies input cell"),
        alt.Tooltip("in_window:N", title="in the query's window"),
        alt.Tooltip("value:Q", title="key value", format=".5g"),
    ]
    cells = base.mark_rect().encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q",
        color=alt.Color("value:Q", scale=DIVERGING, legend=_legend("key value")),
        opacity=alt.condition("datum.padding", alt.value(0.3), alt.value(1.0)),
        tooltip=tooltip,
    )
    window = base.transform_filter("datum.in_window").mark_rect(
        fill=None, stroke="black", strokeWidth=1
    ).encode(x=x, x2="x1:Q", y=y, y2="y1:Q", tooltip=tooltip)
    spot = pd.DataFrame({"row": [query[0]], "col": [query[1]]})
    ring = alt.Chart(spot).mark_point(shape="circle", size=cell * 8, filled=False, color="black",
                                      strokeWidth=2.5).encode(x="col:Q", y="row:Q")
    return alt.layer(cells, window, ring, title=title).properties(
        width=cell * n_cols, height=cell * n_rows, autosize=PAD)


def fc_matrix_chart(df: pd.DataFrame, cell: int = 34) -> alt.LayerChart:
    """fc's weight as a 3·head × kernel_conv² matrix: rows q/k/v × head, columns kernel offsets."""
    rows = list(dict.fromkeys(df.sort_values("group")["input"]))
    cols = list(dict.fromkeys(df.sort_values("offset")["offset label"]))
    base = alt.Chart(df).encode(
        x=alt.X("offset label:N", title="output group i: kernel offset (dy, dx)", sort=cols,
                axis=alt.Axis(labelAngle=-45 if len(cols) > 9 else 0)),
        y=alt.Y("input:N", title="input group: q/k/v · head", sort=rows),
    )
    tooltip = [alt.Tooltip("input:N", title="input group"),
               alt.Tooltip("offset label:N", title="output group (offset)"),
               alt.Tooltip("value:Q", title="weight", format=".5f")]
    layers = [base.mark_rect().encode(
        color=alt.Color("value:Q", title="weight", scale=DIVERGING), tooltip=tooltip)]
    if len(rows) * len(cols) <= 400:
        layers.append(base.mark_text(fontSize=9).encode(
            text=alt.Text("value:Q", format=".2f"), color=alt.value("black"), tooltip=tooltip))
    width = min(900, cell * len(cols))
    return alt.layer(*layers, title="fc.weight[:, :, 0, 0].T").properties(
        width=width, height=min(700, 22 * len(rows)), autosize=PAD)


def shift_kernel_chart(df: pd.DataFrame, kernel_conv: int, title: str) -> alt.Chart | alt.FacetChart:
    """dep_conv.weight[o] (a frame of i, a, e, value), 1s dark.

    Up to kernel_conv = 5: one kc × kc kernel per input channel i of the group. Larger kernels
    are drawn flat, input channel i down and kernel position a·kc + e across, where shift
    kernels make the identity matrix.
    """
    tooltip = [alt.Tooltip("i:Q", title="input channel i of the group"),
               alt.Tooltip("a:Q", title="kernel row a"),
               alt.Tooltip("e:Q", title="kernel column e"),
               alt.Tooltip("value:Q", title="weight", format=".4g")]
    colour = alt.Color("value:Q", title="weight", scale=alt.Scale(scheme="greys", domainMin=0))
    if kernel_conv > 5:
        kk = kernel_conv * kernel_conv
        side = min(320, 4 * kk)
        return (
            alt.Chart(df, title=f"{title}: rows i, columns a·kc + e")
            .transform_calculate(position=f"datum.a * {kernel_conv} + datum.e")
            .mark_rect()
            .encode(x=alt.X("position:O", title="kernel position a·kc + e", axis=None),
                    y=alt.Y("i:O", title="input channel i", axis=None),
                    color=colour.legend(orient="bottom"), tooltip=tooltip)
            .properties(width=side, height=side, autosize=PAD)
        )
    cell = 16 if kernel_conv <= 3 else 9
    return (
        alt.Chart(df)
        .mark_rect(stroke="#999999", strokeWidth=0.5)
        .encode(x=alt.X("e:O", title=None, axis=None), y=alt.Y("a:O", title=None, axis=None),
                color=colour, tooltip=tooltip)
        .properties(width=cell * kernel_conv, height=cell * kernel_conv)
        .facet(facet=alt.Facet("i:O", title=title, header=alt.Header(labelExpr="'i = ' + datum.value")),
               columns=kernel_conv)
    )


def grouping_chart(df: pd.DataFrame, width: int = 720) -> alt.VConcatChart:
    """Two strips over the output channels: attention head and conv group, coloured by index.

    Contiguous blocks (attention: d channels per head) against a fine interleave (conv: h
    channels per group) make the two orders visible.
    """
    tooltip = [alt.Tooltip("output channel:Q"), alt.Tooltip("attention head:Q"),
               alt.Tooltip("channel in head:Q"), alt.Tooltip("conv group:Q"),
               alt.Tooltip("f_conv channels:N"), alt.Tooltip("q/k/v channels (conv):N")]
    n = len(df)
    step = max(1, width // max(n, 1))

    def strip(field: str, title: str) -> alt.Chart:
        return alt.Chart(df, title=title).mark_rect().encode(
            x=alt.X("output channel:O", title="output channel",
                    axis=alt.Axis(values=list(range(0, n, max(1, n // 16))), labelAngle=0)),
            color=alt.Color(f"{field}:Q", scale=alt.Scale(scheme="turbo"), legend=None),
            tooltip=tooltip,
        ).properties(width=min(width, step * n) if n <= width else width, height=28)

    return alt.vconcat(
        strip("attention head", "attention path: head of each output channel (c // d)"),
        strip("conv group", "convolution path: dep_conv group of each output channel (o // h)"),
    )


def channel_share_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Attention path's share of each output channel; the rule marks an even split."""
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("channel:O", title="output channel",
                axis=alt.Axis(values=list(range(0, len(df), max(1, len(df) // 16))), labelAngle=0)),
        y=alt.Y("attention share:Q", title="attention share", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("channel:Q"), alt.Tooltip("attention share:Q", format=".1%")],
    )
    rule = alt.Chart(pd.DataFrame({"y": [0.5]})).mark_rule(strokeDash=[4, 3], color="grey").encode(
        y="y:Q")
    return alt.layer(bars, rule, title="Attention path's share per output channel").properties(
        height=200)
