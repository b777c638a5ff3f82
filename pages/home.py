"""Home: what convmix is for, ACmix at a glance, and the live numbers of the sidebar's configuration."""

import streamlit as st

from convmix.counting import module_param_counts, stage_costs
from convmix.diagram import acmix_dot
from convmix.format import human_bytes
from convmix.runtime import device_description
from convmix.ui.cache import get_module
from convmix.ui.navigation import page_links
from convmix.ui.sidebar import current_config

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

page_links(config.to_query_params(only_changed=True))

st.subheader("ACmix at a glance")
left, right = st.columns([3, 2], gap="large")
with left:
    st.graphviz_chart(acmix_dot(config), width="stretch")
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
    st.error(
        "This configuration cannot run, so there is nothing live to show:\n\n"
        + "\n".join(f"- {p.sentence()}" for p in problems),
        icon=":material/error:",
    )
    if config.variant == "official":
        fixed = config.with_(variant="fixed")
        if not fixed.problems():
            st.info("The **fixed** variant runs this configuration: switch *variant* in the sidebar.")
else:
    module = get_module(config)
    params = module_param_counts(module)
    stages = stage_costs(config.step_costs())
    total = sum(c.flops for c in stages.values())
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{sum(params.values()):,}",
                   help="Read from the live module: sum of p.numel() over its parameters.")
    cols[1].metric("Output shape", " × ".join(str(s) for s in config.output_shape))
    cols[2].metric("Estimated peak memory", human_bytes(config.estimate_peak_bytes()),
                   help="Memory a no-grad float32 forward allocates beyond its input and weights, "
                   "estimated from shapes before anything is allocated.")
    cols[3].metric("FLOPs per forward", f"{total:,}",
                   help="Every floating-point operation of the official formulation: 2 per "
                   "multiply-add, plus bias adds, elementwise ops and softmax.")
    st.caption("Parameters per submodule: " + ", ".join(f"`{k}` {v:,}" for k, v in params.items()))
    st.caption("FLOPs per stage: " + ", ".join(
        f"{name} {cost.flops:,} ({cost.flops / total:.0%})" for name, cost in stages.items()))

st.subheader("Device")
st.write(f"torch sees: **{device_description()}**")
