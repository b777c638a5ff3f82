"""Altair chart builders for the hyperparameter explorer: DataFrame in, alt.Chart out, no Streamlit.

Every builder takes rows from convmix.sweep (with `config`, `label`, `series` and `facet` from
`sweep.add_labels`), keeps only the columns it draws, and adds the same named point selection
(`SELECTION`, on the `config` field) so that a configuration picked in one chart, passed back as
`highlight`, is highlighted in all of them.

So that every effect can be read off:
  * scales fit the data: lines and points never start at zero unless the data do (bars do, where
    length is the message); ranges spanning orders of magnitude are drawn on log scales;
  * `relative=True` draws `<column>_rel` (sweep.relative_to): the change against a baseline
    configuration, so that a difference of 90 parameters in 17,822 is as visible as it is real;
  * one chart per facet (`facets`): the page lays them out side by side, and they stack on a phone;
  * latencies carry their spread (median and interquartile bar); a latency whose spread is too
    large (sweep.flag_noise) is drawn as a diamond, and its bar is cut at the plot's edge so that
    it cannot flatten the others;
  * bar charts are horizontal with one labelled row per configuration.
Text is translated into the active language where the chart is built (convmix.i18n); category
labels inside the data are translated too. Charts take their container's width.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from .counting import SUBMODULES
from .i18n import N_, _, ngettext
from .presets import RESNET_LAYERS
from .sweep import AXES, COMPONENTS, NOISY_SPREAD, component_column, facet_order, flag_noise

SELECTION = "pick"
WIDE = 20  # a range wider than this factor is drawn on a log scale

QUANTITY_TITLES = {
    "params": N_("parameters (count)"),
    "macs": N_("multiply-adds per forward (MACs)"),
    "flops": N_("floating-point operations per forward (FLOPs)"),
}
QUANTITY_NOUNS = {"params": N_("Parameters"), "macs": N_("Multiply-adds"), "flops": N_("FLOPs")}
AXIS_TITLES = {
    "layer": N_("ACmix ResNet layer"),
    "kernel_att": N_("kernel_att (attention window, positions per side)"),
    "head": N_("head (number of heads)"),
    "stride": N_("stride (pixels)"),
    "kernel_conv": N_("kernel_conv (conv kernel, pixels per side)"),
    "out_planes": N_("channels C (in_planes = out_planes)"),
    "in_planes": N_("in_planes (channels)"),
    "height": N_("resolution H = W (pixels)"),
    "width": N_("width W (pixels)"),
    "batch": N_("batch (images)"),
    "dilation": N_("dilation (pixels)"),
}
PART_NAMES = {
    "acmix": N_("ACmix (whole module)"),
    "stage1": N_("Stage I (conv1-3)"),
    "attention_path": N_("attention path"),
    "conv_path": N_("conv path (fc + dep_conv)"),
}
BASELINE_NAMES = {
    "acmix": N_("ACmix"),
    "conv2d": N_("Conv2d kc×kc"),
    "local_attention": N_("local self-attention"),
}
PALETTE = ["#1f77b4", "#c2185b", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f",
           "#bcbd22", "#e377c2"]


def x_column(x: str) -> str:
    """The result column of an axis name (channels -> out_planes, resolution -> height, layer -> layer)."""
    return AXES[x].column if x in AXES else x


def axis_title(x: str) -> str:
    col = x_column(x)
    return _(AXIS_TITLES[col]) if col in AXIS_TITLES else col


def axis_name(x: str) -> str:
    """A short name of the x axis for titles: the hyperparameter's own name where it has one."""
    col = x_column(x)
    if col == "layer":
        return _("the ResNet layer")
    return {"out_planes": "C", "height": "H = W"}.get(col, col)


# -- shared pieces ------------------------------------------------------------------------------------
def config_selection(highlight: str | None = None) -> alt.Parameter:
    """The shared selection: click a mark to pick its configuration, double-click to clear."""
    return alt.selection_point(
        name=SELECTION, fields=["config"], on="click", clear="dblclick",
        value=[{"config": highlight}] if highlight else alt.Undefined,
    )


def _highlight_opacity(selection, on: float = 1.0, off: float = 0.3):
    return alt.condition(selection, alt.value(on), alt.value(off))


def _fit(chart, height: int):
    """The container's width; `height` is the plot's own (titles, axes and legend come on top)."""
    return chart.properties(width="container", height=height,
                            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def _legend(title: str | None, columns: int = 2) -> alt.Legend:
    """Below the plot, so that a phone's narrow chart keeps its whole width for the data."""
    return alt.Legend(title=title, orient="bottom", direction="horizontal", columns=columns, labelLimit=260,
                      titleLimit=320)


def _title(lines: list[str], facet: str = "", subtitle: list[str] | str | None = None) -> alt.TitleParams:
    text = [*lines, facet] if facet else lines
    return alt.TitleParams(text=text if len(text) > 1 else text[0], subtitle=subtitle or alt.Undefined,
                           anchor="start", subtitleFontSize=11)


def is_wide(values) -> bool:
    """True when the positive values span at least a factor WIDE."""
    positive = [float(v) for v in values if v is not None and not pd.isna(v) and float(v) > 0]
    return bool(positive) and max(positive) / min(positive) >= WIDE


def _scale(values, log_base: int = 10, zero: bool = False) -> alt.Scale:
    """Log when the values span orders of magnitude; else linear, from zero only when asked (bars)."""
    if is_wide(values):
        return alt.Scale(type="log", base=log_base)
    return alt.Scale(zero=zero)


def _x_encoding(df: pd.DataFrame, x: str) -> alt.X:
    col = x_column(x)
    if col == "layer":
        order = [k for k in RESNET_LAYERS if k in set(df["layer"])]
        return alt.X("layer:N", title=axis_title(x), sort=order, axis=alt.Axis(labelAngle=-40, labelOverlap=False))
    base = 2 if col in ("out_planes", "in_planes", "head", "batch", "height", "width") else 10
    values = sorted(df[col].unique())
    axis = alt.Axis(values=[int(v) for v in values], format="d", labelOverlap=False)
    return alt.X(f"{col}:Q", title=axis_title(x), scale=_scale(values, base), axis=axis)


def facets(df: pd.DataFrame, facet: str | None) -> list[tuple[str, pd.DataFrame]]:
    """The rows split by their `facet` column (sweep.add_labels), in reading order; [("", df)]
    without a facet."""
    if not facet or df.empty or "facet" not in df:
        return [("", df)]
    return [(title, df[df["facet"] == title]) for title in facet_order(df, facet)]


RELATIVE_FORMAT = "+.1%"


def _relative_subtitle(baseline: str) -> list[str]:
    return [_("change against {baseline}", baseline=baseline),
            _("(in each chart: the configuration with its settings)")]


# -- devices -----------------------------------------------------------------------------------------
def device_labels(df: pd.DataFrame) -> pd.Series:
    """One label per row saying where it was measured: device name, dtype, threads or TF32."""

    def label(row) -> str:
        name = str(row.get("device_name") or row.get("device") or _("unknown device"))
        parts = [name, str(row.get("dtype") or "")]
        device = str(row.get("device") or "")
        threads = row.get("threads")
        if device == "cpu" and threads is not None and not pd.isna(threads):
            parts.append(ngettext("{count} thread", "{count} threads", int(threads), count=int(threads)))
        if device.startswith("cuda") and row.get("dtype") == "float32" and "tf32_matmul" in row:
            parts.append(_("TF32 on") if str(row["tf32_matmul"]).lower() in ("true", "1") else _("TF32 off"))
        impl = row.get("impl")
        if impl and not pd.isna(impl) and impl != "reference":
            parts.append(_("{impl} attention", impl=impl))
        return ", ".join(p for p in parts if p)

    if df.empty:
        return pd.Series(dtype=str)
    return pd.Series([label(r) for r in df.to_dict("records")], index=df.index)


def measured_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a latency, each with `measured_on`, `line` (series, plus device when several),
    and the noise flags `spread` and `noisy`."""
    if "latency_ms" not in df:
        return df.iloc[0:0].assign(measured_on=pd.Series(dtype=str), line=pd.Series(dtype=str),
                                   spread=pd.Series(dtype=float), noisy=pd.Series(dtype=bool))
    out = flag_noise(df[df["latency_ms"].notna()])
    out["measured_on"] = device_labels(out)
    several = out["measured_on"].nunique() > 1
    out["line"] = (out["series"] + " · " + out["measured_on"]) if several else out["series"]
    return out


def measured_title(what: str, df: pd.DataFrame) -> list[str]:
    """A chart title that names every device behind the data, one line each (so none is cut off)."""
    devices = list(dict.fromkeys(df["measured_on"])) if "measured_on" in df else []
    if not devices:
        return [what, _("measured on no device")]
    return [what, _("measured on {device}", device=devices[0]),
            *(_("and on {device}", device=d) for d in devices[1:])]


# -- counts ------------------------------------------------------------------------------------------
def totals_chart(df: pd.DataFrame, x: str, quantity: str = "params", highlight: str | None = None,
                 relative: bool = False, facet: str = "", baseline: str = "") -> alt.Chart:
    """Total parameters / MACs / FLOPs against one swept axis; one line per setting of the others.

    With `relative`, the change against the baseline (`<quantity>_rel`) instead of the total."""
    col = x_column(x)
    y = f"{quantity}_rel" if relative else quantity
    keep = [col, "params", "macs", "flops", "config", "label", "series"] + ([y] if relative else [])
    data = df[list(dict.fromkeys(keep))]
    if relative:
        data = data[data[y].notna()]
    pick = config_selection(highlight)
    y_title = _("change against the baseline") if relative else _(QUANTITY_TITLES[quantity])
    # ",~f", not ",": Vega's axis gives a format without a type the ticks' significant digits, and a
    # narrow range of counts then reads 1.782e+4 instead of 17,820.
    y_axis = alt.Axis(format=RELATIVE_FORMAT if relative else ("~s" if is_wide(data[quantity]) else ",~f"))
    base = alt.Chart(data).encode(
        x=_x_encoding(data, x),
        y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False) if relative else _scale(data[quantity]),
                axis=y_axis),
        color=alt.Color("series:N", legend=_legend(_("other settings"), 4), scale=alt.Scale(range=PALETTE)),
    )
    lines = base.mark_line(opacity=0.6)
    tooltip = [
        alt.Tooltip("label:N", title=_("configuration")),
        alt.Tooltip("params:Q", title=_("parameters"), format=","),
        alt.Tooltip("macs:Q", title=_("multiply-adds"), format=","),
        alt.Tooltip("flops:Q", title="FLOPs", format=","),
    ]
    if relative:
        tooltip.append(alt.Tooltip(f"{y}:Q", title=_("change against the baseline"), format=RELATIVE_FORMAT))
    points = base.mark_point(filled=True).encode(
        opacity=_highlight_opacity(pick),
        size=alt.condition(pick, alt.value(110), alt.value(50)),
        tooltip=tooltip,
    ).add_params(pick)
    noun = _(QUANTITY_NOUNS[quantity])
    subtitle = _relative_subtitle(baseline) if relative else \
        [_("exact: parameters read from the modules,"), _("operations from formulas checked by tests")]
    return _fit(alt.layer(lines, points).properties(
        title=_title([_("{quantity} against {axis}", quantity=noun, axis=axis_name(x))], facet, subtitle)), 260)


def breakdown_long(df: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """One row per (configuration, component): parameters per submodule, or operations per component."""
    if quantity == "params":
        parts = {name: [f"params_{name}"] for name in SUBMODULES if not name.startswith("rate")}
        parts["rate1, rate2"] = ["params_rate1", "params_rate2"]
    else:
        parts = {c: [component_column(quantity, c)] for c in COMPONENTS}
    rows = []
    for rec in df.to_dict("records"):
        total = rec[quantity]
        for component_order, (component, cols) in enumerate(parts.items()):
            value = int(sum(rec[c] for c in cols))
            name = _("attention ops") if component == "attention ops" else component
            rows.append({"config": rec["config"], "label": rec["label"], "row": rec.get("row", rec["label"]),
                         "component": name,
                         "component_order": component_order, "value": value,
                         "share": value / total if total else 0.0, "total": int(total)})
    return pd.DataFrame(rows, columns=["config", "label", "row", "component", "component_order", "value", "share",
                                       "total"])


BAR_STEP = 22  # pixels per horizontal bar: every label gets its own row


def breakdown_chart(df: pd.DataFrame, quantity: str = "params", normalize: bool = False,
                    highlight: str | None = None, facet: str = "") -> alt.Chart:
    """Stacked horizontal bars: where each configuration's parameters or operations sit, one labelled
    row per configuration."""
    data = breakdown_long(df, quantity)
    pick = config_selection(highlight)
    components = list(dict.fromkeys(data["component"])) if not data.empty else []
    labels = list(dict.fromkeys(data["row"])) if not data.empty else []
    what = _(QUANTITY_TITLES[quantity])
    x_title = _("share of the total") if normalize else what
    quantity_title = _("parameters") if quantity == "params" else \
        (_("multiply-adds") if quantity == "macs" else "FLOPs")
    chart = alt.Chart(data).mark_bar().encode(
        y=alt.Y("row:N", title=None, sort=labels, axis=alt.Axis(labelOverlap=False, labelLimit=220)),
        x=alt.X("value:Q", title=x_title, stack="normalize" if normalize else "zero",
                axis=alt.Axis(format="%" if normalize else "~s")),
        color=alt.Color("component:N", title=_("submodule") if quantity == "params" else _("component"),
                        scale=alt.Scale(domain=components, range=PALETTE), sort=components, legend=_legend(None, 4)),
        order=alt.Order("component_order:Q"),
        opacity=_highlight_opacity(pick, 1.0, 0.35),
        tooltip=[
            alt.Tooltip("label:N", title=_("configuration")),
            alt.Tooltip("component:N", title=_("part")),
            alt.Tooltip("value:Q", title=quantity_title, format=","),
            alt.Tooltip("share:Q", title=_("share of the total"), format=".1%"),
            alt.Tooltip("total:Q", title=_("total"), format=","),
        ],
    ).add_params(pick)
    noun = _("Parameters per submodule") if quantity == "params" else \
        (_("Multiply-adds per component") if quantity == "macs" else _("FLOPs per component"))
    subtitle = _("rate1 and rate2 are one scalar each") if quantity == "params" else \
        [_("attention ops: the attention path's"), _("weight-free arithmetic")]
    return _fit(chart.properties(title=_title([noun], facet, subtitle)), BAR_STEP * max(1, len(labels)))


def stage_share_chart(df: pd.DataFrame, kind: str = "flops", highlight: str | None = None,
                      mark_channels: int | None = None) -> alt.Chart:
    """Stage I's share of all operations as the channel count grows (in_planes = out_planes)."""
    share = f"stage1_share_{kind}"
    data = df[["out_planes", share, f"{kind}_stage1", kind, "config", "label", "series"]].rename(
        columns={share: "share", f"{kind}_stage1": "stage1", kind: "total"})
    pick = config_selection(highlight)
    noun = _("multiply-adds") if kind == "macs" else "FLOPs"
    channels = sorted(data["out_planes"].unique())
    base = alt.Chart(data).encode(
        x=alt.X("out_planes:Q", title=_(AXIS_TITLES["out_planes"]),
                scale=alt.Scale(type="log", base=2), axis=alt.Axis(values=[int(c) for c in channels], format="d")),
        y=alt.Y("share:Q", title=_("Stage I share of {what}", what=noun), scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=alt.Color("series:N", legend=_legend(_("other settings"), 4), scale=alt.Scale(range=PALETTE)),
    )
    lines = base.mark_line(opacity=0.7)
    points = base.mark_point(size=70).encode(
        shape=alt.condition("datum.share > 0.5", alt.value("circle"), alt.value("triangle-down")),
        fill=alt.condition("datum.share > 0.5", alt.Color("series:N"), alt.value("white")),
        opacity=_highlight_opacity(pick),
        tooltip=[
            alt.Tooltip("label:N", title=_("configuration")),
            alt.Tooltip("share:Q", title=_("Stage I share"), format=".2%"),
            alt.Tooltip("stage1:Q", title=_("Stage I {what}", what=noun), format=","),
            alt.Tooltip("total:Q", title=_("all {what}", what=noun), format=","),
        ],
    ).add_params(pick)
    half = alt.Chart(pd.DataFrame({"y": [0.5], "text": [_("half")]}))
    rule = half.mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    text = half.mark_text(align="left", dx=4, dy=-6, color="gray").encode(y="y:Q", text="text:N", x=alt.value(0))
    layers = [rule, text, lines, points]
    if mark_channels:
        marker = alt.Chart(pd.DataFrame({"out_planes": [mark_channels],
                                         "text": [_("sidebar: C = {channels}", channels=mark_channels)]}))
        layers.append(marker.mark_rule(color="gray", opacity=0.5).encode(x="out_planes:Q"))
        layers.append(marker.mark_text(angle=270, align="right", dx=-4, dy=-6, color="gray").encode(
            x="out_planes:Q", y=alt.value(0), text="text:N"))
    return _fit(alt.layer(*layers).properties(
        title=_title(
            [_("Stage I's share of all {what} as channels grow", what=noun)],
            subtitle=[_("filled circles: Stage I is more than half of the cost"), _("(the paper's claim holds);"),
                      _("open triangles: it is not")],
        ),
    ), 300)


# -- measurements -------------------------------------------------------------------------------------
_MS = ",.4f"
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _noise_names() -> tuple[str, str]:
    return _("steady"), _("noisy (spread > {limit:.0%})", limit=NOISY_SPREAD)


def _noise_shape() -> alt.Shape:
    """Steady latencies as filled circles, noisy ones as diamonds (with a legend that says why)."""
    steady, noisy = _noise_names()
    return alt.Shape("noise:N", scale=alt.Scale(domain=[steady, noisy], range=["circle", "diamond"]),
                     legend=_legend(_("measurement"), 1))


def _with_noise_label(data: pd.DataFrame) -> pd.DataFrame:
    steady, noisy = _noise_names()
    return data.assign(noise=data["noisy"].map({True: noisy, False: steady}))


def _fitted_domain(medians: pd.Series, low: pd.Series, high: pd.Series, log: bool) -> list[float]:
    """The y range that holds every median and the quartiles of the steady rows (noisy rows' bands
    are cut at its edge)."""
    values = pd.concat([medians, low, high]).dropna()
    values = values[values > 0] if log else values
    if values.empty:
        return [0.0, 1.0]
    lo, hi = float(values.min()), float(values.max())
    if log:
        return [lo / 1.15, hi * 1.15]
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    return [lo - pad, hi + pad]


def latency_chart(df: pd.DataFrame, x: str, highlight: str | None = None, relative: bool = False,
                  facet: str = "", baseline: str = "") -> alt.Chart:
    """Median latency against one swept axis, with its interquartile bar; title names the device.

    Noisy rows (sweep.flag_noise) are diamonds whose bar is cut at the edge of a scale fitted to the
    medians and the steady rows' quartiles. With `relative`, the change against the baseline's
    median (`latency_ms_rel`, and the quartiles against the same median)."""
    col = x_column(x)
    rows = measured_rows(df)
    suffix = "_rel" if relative else ""
    med, lo_col, hi_col = f"latency_ms{suffix}", f"latency_ms_p25{suffix}", f"latency_ms_p75{suffix}"
    keep = [col, "latency_ms", "latency_ms_p25", "latency_ms_p75", "spread", "noisy", "config", "label", "line",
            "measured_on"] + ([med, lo_col, hi_col] if relative else [])
    extra = [c for c in ("timed_samples", "others_cpu_share") if c in rows]
    data = rows[list(dict.fromkeys(keep + extra))]
    if relative:
        data = data[data[med].notna()]
    data = _with_noise_label(data)
    pick = config_selection(highlight)
    steady = data[~data["noisy"]]
    log = not relative and is_wide(list(data[med]) + list(steady[lo_col]) + list(steady[hi_col]))
    domain = _fitted_domain(data[med], steady[lo_col], steady[hi_col], log)
    y_scale = alt.Scale(type="log", domain=domain) if log else alt.Scale(domain=domain, zero=False, nice=False)
    y_title = _("change against the baseline") if relative else _("latency per forward (ms)")
    y_axis = alt.Axis(format=RELATIVE_FORMAT) if relative else alt.Axis()
    base = alt.Chart(data).encode(
        x=_x_encoding(data, x),
        color=alt.Color("line:N", legend=_legend(_("settings"), 4), scale=alt.Scale(range=PALETTE)),
    )
    iqr = base.mark_rule(strokeWidth=2, opacity=0.55, clip=True).encode(
        y=alt.Y(f"{lo_col}:Q", title=y_title, scale=y_scale, axis=y_axis), y2=f"{hi_col}:Q")
    line = base.mark_line(clip=True, opacity=0.7).encode(y=alt.Y(f"{med}:Q", scale=y_scale))
    tooltip = [
        alt.Tooltip("label:N", title=_("configuration")),
        alt.Tooltip("measured_on:N", title=_("measured on")),
        alt.Tooltip("latency_ms:Q", title=_("median (ms)"), format=_MS),
        alt.Tooltip("latency_ms_p25:Q", title=_("25th percentile (ms)"), format=_MS),
        alt.Tooltip("latency_ms_p75:Q", title=_("75th percentile (ms)"), format=_MS),
        alt.Tooltip("spread:Q", title=_("spread (interquartile range / median)"), format=".0%"),
    ]
    if relative:
        tooltip.append(alt.Tooltip(f"{med}:Q", title=_("change against the baseline"), format=RELATIVE_FORMAT))
    if "timed_samples" in data:
        tooltip.append(alt.Tooltip("timed_samples:Q", title=_("timed samples")))
    if "others_cpu_share" in data:
        tooltip.append(alt.Tooltip("others_cpu_share:Q", title=_("CPU time used by other processes"),
                                   format=".0%"))
    points = base.mark_point(filled=True, clip=True).encode(
        y=alt.Y(f"{med}:Q", scale=y_scale),
        shape=_noise_shape(),
        opacity=_highlight_opacity(pick),
        size=alt.condition(pick, alt.value(130), alt.value(60)),
        tooltip=tooltip,
    ).add_params(pick)
    subtitle = [_("points: median of the timed calls;"), _("bars: 25th to 75th percentile")]
    if relative:
        subtitle = _relative_subtitle(baseline) + subtitle
    if data["noisy"].any():
        subtitle += [_("diamonds: noisy measurements,"), _("their bars cut at the chart's edge")]
    return _fit(alt.layer(iqr, line, points).properties(
        title=_title(measured_title(_("ACmix latency"), data), facet, subtitle)), 280)


def grouped_latency_long(df: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """One row per (configuration, timed thing) with median and quartiles, for grouped bars."""
    rows = measured_rows(df)
    several = rows["measured_on"].nunique() > 1 if not rows.empty else False
    out = []
    for rec in rows.to_dict("records"):
        for key, name in names.items():
            prefix = "latency_ms" if key == "acmix" else f"{key}_ms"
            if prefix not in rec or pd.isna(rec.get(prefix)):
                continue
            out.append({
                "config": rec["config"], "label": rec["label"],
                "group": f"{rec.get('row', rec['label'])} · {rec['measured_on']}" if several
                else rec.get("row", rec["label"]),
                "what": _(name),
                "median": rec[prefix], "p25": rec[f"{prefix}_p25"], "p75": rec[f"{prefix}_p75"],
                "measured_on": rec["measured_on"],
                "vs_acmix": rec[prefix] / rec["latency_ms"] if rec["latency_ms"] else math.nan,
            })
    return pd.DataFrame(out, columns=["config", "label", "group", "what", "median", "p25", "p75", "measured_on",
                                      "vs_acmix"])


def _grouped_latency_chart(data: pd.DataFrame, names: dict[str, str], title: str, subtitle: list[str],
                           highlight: str | None, facet: str) -> alt.Chart:
    """Horizontal bars, one labelled group per configuration, one bar per timed thing."""
    pick = config_selection(highlight)
    order = [_(n) for n in names.values()]
    groups = list(dict.fromkeys(data["group"]))
    values = list(data["p25"]) + list(data["p75"])
    x_scale = _scale(values, 10, zero=True)
    if is_wide(values):
        # Bars on a log scale cannot start at 0: start them at the decade below the smallest value.
        data = data.assign(bar_base=10 ** math.floor(math.log10(min(v for v in values if v > 0))))
        bar_end = {"x2": alt.X2("bar_base:Q")}
    else:
        bar_end = {}
    base = alt.Chart(data).encode(
        y=alt.Y("group:N", title=None, sort=groups, axis=alt.Axis(labelOverlap=False, labelLimit=220)),
        yOffset=alt.YOffset("what:N", sort=order),
    )
    bars = base.mark_bar().encode(
        **bar_end,
        x=alt.X("median:Q", title=_("latency per forward (ms)"), scale=x_scale),
        color=alt.Color("what:N", sort=order, scale=alt.Scale(domain=order, range=PALETTE), legend=_legend(None, 2)),
        opacity=_highlight_opacity(pick, 1.0, 0.35),
        tooltip=[
            alt.Tooltip("label:N", title=_("configuration")),
            alt.Tooltip("what:N", title=_("timed")),
            alt.Tooltip("median:Q", title=_("median (ms)"), format=_MS),
            alt.Tooltip("p25:Q", title=_("25th percentile (ms)"), format=_MS),
            alt.Tooltip("p75:Q", title=_("75th percentile (ms)"), format=_MS),
            alt.Tooltip("vs_acmix:Q", title=_("× ACmix's median"), format=".3f"),
            alt.Tooltip("measured_on:N", title=_("measured on")),
        ],
    ).add_params(pick)
    whiskers = base.mark_rule(color="black", opacity=0.7).encode(x=alt.X("p25:Q", scale=x_scale), x2="p75:Q")
    height = max(1, len(groups)) * (len(order) * 9 + 12)
    return _fit(alt.layer(bars, whiskers).properties(
        title=_title(measured_title(title, data), facet, subtitle)), height)


def parts_chart(df: pd.DataFrame, highlight: str | None = None, facet: str = "") -> alt.Chart:
    """ACmix's latency beside its Stage I, attention path and conv path, each clocked inside its forward."""
    data = grouped_latency_long(df, PART_NAMES)
    return _grouped_latency_chart(
        data, PART_NAMES, _("Where ACmix's time goes"),
        [_("each part timed inside ACmix's own forward,"), _("in the same calls as the total;"),
         _("the rest (grid, reshapes, mix) is the difference;"),
         _("bars: median, whiskers: 25th to 75th percentile")], highlight, facet)


def baselines_chart(df: pd.DataFrame, highlight: str | None = None, facet: str = "") -> alt.Chart:
    """ACmix beside a plain kc×kc Conv2d and local self-attention built from the same sizes."""
    data = grouped_latency_long(df, BASELINE_NAMES)
    return _grouped_latency_chart(
        data, BASELINE_NAMES, _("ACmix against its baselines"),
        [_("Conv2d(in_planes, out_planes, kernel_conv, stride);"),
         _("local self-attention: conv1-3, conv_p and the attention path alone;"),
         _("bars: median, whiskers: 25th to 75th percentile")], highlight, facet)


def _decades(values: pd.Series) -> tuple[float, float]:
    """The powers of ten just below the smallest and just above the largest positive value."""
    positive = values[values > 0]
    if positive.empty:
        return 1e-3, 1.0
    lo, hi = math.floor(math.log10(positive.min())), math.ceil(math.log10(positive.max()))
    return 10.0**lo, 10.0 ** max(hi, lo + 1)


def roofline_chart(df: pd.DataFrame, highlight: str | None = None) -> alt.Chart:
    """Measured median latency against the roofline floor; diagonals mark 1×, 10×, 100×... the floor."""
    cols = ["floor_ms", "latency_ms", "floor_ratio", "floor_bound", "peak_flops_per_s", "peak_bytes_per_s",
            "flops", "compulsory_bytes", "config", "label", "line", "measured_on"]
    rows = measured_rows(df).reindex(columns=cols)  # files measured elsewhere may lack the floor
    data = rows[rows["floor_ms"].notna()].copy()
    data["peak_gflops"] = data["peak_flops_per_s"] / 1e9
    data["peak_gbps"] = data["peak_bytes_per_s"] / 1e9
    data["bound"] = data["floor_bound"].map({"compute": _("compute"), "memory": _("memory traffic")})
    pick = config_selection(highlight)
    x_lo, x_hi = _decades(data["floor_ms"])
    y_lo, y_hi = _decades(data["latency_ms"])
    diagonals = []
    for power in range(max(0, math.floor(math.log10(y_lo / x_hi))), math.ceil(math.log10(y_hi / x_lo)) + 1):
        ratio = 10**power
        start, end = max(x_lo, y_lo / ratio), min(x_hi, y_hi / ratio)  # where y = ratio · x is in view
        if start < end:
            name = f"{ratio:,}×" if power <= 3 else f"10{str(power).translate(_SUPERSCRIPT)}×"
            diagonals += [{"ratio": name, "floor_ms": start, "latency_ms": start * ratio, "end": False},
                          {"ratio": name, "floor_ms": end, "latency_ms": end * ratio, "end": True}]
    guide_data = pd.DataFrame(diagonals, columns=["ratio", "floor_ms", "latency_ms", "end"])
    x_scale = alt.Scale(type="log", domain=[x_lo, x_hi])
    y_scale = alt.Scale(type="log", domain=[y_lo, y_hi])
    guides = alt.Chart(guide_data).mark_line(color="gray", strokeDash=[3, 3], opacity=0.6).encode(
        x=alt.X("floor_ms:Q", scale=x_scale), y=alt.Y("latency_ms:Q", scale=y_scale), detail="ratio:N")
    guide_text = alt.Chart(guide_data[guide_data["end"]]).mark_text(
        align="right", dx=-4, dy=10, color="gray", fontSize=10).encode(
        x=alt.X("floor_ms:Q", scale=x_scale), y=alt.Y("latency_ms:Q", scale=y_scale), text="ratio:N")
    points = alt.Chart(data).mark_point(filled=True).encode(
        x=alt.X("floor_ms:Q", title=_("roofline floor (ms)"), scale=x_scale),
        y=alt.Y("latency_ms:Q", title=_("measured median latency (ms)"), scale=y_scale),
        color=alt.Color("line:N", legend=_legend(_("settings"), 4), scale=alt.Scale(range=PALETTE)),
        shape=alt.Shape("bound:N", legend=_legend(_("floor set by"), 2)),
        opacity=_highlight_opacity(pick),
        size=alt.condition(pick, alt.value(130), alt.value(60)),
        tooltip=[
            alt.Tooltip("label:N", title=_("configuration")),
            alt.Tooltip("latency_ms:Q", title=_("measured median (ms)"), format=_MS),
            alt.Tooltip("floor_ms:Q", title=_("floor (ms)"), format=",.6f"),
            alt.Tooltip("floor_ratio:Q", title=_("measured / floor"), format=",.1f"),
            alt.Tooltip("bound:N", title=_("floor set by")),
            alt.Tooltip("flops:Q", title="FLOPs", format=","),
            alt.Tooltip("compulsory_bytes:Q", title=_("compulsory bytes"), format=","),
            alt.Tooltip("peak_gflops:Q", title=_("measured peak (GFLOP/s)"), format=",.1f"),
            alt.Tooltip("peak_gbps:Q", title=_("measured bandwidth (GB/s)"), format=",.1f"),
            alt.Tooltip("measured_on:N", title=_("measured on")),
        ],
    ).add_params(pick)
    return _fit(alt.layer(guides, guide_text, points).properties(
        title=_title(
            measured_title(_("Latency against the roofline floor"), data),
            subtitle=[_("floor = max(FLOPs / peak FLOP/s,"), _("compulsory bytes / bandwidth):"),
                      _("an estimate, not a bound; peaks measured here"), _("(a large matmul, a large copy);"),
                      _("compulsory bytes: input + weights + output;"),
                      _("dotted diagonals: 1×, 10×, 100×, … the floor")]),
    ), 380)


def memory_chart(df: pd.DataFrame, x: str, highlight: str | None = None, relative: bool = False,
                 facet: str = "", baseline: str = "") -> alt.Chart:
    """Measured peak memory of one forward against one swept axis, with the estimate from shapes."""
    col = x_column(x)
    rows = measured_rows(df)
    rows = rows[rows["peak_bytes"].notna()]
    keep = [col, "peak_bytes", "config", "label", "line", "measured_on"] + \
        [c for c in ("estimated_peak_bytes", "peak_bytes_rel") if c in rows]
    data = rows[list(dict.fromkeys(keep))].copy()
    data["peak_mib"] = data["peak_bytes"] / 2**20
    if relative:
        data = data[data["peak_bytes_rel"].notna()]
    y = "peak_bytes_rel" if relative else "peak_mib"
    pick = config_selection(highlight)
    base = alt.Chart(data).encode(
        x=_x_encoding(data, x),
        y=alt.Y(f"{y}:Q", title=_("change against the baseline") if relative else _("peak memory (MiB)"),
                scale=alt.Scale(zero=False) if relative else _scale(data["peak_mib"]),
                axis=alt.Axis(format=RELATIVE_FORMAT) if relative else alt.Axis()),
        color=alt.Color("line:N", legend=_legend(_("settings"), 4), scale=alt.Scale(range=PALETTE)),
    )
    tooltip = [
        alt.Tooltip("label:N", title=_("configuration")),
        alt.Tooltip("peak_bytes:Q", title=_("measured peak (bytes)"), format=","),
        alt.Tooltip("measured_on:N", title=_("measured on")),
    ]
    if "estimated_peak_bytes" in data:
        tooltip.insert(2, alt.Tooltip("estimated_peak_bytes:Q", title=_("estimated from shapes (bytes)"), format=","))
    if relative:
        tooltip.append(alt.Tooltip(f"{y}:Q", title=_("change against the baseline"), format=RELATIVE_FORMAT))
    points = base.mark_point(filled=True).encode(
        opacity=_highlight_opacity(pick), size=alt.condition(pick, alt.value(120), alt.value(50)),
        tooltip=tooltip,
    ).add_params(pick)
    subtitle = [_("bytes one no-grad forward allocates"), _("beyond its input and weights")]
    if relative:
        subtitle = _relative_subtitle(baseline) + subtitle
    return _fit(alt.layer(base.mark_line(opacity=0.6), points).properties(
        title=_title(measured_title(_("Peak memory"), data), facet, subtitle)), 260)
