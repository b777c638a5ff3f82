"""Altair chart builders for the hyperparameter explorer: DataFrame in, alt.Chart out, no Streamlit.

Every builder takes rows from convmix.sweep (with `config`, `label` and `series` from
`sweep.add_labels`), keeps only the columns it draws, and adds the same named point selection
(`SELECTION`, on the `config` field) so that a configuration picked in one chart, passed back as
`highlight`, is highlighted in all of them. Axes carry units; value ranges that span orders of
magnitude get log scales; latency charts name the device that measured them in their title.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from .counting import SUBMODULES
from .sweep import AXES, COMPONENTS, component_column

SELECTION = "pick"
WIDE = 20  # a range wider than this factor is drawn on a log scale

QUANTITY_TITLES = {
    "params": "parameters (count)",
    "macs": "multiply-adds per forward (MACs)",
    "flops": "floating-point operations per forward (FLOPs)",
}
AXIS_TITLES = {
    "kernel_att": "kernel_att (attention window, positions per side)",
    "head": "head (number of heads)",
    "stride": "stride (pixels)",
    "kernel_conv": "kernel_conv (conv kernel, pixels per side)",
    "out_planes": "channels C (in_planes = out_planes)",
    "in_planes": "in_planes (channels)",
    "height": "resolution H = W (pixels)",
    "width": "width W (pixels)",
    "batch": "batch (images)",
    "dilation": "dilation (pixels)",
}
PART_NAMES = {
    "acmix": "ACmix (whole module)",
    "stage1": "Stage I (conv1-3)",
    "attention_path": "attention path",
    "conv_path": "conv path (fc + dep_conv)",
}
BASELINE_NAMES = {
    "acmix": "ACmix",
    "conv2d": "Conv2d kc×kc",
    "local_attention": "local self-attention",
}


def x_column(x: str) -> str:
    """The result column of an axis name (channels -> out_planes, resolution -> height)."""
    return AXES[x].column if x in AXES else x


def axis_title(x: str) -> str:
    col = x_column(x)
    return AXIS_TITLES.get(col, col)


def config_selection(highlight: str | None = None) -> alt.Parameter:
    """The shared selection: click a mark to pick its configuration, double-click to clear."""
    return alt.selection_point(
        name=SELECTION, fields=["config"], on="click", clear="dblclick",
        value=[{"config": highlight}] if highlight else alt.Undefined,
    )


def _highlight_opacity(selection, on: float = 1.0, off: float = 0.3):
    return alt.condition(selection, alt.value(on), alt.value(off))


def is_wide(values) -> bool:
    """True when the positive values span at least a factor WIDE."""
    positive = [float(v) for v in values if v is not None and not pd.isna(v) and float(v) > 0]
    return bool(positive) and max(positive) / min(positive) >= WIDE


def _scale(values, log_base: int = 10, zero: bool = True) -> alt.Scale:
    if is_wide(values):
        return alt.Scale(type="log", base=log_base)
    return alt.Scale(zero=zero)


def _x_encoding(df: pd.DataFrame, x: str) -> alt.X:
    col = x_column(x)
    base = 2 if col in ("out_planes", "in_planes", "head", "batch", "height", "width") else 10
    values = sorted(df[col].unique())
    axis = alt.Axis(values=[int(v) for v in values], format="d")
    return alt.X(f"{col}:Q", title=axis_title(x), scale=_scale(values, base, zero=False), axis=axis)


# -- devices -----------------------------------------------------------------------------------------
def device_labels(df: pd.DataFrame) -> pd.Series:
    """One label per row saying where it was measured: device name, dtype, threads or TF32."""

    def label(row) -> str:
        name = str(row.get("device_name") or row.get("device") or "unknown device")
        parts = [name, str(row.get("dtype") or "")]
        device = str(row.get("device") or "")
        threads = row.get("threads")
        if device == "cpu" and threads is not None and not pd.isna(threads):
            parts.append(f"{int(threads)} thread{'s' if int(threads) != 1 else ''}")
        if device.startswith("cuda") and row.get("dtype") == "float32" and "tf32_matmul" in row:
            parts.append("TF32 on" if str(row["tf32_matmul"]).lower() in ("true", "1") else "TF32 off")
        impl = row.get("impl")
        if impl and not pd.isna(impl) and impl != "reference":
            parts.append(f"{impl} attention")
        return ", ".join(p for p in parts if p)

    if df.empty:
        return pd.Series(dtype=str)
    return pd.Series([label(r) for r in df.to_dict("records")], index=df.index)


def measured_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a latency, each with `measured_on` and `line` (series, plus device when several)."""
    if "latency_ms" not in df:
        return df.iloc[0:0].assign(measured_on=pd.Series(dtype=str), line=pd.Series(dtype=str))
    out = df[df["latency_ms"].notna()].copy()
    out["measured_on"] = device_labels(out)
    several = out["measured_on"].nunique() > 1
    out["line"] = (out["series"] + " · " + out["measured_on"]) if several else out["series"]
    return out


def measured_title(what: str, df: pd.DataFrame) -> list[str]:
    """A chart title that names every device behind the data, one line each (so none is cut off)."""
    devices = list(dict.fromkeys(df["measured_on"])) if "measured_on" in df else []
    if not devices:
        return [what, "measured on no device"]
    return [what, f"measured on {devices[0]}", *(f"and on {d}" for d in devices[1:])]


# -- counts ------------------------------------------------------------------------------------------
def totals_chart(df: pd.DataFrame, x: str, quantity: str = "params", highlight: str | None = None) -> alt.Chart:
    """Total parameters / MACs / FLOPs against one swept axis; one line per setting of the others."""
    col = x_column(x)
    data = df[[col, "params", "macs", "flops", "config", "label", "series"]]
    pick = config_selection(highlight)
    base = alt.Chart(data).encode(
        x=_x_encoding(data, x),
        y=alt.Y(f"{quantity}:Q", title=QUANTITY_TITLES[quantity], scale=_scale(data[quantity])),
        color=alt.Color("series:N", title="other settings"),
    )
    lines = base.mark_line(opacity=0.6)
    points = base.mark_point(filled=True, size=70).encode(
        opacity=_highlight_opacity(pick),
        size=alt.condition(pick, alt.value(110), alt.value(50)),
        tooltip=[
            alt.Tooltip("label:N", title="configuration"),
            alt.Tooltip("params:Q", title="parameters", format=","),
            alt.Tooltip("macs:Q", title="multiply-adds", format=","),
            alt.Tooltip("flops:Q", title="FLOPs", format=","),
        ],
    ).add_params(pick)
    return alt.layer(lines, points).properties(
        title=alt.TitleParams(f"{QUANTITY_TITLES[quantity].split(' (')[0].capitalize()} against {col}",
                              subtitle="exact: parameters from the modules, operations from checked formulas"),
        height=320,
    )


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
            rows.append({"config": rec["config"], "label": rec["label"], "component": component,
                         "component_order": component_order, "value": value,
                         "share": value / total if total else 0.0, "total": int(total)})
    return pd.DataFrame(rows)


def breakdown_chart(df: pd.DataFrame, quantity: str = "params", normalize: bool = False,
                    highlight: str | None = None) -> alt.Chart:
    """Stacked bars: where each configuration's parameters or operations sit, submodule by submodule."""
    data = breakdown_long(df, quantity)
    pick = config_selection(highlight)
    components = list(dict.fromkeys(data["component"])) if not data.empty else []
    labels = list(dict.fromkeys(data["label"])) if not data.empty else []
    what = QUANTITY_TITLES[quantity]
    x_title = f"share of {what.split(' (')[0]} (%)" if normalize else what
    chart = alt.Chart(data).mark_bar().encode(
        y=alt.Y("label:N", title="configuration", sort=labels),
        x=alt.X("value:Q", title=x_title, stack="normalize" if normalize else "zero",
                axis=alt.Axis(format="%" if normalize else "~s")),
        color=alt.Color("component:N", title="submodule" if quantity == "params" else "component",
                        scale=alt.Scale(domain=components), sort=components),
        order=alt.Order("component_order:Q"),
        opacity=_highlight_opacity(pick, 1.0, 0.35),
        tooltip=[
            alt.Tooltip("label:N", title="configuration"),
            alt.Tooltip("component:N"),
            alt.Tooltip("value:Q", title=quantity, format=","),
            alt.Tooltip("share:Q", title="share of total", format=".1%"),
            alt.Tooltip("total:Q", title=f"total {quantity}", format=","),
        ],
    ).add_params(pick)
    noun = "Parameters per submodule" if quantity == "params" else f"{quantity.upper() if quantity == 'macs' else 'FLOPs'} per component"
    return chart.properties(
        title=alt.TitleParams(noun, subtitle="attention ops: the attention path's weight-free arithmetic"
                              if quantity != "params" else "rate1 and rate2 are one scalar each"),
        # Streamlit fits the whole chart (title, axis, legend) into the height: leave room for them.
        height=max(300, 120 + 30 * len(labels)),
    )


def stage_share_chart(df: pd.DataFrame, kind: str = "flops", highlight: str | None = None,
                      mark_channels: int | None = None) -> alt.Chart:
    """Stage I's share of all operations as the channel count grows (in_planes = out_planes)."""
    share = f"stage1_share_{kind}"
    data = df[["out_planes", share, f"{kind}_stage1", kind, "config", "label", "series"]].rename(
        columns={share: "share", f"{kind}_stage1": "stage1", kind: "total"})
    data = data.assign(dominates=data["share"].gt(0.5).map({True: "Stage I dominates", False: "Stage II dominates"}))
    pick = config_selection(highlight)
    noun = "multiply-adds" if kind == "macs" else "FLOPs"
    channels = sorted(data["out_planes"].unique())
    base = alt.Chart(data).encode(
        x=alt.X("out_planes:Q", title="channels C (in_planes = out_planes)",
                scale=alt.Scale(type="log", base=2), axis=alt.Axis(values=[int(c) for c in channels], format="d")),
        y=alt.Y("share:Q", title=f"Stage I share of {noun} (%)", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=alt.Color("series:N", title="other settings"),
    )
    lines = base.mark_line(opacity=0.7)
    points = base.mark_point(size=70).encode(
        shape=alt.Shape("dominates:N", title="", scale=alt.Scale(
            domain=["Stage I dominates", "Stage II dominates"], range=["circle", "triangle-down"]),
            legend=None),  # the subtitle says what the two shapes mean
        fill=alt.condition("datum.share > 0.5", alt.Color("series:N"), alt.value("white")),
        opacity=_highlight_opacity(pick),
        tooltip=[
            alt.Tooltip("label:N", title="configuration"),
            alt.Tooltip("share:Q", title="Stage I share", format=".2%"),
            alt.Tooltip("stage1:Q", title=f"Stage I {noun}", format=","),
            alt.Tooltip("total:Q", title=f"all {noun}", format=","),
        ],
    ).add_params(pick)
    half = alt.Chart(pd.DataFrame({"y": [0.5], "text": ["half: above, Stage I dominates"]}))
    rule = half.mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    text = half.mark_text(align="left", dx=4, dy=-6, color="gray").encode(
        y="y:Q", text="text:N", x=alt.value(0))
    layers = [rule, text, lines, points]
    if mark_channels:
        marker = alt.Chart(pd.DataFrame({"out_planes": [mark_channels], "text": [f"sidebar: C = {mark_channels}"]}))
        layers.append(marker.mark_rule(color="gray", opacity=0.5).encode(x="out_planes:Q"))
        layers.append(marker.mark_text(angle=270, align="right", dx=-4, dy=-6, color="gray").encode(
            x="out_planes:Q", y=alt.value(0), text="text:N"))
    return alt.layer(*layers).properties(
        title=alt.TitleParams(
            f"Stage I's share of all {noun} as channels grow",
            subtitle=["filled circles: Stage I is more than half of the cost (the paper's claim holds);",
                      "open triangles: it is not"],
        ),
        height=340,
    )


# -- measurements -------------------------------------------------------------------------------------
_MS = ",.4f"
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def latency_chart(df: pd.DataFrame, x: str, highlight: str | None = None) -> alt.Chart:
    """Median latency against one swept axis, with its interquartile band; title names the device."""
    col = x_column(x)
    rows = measured_rows(df)
    keep = [col, "latency_ms", "latency_ms_p25", "latency_ms_p75", "config", "label", "line", "measured_on"]
    extra = [c for c in ("timed_samples", "impl", "source") if c in rows]
    data = rows[keep + extra]
    pick = config_selection(highlight)
    values = list(data["latency_ms_p25"]) + list(data["latency_ms_p75"])
    y_scale = _scale(values, 10, zero=False)
    base = alt.Chart(data).encode(x=_x_encoding(data, x), color=alt.Color("line:N", title="settings"))
    band = base.mark_area(opacity=0.18).encode(
        y=alt.Y("latency_ms_p25:Q", title="latency per forward (ms)", scale=y_scale), y2="latency_ms_p75:Q")
    iqr = base.mark_rule(strokeWidth=2, opacity=0.6).encode(y=alt.Y("latency_ms_p25:Q", scale=y_scale),
                                                           y2="latency_ms_p75:Q")
    line = base.mark_line().encode(y=alt.Y("latency_ms:Q", scale=y_scale))
    tooltip = [
        alt.Tooltip("label:N", title="configuration"),
        alt.Tooltip("measured_on:N", title="measured on"),
        alt.Tooltip("latency_ms:Q", title="median (ms)", format=_MS),
        alt.Tooltip("latency_ms_p25:Q", title="25th percentile (ms)", format=_MS),
        alt.Tooltip("latency_ms_p75:Q", title="75th percentile (ms)", format=_MS),
    ] + [alt.Tooltip(f"{c}:N" if c != "timed_samples" else f"{c}:Q", title=c.replace("_", " ")) for c in extra]
    points = base.mark_point(filled=True).encode(
        y=alt.Y("latency_ms:Q", scale=y_scale),
        opacity=_highlight_opacity(pick),
        size=alt.condition(pick, alt.value(120), alt.value(50)),
        tooltip=tooltip,
    ).add_params(pick)
    return alt.layer(band, iqr, line, points).properties(
        title=alt.TitleParams(measured_title("ACmix latency", data),
                              subtitle="line: median of the timed calls; band and bars: 25th to 75th percentile"),
        height=340,
    )


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
                "config": rec["config"],
                "group": f"{rec['label']} · {rec['measured_on']}" if several else rec["label"],
                "what": name,
                "median": rec[prefix], "p25": rec[f"{prefix}_p25"], "p75": rec[f"{prefix}_p75"],
                "measured_on": rec["measured_on"],
                "vs_acmix": rec[prefix] / rec["latency_ms"] if rec["latency_ms"] else math.nan,
            })
    return pd.DataFrame(out, columns=["config", "group", "what", "median", "p25", "p75", "measured_on", "vs_acmix"])


def _grouped_latency_chart(data: pd.DataFrame, names: dict[str, str], title: str, subtitle: list[str],
                           highlight: str | None) -> alt.Chart:
    pick = config_selection(highlight)
    order = list(names.values())
    groups = list(dict.fromkeys(data["group"]))
    values = list(data["p25"]) + list(data["p75"])
    y_scale = _scale(values, 10)
    if is_wide(values):
        # Bars on a log scale cannot start at 0: start them at the decade below the smallest value.
        data = data.assign(bar_base=10 ** math.floor(math.log10(min(v for v in values if v > 0))))
        bar_end = {"y2": alt.Y2("bar_base:Q")}
    else:
        bar_end = {}
    base = alt.Chart(data).encode(
        x=alt.X("group:N", title="configuration", sort=groups, axis=alt.Axis(labelAngle=-30, labelLimit=260)),
        xOffset=alt.XOffset("what:N", sort=order),
    )
    bars = base.mark_bar().encode(
        **bar_end,
        y=alt.Y("median:Q", title="latency per forward (ms)", scale=y_scale),
        color=alt.Color("what:N", title="timed", sort=order, scale=alt.Scale(domain=order)),
        opacity=_highlight_opacity(pick, 1.0, 0.35),
        tooltip=[
            alt.Tooltip("group:N", title="configuration"),
            alt.Tooltip("what:N", title="timed"),
            alt.Tooltip("median:Q", title="median (ms)", format=_MS),
            alt.Tooltip("p25:Q", title="25th percentile (ms)", format=_MS),
            alt.Tooltip("p75:Q", title="75th percentile (ms)", format=_MS),
            alt.Tooltip("vs_acmix:Q", title="× ACmix's median", format=".3f"),
            alt.Tooltip("measured_on:N", title="measured on"),
        ],
    ).add_params(pick)
    whiskers = base.mark_rule(color="black", opacity=0.7).encode(y=alt.Y("p25:Q", scale=y_scale), y2="p75:Q")
    return alt.layer(bars, whiskers).properties(
        title=alt.TitleParams(measured_title(title, data), subtitle=subtitle), height=340)


def parts_chart(df: pd.DataFrame, highlight: str | None = None) -> alt.Chart:
    """ACmix's latency beside its Stage I, attention path and conv path, each timed on its own."""
    data = grouped_latency_long(df, PART_NAMES)
    return _grouped_latency_chart(
        data, PART_NAMES, "Where ACmix's time goes",
        ["each part timed alone on the tensors the forward gave it; the rest (grid, reshapes, mix) is the",
         "difference; bars: median, whiskers: 25th to 75th percentile"], highlight)


def baselines_chart(df: pd.DataFrame, highlight: str | None = None) -> alt.Chart:
    """ACmix beside a plain kc×kc Conv2d and local self-attention built from the same sizes."""
    data = grouped_latency_long(df, BASELINE_NAMES)
    return _grouped_latency_chart(
        data, BASELINE_NAMES, "ACmix against its baselines",
        ["Conv2d(in_planes, out_planes, kernel_conv, stride); local self-attention: conv1-3, conv_p and",
         "the attention path alone; bars: median, whiskers: 25th to 75th percentile"], highlight)


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
        x=alt.X("floor_ms:Q", title="roofline floor (ms)", scale=x_scale),
        y=alt.Y("latency_ms:Q", title="measured median latency (ms)", scale=y_scale),
        color=alt.Color("line:N", title="settings"),
        shape=alt.Shape("floor_bound:N", title="floor set by"),
        opacity=_highlight_opacity(pick),
        size=alt.condition(pick, alt.value(130), alt.value(60)),
        tooltip=[
            alt.Tooltip("label:N", title="configuration"),
            alt.Tooltip("latency_ms:Q", title="measured median (ms)", format=_MS),
            alt.Tooltip("floor_ms:Q", title="floor (ms)", format=",.6f"),
            alt.Tooltip("floor_ratio:Q", title="measured / floor", format=",.1f"),
            alt.Tooltip("floor_bound:N", title="floor set by"),
            alt.Tooltip("flops:Q", title="FLOPs", format=","),
            alt.Tooltip("compulsory_bytes:Q", title="compulsory bytes", format=","),
            alt.Tooltip("peak_gflops:Q", title="measured peak (GFLOP/s)", format=",.1f"),
            alt.Tooltip("peak_gbps:Q", title="measured bandwidth (GB/s)", format=",.1f"),
            alt.Tooltip("measured_on:N", title="measured on"),
        ],
    ).add_params(pick)
    return alt.layer(guides, guide_text, points).properties(
        title=alt.TitleParams(
            measured_title("Latency against the roofline floor", data),
            subtitle=["floor = max(FLOPs / peak FLOP/s, compulsory bytes / bandwidth): an estimate, not a bound;",
                      "peaks measured here (a large matmul, a large copy), FLOPs by this app's counting convention;",
                      "compulsory bytes: input + weights + output; dotted diagonals: 1×, 10×, 100×, … the floor"]),
        height=420,
    )


def memory_chart(df: pd.DataFrame, x: str, highlight: str | None = None) -> alt.Chart:
    """Measured peak memory of one forward against one swept axis, with the estimate from shapes."""
    col = x_column(x)
    rows = measured_rows(df)
    rows = rows[rows["peak_bytes"].notna()]
    data = rows[[col, "peak_bytes", "config", "label", "line", "measured_on"]
                + [c for c in ("estimated_peak_bytes",) if c in rows]].copy()
    data["peak_mib"] = data["peak_bytes"] / 2**20
    pick = config_selection(highlight)
    base = alt.Chart(data).encode(
        x=_x_encoding(data, x),
        y=alt.Y("peak_mib:Q", title="peak memory (MiB)", scale=_scale(data["peak_mib"])),
        color=alt.Color("line:N", title="settings"),
    )
    tooltip = [
        alt.Tooltip("label:N", title="configuration"),
        alt.Tooltip("peak_bytes:Q", title="measured peak (bytes)", format=","),
        alt.Tooltip("measured_on:N", title="measured on"),
    ]
    if "estimated_peak_bytes" in data:
        tooltip.insert(2, alt.Tooltip("estimated_peak_bytes:Q", title="estimated from shapes (bytes)", format=","))
    points = base.mark_point(filled=True).encode(
        opacity=_highlight_opacity(pick), size=alt.condition(pick, alt.value(120), alt.value(50)),
        tooltip=tooltip,
    ).add_params(pick)
    return alt.layer(base.mark_line(opacity=0.6), points).properties(
        title=alt.TitleParams(measured_title("Peak memory", data),
                              subtitle="bytes one no-grad forward allocates beyond its input and weights"),
        height=340,
    )
