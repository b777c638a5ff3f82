"""ACmix step by step: every submodule and step of one traced forward. Layout only: the numbers
come from convmix.walkthrough, read from the trace that convmix.ui.cache.get_trace keeps per
configuration, so the inspector and the rate sliders never rerun the forward."""

from __future__ import annotations

import streamlit as st

from convmix import charts_walkthrough as charts
from convmix import walkthrough as wt
from convmix.budget import OverBudget
from convmix.counting import module_param_counts
from convmix.format import human_bytes
from convmix.quirks import QUIRKS, cite
from convmix.ui.cache import conv_p_gradients, get_module, get_trace, steps_table
from convmix.ui.navigation import ensure_router
from convmix.ui.sidebar import current_config

ensure_router()

FLOAT = st.column_config.NumberColumn(format="%.4g")
STAT = st.column_config.NumberColumn(format="%.3g", width=62)
COUNT = st.column_config.NumberColumn(format="%,d")
FC_HEADS_SHOWN = 16  # rows per q/k/v drawn in the fc matrix
SECTIONS = ["Overview", "Stage I", "Attention path", "Convolution path", "Mix",
            "Attention inspector", "conv_p", "fc", "dep_conv", "Channel grouping", "Authors' quirks"]
MAP_SIZE = 250  # a step's heatmap: fits the expander's right column at 1400 px
PANEL_SIZE = 150  # one of the inspector's five window panels: five fit at 1400 px


def keep_in_range(key: str, lo: int, hi: int, default: int) -> None:
    """Give a widget its default on first use, and again when a new configuration moves its
    range past the stored value."""
    value = st.session_state.get(key)
    if not isinstance(value, int) or not lo <= value <= hi:
        st.session_state[key] = default


def keep_in_options(key: str, options: list, default) -> None:
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def show_map(ms: wt.MapSlice, *, signed: bool = True, size: int = 260, value_title: str = "value"):
    df, _ = wt.map_frame(ms.values)
    st.altair_chart(charts.map_heatmap(df, ms.title, signed=signed, size=size,
                                       value_title=value_title), width="content")
    st.caption(f"`{ms.index}`")


# ---------------------------------------------------------------------------------------------
# Which configuration
# ---------------------------------------------------------------------------------------------

st.title("ACmix, step by step")
st.markdown(
    "Every line of ACmix's forward, with the tensors to prove it, at the configuration in the "
    "sidebar. All tensors below were recorded from **one** forward of the module itself "
    "(`convmix.acmix.ACmix`, whose official variant computes the authors' code value for value) "
    "on a seeded random input; the inspector and the sliders re-read those recorded tensors and "
    "never run the forward again (only the conv_p section's gradient check runs the module once "
    "more, with autograd, on a copy)."
)

plan = wt.plan_walkthrough(current_config())


if plan.problems and plan.fallback:
    st.info(
        "The official variant cannot run this configuration (the sidebar says why). Shown "
        "instead: the **fixed** variant, with the same submodules and parameters, dep_conv "
        "padded by kernel_conv // 2, h_out = ceil(H / stride) and the window dilation applied.",
        icon=":material/build:",
    )
if plan.shown is None:
    if plan.refusal is not None:
        st.error(plan.refusal.message(), icon=":material/memory:")
    else:
        st.info(f"{'Neither variant' if plan.requested.variant == 'official' else 'This variant'} "
                "can run this configuration, so there is nothing to walk through: the sidebar "
                "says why and what would work.", icon=":material/arrow_back:")
    st.stop()

config = plan.shown
try:
    module = get_module(config)
    trace = get_trace(config)
except OverBudget as err:  # fits the budget, but not beside what the server holds right now
    st.error(str(err), icon=":material/memory:")
    st.stop()
d, h = config.head_dim, config.head
params = module_param_counts(module)
total = trace.total_cost()

st.code(f"{config.describe()}  ->  output {tuple(trace.output.shape)}", language="python",
        wrap_lines=True)
cols = st.columns(4)
cols[0].metric("Parameters", f"{sum(params.values()):,}",
               help="Read from the live module: " + ", ".join(f"{k} {v:,}" for k, v in params.items()))
cols[1].metric("Multiply-adds", f"{total.macs:,}")
cols[2].metric("FLOPs", f"{total.flops:,}",
               help="Counted by one convention (convmix.counting): 2 per multiply-add, n adds "
               "for an n-term sum, 1 per bias add and per elementwise operation, 5 per softmax "
               "element. Not a count of machine instructions.")
cols[3].metric("Trace holds", human_bytes(trace.tensor_bytes()),
               help="All recorded tensors, shared storage counted once.")

# ---------------------------------------------------------------------------------------------
# The slice every heatmap shows
# ---------------------------------------------------------------------------------------------

kk, kc2 = config.kernel_att**2, config.kernel_conv**2
pad_att, dil = module.padding_att, wt.window_dilation(config)
pad_conv = module.dep_conv.padding[0]
keep_in_range("wt_batch", 0, config.batch - 1, 0)
keep_in_range("wt_head", 0, h - 1, 0)
keep_in_range("wt_channel", 0, d - 1, 0)
keep_in_options("wt_window", list(range(kk)), kk // 2)
keep_in_options("wt_offset", list(range(kc2)), kc2 // 2)
with st.container(border=True):
    st.markdown("**Slice shown in the heatmaps** (the index under each map says exactly which)")
    c = st.columns([0.8, 0.8, 0.8, 1.7, 2.6])
    batch = c[0].number_input("batch item", 0, config.batch - 1, key="wt_batch")
    head = c[1].number_input("head", 0, h - 1, key="wt_head")
    channel = c[2].number_input("channel in head", 0, d - 1, key="wt_channel",
                                help=f"0 … {d - 1}; output channel = head · {d} + this.")
    window = c[3].selectbox("window position (unfold, logits, softmax)", list(range(kk)),
                            key="wt_window",
                            format_func=lambda j: wt.window_label(j, config.kernel_att, pad_att, dil))
    offset = c[4].selectbox("conv offset (f_all, f_conv)", list(range(kc2)), key="wt_offset",
                            format_func=lambda i: wt.offset_label(i, config.kernel_conv, pad_conv))
sel = wt.Selection(int(batch), int(head), int(channel), int(window), int(offset))
out_channel = sel.head * d + sel.channel


def draw_step(step, expanded: bool) -> None:
    """One step in an expander; its heatmaps are only built while the expander is open."""
    owner = step.info.owner or "tensor op"
    shape = " × ".join(map(str, step.shape))
    box = st.expander(f"**{step.name}** · {owner} · {shape}", expanded=expanded,
                      key=f"wt_step_{step.name}", on_change="rerun")
    with box:
        if box.open is False:
            return
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.markdown(wt.explanation(step.name, config))
            st.latex(wt.STEP_TEXT[step.name].formula)
            st.caption(f"This project, `convmix/acmix.py` line {step.line}:")
            st.code(step.source, language="python", wrap_lines=True)
            st.caption("The authors' statement:")
            st.code(step.info.code, language="python", wrap_lines=True)
            row = steps.loc[steps["step"] == step.name].iloc[0]
            st.markdown(
                f"| shape | memory | parameters of {owner} | multiply-adds | FLOPs |\n"
                f"|---|---|---|---|---|\n"
                f"| {shape} | {row['memory']} | {step.params:,} | {step.cost.macs:,} | "
                f"{step.cost.flops:,} |\n\n"
                f"Statistics of the whole tensor: mean {row['mean']:.4g} · std {row['std']:.4g} · "
                f"min {row['min']:.4g} · max {row['max']:.4g}"
            )
        with right:
            for ms in wt.step_maps(step, sel, config):
                show_map(ms, signed=step.name != "att", size=MAP_SIZE)


steps = steps_table(config)
groups = wt.group_steps(trace)
titles = dict(wt.GROUPS)


def overview() -> None:
    st.markdown(
        "The forward in order. **Stage I**: three 1×1 convolutions make q, k, v, shared by both "
        "paths. **Attention path**: heads, scaling, the conv_p positional encoding, reflection "
        "padding, unfold, logits, softmax, weighted sum. **Convolution path**: fc mixes the "
        "q/k/v head groups, a reshape, and the grouped dep_conv. **Mix**: rate1 and rate2. "
        "Parameters are those of the step's owning submodule; multiply-adds and FLOPs are the "
        "step's own (reshapes, padding and unfolding only move data)."
    )
    st.dataframe(
        steps, hide_index=True, width="stretch", height=35 * (len(steps) + 1) + 3,
        # Widths that fit every column, FLOPs included, in the main area at 1400 px.
        column_config={"group": st.column_config.TextColumn(width=72),
                       "step": st.column_config.TextColumn(width=78),
                       "shape": st.column_config.TextColumn(width=132),
                       "mean": STAT, "std": STAT, "min": STAT, "max": STAT,
                       "memory": st.column_config.TextColumn(width=74),
                       "owner": st.column_config.TextColumn(width=66),
                       "parameters": st.column_config.NumberColumn("params", format="%,d", width=62),
                       "multiply-adds": st.column_config.NumberColumn(format="%,d", width=92),
                       "FLOPs": st.column_config.NumberColumn(format="%,d", width=100)},
    )
    st.markdown(
        "**Parameters per submodule** (live module): "
        + ", ".join(f"`{k}` {v:,}" for k, v in params.items())
        + f"; total **{sum(params.values()):,}**."
    )

def step_group(key: str) -> None:
    st.subheader(titles[key])
    st.markdown(wt.GROUP_INTRO[key])
    for i, step in enumerate(groups[key]):
        draw_step(step, expanded=(i == 0))

# ---------------------------------------------------------------------------------------------
# Mix: rate sliders re-mix the recorded path outputs
# ---------------------------------------------------------------------------------------------


@st.fragment
def mix_section() -> None:
    trace, module = get_trace(config), get_module(config)  # fragment reruns: the page's own are gone
    out_att, out_conv = trace["out_att"].tensor, trace["out_conv"].tensor
    own1, own2 = float(module.rate1.detach()), float(module.rate2.detach())
    st.markdown(
        f"The module's own rates are rate1 = {own1:g} and rate2 = {own2:g}. Move the sliders to "
        "re-mix the **recorded** out_att and out_conv; each path's share is "
        "|rate|·‖path output‖ divided by the sum of both (‖·‖ the L2 norm over the whole tensor)."
    )
    c = st.columns(2)
    r1 = c[0].slider("rate1 (attention)", -1.0, 2.0, own1, 0.05, key="wt_rate1")
    r2 = c[1].slider("rate2 (convolution)", -1.0, 2.0, own2, 0.05, key="wt_rate2")
    shares = wt.path_shares(out_att, out_conv, r1, r2)
    m = st.columns(4)
    m[0].metric("attention share", f"{shares.attention:.1%}")
    m[1].metric("convolution share", f"{shares.convolution:.1%}")
    m[2].metric("‖out_att‖", f"{shares.norm_att:,.2f}")
    m[3].metric("‖out_conv‖", f"{shares.norm_conv:,.2f}")
    remixed = wt.remix(out_att, out_conv, r1, r2)
    same = float((wt.remix(out_att, out_conv, own1, own2) - trace["out"].tensor.double()).abs().max())
    st.caption(
        f"Check: re-mixing at the module's own rates reproduces the traced `out` to within "
        f"{same:.2g} (largest difference)."
    )
    if shares.norm_conv > shares.norm_att:
        st.markdown(
            f"At equal rates the convolution path is the larger one here (‖out_conv‖ / ‖out_att‖ "
            f"= {shares.norm_conv / max(shares.norm_att, 1e-300):.1f}): out_conv adds up "
            f"{kc2} shifted fc outputs, while out_att is a weighted *average* of values "
            "(softmax weights are non-negative and sum to 1), which shrinks it."
        )
    left, right = st.columns(2)
    with left:
        df, _ = wt.map_frame(remixed[sel.batch, out_channel].numpy())
        st.altair_chart(charts.map_heatmap(
            df, f"rate1·out_att + rate2·out_conv, channel {out_channel}", size=260),
            width="content")
        st.caption(f"`{r1:g} · out_att[{sel.batch}, {out_channel}] + {r2:g} · "
                   f"out_conv[{sel.batch}, {out_channel}]`")
    with right:
        st.altair_chart(charts.channel_share_chart(wt.channel_shares(out_att, out_conv, r1, r2)),
                        width="stretch")


def mix() -> None:
    st.subheader("Mix")
    st.markdown(wt.GROUP_INTRO["mix"])
    for step in groups["mix"]:
        draw_step(step, expanded=True)
    st.subheader("Re-mix with rate1 and rate2")
    mix_section()

# ---------------------------------------------------------------------------------------------
# Attention inspector
# ---------------------------------------------------------------------------------------------


def pick_query_from_map() -> None:
    """Click on the query map: move the query there (runs before the fragment redraws)."""
    event = st.session_state.get("wt_query_map")
    points = (event or {}).get("selection", {}).get(charts.QUERY_SELECTION) or []
    if points:
        st.session_state["wt_qrow"] = int(points[0]["row"])
        st.session_state["wt_qcol"] = int(points[0]["col"])


@st.fragment
def inspector_section() -> None:
    trace = get_trace(config)  # fragment reruns: the page's own is gone (see the end of the page)
    ho, wo = config.out_height, config.out_width
    # Batch item, head and channel are the slice selector's above: one selector, one truth.
    b, n, ch = sel.batch, sel.head, sel.channel
    # Start near the top-left corner, where the window reaches into the reflection padding.
    keep_in_range("wt_qrow", 0, ho - 1, min(1, ho - 1))
    keep_in_range("wt_qcol", 0, wo - 1, min(2, wo - 1))
    c = st.columns(4)
    r = int(c[0].number_input("query row", 0, ho - 1, key="wt_qrow"))
    q = int(c[1].number_input("query column", 0, wo - 1, key="wt_qcol"))
    c[2].markdown(f"Batch item **{b}**, head **{n}**, channel **{ch}** in the head: set in the "
                  "slice selector above.")
    insp = wt.inspect_query(trace, config, b, n, r, q)
    cells = insp.cells

    top = st.columns(2, gap="medium")
    with top[0]:
        df, _ = wt.map_frame(trace["out_att"].tensor[b, n * d + ch].double().numpy())
        st.altair_chart(
            charts.map_heatmap(df, f"out_att channel {n * d + ch}: click a query", size=250,
                               select=True, marker=(r, q)),
            key="wt_query_map", on_select=pick_query_from_map, selection_mode=charts.QUERY_SELECTION,
            width="content",
        )
        st.caption(f"Query ({r}, {q}) of the {ho}×{wo} output sits at input position "
                   f"({insp.in_row}, {insp.in_col}).")
    with top[1]:
        st.altair_chart(
            charts.key_window_chart(wt.key_window_frame(trace, config, insp, ch),
                                    (insp.in_row, insp.in_col),
                                    f"k_pad, head {n}, channel {ch}",
                                    cell=max(8, min(20, 250 // (2 * insp.padding + 5)))),
            width="content",
        )
        n_reflected = int(cells["reflected"].sum())
        st.caption(
            f"Outlined: the {config.kernel_att}×{config.kernel_att} window (p = {insp.padding}); "
            f"faded: reflection padding, each cell a copy of the input cell named in its "
            f"tooltip; ringed: the query. {n_reflected} of the {len(cells)} window positions "
            "read a padding copy."
        )
    st.markdown(
        "**The window, position by position** (dashed outline: the key is a reflection-padding "
        "copy). The positional code is 0 at the centre and, away from the border, the same at "
        "every query; content + position = logit; softmax turns the logits into weights."
    )
    st.altair_chart(charts.window_panels(wt.window_panels_frame(insp, ch), size=PANEL_SIZE),
                    width="content")
    err = float((cells["content"] + cells["positional"] - cells["logit"]).abs().max())
    st.caption(
        f"Check: content + position = the recorded logit to within {err:.2g}; the recorded "
        f"weights sum to {cells['weight'].sum():.6f}."
    )
    with st.expander("All window positions as a table", expanded=False):
        st.dataframe(cells, hide_index=True, width="stretch",
                     column_config={k: FLOAT for k in ("content", "positional", "logit", "weight")})
    st.markdown(f"**Output: Σ_j w_j · v_j beside the recorded out_att entry** (head {n})")
    worst = float(insp.output["difference"].abs().max())
    st.dataframe(insp.output, hide_index=True, width="stretch",
                 height=35 * (min(d, 16) + 1) + 3,
                 column_config={k: st.column_config.NumberColumn(format="%.7f")
                                for k in ("Σ_j w_j · v_j", "out_att entry")}
                 | {"difference": st.column_config.NumberColumn(format="%.2e")})
    st.caption(f"Largest difference over the head's {d} channels: {worst:.2g} (float32 rounding).")


def attention_inspector() -> None:
    st.subheader("Attention inspector")
    st.markdown(
        "Pick a query (or click one on the map); the head and the channel drawn are those of the "
        "slice selector above. The query's logits are "
        "q·(k_j + pe_q − pe_key,j) over the window positions j, its weights their softmax, and "
        "its output the weighted sum of the window's values, computed here from the recorded "
        "tensors and set beside the recorded output."
    )
    inspector_section()

# ---------------------------------------------------------------------------------------------
# conv_p
# ---------------------------------------------------------------------------------------------

def conv_p() -> None:
    st.subheader("conv_p: positions as features")
    st.markdown(
        f"`conv_p = nn.Conv2d(2, head_dim, kernel_size=1)` maps the 2-channel coordinate grid to "
        f"d = {d} channels ({params['conv_p']:,} parameters: 2·{d} weights and {d} biases). "
        "Each output channel is a plane over the image, w_x·x + w_y·y + b, shared by all heads. "
        "The logits only use pe_q − pe_key = w_x·(x_q − x_key) + w_y·(y_q − y_key): a *relative* "
        "position term in which the bias cancels."
    )
    g1, g2, g3 = st.columns(3)
    grid_maps = wt.step_maps(trace["grid"], sel, config)
    with g1:
        show_map(grid_maps[0], size=200)
    with g2:
        show_map(grid_maps[1], size=200)
    with g3:
        show_map(wt.step_maps(trace["pe"], sel, config)[0], size=200)
    plane = wt.conv_p_plane_error(trace, module)
    st.caption(
        f"Check: the recorded pe equals w_x·grid_x + w_y·grid_y + b from conv_p's weights to "
        f"within {plane:.2g} in every channel."
    )
    st.dataframe(wt.conv_p_frame(module), hide_index=True, width="content",
                 column_config={"w_x": FLOAT, "w_y": FLOAT, "bias": FLOAT})
    st.markdown(
        "**conv_p's bias is a dead parameter.** It adds the same vector to the query's and to "
        "every key's positional code, so pe_q − pe_key does not contain it: the output does not "
        "depend on it, and its gradient is exactly zero in exact arithmetic. Training never "
        "moves it, and a tolerance on it can only measure rounding (which is why the tests "
        "compare it to the size of conv_p.weight's gradient)."
    )
    refusal = wt.conv_p_gradients_refusal(config)
    if refusal is not None:
        st.caption(f"Live check not run: {refusal.message()}")
    else:
        g = conv_p_gradients(config)
        cols = st.columns(2)
        cols[0].metric("‖∂L/∂conv_p.bias‖ / ‖∂L/∂conv_p.weight‖, float64",
                       f"{g.bias64 / g.weight64:.1e}")
        cols[1].metric("the same, float32", f"{g.bias32 / g.weight32:.1e}")
        st.caption(
            f"Live evidence: autograd through a copy of this module on its recorded input, loss "
            f"L = Σ out · R with a fixed random R. conv_p.weight gets a gradient of norm "
            f"{g.weight64:.3g}; conv_p.bias gets {g.bias64:.1e} in float64 and {g.bias32:.1e} in "
            f"float32: a few units of each dtype's rounding (ε = 2.2e-16 and 1.2e-7), nothing else."
        )

# ---------------------------------------------------------------------------------------------
# fc
# ---------------------------------------------------------------------------------------------

def fc() -> None:
    st.subheader("fc: 3·head groups in, kernel_conv² groups out")
    st.markdown(
        f"`fc = nn.Conv2d(3·head, kernel_conv², kernel_size=1, bias=False)`. Its input is q, k "
        f"and v each viewed as (B, {h}, {d}, H·W) and concatenated: {3 * h} groups (q/k/v × "
        f"head) of {d} channels. A 1×1 convolution over that group axis mixes, for each "
        f"within-head channel and position, the {3 * h} group values into {kc2} outputs, one per "
        f"kernel offset of dep_conv. The weight is therefore a **{3 * h} × {kc2}** matrix "
        f"(3·head × kernel_conv²), {params['fc']:,} parameters, shared by all {d} channels.\n\n"
        f"**Why 3N × k²** ({cite('Q10')}). The paper's first figure labels this layer "
        f"3N_head × k²N_conv, two different N; read as one N, a separate set of kernel_conv² "
        f"outputs per head, it would hold {3 * h} × {kc2 * h} = {3 * h * kc2 * h:,} weights here"
        + (" (the same as 3N × k² only because this configuration has one head)" if h == 1 else "")
        + ". The code's fc is 3N × k² (N = heads), and the authors confirmed in their issue "
        "tracker (LeapLabTHU/ACmix, issue 5) that this is correct: the heads are mixed together, "
        "and the conv path's groups come from the grouped dep_conv, whose groups are the "
        "head_dim channels."
    )
    st.altair_chart(charts.fc_matrix_chart(wt.fc_matrix_frame(module, max_heads=FC_HEADS_SHOWN)),
                    width="content")
    st.caption(
        (f"Only the rows of heads 0 … {FC_HEADS_SHOWN - 1} of q, k and v are drawn. "
         if h > FC_HEADS_SHOWN else "")
        + f"Rows: input group g of the concatenation (q heads, then k, then v). Columns: output "
        f"group i, the kernel offset (dy, dx) that dep_conv's shift kernels give it. Shapes: "
        f"{' × '.join(map(str, trace['qkv_groups'].shape))} → "
        f"{' × '.join(map(str, trace['f_all'].shape))}."
    )

# ---------------------------------------------------------------------------------------------
# dep_conv
# ---------------------------------------------------------------------------------------------

def dep_conv() -> None:
    st.subheader("dep_conv: shift kernels, a grouped convolution, no bias")
    check = wt.check_shift(trace, module)
    bias = wt.dep_conv_bias(module)
    group = out_channel // h
    st.markdown(
        f"`dep_conv = nn.Conv2d(d·kc², C, kernel_size={config.kernel_conv}, groups=d, "
        f"padding={pad_conv}, stride={config.stride})`: {d} groups, each reading {kc2} channels "
        f"(the fc outputs of one within-head channel) and writing {h} output "
        f"channel{'s' if h > 1 else ''}. At "
        "initialisation every output channel holds the same shift kernels: input channel i of "
        "its group has a single 1 at kernel position (i // kc, i % kc), so the convolution adds "
        "up the kc² fc outputs, each shifted by one kernel offset."
    )
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.altair_chart(
            charts.shift_kernel_chart(wt.shift_kernel_frame(module, out_channel),
                                      config.kernel_conv,
                                      f"dep_conv.weight[{out_channel}] (group {group})"),
            width="content",
        )
        st.caption(f"Output channel {out_channel} (head {sel.head}, channel {sel.channel} in the "
                   "slice selector). The weights "
                   + ("are exactly the shift kernels." if check.weights_are_shift
                      else "are not the shift kernels."))
    with right:
        st.metric("Largest |out_conv − shift sum|", f"{check.max_difference:.2g}",
                  help="The shift sum is computed from the traced f_all by zero padding and "
                  "slicing (convmix.walkthrough.shift_sum), not by a convolution.")
        st.markdown(
            f"**Live check.** Σ over the {kc2} offsets of the traced f_all, zero-padded by "
            f"{pad_conv} and sliced with stride {config.stride}, against the traced out_conv: "
            f"largest difference **{check.max_difference:.2g}** where out_conv's values reach "
            f"{check.max_magnitude:.3g}. At initialisation the conv path *is* a sum of shifted "
            f"copies. (In the authors' ResNet model file a network-wide Kaiming init runs after "
            f"the module is built and overwrites these kernels: {cite('Q11')}.)"
        )
        st.markdown(
            f"**The missing bias** ({cite('Q1')}). The constructor asks for `bias=True`, but "
            f"`reset_parameters` assigns the result of a fill helper that returns nothing, so "
            f"`dep_conv.bias` is **{'present' if bias.present else 'None'}** here: "
            f"{bias.params_without:,} parameters (C·kc⁴) instead of {bias.params_with:,}. "
            "State dict keys: " + ", ".join(
                f"`{k}`" for k in module.state_dict() if k.startswith("dep_conv")) + "."
        )

# ---------------------------------------------------------------------------------------------
# Channel grouping
# ---------------------------------------------------------------------------------------------

def channel_grouping() -> None:
    st.subheader("Channel grouping: the two paths order channels differently")
    within, across = wt.group_spread(trace, config)
    st.markdown(
        f"**Attention path.** Output channel c is channel c % {d} of head c // {d}: heads are "
        f"contiguous blocks of d = {d} channels. It averages v channel c with weights computed "
        f"from the q and k channels of its head.\n\n"
        f"**Convolution path.** After fc and the reshape, f_conv channel g·{kc2} + i is fc "
        f"output i of within-head channel g, and dep_conv (groups = d = {d}) gives output "
        f"channels g·{h} … g·{h} + {h - 1} to group g. So output channel o belongs to group "
        f"**o // h** (h = {h}) and is built from channel o // h of *every* head of q, k and v, "
        "while the same index in the attention path belongs to head o // d.\n\n"
        f"Live evidence: at initialisation the {h} output channels of one conv group are "
        f"identical (largest difference within a group {within:.2g}, between groups "
        f"{across:.3g})."
    )
    grouping = wt.channel_grouping_frame(config)
    st.altair_chart(charts.grouping_chart(grouping), width="content")
    st.dataframe(grouping, hide_index=True, width="stretch", height=320)


def quirks() -> None:
    st.subheader("The authors' quirks")
    st.markdown(
        "What the authors' ACmix code does that a reader would not expect, each reproducible. "
        "The codes Q1–Q11 appear elsewhere in this app, always with the short name given here."
    )
    for quirk in QUIRKS.values():
        st.markdown(f"**{quirk.code}: {quirk.name}.** {quirk.what}  \n*Evidence:* {quirk.evidence}")


VIEWS = {
    "Overview": overview,
    "Stage I": lambda: step_group("Stage I"),
    "Attention path": lambda: step_group("attention"),
    "Convolution path": lambda: step_group("convolution"),
    "Mix": mix,
    "Attention inspector": attention_inspector,
    "conv_p": conv_p,
    "fc": fc,
    "dep_conv": dep_conv,
    "Channel grouping": channel_grouping,
    "Authors' quirks": quirks,
}
# Only the open tab runs (the tabs track their state), and the URL names it (?section=...).
for tab, name in zip(st.tabs(SECTIONS, key="section", bind="query-params"), SECTIONS, strict=True):
    with tab:
        if tab.open is not False:
            if (refusal := wt.section_refusal(config, name)) is not None:
                st.error(refusal.message(), icon=":material/memory:")
                continue
            VIEWS[name]()
# Streamlit keeps this run's functions (fragments, callbacks) and so its globals: let go of the
# tensors, so that a session never holds a trace beyond the cache's two (the fragments fetch theirs).
trace = module = groups = None
