"""Hyperparameter explorer: exact parameters and FLOPs of whole sweeps, latency and memory on demand.

Layout only: grids and counts in convmix.sweep, measurement in convmix.bench, charts in convmix.charts.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from convmix import bench, charts, sweep
from convmix.budget import check, memory_budget, time_limit
from convmix.format import human_bytes, literal
from convmix.ui.navigation import ensure_router
from convmix.ui.session import connection_check, discard_uploads
from convmix.ui.sidebar import current_config

ensure_router()

MAX_MEASURED = 24  # configurations measured per click
MAX_BARS = 60  # configurations drawn in the stacked breakdown
MAX_SHARE_SERIES = 12
MAX_UPLOADS = 8  # files read per upload; the server's copies of any more are dropped at once
PICK = "_explorer_pick"  # the highlighted configuration id, set by the selectbox or a chart click
RESULTS = "_explorer_results"  # (config, device, dtype, impl, budget) -> measured row, this session
FAILURES = "_explorer_failures"  # configurations the last measurement could not measure, and why


# -- cached compute ---------------------------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner=False)
def sweep_counts(base, axes: tuple[tuple[str, tuple[int, ...]], ...]):
    """Valid configurations, notes on the skipped ones, and the exact count rows."""
    grid = sweep.expand_grid(base, dict(axes))
    return grid.configs, len(grid.skipped), grid.skip_notes(), sweep.count_rows(grid.configs)


@st.cache_data(max_entries=64, show_spinner=False)
def runnable_as_fixed(base, axes: tuple[tuple[str, tuple[int, ...]], ...]) -> int:
    return len(sweep.expand_grid(base.with_(variant="fixed"), dict(axes)).configs)


@st.cache_data(max_entries=1024, show_spinner=False)
def measured_row(config, device: str, dtype: str, impl: str, budget: str, _still_wanted=None) -> dict:
    """One configuration measured on this server; shared by all visitors (per configuration + device).

    Within the server's memory budget and time limit; dropped while queued once `_still_wanted()`
    says the visitor has gone.
    """
    return bench.measure_config(config, device=device, dtype=dtype, impl=impl,
                                budget=bench.BUDGETS[budget], memory_limit=memory_budget(),
                                time_limit=time_limit(), still_wanted=_still_wanted)


@st.cache_data(max_entries=16, show_spinner=False)
def read_upload(data: bytes, name: str) -> pd.DataFrame:
    return sweep.read_results(data, name)


# -- helpers ------------------------------------------------------------------------------------------
def picker(key: str):
    """Callback of a chart: remember the configuration its selection picked (none after a double-click)."""

    def pick() -> None:
        event = st.session_state.get(key) or {}
        chosen = (event.get("selection") or {}).get(charts.SELECTION) or []
        st.session_state[PICK] = chosen[0].get("config", "") if chosen else ""

    return pick


def draw(chart, key: str) -> None:
    st.altair_chart(chart, width="stretch", key=key, on_select=picker(key), selection_mode=charts.SELECTION)


def axis_key(axes: dict[str, list[int]]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((name, tuple(values)) for name, values in axes.items())


# -- the sweep ------------------------------------------------------------------------------------------
config = current_config()

st.title("Hyperparameter explorer")
st.markdown(
    "Choose which hyperparameters vary and over which values; everything else comes from the sidebar. "
    "**Parameters** are read from the modules themselves and **multiply-adds / FLOPs** come from the "
    "formulas the test suite checks against executed operations, so both are exact and instant for "
    "hundreds of configurations. **Latency and peak memory** are measured on demand on this server's "
    "device, and result files measured elsewhere (for example on a GPU, with "
    "`python -m convmix sweep --out results.csv`) can be loaded beside them."
)

with st.container(border=True):
    varied = st.multiselect(
        "Hyperparameters to vary", list(sweep.AXES), default=list(sweep.DEFAULT_VARIED),
        format_func=lambda a: sweep.AXES[a].label, key="explorer_vary",
        help="Every combination of the chosen values is one configuration; the sidebar sets the rest.",
    )
    axes: dict[str, list[int]] = {}
    if varied:
        value_cols = st.columns(min(len(varied), 4))
        for i, name in enumerate(varied):
            axis = sweep.AXES[name]
            with value_cols[i % len(value_cols)]:
                chosen = st.multiselect(f"{axis.label}: values", axis.choices, default=list(axis.default),
                                        key=f"explorer_values_{name}")
            if chosen:
                axes[name] = sorted(chosen)
            else:
                st.caption(f"No values chosen for {axis.label}: the sidebar's value is used.")

key = axis_key(axes)
try:
    configs, skipped, skip_notes, counts = sweep_counts(config, key)
except sweep.SweepError as err:
    st.error(str(err), icon=":material/error:")
    st.stop()

combinations = len(configs) + skipped
if skipped:
    summary = (f"{skipped:,} of {combinations:,} combinations cannot run with the **{config.variant}** "
               f"variant and are left out:")
    st.warning(summary + "\n\n" + "\n".join(f"- {n}" for n in skip_notes), icon=":material/warning:")
    if config.variant == "official":
        fixed = runnable_as_fixed(config, key)
        if fixed > len(configs):
            st.info(f"The **fixed** variant runs {fixed:,} of the {combinations:,} combinations: switch "
                    f"*variant* in the sidebar.", icon=":material/build:")
if not configs:
    st.error("No configuration of this sweep can run, so there is nothing to count or measure. Change the "
             "values above or the sidebar.", icon=":material/error:")
    st.stop()

multi = [a for a in varied if len(axes.get(a, ())) > 1]
settings = st.columns([1, 2])
x = settings[0].selectbox(
    "x axis of the charts", multi or varied or ["kernel_att"],
    format_func=lambda a: sweep.AXES[a].label, key="explorer_x",
    help="The other varied hyperparameters become one line (or bar group) per combination.",
)
df = sweep.add_labels(counts, x)
labels = dict(zip(df["config"], df["label"], strict=True))
if st.session_state.get(PICK, "") not in labels:
    st.session_state[PICK] = ""
st.session_state["explorer_highlight"] = st.session_state[PICK]


def _choose_highlight() -> None:
    st.session_state[PICK] = st.session_state["explorer_highlight"]


settings[1].selectbox(
    "Highlight a configuration in every chart", ["", *labels], format_func=lambda c: labels.get(c, "none"),
    key="explorer_highlight", on_change=_choose_highlight,
    help="Or click a mark in any chart; double-click a chart to clear.",
)
highlight = st.session_state[PICK] or None

st.caption(f"**{len(configs):,}** configuration{'s' if len(configs) != 1 else ''} of "
           f"`{config.describe()}` with {', '.join(sweep.AXES[a].label for a in axes) or 'nothing'} varied.")

counts_tab, share_tab, latency_tab = st.tabs(
    ["Parameters and FLOPs", "Stage I vs Stage II", "Latency and memory"])

# -- counts ------------------------------------------------------------------------------------------------
with counts_tab:
    quantity = st.radio("Count", ["params", "macs", "flops"], horizontal=True, key="explorer_quantity",
                        format_func=lambda q: {"params": "parameters", "macs": "multiply-adds",
                                               "flops": "FLOPs"}[q])
    ranges = []
    for q, noun in (("params", "Parameters"), ("macs", "Multiply-adds"), ("flops", "FLOPs")):
        lo, hi = int(df[q].min()), int(df[q].max())
        ranges.append(f"**{noun}** {lo:,}" + ("" if lo == hi else f" to {hi:,}"))
    st.markdown(" · ".join(ranges))
    draw(charts.totals_chart(df, x, quantity, highlight), "explorer_chart_totals")
    if x in multi and quantity == "params":
        others = [c for c in sweep.varying_columns(df) if c not in sweep.AXES[x].fields]
        grouped = df.groupby(others)["params"] if others else df.groupby(lambda _: 0)["params"]
        if grouped.nunique().eq(1).all():
            st.caption(f"{sweep.AXES[x].label.capitalize()} changes no parameter count: it only sets how "
                       f"the shared weights are applied.")
    normalize = st.toggle("Show shares instead of totals", key="explorer_normalize")
    shown = df.head(MAX_BARS)
    if len(df) > MAX_BARS:
        st.caption(f"The breakdown shows the first {MAX_BARS} of {len(df):,} configurations; narrow the "
                   f"sweep to see the rest.")
    draw(charts.breakdown_chart(shown, quantity, normalize, highlight), "explorer_chart_breakdown")
    table_cols = ["label", "params", "macs", "flops", "stage1_share_flops", "conv2d_params",
                  "local_attention_params"]
    st.dataframe(
        df[table_cols], hide_index=True, width="stretch",
        column_config={
            "label": st.column_config.TextColumn("configuration"),
            "params": st.column_config.NumberColumn("parameters", format="localized"),
            "macs": st.column_config.NumberColumn("multiply-adds", format="localized"),
            "flops": st.column_config.NumberColumn("FLOPs", format="localized"),
            "stage1_share_flops": st.column_config.NumberColumn("Stage I share of FLOPs", format="percent"),
            "conv2d_params": st.column_config.NumberColumn("Conv2d kc×kc parameters", format="localized"),
            "local_attention_params": st.column_config.NumberColumn("local attention parameters",
                                                                    format="localized"),
        },
    )

# -- Stage I vs Stage II ---------------------------------------------------------------------------------
with share_tab:
    st.markdown(
        "The paper says Stage I (the three 1×1 projections) dominates the cost. Stage I grows with "
        "in_planes × out_planes, Stage II (fc, dep_conv, the attention arithmetic) only with out_planes, "
        "so the claim holds for wide layers and fails for narrow ones. Here in_planes = out_planes runs over "
        f"{sweep.AXES['channels'].choices[0]} to {sweep.AXES['channels'].choices[-1]:,}, one line per "
        "combination of the other varied hyperparameters."
    )
    kind = st.radio("Share of", ["flops", "macs"], horizontal=True, key="explorer_share_kind",
                    format_func=lambda k: {"flops": "FLOPs", "macs": "multiply-adds"}[k])
    share_axes: dict[str, list[int]] = {"channels": list(sweep.AXES["channels"].choices)}
    series = 1
    for name in sorted((a for a in axes if a not in ("channels", "batch")), key=lambda a: a != x):
        if series * len(axes[name]) <= MAX_SHARE_SERIES:
            share_axes[name] = axes[name]
            series *= len(axes[name])
    left_out = [sweep.AXES[a].label for a in axes if a not in share_axes and a not in ("channels", "batch")]
    share_configs, _, _, share_counts = sweep_counts(config.with_(batch=1), axis_key(share_axes))
    if share_configs:
        share_df = sweep.add_labels(share_counts, "channels")
        mark = config.out_planes if config.in_planes == config.out_planes else None
        draw(charts.stage_share_chart(share_df, kind, highlight, mark), "explorer_chart_share")
        noun = "FLOPs" if kind == "flops" else "multiply-adds"
        lines = []
        for name, start in sweep.stage1_crossover(share_df, kind).items():
            where = "" if name == "all" else f" for {name}"
            if start is None:
                lines.append(f"- Stage I never reaches half of all {noun}{where} up to 2,048 channels.")
            else:
                lines.append(f"- Stage I is more than half of all {noun}{where} from **{start:,} channels** on.")
        st.markdown("\n".join(lines))
        if left_out:
            st.caption(f"Too many lines: {', '.join(left_out)} kept at the sidebar's value here.")
    else:
        st.info("None of the channel counts runs with these settings.")

# -- latency and memory ---------------------------------------------------------------------------------------
with latency_tab:
    device = bench.pick_device("auto")
    dtypes = bench.supported_dtypes(device)
    env = bench.environment(device, dtypes[0])
    gpu_note = "" if device.type == "cuda" else " No GPU here: float32 only; load GPU results below."
    st.markdown(f"This server measures on **{env.device_name}** ({device.type}, {env.threads} threads, "
                f"torch {env.torch_version}).{gpu_note}")
    controls = st.columns(3)
    dtype = controls[0].selectbox("dtype", dtypes, key="explorer_dtype")
    impls = bench.available_impls()
    impl = "reference"
    if len(impls) > 1:
        impl = controls[1].radio(
            "attention implementation", impls, index=impls.index("reference"), horizontal=True,
            key="explorer_impl",
            help="reference: the authors' unfold formulation, what their code costs. Others compute the "
                 "same values differently.")
    budget_name = controls[2].radio(
        "timing effort", list(bench.BUDGETS), index=list(bench.BUDGETS).index("standard"), horizontal=True,
        key="explorer_budget",
        help="Timed rounds per configuration (each round times ACmix, its parts and the baselines once): "
             + "; ".join(f"{name}: at least {b.min_rounds} rounds and {b.seconds:g} s" for name, b in
                         bench.BUDGETS.items())
             + f". A slow configuration stops after {bench.FLOOR_ROUNDS} rounds once "
             + ", ".join(f"{b.max_seconds:g} s" for b in bench.BUDGETS.values()) + " have passed.")

    results: dict = st.session_state.setdefault(RESULTS, {})
    limit = memory_budget()
    candidates = configs[:MAX_MEASURED]
    if len(configs) > MAX_MEASURED:
        st.caption(f"The first {MAX_MEASURED} of {len(configs):,} configurations are measured; narrow the "
                   f"sweep to measure others.")
    refused = {}
    for c in candidates:  # what could never fit; what fits beside the server's load is checked when it runs
        refusal = check(c, limit, lambda cc: bench.measurement_bytes(cc, dtype, impl),
                        what=f"Measuring {sweep.short_id(c)}", held=0)
        if refusal is not None:
            refused[c] = refusal.message()
    if refused:
        shown_refusals = list(refused.values())[:5]
        more = len(refused) - len(shown_refusals)
        st.warning("\n".join(f"- {m}" for m in shown_refusals)
                   + (f"\n- and {more:,} more over the budget." if more else ""), icon=":material/memory:")
    to_measure = [c for c in candidates if c not in refused]

    def result_key(c):
        return (c, device.type, dtype, impl, budget_name)

    pending = [c for c in to_measure if result_key(c) not in results]
    clicked = st.button(
        f"Measure {len(pending)} configuration{'s' if len(pending) != 1 else ''}" if pending
        else "All shown configurations are measured",
        disabled=not pending, type="primary", key="explorer_measure",
    )
    if clicked and pending:
        bar = st.progress(0.0, text="Starting…")
        failures = []
        still_here = connection_check()
        cap, started = time_limit(), time.monotonic()
        for i, c in enumerate(pending, 1):
            if time.monotonic() - started > cap:
                failures.append(f"This click measured for its {cap:g} s; press the button again for the "
                                f"other {len(pending) - i + 1}.")
                break
            if bench.MEASURE_LOCK.locked():
                bar.progress((i - 1) / len(pending), text="Waiting for another visitor's measurement to finish…")
            try:
                results[result_key(c)] = measured_row(c, str(device), dtype, impl, budget_name, still_here)
            except bench.Abandoned:
                st.stop()  # the visitor has gone: nothing more to measure or draw
            except bench.MeasureError as err:
                failures.append(f"{sweep.short_id(c)}: {err}")
            bar.progress(i / len(pending), text=f"Measured {i} of {len(pending)}: {labels[sweep.short_id(c)]}")
        st.session_state[FAILURES] = failures
        st.rerun()  # redraw with the new results (and the button's new label)
    for failure in st.session_state.get(FAILURES, []):
        st.warning(failure, icon=":material/warning:")

    live = {c: results[result_key(c)] for c in configs if result_key(c) in results}
    frames = [sweep.sweep_frame(list(live), live).assign(source="this server")] if live else []

    uploads = st.file_uploader(
        "Result files measured elsewhere (CSV from `python -m convmix sweep`)", type="csv",
        accept_multiple_files=True, key="explorer_upload", max_upload_size=max(1, sweep.MAX_BYTES // 1_000_000),
        help=f"Up to {MAX_UPLOADS} files of at most {sweep.MAX_BYTES / 1e6:,.0f} MB and "
             f"{sweep.MAX_ROWS:,} rows each; their rows are drawn beside this server's.")
    uploads = list(uploads or [])
    if len(uploads) > MAX_UPLOADS:
        dropped = discard_uploads(uploads[MAX_UPLOADS:])
        st.warning(f"Only the first {MAX_UPLOADS} files are read; the other {len(uploads) - MAX_UPLOADS:,} "
                   + ("were discarded. " if dropped else "are ignored. ")
                   + f"Upload at most {MAX_UPLOADS} at once.", icon=":material/warning:")
    for f in uploads[:MAX_UPLOADS]:
        try:
            loaded = read_upload(f.getvalue(), f.name)
        except sweep.ResultFileError as err:
            st.error(f"{literal(f.name)} was not loaded:\n\n" + "\n".join(f"- {p}" for p in err.problems),
                     icon=":material/error:")
            continue
        with_latency = loaded[loaded["latency_ms"].notna()]
        devices = ", ".join(literal(d) for d in sorted(set(charts.device_labels(with_latency)))) \
            or "no device (counts only)"
        st.success(f"{literal(f.name)}: {len(loaded):,} rows, {len(with_latency):,} with latency, measured on "
                   f"{devices}.", icon=":material/upload_file:")
        frames.append(loaded)

    measured = sweep.add_labels(pd.concat(frames, ignore_index=True), x) if frames else None
    if measured is None or measured["latency_ms"].notna().sum() == 0:
        st.info("Nothing measured yet: press the button above, or load result files.", icon=":material/timer:")
    else:
        draw(charts.latency_chart(measured, x, highlight), "explorer_chart_latency")
        # Files written elsewhere may hold only the required columns: draw what they have.
        optional = {"parts": "attention_path_ms", "baselines": "conv2d_ms", "roofline": "floor_ms"}
        has = {name: col in measured and measured[col].notna().any() for name, col in optional.items()}
        if has["parts"]:
            draw(charts.parts_chart(measured, highlight), "explorer_chart_parts")
        if has["baselines"]:
            draw(charts.baselines_chart(measured, highlight), "explorer_chart_baselines")
        if has["roofline"]:
            draw(charts.roofline_chart(measured, highlight), "explorer_chart_roofline")
        missing = [name for name, present in has.items() if not present]
        if missing:
            st.caption(f"No {', '.join(missing)} in the results shown, so those charts are left out.")
        draw(charts.memory_chart(measured, x, highlight), "explorer_chart_memory")
        rows = charts.measured_rows(measured)
        st.dataframe(
            rows[[c for c in ("label", "measured_on", "latency_ms", "latency_ms_p25", "latency_ms_p75",
                              "peak_bytes", "floor_ratio", "source") if c in rows]],
            hide_index=True, width="stretch",
            column_config={
                "label": st.column_config.TextColumn("configuration"),
                "measured_on": st.column_config.TextColumn("measured on"),
                "latency_ms": st.column_config.NumberColumn("median (ms)", format="%.4f"),
                "latency_ms_p25": st.column_config.NumberColumn("25th pct (ms)", format="%.4f"),
                "latency_ms_p75": st.column_config.NumberColumn("75th pct (ms)", format="%.4f"),
                "peak_bytes": st.column_config.NumberColumn("peak memory (bytes)", format="localized"),
                "floor_ratio": st.column_config.NumberColumn("× roofline floor", format="%.1f"),
                "source": st.column_config.TextColumn("source"),
            },
        )
        st.caption(f"Peak memory is the most the allocator holds during one no-grad forward beyond its input "
                   f"and weights, kernels' own buffers included (CUDA's own statistic; on the CPU, the "
                   f"allocator's events recorded by torch.profiler). This server keeps itself within "
                   f"{human_bytes(limit)} in all, and each request within {time_limit():g} s: measurements "
                   f"estimated beyond either are refused.")

st.download_button(
    "Download this sweep as CSV", sweep.to_csv(sweep.sweep_frame(configs, live)), file_name="convmix_sweep.csv",
    mime="text/csv", key="explorer_download",
    help="One row per configuration: exact counts, and the latency and memory measured here so far.",
    icon=":material/download:",
)
