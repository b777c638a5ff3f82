"""Altair charts for the ACmix walkthrough: DataFrames in (from convmix.walkthrough), alt.Chart out.

No Streamlit. Maps are drawn as rectangles on quantitative axes centred on integer cells, so a
block-averaged map keeps its axes in the original cell units, a clicked cell reports its own row
and column, and the charts keep their size under Streamlit's theme.

Every title, axis, legend and tooltip is in the visitor's language (convmix.i18n). Charts fit a
phone's 390 px: fixed-size charts stay within about 340 px (long titles break into lines instead of
widening the chart), and the wide ones take their container's width.
"""

from __future__ import annotations

import json

import altair as alt
import pandas as pd

from .i18n import _

DIVERGING = alt.Scale(scheme="redblue", reverse=True, domainMid=0)
SEQUENTIAL = alt.Scale(scheme="viridis")
QUERY_SELECTION = "query"  # name of the point selection on the clickable query map
# Fixed-size charts: Streamlit's default autosize ("fit") squeezes a chart's height when its
# legend sits below it; "pad" keeps the plot at the size asked for.
PAD = alt.AutoSizeParams(type="pad")
# Charts as wide as their container: only the width fits, the height stays as asked.
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
_CLOSING = set("）》」』】〕，。、：；！？,.:;!?)")  # never starts a line
OVERLAP = 0.5  # of a cell, see map_heatmap
TITLE_SIZE = 13  # px, Vega's default title font size


def _text_width(text: str, size: int = TITLE_SIZE) -> float:
    """Rough width of `text` in pixels: CJK characters are about a font size wide, others about half."""
    return sum(size if ord(ch) >= 0x2E80 else 0.55 * size for ch in text)


def title_lines(text: str, width: float, size: int = TITLE_SIZE) -> list[str]:
    """`text` broken into lines of at most `width` pixels (at spaces, or anywhere in CJK text), so that
    a long title never makes a chart wider than its plot."""
    lines, current = [], ""
    for piece in _pieces(text):
        if current and _text_width(current + piece, size) > width:
            lines.append(current.rstrip())
            current = piece.lstrip()
        else:
            current += piece
    if current.strip():
        lines.append(current.rstrip())
    return lines or [text]


def _pieces(text: str) -> list[str]:
    """Words with their following space; each CJK character is a piece of its own. A short formula in
    ASCII parentheses, "(o // h)", stays one piece, and closing punctuation stays with what it closes."""
    pieces, word, depth = [], "", 0
    for ch in text:
        depth += (ch in "(（") - (ch in ")）")
        if ch in _CLOSING and not word and pieces:
            pieces[-1] += ch
            continue
        if ord(ch) >= 0x2E80 and ch != "（" and depth <= 0:
            if word:
                pieces.append(word)
                word = ""
            pieces.append(ch)
        elif ch == " " and depth <= 0:
            pieces.append(word + " ")
            word = ""
        else:
            word += ch
    if word:
        pieces.append(word)
    return pieces


def _title(text: str, width: float) -> alt.TitleParams:
    return alt.TitleParams(title_lines(text, max(width, 200)), anchor="start", fontSize=TITLE_SIZE)


def _legend(value_title: str | None, orient: str = "bottom", length: int = 160) -> alt.Legend:
    return alt.Legend(title=value_title, orient=orient, gradientLength=length, titleLimit=220)


def _axis_scale(lo: float, hi: float, reverse: bool = False) -> alt.Scale:
    return alt.Scale(domain=[lo, hi], nice=False, zero=False, reverse=reverse)


def _yes_no(field: str) -> str:
    """A Vega expression that says yes or no, in the visitor's language, for a boolean field."""
    return f"datum['{field}'] ? {json.dumps(_('yes'), ensure_ascii=False)} : {json.dumps(_('no'), ensure_ascii=False)}"


def map_heatmap(
    df: pd.DataFrame,
    title: str,
    *,
    value_title: str | None = None,
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
    value_title = _("value") if value_title is None else value_title
    block = int(df["block"].iloc[0]) if len(df) else 1
    n_rows = int(df["row"].max()) + block
    n_cols = int(df["col"].max()) + block
    if block > 1:
        title = _("{title} (means of {block}×{block} blocks)", title=title, block=block)
    x = alt.X("x0:Q", title=_("column"), scale=_axis_scale(-0.5, n_cols - 0.5),
              axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("y0:Q", title=_("row"), scale=_axis_scale(-0.5, n_rows - 0.5, reverse=True),
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
            alt.Tooltip("row:Q", title=_("row") if block == 1 else _("row (block of {block})", block=block)),
            alt.Tooltip("col:Q", title=_("column") if block == 1
                        else _("column (block of {block})", block=block)),
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
    return alt.layer(*layers, title=_title(title, width + 30)).properties(
        width=width, height=height, autosize=PAD)


def window_panel(df: pd.DataFrame, *, size: int = 170, y_title: bool = True) -> alt.LayerChart:
    """One kernel_att × kernel_att panel of the inspector (the rows of one panel of
    convmix.walkthrough.window_panels_frame), with its own colour scale.

    Axes are offsets from the query in input pixels; values are written in when a cell is at
    least 24 pixels wide; cells whose key comes from reflection padding have a dashed outline. The
    page lays the five panels out in a wrapping row: side by side on a wide screen, stacked on a
    phone. `y_title=False` leaves the y axis untitled (the panels after the first), which keeps the
    row narrow enough for five at 1400 px.
    """
    k = int(df["dy"].max()) + 1
    lo_x, hi_x = float(df["offset_x"].min()), float(df["offset_x"].max())
    lo_y, hi_y = float(df["offset_y"].min()), float(df["offset_y"].max())
    half = ((hi_x - lo_x) / (k - 1) if k > 1 else 1.0) / 2  # half the window dilation
    ticks = sorted(set(df["offset_x"].tolist()))
    if len(ticks) > 11:
        ticks = ticks[:: (len(ticks) + 10) // 11]
    x = alt.X("x0:Q", title=_("offset x"), scale=_axis_scale(lo_x - half, hi_x + half),
              axis=alt.Axis(values=ticks, format="d", labelOverlap=False))
    y = alt.Y("y0:Q", title=_("offset y") if y_title else None,
              scale=_axis_scale(lo_y - half, hi_y + half, reverse=True),
              axis=alt.Axis(values=ticks, format="d", labelOverlap=False))
    tooltip = [
        alt.Tooltip("panel:N", title=_("quantity")),
        alt.Tooltip("j:Q", title=_("window position j")),
        alt.Tooltip("offset_y:Q", title=_("offset y")),
        alt.Tooltip("offset_x:Q", title=_("offset x")),
        alt.Tooltip("key_row:Q", title=_("key row")),
        alt.Tooltip("key_col:Q", title=_("key column")),
        alt.Tooltip("reflected_text:N", title=_("from reflection padding")),
        alt.Tooltip("value:Q", title=_("value"), format=".5g"),
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
    title = str(df["panel"].iloc[0]) if len(df) else ""
    return (
        alt.layer(*layers, data=df, title=alt.TitleParams(title_lines(title, size + 30), anchor="start",
                                                          fontSize=12, fontWeight="bold"))
        .transform_calculate(
            x0=f"datum.offset_x - {half}", x1=f"datum.offset_x + {half}",
            y0=f"datum.offset_y - {half}", y1=f"datum.offset_y + {half}",
            reflected_text=_yes_no("reflected"),
        )
        .properties(width=size, height=size, autosize=PAD)
    )


def window_panels(df: pd.DataFrame, *, size: int = 170) -> list[alt.LayerChart]:
    """The inspector's five panels (a frame from convmix.walkthrough.window_panels_frame), in order."""
    return [window_panel(part, size=size, y_title=i == 0)
            for i, (_order, part) in enumerate(df.groupby("order", sort=True))]


def key_window_chart(df: pd.DataFrame, query: tuple[int, int], title: str,
                     cell: int = 20) -> alt.LayerChart:
    """The padded key map around a query: faded cells are reflection padding, the window's
    cells are outlined, the query is ringed. Rows and columns are input coordinates."""
    n_rows = int(df["row"].max() - df["row"].min()) + 1
    n_cols = int(df["col"].max() - df["col"].min()) + 1
    base = alt.Chart(df).transform_calculate(
        x0="datum.col - 0.5", x1="datum.col + 0.5", y0="datum.row - 0.5", y1="datum.row + 0.5",
        padding_text=_yes_no("padding"), in_window_text=_yes_no("in_window"),
    )
    x = alt.X("x0:Q", title=_("input column"),
              scale=_axis_scale(df["col"].min() - 0.5, df["col"].max() + 0.5),
              axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("y0:Q", title=_("input row"),
              scale=_axis_scale(df["row"].min() - 0.5, df["row"].max() + 0.5, reverse=True),
              axis=alt.Axis(tickMinStep=1, format="d"))
    tooltip = [
        alt.Tooltip("row:Q", title=_("row")),
        alt.Tooltip("col:Q", title=_("column")),
        alt.Tooltip("padding_text:N", title=_("reflection padding")),
        alt.Tooltip("source:N", title=_("copies input cell")),
        alt.Tooltip("in_window_text:N", title=_("in the query's window")),
        alt.Tooltip("value:Q", title=_("key value"), format=".5g"),
    ]
    cells = base.mark_rect().encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q",
        color=alt.Color("value:Q", scale=DIVERGING, legend=_legend(_("key value"))),
        opacity=alt.condition("datum.padding", alt.value(0.3), alt.value(1.0)),
        tooltip=tooltip,
    )
    window = base.transform_filter("datum.in_window").mark_rect(
        fill=None, stroke="black", strokeWidth=1
    ).encode(x=x, x2="x1:Q", y=y, y2="y1:Q", tooltip=tooltip)
    spot = pd.DataFrame({"row": [query[0]], "col": [query[1]]})
    ring = alt.Chart(spot).mark_point(shape="circle", size=cell * 8, filled=False, color="black",
                                      strokeWidth=2.5).encode(x="col:Q", y="row:Q")
    return alt.layer(cells, window, ring, title=_title(title, cell * n_cols + 30)).properties(
        width=cell * n_cols, height=cell * n_rows, autosize=PAD)


def fc_matrix_chart(df: pd.DataFrame) -> alt.LayerChart:
    """fc's weight as a 3·head × kernel_conv² matrix: rows q/k/v × head, columns kernel offsets.
    As wide as its container (`st.altair_chart(..., width="stretch")`)."""
    rows = list(dict.fromkeys(df.sort_values("group")["input"]))
    cols = list(dict.fromkeys(df.sort_values("offset")["offset label"]))
    base = alt.Chart(df).encode(
        x=alt.X("offset label:N", title=_("output group i: kernel offset (dy, dx)"), sort=cols,
                axis=alt.Axis(labelAngle=-45 if len(cols) > 9 else 0)),
        y=alt.Y("input:N", title=_("input group: q/k/v · head"), sort=rows),
    )
    tooltip = [alt.Tooltip("input:N", title=_("input group")),
               alt.Tooltip("offset label:N", title=_("output group (offset)")),
               alt.Tooltip("value:Q", title=_("weight"), format=".5f")]
    layers = [base.mark_rect().encode(
        color=alt.Color("value:Q", title=_("weight"), scale=DIVERGING, legend=_legend(_("weight"))),
        tooltip=tooltip)]
    if len(rows) * len(cols) <= 400:
        layers.append(base.mark_text(fontSize=9).encode(
            text=alt.Text("value:Q", format=".2f"), color=alt.value("black"), tooltip=tooltip))
    return alt.layer(*layers, title="fc.weight[:, :, 0, 0].T").properties(
        width="container", height=min(700, 22 * len(rows)), autosize=FIT_X)


def shift_kernel_chart(df: pd.DataFrame, kernel_conv: int, title: str) -> alt.Chart | alt.FacetChart:
    """dep_conv.weight[o] (a frame of i, a, e, value), 1s dark.

    Up to kernel_conv = 5: one kc × kc kernel per input channel i of the group. Larger kernels
    are drawn flat, input channel i down and kernel position a·kc + e across, where shift
    kernels make the identity matrix.
    """
    tooltip = [alt.Tooltip("i:Q", title=_("input channel i of the group")),
               alt.Tooltip("a:Q", title=_("kernel row a")),
               alt.Tooltip("e:Q", title=_("kernel column e")),
               alt.Tooltip("value:Q", title=_("weight"), format=".4g")]
    scale = alt.Scale(scheme="greys", domainMin=0) if df["value"].min() >= 0 else DIVERGING
    colour = alt.Color("value:Q", title=_("weight"), scale=scale)
    if kernel_conv > 5:
        kk = kernel_conv * kernel_conv
        side = min(300, 4 * kk)
        return (
            alt.Chart(df, title=_title(_("{title}: rows i, columns a·kc + e", title=title), side))
            .transform_calculate(position=f"datum.a * {kernel_conv} + datum.e")
            .mark_rect()
            .encode(x=alt.X("position:O", title=_("kernel position a·kc + e"), axis=None),
                    y=alt.Y("i:O", title=_("input channel i"), axis=None),
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
        .facet(facet=alt.Facet("i:O", title=title_lines(title, 300),
                               header=alt.Header(labelExpr="'i = ' + datum.value")),
               columns=kernel_conv)
    )


def grouping_charts(df: pd.DataFrame) -> list[alt.Chart]:
    """Two strips over the output channels, each as wide as its container: attention head and conv
    group of each output channel, coloured by index.

    Contiguous blocks (attention: d channels per head) against a fine interleave (conv: h
    channels per group) make the two orders visible.
    """
    tooltip = [alt.Tooltip("output channel:Q", title=_("output channel")),
               alt.Tooltip("attention head:Q", title=_("attention head")),
               alt.Tooltip("channel in head:Q", title=_("channel in head")),
               alt.Tooltip("conv group:Q", title=_("conv group")),
               alt.Tooltip("f_conv channels:N", title=_("f_conv channels")),
               alt.Tooltip("q/k/v channels (conv):N", title=_("q/k/v channels (conv path)"))]
    n = len(df)

    def strip(field: str, title: str) -> alt.Chart:
        return alt.Chart(df, title=_title(title, 320)).mark_rect().encode(
            x=alt.X("output channel:O", title=_("output channel"),
                    axis=alt.Axis(values=list(range(0, n, max(1, n // 8))), labelAngle=0)),
            color=alt.Color(f"{field}:Q", scale=alt.Scale(scheme="turbo"), legend=None),
            tooltip=tooltip,
        ).properties(width="container", height=28, autosize=FIT_X)

    return [
        strip("attention head", _("attention path: head of each output channel (c // d)")),
        strip("conv group", _("convolution path: dep_conv group of each output channel (o // h)")),
    ]


def channel_share_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Attention path's share of each output channel; the rule marks an even split."""
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("channel:O", title=_("output channel"),
                axis=alt.Axis(values=list(range(0, len(df), max(1, len(df) // 8))), labelAngle=0)),
        y=alt.Y("attention share:Q", title=_("attention share"), scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("channel:Q", title=_("output channel")),
                 alt.Tooltip("attention share:Q", title=_("attention share"), format=".1%")],
    )
    rule = alt.Chart(pd.DataFrame({"y": [0.5]})).mark_rule(strokeDash=[4, 3], color="grey").encode(
        y="y:Q")
    return alt.layer(bars, rule, title=_title(_("The attention path's share per output channel"), 320)).properties(
        height=200, width="container", autosize=FIT_X)
