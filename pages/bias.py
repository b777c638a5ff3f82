"""What `bias=True` does in nn.Conv2d, shown on live tensors. Layout only: logic in convmix.bias."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st
import torch

from convmix import bias as cb
from convmix import charts_bias as charts
from convmix.budget import in_use, memory_budget
from convmix.config import ACmixConfig
from convmix.constraints import module_problems
from convmix.format import human_bytes
from convmix.quirks import cite
from convmix.ui.cache import bounded_cache, module_within_budget
from convmix.ui.navigation import ensure_router
from convmix.ui.sidebar import current_config, show_url_notes, url_notes_once

ensure_router()

BUILTIN, UPLOAD = "Built-in scene", "Your image"
URL_NOTES_KEY = "_bias_url_notes"


# ---------------------------------------------------------------------------------------------
# Cached compute, keyed by the layer (a frozen LayerSpec), the image key and the size. The
# forwards are shared objects that nothing mutates; bounded in bytes (convmix.ui.cache.bounded_cache),
# and the page checks its estimated memory (cb.page_bytes) against the budget before computing anything.
# ---------------------------------------------------------------------------------------------


@st.cache_resource(max_entries=8)
def layer_of(spec: cb.LayerSpec) -> torch.nn.Conv2d:
    return cb.seed_layer(spec)


@st.cache_resource(max_entries=8)
def batchnorm(spec: cb.LayerSpec) -> torch.nn.BatchNorm2d:
    return cb.illustrative_bn(layer_of(spec))


@st.cache_data(max_entries=16, show_spinner=False)
def load_image(upload: bytes | None, size: int) -> tuple[np.ndarray, str]:
    """(size, size, 3) uint8 and a sentence on where it came from. Raises cb.ImageError."""
    if upload is None:
        return cb.builtin_scene(size), (
            f"Built-in scene, drawn at {size}×{size} by `convmix.bias.builtin_scene` from numpy "
            "math (gradients, discs, sine curves): made by this project, no download."
        )
    img = cb.decode_upload(upload)
    w, h = img.size
    return cb.square_crop(img, size), (
        f"Your image ({w:,}×{h:,} pixels), shorter side resized to {size} and centre-cropped "
        f"to {size}×{size}."
    )


@bounded_cache(share=16, max_entries=4)
def forward(spec: cb.LayerSpec, key: str, size: int, _x: torch.Tensor) -> cb.SeedRun:
    return cb.run_seed_layer(layer_of(spec), _x)


@bounded_cache(share=16, max_entries=4)
def batchnorm_results(spec: cb.LayerSpec, key: str, size: int, _x: torch.Tensor):
    layer, bn = layer_of(spec), batchnorm(spec)
    cancel = cb.bn_cancellation(layer, bn, _x) if spec.bias else None
    return cancel, cb.fold_check(layer, bn, _x)


@bounded_cache(share=16, max_entries=4)
def gradients(spec: cb.LayerSpec, key: str, size: int, _x: torch.Tensor) -> cb.GradientCheck:
    # A batch of two (the image and its mirror) shows the sum over the batch as well.
    return cb.gradient_check(layer_of(spec), torch.cat([_x, _x.flip(3)]))


@bounded_cache(share=16, max_entries=4)
def homogeneity(spec: cb.LayerSpec, key: str, size: int, _x: torch.Tensor) -> cb.Homogeneity:
    return cb.homogeneity(layer_of(spec), _x)


@bounded_cache(share=32, max_entries=16)
def padding_demo(spec: cb.LayerSpec, key: str, size: int, padding: int,
                 _x: torch.Tensor) -> cb.PaddingDemo:
    return cb.padding_demo(layer_of(spec), _x, padding)


@st.cache_resource(max_entries=8, show_spinner=False)
def acmix_table(config: ACmixConfig, _module):
    return cb.acmix_bias_table(_module)


def sci(v: float) -> str:
    return "0 (exact)" if v == 0 else f"{v:.1e}"


def reset_bias_slider() -> None:
    # A new channel or layer starts from its own bias, not from the previous slider value.
    st.session_state.pop("bias_value", None)


# ---------------------------------------------------------------------------------------------
# The article, and the layer the visitor sets
# ---------------------------------------------------------------------------------------------

notes = url_notes_once(URL_NOTES_KEY, lambda params: cb.view_from_query_params(params)[1],
                       cb.URL_INTEGERS)
st.title("What `bias=True` does in `nn.Conv2d`")
st.markdown(
    f"This page started from a Chinese blog answer, *{cb.ARTICLE_TITLE}* (“{cb.ARTICLE_TITLE_EN}”), "
    f"which by its page layout appeared on {cb.ARTICLE_SITE}; its author and date are unknown. It "
    "explains the `bias` of ResNet's first layer, with a bias added, and gets some of it wrong "
    "(see the end of this page). Every number below is computed on this page, from the layer "
    "itself, on an image you can change; you can change the layer too."
)
show_url_notes(notes)

st.header("The layer")
with st.container(border=True):
    c = st.columns([1.2, 1, 1, 1, 1, 1])
    default = cb.DEFAULT_LAYER
    in_channels = c[0].radio(
        "in_channels", cb.IN_CHANNEL_CHOICES, index=cb.IN_CHANNEL_CHOICES.index(default.in_channels),
        key="bias_in", bind="query-params", horizontal=True, on_change=reset_bias_slider,
        help="3: the image in colour (RGB); 1: its luminance (greyscale).")
    numbers = {}
    for col, (field, key, label) in zip(
        c[1:5], (("out_channels", "bias_out", "out_channels"), ("kernel", "bias_kernel", "kernel_size"),
                 ("stride", "bias_stride", "stride"), ("padding", "bias_pad", "padding")), strict=True):
        lo, hi = cb.LAYER_LIMITS[field]
        numbers[field] = int(col.number_input(label, lo, hi, getattr(default, field), 1, key=key,
                                              bind="query-params", on_change=reset_bias_slider))
    has_bias = c[5].checkbox("bias", default.bias, key="bias_bias", bind="query-params",
                             on_change=reset_bias_slider)
    spec = cb.LayerSpec(in_channels=int(in_channels), bias=bool(has_bias), **numbers)
    st.code(f"self.conv1 = {spec.line}", language="python")
    if spec == default:
        st.caption("The article's layer, ResNet's stem with a bias added. Change any value above; "
                   "the URL keeps it.")
    else:
        st.caption(f"The article's layer is `{cb.SEED_LINE}`; this page now explains yours.")

layer = layer_of(spec)
k, s, p, cin, cout = spec.kernel, spec.stride, spec.padding, spec.in_channels, spec.out_channels
n_with = cb.conv_param_count(cin, cout, k, bias=True)
n_without = cb.conv_param_count(cin, cout, k, bias=False)
cols = st.columns(4)
cols[0].metric("weight shape", " × ".join(str(d) for d in layer.weight.shape))
cols[1].metric("bias shape", f"{cout}" if spec.bias else "none")
cols[2].metric("parameters, bias=True", f"{n_with:,}")
cols[3].metric("parameters, bias=False", f"{n_without:,}")
st.markdown(
    f"{cout} × {cin} × {k} × {k} = {n_without:,} weights, plus one bias per output channel: "
    f"{n_without:,} + {cout} = {n_with:,}. Output channel `c` is the input correlated with its "
    f"own {cin}×{k}×{k} kernel"
    + (", plus one number:" if spec.bias else "; with bias=False nothing is added:")
)
stride = "" if s == 1 else str(s)
st.latex(
    rf"y[c, i, j] \;=\; \sum_{{c'=0}}^{{{cin - 1}}}\sum_{{u=0}}^{{{k - 1}}}\sum_{{v=0}}^{{{k - 1}}}"
    rf" W[c, c', u, v]\,x_{{\text{{pad}}}}[c', {stride}i+u, {stride}j+v]"
    + (r" \;+\; b[c]" if spec.bias else "")
)
bound = 1 / spec.fan_in**0.5
st.caption(
    f"The weights{' and biases' if spec.bias else ''} are PyTorch's default initialisation, "
    f"U(−1/√{spec.fan_in}, 1/√{spec.fan_in}), drawn from the random seed {cb.SEED}: an untrained "
    f"layer" + (f", so the biases are small (|b| < {bound:.3f})." if spec.bias else ".")
)

# ---------------------------------------------------------------------------------------------
# The input
# ---------------------------------------------------------------------------------------------

st.header("The input")
left, right = st.columns([2, 3])
with left:
    source = st.radio("Image", [BUILTIN, UPLOAD], horizontal=True, key="bias_source")
    upload = None
    if source == UPLOAD:
        file = st.file_uploader(
            f"PNG or JPEG, at most {cb.MAX_UPLOAD_BYTES // 2**20} MB and "
            f"{cb.MAX_SIDE}×{cb.MAX_SIDE} pixels",
            type=["png", "jpg", "jpeg"],
            key="bias_upload",
            max_upload_size=cb.MAX_UPLOAD_BYTES // 2**20,
        )
        if file is None:
            st.info("No image uploaded yet: the built-in scene is shown meanwhile.")
        else:
            upload = file.getvalue()
    size = st.select_slider(
        "Input size (H = W)", cb.SIZES, value=cb.DEFAULT_SIZE, key="bias_size", bind="query-params",
        help="The image is resized to this square before the layer sees it.",
    )
    try:
        rgb, origin = load_image(upload, size)
    except cb.ImageError as err:
        st.error(f"This upload cannot be used: {err} The built-in scene is shown instead.")
        upload = None
        rgb, origin = load_image(None, size)
key = "builtin" if upload is None else hashlib.sha256(upload).hexdigest()


def acmix_section() -> None:
    st.header("Bias inside ACmix")
    st.caption("This section, alone on this page, reads the ACmix configuration in the sidebar.")
    config = current_config()
    # Only the module's hyperparameters matter here; the sidebar's input size does not.
    if module_problems(**config.module_kwargs()):
        st.warning(
            "The sidebar's ACmix configuration cannot be built (the sidebar says why), so this "
            "section shows the default `ACmix(64, 64)`."
        )
        config = ACmixConfig()
    module = module_within_budget(config)
    if module is None:
        config = ACmixConfig()
        st.caption("This section shows the default `ACmix(64, 64)` instead.")
        module = module_within_budget(config)
    subs, acmix_total = acmix_table(config, module)
    declared_total = acmix_total + sum(r.declared_bias_params - r.bias_params for r in subs)
    st.dataframe(
        pd.DataFrame(
            {
                "submodule": [r.name for r in subs],
                "constructor asks for a bias": ["yes" if r.declared else "no" for r in subs],
                "live module has one": ["yes" if r.actual else "no (None)" for r in subs],
                "weight parameters": [f"{r.weight_params:,}" for r in subs],
                "bias parameters": [f"{r.bias_params:,}" for r in subs],
            }
        ),
        hide_index=True,
    )
    dep = next(r for r in subs if r.name == "dep_conv")
    st.markdown(
        f"From the live module of the sidebar's configuration, `ACmix({config.in_planes}, "
        f"{config.out_planes}, head={config.head}, kernel_conv={config.kernel_conv}, ...)`. "
        "conv1–conv3 (q, k, v) and conv_p keep PyTorch's default `bias=True`; fc is built with "
        "`bias=False`. dep_conv is declared with `bias=True`, but the authors' "
        "`reset_parameters` assigns the result of a fill helper that returns nothing to "
        f"`dep_conv.bias`, so the bias is `None` ({cite('Q1')}). The module has "
        f"**{acmix_total:,}** parameters, not the **{declared_total:,}** its constructor "
        f"suggests: {declared_total - acmix_total:,} = the {dep.declared_bias_params:,} biases "
        "of dep_conv."
    )
    st.caption(
        "\"Constructor asks for a bias\" is read from the same class with `reset_parameters` "
        "skipped, not typed in by hand."
    )
    return dep, acmix_total, declared_total


problem = spec.problem(size)
need = cb.page_bytes(spec, size)
budget = memory_budget()
room = budget - in_use()  # the budget limits the whole process (convmix.budget)
if problem is not None:
    st.error(problem, icon=":material/error:")
elif need > room:
    smaller = cb.fitting_size(spec, size, room)
    st.error(
        f"This layer on a {size}×{size} input would need about {human_bytes(need)}, more than the "
        f"{human_bytes(max(room, 0))} left of this server's memory budget of {human_bytes(budget)}, "
        f"so it was not run. "
        + (f"A smaller input that fits: {smaller}×{smaller}." if smaller else
           "Use a larger stride, fewer output channels or a smaller kernel."),
        icon=":material/memory:",
    )
if problem is not None or need > room:
    acmix_section()
    st.stop()

seen = cb.as_seen(rgb, cin)
x = cb.to_input(rgb, cin)
run = forward(spec, key, size, x)
out_c, ho, wo = run.y.shape
with left:
    st.markdown(
        f"**Output shape:** {out_c} × {ho} × {wo} for a {size}×{size} input "
        f"(⌊({size} + 2·{p} − {k}) / {s}⌋ + 1 = {spec.output_size(size)})."
    )
    st.caption(
        ("The layer sees the image" if cin == 3 else "The layer sees the image's luminance")
        + " scaled to [0, 1] and normalised with ImageNet's mean and standard deviation, as a "
        "ResNet would."
    )

# ---------------------------------------------------------------------------------------------
# One output value, opened up
# ---------------------------------------------------------------------------------------------

st.header("One output value, opened up")
pick = st.columns(3)
channel = int(
    pick[0].number_input(
        "Output channel c (used in every section below)", 0, out_c - 1, 0, 1,
        key="bias_channel", on_change=reset_bias_slider, bind="query-params",
    )
)
# Bound to the URL, so that a copied link opens the same output value.
row = pick[1].slider("Output row i", 0, ho - 1, ho // 2, key="bias_row", bind="query-params")
col = pick[2].slider("Output column j", 0, wo - 1, wo // 2, key="bias_col", bind="query-params")
ov = cb.explain_output(layer, run, channel, row, col)

with right:
    st.image(
        cb.window_picture(seen, ov.top, ov.left, k),
        caption="Red box: the window of the output value chosen below.",
        width=min(448, max(224, size)),
    )
    st.caption(origin)

n_pad = int(ov.is_padding.sum())
st.markdown(
    f"Output `y[{channel}, {row}, {col}]` reads input rows {ov.top}…{ov.top + k - 1} and columns "
    f"{ov.left}…{ov.left + k - 1} of {'all three input channels' if cin == 3 else 'the input'}"
    + (
        f"; {n_pad} of its {k * k} taps per channel fall in the zero padding (grey)."
        if n_pad
        else "; none of them falls in the padding."
    )
)
st.altair_chart(
    charts.patch_chart(
        charts.patch_frame(ov.patch, ov.weights, ov.products, ov.is_padding, ov.top, ov.left)
    ),
    width="content",
)
m = st.columns(5)
m[0].metric("Σ W[c] · patch", f"{ov.dot:.6f}")
m[1].metric("+ bias b[c]", f"{ov.bias:+.6f}" if spec.bias else "none")
m[2].metric("= sum", f"{ov.total:.6f}")
m[3].metric("value in layer(x)", f"{ov.output:.6f}")
m[4].metric("difference", sci(ov.difference))
st.caption(
    "The sum is taken in float64 from the patch and weights shown; the output value is the "
    "layer's own float32 forward. The difference is float32 rounding."
)

# ---------------------------------------------------------------------------------------------
# Bias as a shift
# ---------------------------------------------------------------------------------------------

st.header("Bias as a shift")
pre = run.y_no_bias[channel].numpy()
learned = float(run.bias[channel])
kept_learned, kept_zero = cb.survival_fraction(pre, learned), cb.survival_fraction(pre, 0.0)


# Fragments: moving the bias or padding slider reruns only its own section.
@st.fragment
def shift_section(pre: np.ndarray, channel: int, learned: float) -> None:
    lo, hi = cb.bias_range(pre, learned)
    # The slider starts exactly at the layer's bias (its grid runs through it).
    b_now = st.slider(
        f"Bias b[{channel}]", lo, hi, learned, 0.01, key="bias_value", format="%.4f",
        help="The range runs from a bias that cuts every position to one that keeps them all.",
    )
    z = pre + b_now
    own = (f"With the layer's bias ({learned:+.4f}) it keeps **{kept_learned:.1%}** of the "
           f"{pre.size:,} positions" if spec.bias else
           f"This layer has no bias (b = 0): it keeps **{kept_learned:.1%}** of the {pre.size:,} "
           "positions")
    st.markdown(
        f"Adding b moves every value of channel {channel} by the same amount; the ReLU after it "
        f"keeps only positive values. {own}; with b = {b_now:+.4f}, "
        f"**{cb.survival_fraction(pre, b_now):.1%}**. A bias makes the layer affine rather than "
        "linear, and so chooses where the ReLU cuts."
    )
    maps = st.columns(2)
    span = float(np.abs(pre).max())  # fixed while the slider moves, so colours shift with b
    maps[0].altair_chart(
        charts.map_heatmap(
            z, f"conv(x) + b, channel {channel}", "before ReLU", domain=(-span, span)
        ),
        width="content",
    )
    maps[1].altair_chart(
        charts.map_heatmap(
            np.maximum(z, 0.0), f"ReLU(conv(x) + b), channel {channel}", "after ReLU",
            signed=False, domain=(0.0, span),
        ),
        width="content",
    )
    sweep_b = np.linspace(lo, hi, 241)
    st.altair_chart(
        charts.survival_chart(sweep_b, cb.survival_sweep(pre, sweep_b), b_now, learned),
        width="stretch",
    )


shift_section(pre, channel, learned)

st.subheader("The same constant at every position")
if spec.bias:
    diff_c = (run.y[channel] - run.y_no_bias[channel]).double()
    d = st.columns(4)
    d[0].metric(f"b[{channel}]", f"{learned:+.7f}")
    d[1].metric("min of y − y_no_bias", f"{float(diff_c.min()):+.7f}")
    d[2].metric("max of y − y_no_bias", f"{float(diff_c.max()):+.7f}")
    d[3].metric("max |y − y_no_bias − b|", sci(run.shift_deviation),
                help="Largest deviation from the bias over all channels and positions.")
    st.caption(
        f"`y` is `layer(x)`; `y_no_bias` the same weights with `bias=None`. Over all {out_c} "
        f"channels and {ho * wo:,} positions the difference equals the channel's bias up to "
        "float32 rounding: conv(x) + b is affine, and the shift is the same everywhere."
    )
else:
    st.caption(
        f"This layer has no bias, so layer(x) and the same weights without a bias agree exactly "
        f"(largest difference {sci(run.shift_deviation)}): there is no constant to add."
    )

st.subheader("Windows that see only padding output the bias")
first_empty = cb.first_all_padding(size, k, s)
seed_pad = padding_demo(spec, key, size, p, run.x)
bias_word = "b" if spec.bias else "0 (this layer has no bias)"
st.markdown(
    f"Zero padding adds zeros around the (normalised) input, so a window lying entirely in the "
    f"padding computes Σ W·0 + b = {bias_word}. "
    + (f"This layer's padding of {p} never produces such a window: every {k}×{k} window "
       f"reaches at least **{seed_pad.min_real_taps}** real pixels per channel. "
       if int(seed_pad.all_padding.sum()) == 0 else
       f"This layer's padding of {p} already produces such windows. ")
    + f"From padding {first_empty} on, with the same weights and bias, some do:"
)


def describe_padding(demo: cb.PaddingDemo) -> str:
    n_all = int(demo.all_padding.sum())
    if not n_all:
        return (
            f"No window is all padding at padding={demo.padding}: each one reaches at least "
            f"{demo.min_real_taps} real pixels per channel."
        )
    exact = "exactly 0" if demo.max_deviation == 0 else sci(demo.max_deviation)
    return (
        f"At padding={demo.padding}, {n_all:,} windows see only padding, and there every channel "
        f"outputs {'its bias' if spec.bias else '0'}: the largest |y − b[c]| is {exact}."
    )


@st.fragment
def padding_section(key: str, size: int, x: torch.Tensor) -> None:
    pad = st.slider(
        "Padding for this demonstration", 0, cb.demo_padding_max(spec), max(first_empty, p),
        key="bias_padding",
        help=f"The layer uses padding={p}; the weights and bias stay the same.",
    )
    demo = padding_demo(spec, key, size, pad, x)
    n_all = int(demo.all_padding.sum())
    pcols = st.columns([3, 2])
    with pcols[1]:
        st.metric("output shape", f"{out_c} × {demo.out_shape[0]} × {demo.out_shape[1]}")
        st.metric("windows entirely in padding", f"{n_all:,} of {demo.all_padding.numel():,}")
        if n_all:
            st.metric("largest |y − b[c]| there, all channels", sci(demo.max_deviation))
        st.caption(describe_padding(demo))
        st.caption(
            "Zero in the normalised input is ImageNet's mean colour, not black: the padding is "
            "a mid grey."
        )
    with pcols[0]:
        st.altair_chart(
            charts.mask_heatmap(
                demo.all_padding.numpy(), f"Output windows at padding={pad}",
                f"all padding: outputs {'b[c]' if spec.bias else '0'}", "sees the image",
            ),
            width="content",
        )


padding_section(key, size, run.x)
demo = padding_demo(spec, key, size, max(first_empty, p), run.x)

# ---------------------------------------------------------------------------------------------
# Bias and BatchNorm
# ---------------------------------------------------------------------------------------------

st.header("Bias and BatchNorm")
cancel, fold = batchnorm_results(spec, key, size, run.x)
bn = batchnorm(spec)
if cancel is None:
    st.info("This layer has no bias, so there is none for a training-mode BatchNorm to cancel; "
            "switch *bias* on under *The layer* to see it cancel. Folding, below, still gives "
            "the folded layer a bias.", icon=":material/info:")
else:
    st.markdown(
        "In training mode, BatchNorm subtracts each channel's mean over the batch and positions, "
        "then rescales and adds its own shift β. A constant b[c] raises the channel's mean by "
        "exactly b[c] and leaves its variance unchanged, so it cancels:"
    )
    st.latex(
        r"\mathrm{BN}(z + b)[c] = \gamma_c\,\frac{(z[c] + b_c) - (\mu_c + b_c)}"
        r"{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c = \mathrm{BN}(z)[c]"
    )
    bn_maps = st.columns(2)
    bn_maps[0].altair_chart(
        charts.map_heatmap(
            cancel.with_bias[channel].numpy(), f"BN(conv(x) + b), channel {channel}", "train BN",
            size=220, max_side=56,
        ),
        width="content",
    )
    bn_maps[1].altair_chart(
        charts.map_heatmap(
            cancel.without_bias[channel].numpy(), f"BN(conv(x)), channel {channel}", "train BN",
            size=220, max_side=56,
        ),
        width="content",
    )
    g_bn = cancel.bias_grad_through_bn.abs().max().item()
    g_plain = cancel.bias_grad_without_bn.abs().max().item()
    c = st.columns(3)
    c[0].metric("largest |difference|, all channels", sci(cancel.max_difference))
    c[1].metric("largest |∂L/∂b| through the BN", sci(g_bn))
    c[2].metric("largest |∂L/∂b| without the BN", sci(g_plain))
    st.caption(
        "L = ½·mean(out²). Through a training-mode BN the bias gets no gradient (float32 rounding "
        "only), so it would never learn anything. BN's γ and β here are illustrative values "
        f"(U(0.5, 1.5) and U(−0.5, 0.5), random seed {cb.SEED + 1}); the cancellation holds for "
        "any."
    )

st.markdown(
    "In evaluation mode, BatchNorm uses fixed running statistics μ and σ², so it is an affine "
    "map per channel and folds into the convolution: a new weight and a new bias"
    + (" (b = 0 here, as this layer has none)." if not spec.bias else ".")
)
st.latex(
    r"W'[c] = W[c]\cdot\frac{\gamma_c}{\sqrt{\sigma_c^2+\epsilon}},\qquad "
    r"b'_c = (b_c - \mu_c)\,\frac{\gamma_c}{\sqrt{\sigma_c^2+\epsilon}} + \beta_c"
)
fold_rows = pd.DataFrame(
    {
        "quantity": ["γ", "β", "running mean μ", "running var σ²", "γ/√(σ²+ε)", "b", "b′ (folded)"],
        f"channel {channel}": [
            float(bn.weight.detach()[channel]), float(bn.bias.detach()[channel]),
            float(bn.running_mean[channel]),
            float(bn.running_var[channel]), float(fold.scale[channel]), learned,
            float(fold.bias[channel]),
        ],
    }
)
f = st.columns([2, 3])
f[0].dataframe(fold_rows, hide_index=True, column_config={
    f"channel {channel}": st.column_config.NumberColumn(format="%.6f")
})
with f[1]:
    scale_out = float(fold.bn_output.abs().max())
    st.metric("largest |BN(conv(x)) − conv′(x)|, all channels", sci(fold.max_difference))
    st.caption(
        f"conv′ uses W′ and b′; BN(conv(x)) is BatchNorm2d in eval mode after the layer. "
        f"Outputs reach {scale_out:,.1f} in size, so the difference is float32 rounding. The "
        "running statistics were accumulated, as training does, from this layer's output on the "
        "built-in scene and its three flips."
    )
a_with = cb.conv_param_count(cb.IN_CHANNELS, cb.OUT_CHANNELS, cb.KERNEL, bias=True)
a_without = cb.conv_param_count(cb.IN_CHANNELS, cb.OUT_CHANNELS, cb.KERNEL, bias=False)
st.markdown(
    "**Why ResNet's stem uses `bias=False`.** torchvision's ResNet follows `conv1` with "
    "`bn1`. In training the bias is cancelled and gets no gradient; β does its job. At "
    "inference a bias appears anyway, by folding. So `bias=True` there only adds "
    f"{cb.OUT_CHANNELS} parameters ({a_with:,} instead of {a_without:,}) and an addition per "
    "output value."
)

# ---------------------------------------------------------------------------------------------
# Learning the bias
# ---------------------------------------------------------------------------------------------

st.header("Learning the bias")
grad = gradients(spec, key, size, run.x) if spec.bias else None
if grad is None:
    st.info("This layer has no bias to learn; switch *bias* on under *The layer* to see its "
            "gradient.", icon=":material/info:")
else:
    st.markdown(
        f"Each b[c] is added at every position of every image, so its gradient collects the "
        f"output gradient from all of them. Batch: the image and its mirror image "
        f"({grad.batch} items); loss L = ½·mean(y²)."
    )
    st.latex(
        r"\frac{\partial L}{\partial b_c} = \sum_{n}\sum_{i,j}\frac{\partial L}{\partial y[n, c, i, j]}"
    )
    gcols = st.columns(5)
    gcols[0].metric(f"autograd b.grad[{channel}]", f"{float(grad.bias_grad[channel]):.4e}")
    gcols[1].metric("Σ y.grad, image", f"{float(grad.per_item[0, channel]):.4e}")
    gcols[2].metric("Σ y.grad, mirror", f"{float(grad.per_item[1, channel]):.4e}")
    gcols[3].metric("Σ y.grad, both", f"{float(grad.output_grad_sum[channel]):.4e}")
    gcols[4].metric("max |b.grad − Σ y.grad|", sci(grad.max_difference),
                    help=f"Largest |b.grad − Σ y.grad| over all {out_c} channels.")
    st.altair_chart(
        charts.agreement_chart(
            grad.output_grad_sum.numpy(), grad.bias_grad.numpy(), "Σ ∂L/∂y over batch and positions",
            "autograd ∂L/∂b", f"All {out_c} channels: bias gradient vs summed output gradient",
            highlight=channel,
        ),
        width="stretch",
    )

dep, acmix_total, declared_total = acmix_section()

# ---------------------------------------------------------------------------------------------
# What the article gets wrong
# ---------------------------------------------------------------------------------------------

st.header("What the article gets wrong")
if not spec.bias:
    st.info("The article's claims are about a layer with a bias; switch *bias* on under *The "
            "layer* to see the evidence for each.", icon=":material/info:")
else:
    h = homogeneity(spec, key, size, run.x)
    claims = [
        (
            "它是一个标量值,与每个卷积核的输出相加 — a scalar added to each kernel's output",
            "Right",
            f"One number per output channel: bias shape ({out_c},). It is added at every "
            f"position: y − y_no_bias differs from b[c] by at most {sci(run.shift_deviation)}.",
        ),
        (
            "用于增加模型的非线性能力 — it increases the model's non-linear capacity",
            "Imprecise",
            f"The layer itself stays affine: conv(x) + b shifts every value of a channel by the "
            f"same constant (largest deviation {sci(run.shift_deviation)}); the non-linearity is "
            f"the ReLU. What is true: without biases a ReLU network is positively homogeneous, "
            f"ReLU(conv({h.alpha:g}·x)) = {h.alpha:g}·ReLU(conv(x)) (here the largest deviation "
            f"is {sci(h.without_bias)} of the largest output), so every kink passes through the "
            f"origin. Biases remove that limit by moving where each ReLU cuts: with this layer's "
            f"small, untrained biases the same identity is off by up to {h.with_bias:.1%} of the "
            f"largest output, and channel {channel} keeps {kept_learned:.1%} of positions with "
            f"b = {learned:+.4f} and {kept_zero:.1%} with b = 0.",
        ),
        (
            "通常情况下,bias项是需要设置的,因为它可以提供更大的模型拟合能力 — usually the bias is "
            "needed, because it gives the model more fitting capacity",
            "Incomplete",
            f"Before a BatchNorm it is redundant: BN(conv(x) + b) and BN(conv(x)) differ by at "
            f"most {sci(cancel.max_difference)}, and the bias's gradient through the BN is at most "
            f"{sci(g_bn)} (vs {sci(g_plain)} without). ResNet's stem uses bias=False: "
            f"{a_without:,} parameters instead of {a_with:,}.",
        ),
        (
            "偏置项是可学习的参数,需要通过训练过程来学习 — the bias is learned in training",
            "Right, and precisely",
            f"Its gradient is the output gradient summed over batch and positions: autograd and "
            f"the sum differ by at most {sci(grad.max_difference)}, over all {out_c} channels.",
        ),
        (
            "如果bias=False…卷积核的输出不会进行偏移 — with bias=False the output is not shifted",
            "Right",
            f"Without the bias the layer has {n_without:,} parameters and y_no_bias is the output "
            f"unshifted; with it, a window that sees only padding outputs b[c]. "
            f"{describe_padding(demo)}",
        ),
        (
            "dep_conv … bias=True … 深度可分离卷积层 — ACmix's dep_conv, a depthwise-separable "
            "convolution with bias=True",
            "Wrong",
            f"It is a grouped convolution (groups = head_dim = {dep.groups}) and the live module "
            f"has no bias: dep_conv.bias is None, {acmix_total:,} parameters instead of "
            f"{declared_total:,}.",
        ),
    ]
    for said, verdict, evidence in claims:
        left_col, right_col = st.columns([2, 3])
        left_col.markdown(f"**{verdict}.** {said}")
        right_col.markdown(evidence)
        st.divider()
