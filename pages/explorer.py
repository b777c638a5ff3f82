"""Hyperparameter explorer: exact parameters and FLOPs of whole sweeps, latency and memory on demand.

Layout only: grids and counts in convmix.sweep, presets in convmix.presets, measurement in
convmix.bench, charts in convmix.charts, cached work and the URL-bound tabs in convmix.ui.explorer.
Every choice on the page is in the URL (language-neutral values, convmix.ui.widgets.choice).
"""

from __future__ import annotations

import math
import time

import pandas as pd
import streamlit as st

from convmix import bench, charts, sweep
from convmix.budget import check, memory_budget, time_limit
from convmix.format import human_bytes, literal
from convmix.i18n import _, get_language, ngettext
from convmix.presets import PRESETS, RESNET_LAYERS, cli_command
from convmix.ui import explorer as ui
from convmix.ui.charts import chart_spec
from convmix.ui.navigation import ensure_router
from convmix.ui.session import connection_check, discard_uploads
from convmix.ui.sidebar import current_config
from convmix.ui.widgets import choice, set_choice, toggle, url_notes

ensure_router()

MAX_BARS = 60  # configurations drawn in one breakdown chart
MAX_SHARE_SERIES = 12
MAX_UPLOADS = 8  # files read per upload; the server's copies of any more are dropped at once
MAX_LISTED = 12  # configurations named in a sentence
MAX_PLANNED = 24  # configurations whose time is estimated to plan one click
HIGHLIGHT = "explorer_highlight"
RESULTS = "_explorer_results"  # (config, device, dtype, impl, budget) -> measured row, this session
ATTEMPTS = "_explorer_attempts"  # result key -> how often it was measured again (noisy results)
FAILURES = "_explorer_failures"  # what the last click could not measure, and why
NOTES = "_explorer_notes"  # what the last click left for the next one
REMEASURE = "_explorer_remeasure"  # noisy configurations to measure again in this run


def axis_label(name: str) -> str:
    return _(sweep.AXES[name].label) if name in sweep.AXES else name


def value_label(name: str):
    if name == "layer":
        return lambda v: f"{v} · s={RESNET_LAYERS[v].stride}" if v in RESNET_LAYERS and RESNET_LAYERS[v].stride > 1 \
            else str(v)
    return str


def listed(labels: list[str]) -> str:
    """Configuration labels as code spans, the first MAX_LISTED of them."""
    shown = ", ".join(f"`{x}`" for x in labels[:MAX_LISTED])
    more = len(labels) - MAX_LISTED
    return shown if more <= 0 else shown + " " + ngettext("and {count:,} more", "and {count:,} more", more,
                                                          count=more)


def draw(spec: dict, key: str) -> None:
    """Draw a chart's cached spec (convmix.ui.charts) with its selection."""
    def pick() -> None:
        event = st.session_state.get(key) or {}
        chosen = (event.get("selection") or {}).get(charts.SELECTION) or []
        set_choice(HIGHLIGHT, chosen[0].get("config", "") if chosen else "")

    st.vega_lite_chart(spec=spec, width="stretch", key=key, on_select=pick, selection_mode=charts.SELECTION)


def apply_preset(name: str) -> None:
    preset = PRESETS[name]
    set_choice("explorer_vary", [a for a, _values in preset.axes])
    for axis, values in preset.axes:
        set_choice(f"explorer_values_{axis}", sorted(values, key=list(sweep.AXES[axis].choices).index))
    set_choice("explorer_x", preset.x)
    set_choice("explorer_facet", preset.facet or "")


# -- the sweep ------------------------------------------------------------------------------------------
config = current_config()

st.title(_("Hyperparameter explorer"))
st.markdown(_(
    "Which kernel_att, how many heads, which stride? Choose what varies and over which values, or start "
    "from a preset; everything else comes from the sidebar. **Parameters** are read from the modules "
    "themselves and **multiply-adds / FLOPs** come from formulas the test suite checks against executed "
    "operations, so both are exact and instant for hundreds of configurations. **Latency and peak memory** "
    "are measured on demand on this server's device, and result files measured elsewhere (a GPU, say, with "
    "`python -m convmix sweep --out results.csv`) can be loaded beside them. Every choice on this page is "
    "in its URL: a copied link shows the same view."
))

with st.container(border=True, key="explorer_sweep"):
    st.caption(_("Presets: one click sets the axes, their values and the charts' layout."))
    preset_cols = st.columns(len(PRESETS))
    active_preset = None
    for col, preset in zip(preset_cols, PRESETS.values(), strict=True):
        col.button(_(preset.label), key=f"explorer_preset_{preset.name}", help=_(preset.description),
                   on_click=apply_preset, args=(preset.name,), width="stretch")
    varied = choice(
        st.multiselect, _("Hyperparameters to vary"), list(sweep.AXES), key="explorer_vary",
        format_func=axis_label, default=list(sweep.DEFAULT_VARIED), multi=True,
        help=_("Every combination of the chosen values is one configuration; the sidebar sets the rest."),
    )
    axes: dict[str, list] = {}
    if varied:
        value_cols = st.columns(min(len(varied), 3))
        for i, name in enumerate(varied):
            axis = sweep.AXES[name]
            with value_cols[i % len(value_cols)]:
                chosen = choice(st.multiselect, _("{axis}: values", axis=axis_label(name)), list(axis.choices),
                                key=f"explorer_values_{name}", format_func=value_label(name),
                                default=list(axis.default), multi=True)
            if chosen:
                axes[name] = sorted(chosen, key=list(axis.choices).index)
            else:
                st.caption(_("No values chosen for {axis}: the sidebar's value is used.", axis=axis_label(name)))
    if "layer" in varied:
        st.caption(_("ResNet layers (the shapes at a 224×224 input; each stands for the blocks that share it): "
                     "{layers}.", layers="; ".join(
                         f"{s.label} ({', '.join(s.blocks)})" for s in RESNET_LAYERS.values())))
    for preset in PRESETS.values():
        if {a: list(v) for a, v in preset.axes} == axes and list(axes) == [a for a, _v in preset.axes]:
            active_preset = preset
    if active_preset is not None:
        st.caption(_("This is the preset “{preset}”: {description}", preset=_(active_preset.label),
                     description=_(active_preset.description)))

# URL values the menus could not use: the box is filled when the run ends (or stops), once every menu,
# including those further down, has read its value, so that each note shows in the run that found it.
notes_box = st.container()


def show_url_notes() -> None:
    with notes_box:
        for note in url_notes():
            st.warning(note, icon=":material/link_off:")


key = tuple((name, tuple(values)) for name, values in axes.items())
base = config.with_(seed=0)  # the seed changes no count and no timing
try:
    configs, skipped, skip_notes, counts = ui.sweep_counts(base, key, get_language())
except sweep.SweepError as err:
    st.error(str(err), icon=":material/error:")
    show_url_notes()
    st.stop()

combinations = len(configs) + skipped
if skipped:
    summary = ngettext(
        "{skipped:,} of {total:,} combination cannot run with the **{variant}** variant and is left out:",
        "{skipped:,} of {total:,} combinations cannot run with the **{variant}** variant and are left out:",
        skipped, skipped=skipped, total=combinations, variant=config.variant)
    st.warning(summary + "\n\n" + "\n".join(f"- {n}" for n in skip_notes), icon=":material/warning:")
    if config.variant == "official":
        fixed = ui.runnable_as_fixed(base, key)
        if fixed > len(configs):
            st.info(_("The **fixed** variant runs {fixed:,} of the {total:,} combinations: switch *variant* in "
                      "the sidebar.", fixed=fixed, total=combinations), icon=":material/build:")
if not configs:
    st.error(_("No configuration of this sweep can run, so there is nothing to count or measure. Change the "
               "values above or the sidebar."), icon=":material/error:")
    show_url_notes()
    st.stop()

# -- how the charts draw it ----------------------------------------------------------------------------
multi = [a for a in varied if len(axes.get(a, ())) > 1]
x_options = multi or varied or ["kernel_att"]
with st.container(key="explorer_layout"):
    layout = st.columns(3)
    with layout[0]:
        x = choice(st.selectbox, _("x axis of the charts"), x_options, key="explorer_x", format_func=axis_label,
                   default=next((a for a in x_options if a != "layer"), x_options[0]),
                   help=_("The other varied hyperparameters become one line (or bar) per combination, or one "
                          "chart each (next menu)."))
    facet_options = ["", *[a for a in multi if a != x]]
    default_facet = next((a for a in ("layer", "stride") if a in facet_options), "")
    if not default_facet and len(multi) >= 3:
        default_facet = facet_options[-1]
    with layout[1]:
        facet = choice(st.selectbox, _("One chart per value of"), facet_options, key="explorer_facet",
                       format_func=lambda a: axis_label(a) if a else _("none: one chart"), default=default_facet,
                       help=_("Small charts side by side, each with its own scale, so that an effect inside "
                              "each value shows (on a phone they stack).")) or None
    df = sweep.add_labels(counts, x, facet)
    labels = dict(zip(df["config"], df["label"], strict=True))
    with layout[2]:
        highlight = choice(
            st.selectbox, _("Highlight a configuration in every chart"), ["", *labels], key=HIGHLIGHT,
            format_func=lambda c: labels.get(c, _("none")), default="",
            help=_("Or click a mark in any chart; double-click a chart to clear."),
        ) or None
    relative = choice(
        st.radio, _("Values"), ["absolute", "relative"], key="explorer_scale", default="absolute",
        format_func=lambda v: _("absolute") if v == "absolute" else _("relative to a baseline configuration"),
        horizontal=True,
        help=_("Relative: each value as a change against the baseline, so that small differences show. With one "
               "chart per value, each chart compares with the configuration that has the baseline's other "
               "settings."),
    ) == "relative"
    paper = [c for c, r in zip(df["config"], df.to_dict("records"), strict=True)
             if r["kernel_att"] == 7 and r["head"] == 4]
    baseline = ""
    if relative:
        baseline = choice(st.selectbox, _("Baseline configuration"), list(labels), key="explorer_baseline",
                          format_func=labels.get, default=(paper or list(labels))[0],
                          help=_("The default has the paper's settings, kernel_att = 7 and head = 4, where the "
                                 "sweep has them."))
baseline_label = labels.get(baseline, "")
facet_within = [] if not facet else (["layer"] if facet == "layer" else list(sweep.AXES[facet].fields))

varied_text = ", ".join(axis_label(a) for a in axes) or _("nothing")
st.caption(ngettext("**{count:,}** configuration of `{config}` with {axes} varied.",
                    "**{count:,}** configurations of `{config}` with {axes} varied.", len(configs),
                    count=len(configs), config=config.describe(), axes=varied_text))

view, (counts_tab, share_tab, latency_tab) = ui.view_tabs(
    {"counts": _("Parameters and FLOPs"), "share": _("Stage I vs Stage II"), "latency": _("Latency and memory")},
    "counts")


def facet_charts(frame: pd.DataFrame, name: str, build) -> None:
    """One chart per facet, two to a row; `build(rows, facet_title)` makes each."""
    items = list(enumerate(charts.facets(frame, facet)))
    ui.chart_grid(items, lambda item: draw(build(item[1][1], item[1][0]), f"explorer_chart_{name}_{item[0]}"))


# -- counts ------------------------------------------------------------------------------------------------
with counts_tab:
    count_nouns = {"params": _("parameters"), "macs": _("multiply-adds"), "flops": "FLOPs"}
    settings = st.columns(2)
    with settings[0]:
        quantity = choice(st.radio, _("Count"), ["params", "macs", "flops"], key="explorer_quantity",
                          default="params", format_func=count_nouns.get, horizontal=True)
    with settings[1]:
        # Off by default: seven more charts cost a first render about 1.2 s on 2 cores (benchmarks/load.py).
        per_submodule = toggle(_("Per-submodule breakdown"), key="explorer_per_submodule",
                               help=_("One more chart per facet: each configuration's count split by "
                                      "submodule, as totals or as shares of the total."))
    if view == "counts":
        ranges = []
        for q, noun in (("params", _("Parameters")), ("macs", _("Multiply-adds")), ("flops", "FLOPs")):
            lo, hi = int(df[q].min()), int(df[q].max())
            ranges.append(_("**{what}** {low:,}", what=noun, low=lo) if lo == hi else
                          _("**{what}** {low:,} to {high:,}", what=noun, low=lo, high=hi))
        st.markdown(" · ".join(ranges))
        frame = sweep.relative_to(df, ["params", "macs", "flops"], baseline, facet_within) if relative else df
        facet_charts(frame, "totals", lambda rows, title: chart_spec(
            charts.totals_chart, rows, x, quantity, highlight, relative, title, baseline_label))
        if x in multi and quantity == "params":
            others = [c for c in sweep.varying_columns(df) if c not in sweep.AXES[x].fields]
            grouped = df.groupby(others)["params"] if others else df.groupby(lambda _row: 0)["params"]
            if grouped.nunique().eq(1).all():
                st.caption(_("{axis} changes no parameter count: it only sets how the shared weights are applied.",
                             axis=axis_label(x).capitalize()))
        if per_submodule:
            normalize = choice(st.radio, _("Breakdown"), ["totals", "shares"], key="explorer_breakdown",
                               default="totals", horizontal=True,
                               format_func=lambda v: _("totals") if v == "totals" else _("shares of the total"))
            capped = [title for title, rows in charts.facets(df, facet) if len(rows) > MAX_BARS]
            if capped:
                st.caption(_("Each breakdown chart shows its first {count} configurations; narrow the sweep or "
                             "choose one chart per value to see the rest.", count=MAX_BARS))
            facet_charts(df, "breakdown", lambda rows, title: chart_spec(
                charts.breakdown_chart, rows.head(MAX_BARS), quantity, normalize == "shares", highlight, title))
        table_cols = ["label", "params", "macs", "flops", "stage1_share_flops", "conv2d_params",
                      "local_attention_params"]
        # Off by default, as the breakdown: the table's code (a data grid of 0.5 MB) cost a first render
        # about 0.2 s on 2 cores (benchmarks/load.py); the download below holds every column.
        if toggle(_("Table of the configurations"), key="explorer_table",
                  help=_("Each configuration's exact counts in one table that sorts by any column.")):
            st.dataframe(
                df[table_cols], hide_index=True, width="stretch",
                column_config={
                    "label": st.column_config.TextColumn(_("configuration")),
                    "params": st.column_config.NumberColumn(_("parameters"), format="localized"),
                    "macs": st.column_config.NumberColumn(_("multiply-adds"), format="localized"),
                    "flops": st.column_config.NumberColumn("FLOPs", format="localized"),
                    "stage1_share_flops": st.column_config.NumberColumn(_("Stage I share of FLOPs"), format="percent"),
                    "conv2d_params": st.column_config.NumberColumn(_("Conv2d kc×kc parameters"), format="localized"),
                    "local_attention_params": st.column_config.NumberColumn(_("local attention parameters"),
                                                                            format="localized"),
                },
            )

# -- Stage I vs Stage II ---------------------------------------------------------------------------------
with share_tab:
    kind = choice(st.radio, _("Share of"), ["flops", "macs"], key="explorer_share_kind", default="flops",
                  format_func=lambda k: "FLOPs" if k == "flops" else _("multiply-adds"), horizontal=True)
    if view == "share":
        channel_values = sweep.AXES["channels"].choices
        st.markdown(_(
            "The paper says Stage I (the three 1×1 projections) dominates the cost. Stage I grows with "
            "in_planes × out_planes, Stage II (fc, dep_conv, the attention arithmetic) only with out_planes, so "
            "the claim holds for wide layers and fails for narrow ones. Here in_planes = out_planes runs over "
            "{low} to {high:,}, one line per combination of the other varied hyperparameters.",
            low=channel_values[0], high=channel_values[-1]))
        share_axes: dict[str, list] = {"channels": list(channel_values)}
        series = 1
        own = ("channels", "batch", "layer")
        for name in sorted((a for a in axes if a not in own), key=lambda a: a != x):
            if series * len(axes[name]) <= MAX_SHARE_SERIES:
                share_axes[name] = axes[name]
                series *= len(axes[name])
        left_out = [axis_label(a) for a in axes if a not in share_axes and a not in ("channels", "batch")]
        share_key = tuple((n, tuple(v)) for n, v in share_axes.items())
        share_configs, _skipped, _notes, share_counts = ui.sweep_counts(base.with_(batch=1), share_key,
                                                                         get_language())
        if share_configs:
            share_df = sweep.add_labels(share_counts, "channels")
            mark = config.out_planes if config.in_planes == config.out_planes else None
            draw(chart_spec(charts.stage_share_chart, share_df, kind, highlight, mark), "explorer_chart_share")
            lines = []
            for name, start in sweep.stage1_crossover(share_df, kind).items():
                if start is None:
                    lines.append(_("- Stage I never reaches half of all {what} for {series} up to 2,048 channels.",
                                   what=count_nouns[kind], series=name))
                else:
                    lines.append(_("- Stage I is more than half of all {what} for {series} from **{start:,} "
                                   "channels** on.", what=count_nouns[kind], series=name, start=start))
            st.markdown("\n".join(lines))
            if left_out:
                st.caption(_("Too many lines, or an axis that sets the channels itself: {axes} kept at the "
                             "sidebar's value here.", axes=", ".join(left_out)))
        else:
            st.info(_("None of the channel counts runs with these settings."))

# -- latency and memory ---------------------------------------------------------------------------------------
with latency_tab:
    device = bench.pick_device("auto")
    dtypes = bench.supported_dtypes(device)
    env = bench.environment(device, dtypes[0])
    where = ngettext(
        "This server measures on **{device}** ({kind}, {threads} thread, torch {version}).",
        "This server measures on **{device}** ({kind}, {threads} threads, torch {version}).", env.threads,
        device=env.device_name, kind=device.type, threads=env.threads, version=env.torch_version)
    if device.type != "cuda":
        where += " " + _("No GPU here: float32 only; load GPU results below.")
    st.markdown(where)
    controls = st.columns(3)
    with controls[0]:
        dtype = choice(st.selectbox, "dtype", dtypes, key="explorer_dtype", default=dtypes[0], format_func=str)
    impls = bench.available_impls()
    impl = "reference"
    if len(impls) > 1:
        with controls[1]:
            impl = choice(st.radio, _("attention implementation"), impls, key="explorer_impl", default="reference",
                          format_func=str, horizontal=True,
                          help=_("reference: the authors' unfold formulation, what their code costs. Others "
                                 "compute the same values differently."))
    efforts = {"quick": _("quick"), "standard": _("standard"), "thorough": _("thorough")}
    effort_text = "; ".join(_("{name}: {least} to {most} rounds, more than {least} only within {seconds:g} s",
                              name=efforts[n], least=b.min_rounds, most=b.max_rounds, seconds=b.seconds)
                            for n, b in bench.BUDGETS.items())
    with controls[2]:
        budget_name = choice(
            st.radio, _("timing effort"), list(bench.BUDGETS), key="explorer_budget", default="standard",
            format_func=efforts.get, horizontal=True,
            help=_("Timed rounds per configuration (each round times ACmix, its parts inside its own forward, and the "
                   "baselines once): "
                   "{efforts}. Past the least rounds, timing stops as soon as every median is known within "
                   "±{precision:.0%}. A slow configuration stops after {floor} rounds once {limits} have passed.",
                   efforts=effort_text, precision=bench.PRECISION, floor=bench.FLOOR_ROUNDS,
                   limits=" / ".join(f"{b.max_seconds:g} s" for b in bench.BUDGETS.values())))

    results: dict = st.session_state.setdefault(RESULTS, {})
    attempts: dict = st.session_state.setdefault(ATTEMPTS, {})
    limit, cap = memory_budget(), time_limit()

    def result_key(c):
        return (c, device.type, dtype, impl, budget_name)

    refused = {}
    # What could never fit; what fits beside the server's load is checked when it runs. Only the open
    # latency tab shows it (an estimate per configuration: 60 ms for the default sweep on two cores).
    for c in configs if view == "latency" else ():
        if result_key(c) in results:
            continue
        refusal = check(c, limit, lambda cc: bench.measurement_bytes(cc, dtype, impl),
                        what=_("Measuring {config}", config=sweep.short_id(c)), held=0)
        if refusal is not None:
            refused[c] = refusal.message()
    pending = [c for c in configs if result_key(c) not in results and c not in refused]
    plan = sweep.Plan(batch=list(pending))
    if device.type == "cpu" and pending and view == "latency":
        # Plan the next click from time estimates (convmix.speed), as far as one click reaches.
        with st.spinner(_("Estimating how long the next measurements take…")):
            plan = sweep.plan_batch(pending, cap, lambda c: ui.time_estimates(c, impl, budget_name), MAX_PLANNED)
    batch, too_slow = plan.batch, plan.too_slow
    estimate = math.ceil(plan.seconds)  # whole seconds, never "about 0 s" for a click that takes some
    measured_here = len(configs) - len(pending) - len(refused)

    command = cli_command(base, axes, dtype=dtype, impl=impl, budget=budget_name)
    if view == "latency":
        status = [ngettext("This sweep has {total:,} configuration: {measured:,} measured here, {pending:,} to "
                           "measure.", "This sweep has {total:,} configurations: {measured:,} measured here, "
                           "{pending:,} to measure.", len(configs), total=len(configs), measured=measured_here,
                           pending=len(pending))]
        if refused:
            status.append(ngettext("{count:,} does not fit this server's memory budget (below).",
                                   "{count:,} do not fit this server's memory budget (below).", len(refused),
                                   count=len(refused)))
        if too_slow:
            status.append(ngettext(
                "{count:,} is estimated to take longer than this server's limit of {limit:g} s per request, so it is "
                "left out here: {configs}.",
                "{count:,} are estimated to take longer than this server's limit of {limit:g} s per request, so they "
                "are left out here: {configs}.", len(too_slow), count=len(too_slow), limit=cap,
                configs=listed([labels[sweep.short_id(c)] for c in too_slow])))
        batch_ids = [labels[sweep.short_id(c)] for c in batch]
        if batch and device.type == "cpu":
            rest = len(pending) - len(too_slow) - len(batch)
            if rest:
                status.append(_(
                    "One click measures for at most {limit:g} s (this server's limit per request): the next "
                    "{count:,} ({configs}), about {seconds:,.0f} s by the estimate. The other {rest:,} stay for the "
                    "clicks after it.", limit=cap, count=len(batch), configs=listed(batch_ids), seconds=estimate,
                    rest=rest))
            else:
                status.append(ngettext(
                    "One click measures the {count:,} left, about {seconds:,.0f} s by the estimate.",
                    "One click measures all {count:,} left, about {seconds:,.0f} s by the estimate.", len(batch),
                    count=len(batch), seconds=estimate))
        elif batch:
            status.append(_("One click measures one configuration after another for at most {limit:g} s (this "
                            "server's limit per request); press again for the ones left.", limit=cap))
        st.markdown(" ".join(status))
        effort = bench.BUDGETS[budget_name]
        st.caption(_(
            "When to stop timing: after at least {least} rounds, as soon as the medians of ACmix, its parts and the "
            "baselines are each known within ±{precision:.0%} (each median's {confidence:.0%} confidence interval, "
            "from the sorted samples, lies in that band); otherwise once {seconds:g} s have passed, and after {most} "
            "rounds at most. Stable timings end sooner; noisy ones get more rounds.",
            least=effort.min_rounds, precision=effort.precision, confidence=bench.CONFIDENCE,
            seconds=effort.seconds, most=effort.max_rounds))
        if pending or refused:
            st.caption(_("The whole sweep in one go, on your own machine or a GPU, with the same settings (then "
                         "load the file below):"))
            st.code(command, language="bash", wrap_lines=True)
        if refused:
            shown = list(refused.values())[:5]
            more = len(refused) - len(shown)
            st.warning("\n".join(f"- {m}" for m in shown)
                       + ("\n- " + ngettext("and {count:,} more over the budget.", "and {count:,} more over the budget.",
                                            more, count=more) if more else ""), icon=":material/memory:")

    def measure(todo: list) -> None:
        """Measure `todo` in order until the time limit has passed; keep what the click leaves for later."""
        bar = st.progress(0.0, text=_("Starting…"))
        failures, notes = [], []
        still_here = connection_check()
        started = time.monotonic()
        for i, c in enumerate(todo, 1):
            if time.monotonic() - started > cap:
                notes.append(ngettext(
                    "This click reached its limit of {seconds:g} s after {count:,} configuration, fewer than "
                    "planned (the estimate was short); the button measures the next ones.",
                    "This click reached its limit of {seconds:g} s after {count:,} configurations, fewer than "
                    "planned (the estimate was short); the button measures the next ones.",
                    i - 1, seconds=cap, count=i - 1) if device.type == "cpu" else ngettext(
                    "This click reached its limit of {seconds:g} s after {count:,} configuration; the button "
                    "measures the next ones.",
                    "This click reached its limit of {seconds:g} s after {count:,} configurations; the button "
                    "measures the next ones.", i - 1, seconds=cap, count=i - 1))
                break
            if bench.MEASURE_LOCK.locked():
                bar.progress((i - 1) / len(todo), text=_("Waiting for another visitor's measurement to finish…"))
            k = result_key(c)
            try:
                results[k] = ui.measured_row(c, str(device), dtype, impl, budget_name, attempts.get(k, 0), still_here)
            except bench.Abandoned:
                st.stop()  # the visitor has gone: nothing more to measure or draw
            except bench.MeasureError as err:
                failures.append(f"{labels[sweep.short_id(c)]}: {err}")
            bar.progress(i / len(todo), text=_("Measured {done} of {count}: {config}", done=i, count=len(todo),
                                                  config=labels[sweep.short_id(c)]))
        st.session_state[FAILURES], st.session_state[NOTES] = failures, notes
        st.rerun()  # redraw with the new results (and the button's new label)

    if batch and len(batch) < len(pending):
        label = ngettext("Measure the next {count:,} configuration", "Measure the next {count:,} configurations",
                         len(batch), count=len(batch))
    elif batch:
        label = ngettext("Measure {count:,} configuration", "Measure {count:,} configurations", len(batch),
                         count=len(batch))
    else:
        label = ngettext("The {count:,} configuration that can run here is measured",
                         "All {count:,} configurations that can run here are measured", measured_here,
                         count=measured_here)
    if st.button(label, disabled=not batch, type="primary", key="explorer_measure"):
        measure(batch)
    for note in st.session_state.get(NOTES, []):
        st.info(note, icon=":material/timer:")
    for failure in st.session_state.get(FAILURES, []):
        st.warning(failure, icon=":material/warning:")

    live = {c: results[result_key(c)] for c in configs if result_key(c) in results}
    frames = [sweep.sweep_frame(list(live), live).assign(source=_("this server"))] if live else []
    noisy_here = [c for c, row in live.items() if sweep.flag_noise(pd.DataFrame([row]))["noisy"].iloc[0]]
    if noisy_here:
        st.warning(ngettext(
            "{count:,} latency measured here is noisy: its spread (75th − 25th percentile) is more than {limit:.0%} "
            "of its median, so other work on the server probably disturbed it: {configs}.",
            "{count:,} latencies measured here are noisy: their spread (75th − 25th percentile) is more than "
            "{limit:.0%} of their median, so other work on the server probably disturbed them: {configs}.",
            len(noisy_here), count=len(noisy_here), limit=sweep.NOISY_SPREAD,
            configs=listed([labels[sweep.short_id(c)] for c in noisy_here])), icon=":material/ssid_chart:")

        def again(chosen: list) -> None:
            for c in chosen:
                k = result_key(c)
                attempts[k] = attempts.get(k, 0) + 1
                results.pop(k, None)
            st.session_state[REMEASURE] = chosen

        st.button(ngettext("Measure the noisy configuration again", "Measure the {count:,} noisy configurations again",
                           len(noisy_here), count=len(noisy_here)), key="explorer_remeasure", on_click=again,
                  args=(noisy_here,), icon=":material/refresh:")
    again_now = st.session_state.pop(REMEASURE, None)
    if again_now:
        measure(again_now)

    uploads = st.file_uploader(
        _("Result files measured elsewhere (CSV from `python -m convmix sweep`)"), type="csv",
        accept_multiple_files=True, key="explorer_upload", max_upload_size=max(1, sweep.MAX_BYTES // 1_000_000),
        help=_("Up to {files} files of at most {megabytes:,.0f} MB and {rows:,} rows each; their rows are drawn "
               "beside this server's.", files=MAX_UPLOADS, megabytes=sweep.MAX_BYTES / 1e6, rows=sweep.MAX_ROWS))
    uploads = list(uploads or [])
    if len(uploads) > MAX_UPLOADS:
        dropped = discard_uploads(uploads[MAX_UPLOADS:])
        extra = len(uploads) - MAX_UPLOADS
        st.warning((_("Only the first {files} files are read; the other {count:,} were discarded. Upload at most "
                      "{files} at once.", files=MAX_UPLOADS, count=extra) if dropped else
                    _("Only the first {files} files are read; the other {count:,} are ignored. Upload at most "
                      "{files} at once.", files=MAX_UPLOADS, count=extra)), icon=":material/warning:")
    for f in uploads[:MAX_UPLOADS]:
        try:
            loaded = ui.read_upload(f.getvalue(), f.name, get_language())
        except sweep.ResultFileError as err:
            st.error(_("{name} was not loaded:", name=literal(f.name)) + "\n\n"
                     + "\n".join(f"- {p}" for p in err.problems), icon=":material/error:")
            continue
        with_latency = loaded[loaded["latency_ms"].notna()]
        devices = ", ".join(literal(d) for d in sorted(set(charts.device_labels(with_latency))))
        st.success(_("{name}: {rows:,} rows, {measured:,} with latency, measured on {devices}.",
                     name=literal(f.name), rows=len(loaded), measured=len(with_latency), devices=devices)
                   if devices else
                   _("{name}: {rows:,} rows, counts only (no latency).", name=literal(f.name), rows=len(loaded)),
                   icon=":material/upload_file:")
        frames.append(loaded)

    references = {}
    for path in sweep.reference_files():
        try:
            references[path.stem] = ui.read_reference(str(path), path.stat().st_mtime, get_language())
        except (OSError, sweep.ResultFileError) as err:
            st.error(_("The built-in reference {name} could not be read: {reason}", name=literal(path.name),
                       reason=err), icon=":material/error:")
    if references:
        def reference_label(stem: str) -> str:
            rows = references[stem]
            devices = ", ".join(sorted(set(charts.device_labels(rows[rows["latency_ms"].notna()]))))
            return _("{devices} ({file})", devices=devices or _("no device"), file=stem + ".csv")

        shown_refs = choice(st.multiselect, _("Built-in reference measurements"), list(references),
                            key="explorer_reference", format_func=reference_label, default=list(references),
                            multi=True, help=_("Result files measured elsewhere and shipped with this app (see "
                                               "benchmarks/gpu_reference.py); their rows of this sweep are drawn "
                                               "beside this server's, labelled with the device."))
        for stem in shown_refs:
            rows = sweep.add_labels(references[stem])
            in_sweep = rows[rows["config"].isin(set(labels))].drop(columns=["config", "layer", "label", "series",
                                                                              "facet", "row"])
            file_name = stem + ".csv"
            if in_sweep.empty:
                st.caption(_("The reference {file} holds none of this sweep's configurations (the preset “{preset}” "
                             "matches its grid).", file=literal(file_name), preset=_(PRESETS["resnet-stages"].label)))
            else:
                frames.append(in_sweep.assign(source=_("built-in reference {file}", file=file_name)))

    measured = sweep.add_labels(pd.concat(frames, ignore_index=True), x, facet) if frames else None
    if measured is None or measured["latency_ms"].notna().sum() == 0:
        st.info(_("Nothing measured yet: press the button above, or load result files."), icon=":material/timer:")
    elif view == "latency":
        rows = charts.measured_rows(measured)
        within = [*facet_within, "measured_on"]
        if relative:
            rows = sweep.relative_to(rows, ["latency_ms", "latency_ms_p25", "latency_ms_p75", "peak_bytes"],
                                     baseline, within,
                                     {"latency_ms_p25": "latency_ms", "latency_ms_p75": "latency_ms"})
            if rows["latency_ms_rel"].isna().all():
                st.info(_("The baseline configuration is not measured yet, so no change against it can be "
                          "shown: measure it, or choose a measured baseline."), icon=":material/info:")
        facet_charts(rows, "latency", lambda part, title: chart_spec(
            charts.latency_chart, part, x, highlight, relative, title, baseline_label))
        facet_charts(rows, "memory", lambda part, title: chart_spec(
            charts.memory_chart, part, x, highlight, relative, title, baseline_label))
        # Files written elsewhere may hold only the required columns: draw what they have.
        optional = {"parts": "attention_path_ms", "baselines": "conv2d_ms", "roofline": "floor_ms"}
        has = {name: col in measured and measured[col].notna().any() for name, col in optional.items()}
        if has["parts"]:
            facet_charts(rows, "parts", lambda part, title: chart_spec(charts.parts_chart, part, highlight, title))
        if has["baselines"]:
            facet_charts(rows, "baselines",
                         lambda part, title: chart_spec(charts.baselines_chart, part, highlight, title))
        if has["roofline"]:
            draw(chart_spec(charts.roofline_chart, rows, highlight), "explorer_chart_roofline")
        missing = {"parts": _("the parts"), "baselines": _("the baselines"), "roofline": _("the roofline floor")}
        absent = [missing[name] for name, present in has.items() if not present]
        if absent:
            st.caption(_("The results shown hold no measurement of {what}, so those charts are left out.",
                         what=", ".join(absent)))
        table = rows.assign(noisy_text=rows["noisy"].map({True: _("noisy"), False: ""}))
        st.dataframe(
            table[[c for c in ("label", "measured_on", "latency_ms", "latency_ms_p25", "latency_ms_p75", "spread",
                               "noisy_text", "others_cpu_share", "load_avg_1m", "peak_bytes", "floor_ratio", "source")
                   if c in table]],
            hide_index=True, width="stretch",
            column_config={
                "label": st.column_config.TextColumn(_("configuration")),
                "measured_on": st.column_config.TextColumn(_("measured on")),
                "latency_ms": st.column_config.NumberColumn(_("median (ms)"), format="%.4f"),
                "latency_ms_p25": st.column_config.NumberColumn(_("25th pct (ms)"), format="%.4f"),
                "latency_ms_p75": st.column_config.NumberColumn(_("75th pct (ms)"), format="%.4f"),
                "spread": st.column_config.NumberColumn(_("spread"), format="percent",
                                                        help=_("(75th − 25th percentile) / median")),
                "noisy_text": st.column_config.TextColumn(_("flag")),
                "others_cpu_share": st.column_config.NumberColumn(
                    _("others' CPU use"), format="percent",
                    help=_("Share of all the machine's CPU time that other processes used while this row was "
                           "timed.")),
                "load_avg_1m": st.column_config.NumberColumn(_("load average"), format="%.2f",
                                                             help=_("The machine's 1-minute load average.")),
                "peak_bytes": st.column_config.NumberColumn(_("peak memory (bytes)"), format="localized"),
                "floor_ratio": st.column_config.NumberColumn(_("× roofline floor"), format="%.1f"),
                "source": st.column_config.TextColumn(_("source")),
            },
        )
        load = pd.DataFrame(list(live.values())) if live else pd.DataFrame()
        if not load.empty and "others_cpu_share" in load and load["others_cpu_share"].notna().any():
            share, avg = load["others_cpu_share"].dropna(), load["load_avg_1m"].dropna()
            cpus = int(load["cpus"].max()) if "cpus" in load and load["cpus"].notna().any() else 1
            st.caption(_(
                "The server's load while it measured: other processes used {low:.0%} to {high:.0%} of its {cpus} "
                "CPUs' time; the 1-minute load average was {avg_low:.1f} to {avg_high:.1f}. A load near or above "
                "the number of CPUs slows and spreads the timings.", low=share.min(), high=share.max(), cpus=cpus,
                avg_low=avg.min() if not avg.empty else math.nan, avg_high=avg.max() if not avg.empty else math.nan))
        st.caption(_("Peak memory is the most the allocator holds during one no-grad forward beyond its input and "
                     "weights, kernels' own buffers included (CUDA's own statistic; on the CPU, the allocator's events "
                     "recorded by torch.profiler). This server keeps itself within {budget} in all, and each request "
                     "within {seconds:g} s: measurements estimated beyond either are refused.",
                     budget=human_bytes(limit), seconds=cap))

# The file is made when the button is pressed (Streamlit calls `data` then, in a thread of its own),
# from this run's configurations and results, not on every run (30 ms of each explorer run on 2 cores).
st.download_button(
    _("Download this sweep as CSV"), lambda rows=(list(configs), dict(live)): sweep.to_csv(sweep.sweep_frame(*rows)),
    file_name="convmix_sweep.csv",
    mime="text/csv", key="explorer_download",
    help=_("One row per configuration: exact counts, and the latency and memory measured here so far."),
    icon=":material/download:",
)
show_url_notes()
