"""Home: what convmix is for, ACmix at a glance, and the live numbers of the sidebar's configuration."""

import streamlit as st

from convmix.bench import BUDGETS, MeasureError
from convmix.budget import memory_budget, time_limit
from convmix.compare import compare_impls, unfolded_copy_elements
from convmix.counting import module_param_counts, stage_costs
from convmix.diagram import FONT_SIZE, LAYOUTS, acmix_dot
from convmix.fast import fast_attention_parts, fast_attention_peak_elements
from convmix.format import human_bytes
from convmix.i18n import _, ngettext, pgettext
from convmix.quirks import cite
from convmix.runtime import device_description
from convmix.ui.cache import module_within_budget
from convmix.ui.code import code_line
from convmix.ui.navigation import PAGE_LINKS_CSS, ensure_router, page_links
from convmix.ui.session import connection_check
from convmix.ui.sidebar import current_config

ensure_router()
config = current_config()

# The diagram in two layouts (convmix.diagram); the box it stands in shows the one that fits: side
# by side where the box is wide, one column on a phone, so that labels stay legible. A container
# query decides by the box's own width (the page's columns stack below 640 px, the sidebar takes
# room above). Streamlit draws all Graphviz text at one small size; the labels get back the size
# the layout was made for, so that they fill their boxes. The CSS goes in once, with the page.
DIAGRAM_KEY = "acmix_diagram"
NARROW_BELOW_PX = 530  # the wide layout is about 500 pt wide (11 pt labels): narrower boxes shrink them
st.html(
    "<style>"
    f".st-key-{DIAGRAM_KEY} {{container-type: inline-size;}}"
    f"@container (max-width: {NARROW_BELOW_PX - 1}px) {{.st-key-{DIAGRAM_KEY}_wide {{display: none;}}}}"
    f"@container (min-width: {NARROW_BELOW_PX}px) {{.st-key-{DIAGRAM_KEY}_narrow {{display: none;}}}}"
    + "".join(f".st-key-{DIAGRAM_KEY}_{layout} svg g.graph text {{font-size: {FONT_SIZE[layout]}px;}}"
              for layout in LAYOUTS)
    + PAGE_LINKS_CSS
    + "</style>"
)


def stage_label(stage: str) -> str:
    """The name of a stage of convmix.counting.stage_costs, in the visitor's language."""
    return {
        "Stage I": pgettext("ACmix stage", "Stage I"),
        "attention": pgettext("ACmix stage", "attention"),
        "convolution": pgettext("ACmix stage", "convolution"),
        "mix": pgettext("ACmix stage", "mix"),
    }.get(stage, stage)


def timing_help(timing) -> str:
    return ngettext("Median of {samples} timed sample, IQR {p25:,.1f}–{p75:,.1f} ms.",
                    "Median of {samples} timed samples, IQR {p25:,.1f}–{p75:,.1f} ms.", timing.samples,
                    samples=timing.samples, p25=timing.p25_ms, p75=timing.p75_ms)


st.title("convmix")
st.markdown(_(
    "An explainer for two things that confuse people reading vision code: the **`bias`** of "
    "`nn.Conv2d`, and **ACmix** (Pan et al., *On the Integration of Self-Attention and "
    "Convolution*, CVPR 2022), the module that mixes local self-attention and convolution. "
    "Every number here comes from live PyTorch tensors or from a formula that the test suite "
    "checks against execution. The sidebar holds one ACmix configuration; every page reads it, "
    "and the URL carries it, so a copied link shows the same view."
))

page_links()

st.subheader(_("ACmix at a glance"))
left, right = st.columns([3, 2], gap="large")
with left, st.container(key=DIAGRAM_KEY):
    shown = None if config.problems() else config
    for layout in LAYOUTS:
        with st.container(key=f"{DIAGRAM_KEY}_{layout}"):
            st.graphviz_chart(acmix_dot(shown, layout), width="stretch")
with right:
    st.markdown(_(
        "- **Stage I** (shared): three 1×1 convolutions `conv1`, `conv2`, `conv3` project the input "
        "to q, k and v. All three feed *both* paths.\n"
        "- **Attention path**: q, k, v split into heads; each query attends to a "
        "`kernel_att × kernel_att` window of keys, with a relative positional term from `conv_p`.\n"
        "- **Convolution path**: `fc` mixes the 3·head groups of q, k, v into `kernel_conv²` "
        "groups; `dep_conv`, a grouped convolution initialised as shift kernels, sums shifted "
        "copies of them.\n"
        "- **Mix**: `out = rate1 · out_att + rate2 · out_conv`, both rates learnable and "
        "initialised to 0.5."
    ))

problems = config.problems()
st.subheader(_("This configuration"))
code_line(config.describe())
if problems:
    st.info(_("This configuration cannot run, so there is nothing live to show here: the sidebar "
              "says why and what would work."), icon=":material/arrow_back:")
elif (module := module_within_budget(config)) is not None:
    params = module_param_counts(module)
    stages = stage_costs(config.step_costs())
    total = sum(c.flops for c in stages.values())
    cols = st.columns(4)
    cols[0].metric(_("Parameters"), f"{sum(params.values()):,}",
                   help=_("Read from the live module: sum of p.numel() over its parameters."))
    cols[1].metric(_("Output shape"), " × ".join(str(s) for s in config.output_shape))
    cols[2].metric(_("Estimated peak memory"), human_bytes(config.estimate_peak_bytes()),
                   help=_("The most the CPU allocator holds during one no-grad float32 forward "
                          "beyond its input and weights, kernels' own buffers included, estimated "
                          "from shapes before anything is allocated: an upper bound of the measured "
                          "peak (convmix.memory)."))
    cols[3].metric(_("FLOPs per forward"), f"{total:,}",
                   help=_("The official formulation's operations counted by one convention "
                          "(convmix.counting): 2 per multiply-add, n adds for an n-term sum, 1 per "
                          "bias add and per elementwise operation, 5 per softmax element; copies "
                          "and reshapes 0. A convention, not a count of machine instructions."))
    list_separator = pgettext("list separator", ", ")
    st.caption(_("Parameters per submodule: {counts}", counts=list_separator.join(
        f"`{name}` {count:,}" for name, count in params.items())))
    # (each item worded first: the message extractor does not look into nested calls)
    costs = [_("{stage} {flops:,} ({share:.0%})", stage=stage_label(name), flops=cost.flops,
               share=cost.flops / total) for name, cost in stages.items()]
    st.caption(_("FLOPs per stage: {costs}", costs=list_separator.join(costs)))

st.subheader(_("Reference vs fast attention"))
st.markdown(_(
    "ACmix can run its attention path two ways, switched by the module's `impl` attribute on the "
    "same parameters. **reference** is the authors' formulation, the default everywhere else in "
    "this app: it unfolds `kernel_att²` copies of k, v and the positional encoding. **fast** "
    "walks the window offsets over views of one padded map instead. The tests hold its output "
    "and the gradient of every parameter and of the input to within 1e-5 of the reference's, "
    "measured as ‖fast − reference‖ / ‖reference‖ in float32, on 20 chosen and 40 seeded "
    "random configurations (1e-10 in float64, on five of them); other configurations may differ "
    "by slightly more rounding. `conv_p.bias` is the exception: its gradient is exactly zero in "
    "exact arithmetic (the bias cancels in the positional term, see the walkthrough's conv_p "
    "section), so both formulations return rounding noise, which the tests compare to the size of "
    "`conv_p.weight`'s gradient instead."
))
if problems:
    st.caption(_("Nothing to compare until the configuration runs (the sidebar says what would)."))
else:
    copy = unfolded_copy_elements(config)
    parts = fast_attention_parts(config)
    st.markdown(_(
        "**Where the reference's time goes**, {quirk}: `unfold_k` and `unfold_v` hold "
        "K shifted copies of k and of v (K = {copies:,}), B·C·K·Ho·Wo = {copy:,} values each "
        "({copy_bytes} in float32), and `unfold_rpe` holds K copies of the positional encoding; "
        "the logits are then computed elementwise over these copies, "
        "`q · (unfold_k + q_pe − unfold_rpe)`, and the weighted sum `att · unfold_v` is one more "
        "such tensor. Writing and re-reading these copies is where the time goes. The fast path "
        "does the same multiply-adds over views instead and holds, at most, {fast_bytes} in "
        "float32: the padded k − pe map ({padded:,} values) and the {logits:,} logits while it "
        "computes the logits, one head channel at a time for all K offsets at once; the logits and "
        "their softmax; then the padded v ({padded:,}), the weights and the output ({output:,}).",
        quirk=cite("Q9"), copies=config.kernel_att ** 2, copy=copy, copy_bytes=human_bytes(4 * copy),
        fast_bytes=human_bytes(4 * fast_attention_peak_elements(config)), padded=parts["padded map"],
        logits=parts["logits"], output=parts["output"],
    ))
    result_key = "_home_impl_comparison"
    if st.button(_("Measure reference vs fast"), key="home_compare_button", icon=":material/speed:",
                 help=_("Times both forwards in alternation and measures their peak memory on this "
                        "server; takes a few seconds.")):
        with st.spinner(_("Measuring both implementations (one measurement at a time on this "
                          "server)…")):
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
        cols[0].metric(_("Reference latency"), _("{ms:,.1f} ms", ms=ref.timing.median_ms),
                       help=timing_help(ref.timing))
        ratio = comparison.latency_ratio
        cols[1].metric(_("Fast latency"), _("{ms:,.1f} ms", ms=fast.timing.median_ms),
                       delta=(_("{ratio:,.1f}× faster", ratio=ratio) if ratio >= 1
                              else _("{ratio:,.1f}× slower", ratio=1 / ratio)), delta_color="off",
                       help=timing_help(fast.timing))
        cols[2].metric(_("Reference peak memory"), human_bytes(ref.peak_bytes),
                       help=_("Measured: the most the allocator held during one no-grad forward "
                              "beyond its input and weights, kernels' own buffers included, "
                              "{measured:,} bytes (estimated from shapes: {estimated:,}).",
                              measured=ref.peak_bytes, estimated=ref.estimated_peak_bytes))
        cols[3].metric(_("Fast peak memory"), human_bytes(fast.peak_bytes),
                       delta=_("{ratio:,.1f}× less", ratio=comparison.memory_ratio), delta_color="off",
                       help=_("Measured the same way: {measured:,} bytes (estimated from shapes: "
                              "{estimated:,}).", measured=fast.peak_bytes,
                              estimated=fast.estimated_peak_bytes))
        env = comparison.env
        st.caption(ngettext(
            "Measured live on {device_name} ({device}, {threads} thread, torch {torch_version}, "
            "{dtype}), both forwards alternated round by round. The two outputs differ by "
            "{error:.1e} relative. Latency depends on this server's load; press the button again "
            "to remeasure.",
            "Measured live on {device_name} ({device}, {threads} threads, torch {torch_version}, "
            "{dtype}), both forwards alternated round by round. The two outputs differ by "
            "{error:.1e} relative. Latency depends on this server's load; press the button again "
            "to remeasure.",
            env.threads,
            device_name=env.device_name, device=env.device, threads=env.threads,
            torch_version=env.torch_version, dtype=env.dtype, error=comparison.max_relative_error,
        ))
    else:
        st.caption(_(
            "Estimated peak memory (what the allocator holds at most, from shapes): reference "
            "{reference}, fast {fast}. Press the button to measure both.",
            reference=human_bytes(config.estimate_peak_bytes()),
            fast=human_bytes(config.estimate_peak_bytes(impl="fast")),
        ))

st.subheader(_("Device"))
st.markdown(_("torch sees: **{device}**", device=device_description()))
