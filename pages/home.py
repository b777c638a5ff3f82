"""Home: what convmix is for, ACmix at a glance, and the live numbers of the sidebar's configuration."""

import streamlit as st

from convmix.bench import BUDGETS, MeasureError
from convmix.budget import memory_budget, time_limit
from convmix.compare import compare_impls, unfolded_copy_elements
from convmix.counting import module_param_counts, stage_costs
from convmix.diagram import acmix_dot
from convmix.fast import fast_attention_parts, fast_attention_peak_elements
from convmix.format import human_bytes
from convmix.quirks import cite
from convmix.runtime import device_description
from convmix.ui.cache import module_within_budget
from convmix.ui.navigation import ensure_router, page_links
from convmix.ui.session import connection_check
from convmix.ui.sidebar import current_config

ensure_router()
config = current_config()

st.title("convmix")
st.markdown(
    "An explainer for two things that confuse people reading vision code: the **`bias`** of "
    "`nn.Conv2d`, and **ACmix** (Pan et al., *On the Integration of Self-Attention and "
    "Convolution*, CVPR 2022), the module that mixes local self-attention and convolution. "
    "Every number here comes from live PyTorch tensors or from a formula that the test suite "
    "checks against execution. The sidebar holds one ACmix configuration; every page reads it, "
    "and the URL carries it, so a copied link shows the same view."
)

page_links()

st.subheader("ACmix at a glance")
left, right = st.columns([3, 2], gap="large")
with left:
    st.graphviz_chart(acmix_dot(None if config.problems() else config), width="stretch")
with right:
    st.markdown(
        "- **Stage I** (shared): three 1×1 convolutions `conv1`, `conv2`, `conv3` project the input "
        "to q, k and v. All three feed *both* paths.\n"
        "- **Attention path**: q, k, v split into heads; each query attends to a "
        "`kernel_att × kernel_att` window of keys, with a relative positional term from `conv_p`.\n"
        "- **Convolution path**: `fc` mixes the 3·head groups of q, k, v into `kernel_conv²` "
        "groups; `dep_conv`, a grouped convolution initialised as shift kernels, sums shifted "
        "copies of them.\n"
        "- **Mix**: `out = rate1 · out_att + rate2 · out_conv`, both rates learnable and "
        "initialised to 0.5."
    )

problems = config.problems()
st.subheader("This configuration")
st.code(config.describe(), language="python")
if problems:
    st.info("This configuration cannot run, so there is nothing live to show here: the sidebar "
            "says why and what would work.", icon=":material/arrow_back:")
elif (module := module_within_budget(config)) is not None:
    params = module_param_counts(module)
    stages = stage_costs(config.step_costs())
    total = sum(c.flops for c in stages.values())
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{sum(params.values()):,}",
                   help="Read from the live module: sum of p.numel() over its parameters.")
    cols[1].metric("Output shape", " × ".join(str(s) for s in config.output_shape))
    cols[2].metric("Estimated peak memory", human_bytes(config.estimate_peak_bytes()),
                   help="The most the CPU allocator holds during one no-grad float32 forward "
                   "beyond its input and weights, kernels' own buffers included, estimated from "
                   "shapes before anything is allocated: an upper bound of the measured peak "
                   "(convmix.memory).")
    cols[3].metric("FLOPs per forward", f"{total:,}",
                   help="The official formulation's operations counted by one convention "
                   "(convmix.counting): 2 per multiply-add, n adds for an n-term sum, 1 per bias "
                   "add and per elementwise operation, 5 per softmax element; copies and "
                   "reshapes 0. A convention, not a count of machine instructions.")
    st.caption("Parameters per submodule: " + ", ".join(f"`{k}` {v:,}" for k, v in params.items()))
    st.caption("FLOPs per stage: " + ", ".join(
        f"{name} {cost.flops:,} ({cost.flops / total:.0%})" for name, cost in stages.items()))

st.subheader("Reference vs fast attention")
st.markdown(
    "ACmix can run its attention path two ways, switched by the module's `impl` attribute on the "
    "same parameters. **reference** is the authors' formulation, the default everywhere else in "
    "this app: it unfolds `kernel_att²` copies of k, v and the positional encoding. **fast** "
    "walks the window offsets over views of one padded map instead. The tests hold its output "
    "and the gradient of every parameter and of the input to within 1e-5 of the reference's, "
    "measured as ‖fast − reference‖ / ‖reference‖ in float32, on 20 chosen and 40 seeded "
    "random configurations (1e-10 in float64, on five of them); other configurations may differ "
    "by slightly more rounding. `conv_p.bias` is the exception: its gradient is exactly zero in exact arithmetic "
    "(the bias cancels in the positional term, see the walkthrough's conv_p section), so both "
    "formulations return rounding noise, which the tests compare to the size of "
    "`conv_p.weight`'s gradient instead."
)
if problems:
    st.caption("Nothing to compare until the configuration runs (the sidebar says what would).")
else:
    copy = unfolded_copy_elements(config)
    parts = fast_attention_parts(config)
    st.markdown(
        f"**Where the reference's time goes**, {cite('Q9')}: `unfold_k` and `unfold_v` hold "
        f"K = {config.kernel_att ** 2:,} shifted copies of k and of v, B·C·K·Ho·Wo = {copy:,} "
        f"values each ({human_bytes(4 * copy)} in float32), and `unfold_rpe` holds K copies of "
        f"the positional encoding; the logits are then computed elementwise over these copies, "
        f"`q · (unfold_k + q_pe − unfold_rpe)`, and the weighted sum `att · unfold_v` is one more "
        f"such tensor. Writing and re-reading these copies is where the time goes. The fast path "
        f"does the same multiply-adds over views instead and holds, at most, "
        f"{human_bytes(4 * fast_attention_peak_elements(config))} in float32: the padded "
        f"k − pe map ({parts['padded map']:,} values), the {parts['logits']:,} logits and a "
        f"product buffer ({parts['product buffer']:,}) while it computes the logits; the logits "
        f"and their softmax; then the padded v ({parts['padded map']:,}), the weights and the "
        f"output ({parts['product buffer']:,})."
    )
    result_key = "_home_impl_comparison"
    if st.button("Measure reference vs fast", key="home_compare_button", icon=":material/speed:",
                 help="Times both forwards in alternation and measures their peak memory on this "
                 "server; takes a few seconds."):
        with st.spinner("Measuring both implementations (one measurement at a time on this server)…"):
            try:
                st.session_state[result_key] = compare_impls(
                    config, budget=BUDGETS["standard"], memory_limit=memory_budget(),
                    time_limit=time_limit(), still_wanted=connection_check())
            except MeasureError as err:
                st.session_state[result_key] = None
                st.warning(str(err), icon=":material/block:")
    comparison = st.session_state.get(result_key)
    if comparison is not None and comparison.config == config:
        ref, fast = comparison.results["reference"], comparison.results["fast"]
        cols = st.columns(4)
        cols[0].metric("Reference latency", f"{ref.timing.median_ms:,.1f} ms",
                       help=f"Median of {ref.timing.samples} timed samples, IQR "
                       f"{ref.timing.p25_ms:,.1f}–{ref.timing.p75_ms:,.1f} ms.")
        cols[1].metric("Fast latency", f"{fast.timing.median_ms:,.1f} ms",
                       delta=(f"{comparison.latency_ratio:,.1f}× faster" if comparison.latency_ratio >= 1
                              else f"{1 / comparison.latency_ratio:,.1f}× slower"), delta_color="off",
                       help=f"Median of {fast.timing.samples} timed samples, IQR "
                       f"{fast.timing.p25_ms:,.1f}–{fast.timing.p75_ms:,.1f} ms.")
        cols[2].metric("Reference peak memory", human_bytes(ref.peak_bytes),
                       help=f"Measured: the most the allocator held during one no-grad forward "
                       f"beyond its input and weights, kernels' own buffers included, "
                       f"{ref.peak_bytes:,} bytes (estimated from shapes: "
                       f"{ref.estimated_peak_bytes:,}).")
        cols[3].metric("Fast peak memory", human_bytes(fast.peak_bytes),
                       delta=f"{comparison.memory_ratio:,.1f}× less", delta_color="off",
                       help=f"Measured the same way: {fast.peak_bytes:,} bytes (estimated from "
                       f"shapes: {fast.estimated_peak_bytes:,}).")
        env = comparison.env
        st.caption(
            f"Measured live on {env.device_name} ({env.device}, {env.threads} threads, torch "
            f"{env.torch_version}, {env.dtype}), both forwards alternated round by round. The two "
            f"outputs differ by {comparison.max_relative_error:.1e} relative. Latency depends on "
            f"this server's load; press the button again to remeasure."
        )
    else:
        st.caption(
            f"Estimated peak memory (what the allocator holds at most, from shapes): reference "
            f"{human_bytes(config.estimate_peak_bytes())}, fast "
            f"{human_bytes(config.estimate_peak_bytes(impl='fast'))}. Press the button to measure "
            f"both."
        )

st.subheader("Device")
st.write(f"torch sees: **{device_description()}**")
