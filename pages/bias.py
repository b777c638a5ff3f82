"""What `bias=True` does in `nn.Conv2d`, shown on live tensors. Layout only: logic in convmix.bias,
charts in convmix.charts_bias. Every sentence is English source text translated through convmix.i18n.

The page's work on a layer and an image is one cached computation (`results`), admitted against
the process's memory budget while it runs (convmix.budget.admitted): the reservation holds until
the results are complete, and a view that is already cached is never refused.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager

import numpy as np
import pandas as pd
import streamlit as st
import torch

from convmix import bias as cb
from convmix import budget
from convmix import charts_bias as charts
from convmix.config import ACmixConfig
from convmix.constraints import module_problems
from convmix.format import human_bytes
from convmix.i18n import N_, _, get_language, ngettext, pgettext
from convmix.quirks import cite
from convmix.runtime import SERVER, configure_torch
from convmix.ui.cache import bounded_cache, make_room, module_within_budget
from convmix.ui.charts import chart_spec
from convmix.ui.code import code_line
from convmix.ui.navigation import ensure_router
from convmix.ui.sidebar import current_config, show_url_notes, url_notes_once
from convmix.ui.widgets import choice, keep_values, url_tabs

WINDOW_CSS = ("<style>.st-key-bias_window img, .st-key-bias_window [data-testid='stImageContainer'], "
              ".st-key-bias_window [data-testid='stImageCaption'] {max-width: 100%; height: auto;}</style>")

ensure_router()

URL_NOTES_KEY = "_bias_url_notes"
SOURCES = ("builtin", "upload")
SOURCE_LABELS = {"builtin": N_("Built-in scene"), "upload": N_("Your image")}
# The sections after the output value's pickers, drawn lazily as tabs (only the open one runs and
# reaches the browser: the whole article at once took about 4 s to a first render on 2 cores).
VIEW = "bias_view"
VIEWS = {"sum": N_("The sum, term by term"), "shift": N_("Bias as a shift"), "batchnorm": N_("Bias and BatchNorm"),
         "learning": N_("Learning the bias"), "acmix": N_("Bias inside ACmix"),
         "article": N_("What the article gets wrong")}
KEPT_WIDGETS = ("bias_value", "bias_padding")  # inside closed tabs: a look elsewhere resets neither


# ---------------------------------------------------------------------------------------------
# Cached compute, keyed by the layer (a frozen LayerSpec), the image key and the size. Results are
# shared objects that nothing mutates, bounded in bytes (convmix.ui.cache.bounded_cache); each is
# computed under a reservation of the memory budget (`admit`), so only work that really runs is
# admitted.
# ---------------------------------------------------------------------------------------------


def admit(need: int, what: str) -> AbstractContextManager[int]:
    """Reserve `need` bytes of the process budget while the block runs (convmix.budget.admitted);
    raises budget.OverBudget when they do not fit beside what the server holds, after evicting
    cached entries. The budget's API speaks ACmixConfig; the page's work is one estimate, so the
    configuration is only the token its cost function ignores."""
    return budget.admitted(ACmixConfig(), budget.memory_budget(), lambda _config: need, what,
                           make_room=make_room)


@st.cache_resource(max_entries=8)
def layer_of(spec: cb.LayerSpec) -> torch.nn.Conv2d:
    return cb.seed_layer(spec)


@st.cache_resource(max_entries=8)
def batchnorm(spec: cb.LayerSpec) -> torch.nn.BatchNorm2d:
    return cb.illustrative_bn(layer_of(spec))


@st.cache_data(max_entries=16, show_spinner=False)
def load_image(upload: bytes | None, size: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """(size, size, 3) uint8, and the upload's own width and height (None: the built-in scene).
    Raises cb.ImageError, or budget.OverBudget when decoding would not fit."""
    if upload is None:
        return cb.builtin_scene(size), None
    with admit(cb.upload_bytes(upload, size), "Decoding this image"):
        img = cb.decode_upload(upload)
        return cb.square_crop(img, size), img.size


@bounded_cache(share=4, max_entries=4)
def results(spec: cb.LayerSpec, key: str, size: int, _x: torch.Tensor) -> cb.PageResults:
    with admit(cb.page_bytes(spec, size), "This page"):
        return cb.page_results(layer_of(spec), batchnorm(spec), _x)


@bounded_cache(share=32, max_entries=16)
def padding_demo(spec: cb.LayerSpec, key: str, size: int, padding: int,
                 _x: torch.Tensor) -> cb.PaddingDemo:
    with admit(cb.padding_bytes(spec, size, padding), "This demonstration"):
        return cb.padding_demo(layer_of(spec), _x, padding)


@st.cache_resource(max_entries=8, show_spinner=False)
def acmix_table(config: ACmixConfig, _module):
    return cb.acmix_bias_table(_module)


def sci(v: float) -> str:
    return _("0 (exact)") if v == 0 else f"{v:.1e}"


def over_budget(refusal: budget.Refusal) -> dict[str, str]:
    """The figures of a refusal, formatted for the page's sentences."""
    return {"need": human_bytes(refusal.estimate), "held": human_bytes(refusal.held),
            "budget": human_bytes(refusal.budget)}


def glossed(quote: str, gloss: str) -> str:
    """The article's own words as they are, with a translated gloss for readers of another language."""
    if get_language() == cb.ARTICLE_LANGUAGE:
        return f"“{quote}”"
    return _("“{quote}” ({gloss})", quote=quote, gloss=_(gloss))


def reset_bias_slider() -> None:
    # A new channel or layer starts from its own bias, not from the previous slider value.
    st.session_state.pop("bias_value", None)


def ranged(place, kind: str, label: str, hi: int, *, key: str, default: int, first: int | None,
           clamped: str, **kwargs) -> int:
    """An integer widget (`kind`: "slider" or "number_input", drawn in `place`) over 0…hi whose
    value `?key=` carries; a value that no longer fits a smaller range is clamped to `hi`, with a
    note (`clamped`, worded with old= and new=).

    Streamlit keeps a keyed widget's value when its range shrinks, and seeds a URL-bound slider
    from the URL even above its new maximum (StreamlitValueAboveMaxError). So the value lives in
    session state (None: the default, which follows the range), the widget's key carries its
    range (a new widget per range, started at the value), and the URL is written here. `first` is
    the URL's value when the page opened (checked by cb.view_from_query_params), or None.
    """
    store, current = f"_{key}_value", f"_{key}_widget"
    if store not in st.session_state:
        st.session_state[store] = first
    value = st.session_state[store]
    if value is not None and value > hi:
        place.warning(_(clamped, old=value, new=hi), icon=":material/swap_horiz:")
        value = st.session_state[store] = hi
    widget_key = f"{key}__{hi}"
    # Seeded again after a visit to another page too: Streamlit forgets a widget that was not drawn.
    if st.session_state.get(current) != widget_key or widget_key not in st.session_state:
        st.session_state[widget_key] = default if value is None else value
        st.session_state[current] = widget_key
    widget = getattr(place, kind)
    chosen = int(widget(label, min_value=0, max_value=hi, step=1, key=widget_key, **kwargs))
    st.session_state[store] = None if chosen == default else chosen
    if chosen == default:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != str(chosen):
        st.query_params[key] = str(chosen)
    return chosen


# ---------------------------------------------------------------------------------------------
# The article, and the layer the visitor sets
# ---------------------------------------------------------------------------------------------

view, url_notes = url_notes_once(URL_NOTES_KEY, cb.view_from_query_params, cb.URL_INTEGERS)
st.title(_("What `bias=True` does in `nn.Conv2d`"))
title = f"*{cb.ARTICLE_TITLE}*"
if get_language() != cb.ARTICLE_LANGUAGE:
    title = _("{title} (“{translation}”)", title=title, translation=_(cb.ARTICLE_TITLE_EN))
st.markdown(_(
    "This page started from a Chinese blog answer, {title}, which by its page layout appeared on "
    "{site}; its author and date are unknown. It explains the `bias` of ResNet's first layer, with "
    "a bias added, and gets some of it wrong (see the tab *What the article gets wrong* below). "
    "Every number below is computed on this page, from the layer itself, on an image you can "
    "change; you can change the layer too.", title=title, site=cb.ARTICLE_SITE))
show_url_notes([note.text() for note in url_notes])

st.header(_("The layer"))
with st.container(border=True):
    c = st.columns([1.2, 1, 1, 1, 1, 1])
    default = cb.DEFAULT_LAYER
    in_channels = c[0].radio(
        "in_channels", cb.IN_CHANNEL_CHOICES, index=cb.IN_CHANNEL_CHOICES.index(default.in_channels),
        key="bias_in", bind="query-params", horizontal=True, on_change=reset_bias_slider,
        help=_("3: the image in colour (RGB); 1: its luminance (greyscale)."))
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
    code_line(f"self.conv1 = {spec.line}")
    if spec == default:
        st.caption(_("The article's layer, ResNet's stem with a bias added. Change any value above; "
                     "the URL keeps it."))
    else:
        st.caption(_("The article's layer is `{line}`; this page now explains yours.", line=cb.SEED_LINE))

layer = layer_of(spec)
k, s, p, cin, cout = spec.kernel, spec.stride, spec.padding, spec.in_channels, spec.out_channels
n_with = cb.conv_param_count(cin, cout, k, bias=True)
n_without = cb.conv_param_count(cin, cout, k, bias=False)
cols = st.columns(4)
cols[0].metric(_("weight shape"), " × ".join(str(d) for d in layer.weight.shape))
cols[1].metric(_("bias shape"), f"{cout}" if spec.bias else _("none"))
cols[2].metric(_("parameters, bias=True"), f"{n_with:,}")
cols[3].metric(_("parameters, bias=False"), f"{n_without:,}")
counts = {"cout": cout, "cin": cin, "k": k, "weights": n_without, "total": n_with}
st.markdown(
    _("{cout} × {cin} × {k} × {k} = {weights:,} weights, plus one bias per output channel: "
      "{weights:,} + {cout} = {total:,}. Output channel `c` is the input correlated with its own "
      "{cin}×{k}×{k} kernel, plus one number:", **counts) if spec.bias else
    _("{cout} × {cin} × {k} × {k} = {weights:,} weights, plus one bias per output channel: "
      "{weights:,} + {cout} = {total:,}. Output channel `c` is the input correlated with its own "
      "{cin}×{k}×{k} kernel; with bias=False nothing is added:", **counts)
)
stride = "" if s == 1 else str(s)
# Two lines: the sum, then the bias, so that the formula fits a phone's width.
st.latex(
    rf"\begin{{aligned}} y[c, i, j] \;=\; &\sum_{{c'=0}}^{{{cin - 1}}}\sum_{{u=0}}^{{{k - 1}}}"
    rf"\sum_{{v=0}}^{{{k - 1}}} W[c, c', u, v]\\ &\cdot x_{{\text{{pad}}}}[c', {stride}i+u, {stride}j+v]"
    + (r" \;+\; b[c]" if spec.bias else "") + r"\end{aligned}"
)
st.caption(
    _("The weights and biases are PyTorch's default initialisation, U(−1/√{fan_in}, 1/√{fan_in}), "
      "drawn from the random seed {seed}: an untrained layer, so the biases are small "
      "(|b| < {bound:.3f}).", fan_in=spec.fan_in, seed=cb.SEED, bound=1 / spec.fan_in**0.5)
    if spec.bias else
    _("The weights are PyTorch's default initialisation, U(−1/√{fan_in}, 1/√{fan_in}), drawn "
      "from the random seed {seed}: an untrained layer.", fan_in=spec.fan_in, seed=cb.SEED)
)

# ---------------------------------------------------------------------------------------------
# The input
# ---------------------------------------------------------------------------------------------

st.header(_("The input"))
left, right = st.columns([2, 3])
with left:
    source = choice(st.radio, _("Image"), SOURCES, key="bias_source", default="builtin", url=False,
                    format_func=lambda code: _(SOURCE_LABELS[code]), horizontal=True)
    upload = None
    if source == "upload":
        file = st.file_uploader(
            _("PNG or JPEG, at most {mb} MB and {side}×{side} pixels",
              mb=cb.MAX_UPLOAD_BYTES // 2**20, side=cb.MAX_SIDE),
            type=["png", "jpg", "jpeg"],
            key="bias_upload",
            max_upload_size=cb.MAX_UPLOAD_BYTES // 2**20,
        )
        if file is None:
            st.info(_("No image uploaded yet: the built-in scene is shown meanwhile."))
        else:
            upload = file.getvalue()
    size = st.select_slider(
        _("Input size (H = W)"), cb.SIZES, value=cb.DEFAULT_SIZE, key="bias_size", bind="query-params",
        help=_("The image is resized to this square before the layer sees it."),
    )
    try:
        rgb, uploaded = load_image(upload, size)
    except cb.ImageError as err:
        st.error(_("This upload cannot be used: {reason} The built-in scene is shown instead.",
                   reason=err.text()), icon=":material/error:")
        upload = None
    except budget.OverBudget as err:
        st.error(_("Decoding this image would need about {need} on top of the {held} this server "
                   "holds now, over this server's memory budget of {budget}, so it was not used: the "
                   "built-in scene is shown instead. Upload an image with fewer pixels.",
                   **over_budget(err.refusal)), icon=":material/memory:")
        upload = None
    if upload is None:
        rgb, uploaded = load_image(None, size)
key = "builtin" if upload is None else hashlib.sha256(upload).hexdigest()
if uploaded is None:
    origin = _("Built-in scene, drawn at {size}×{size} by `convmix.bias.builtin_scene` from numpy "
               "math (gradients, discs, sine curves): made by this project, no download.", size=size)
else:
    origin = _("Your image ({width:,}×{height:,} pixels), shorter side resized to {size} and "
               "centre-cropped to {size}×{size}.", width=uploaded[0], height=uploaded[1], size=size)


def sidebar_acmix() -> tuple[ACmixConfig, torch.nn.Module]:
    """The sidebar's ACmix module, or the default one with a note saying why."""
    config = current_config()
    # Only the module's hyperparameters matter here; the sidebar's input size does not.
    if module_problems(**config.module_kwargs()):
        st.warning(_("The sidebar's ACmix configuration cannot be built (the sidebar says why), so "
                     "this section shows the default `ACmix(64, 64)`."))
        config = ACmixConfig()
    module = module_within_budget(config)
    if module is None:
        config = ACmixConfig()
        st.caption(_("This section shows the default `ACmix(64, 64)` instead."))
        module = module_within_budget(config)
    return config, module


def acmix_biases(config: ACmixConfig, module):
    """(per-submodule rows, dep_conv's row, live parameter count, count the constructor suggests)."""
    subs, acmix_total = acmix_table(config, module)
    declared_total = acmix_total + sum(r.declared_bias_params - r.bias_params for r in subs)
    return subs, next(r for r in subs if r.name == "dep_conv"), acmix_total, declared_total


def acmix_section(header: bool = False) -> None:
    if header:  # drawn below an error, not as a tab
        st.header(_("Bias inside ACmix"))
    st.caption(_("This section, alone on this page, reads the ACmix configuration in the sidebar."))
    config, module = sidebar_acmix()
    subs, dep, acmix_total, declared_total = acmix_biases(config, module)
    yes, no = pgettext("answer", "yes"), pgettext("answer", "no")
    st.dataframe(
        pd.DataFrame(
            {
                _("submodule"): [r.name for r in subs],
                _("constructor asks for a bias"): [yes if r.declared else no for r in subs],
                _("live module has one"): [yes if r.actual else _("no (None)") for r in subs],
                _("weight parameters"): [f"{r.weight_params:,}" for r in subs],
                _("bias parameters"): [f"{r.bias_params:,}" for r in subs],
            }
        ),
        hide_index=True,
    )
    st.markdown(_(
        "From the live module of the sidebar's configuration, `ACmix({cin}, {cout}, head={head}, "
        "kernel_conv={kc}, ...)`. conv1–conv3 (q, k, v) and conv_p keep PyTorch's default "
        "`bias=True`; fc is built with `bias=False`. dep_conv is declared with `bias=True`, but the "
        "authors' `reset_parameters` assigns the result of a fill helper that returns nothing to "
        "`dep_conv.bias`, so the bias is `None` ({quirk}). The module has **{total:,}** parameters, "
        "not the **{declared:,}** its constructor suggests: {missing:,} = the {biases:,} biases of "
        "dep_conv.", cin=config.in_planes, cout=config.out_planes, head=config.head,
        kc=config.kernel_conv, quirk=cite("Q1"), total=acmix_total, declared=declared_total,
        missing=declared_total - acmix_total, biases=dep.declared_bias_params))
    st.caption(_("“Constructor asks for a bias” is read from the same class with `reset_parameters` "
                 "skipped, not typed in by hand."))


# ---------------------------------------------------------------------------------------------
# The page's work, admitted against the memory budget while it runs
# ---------------------------------------------------------------------------------------------

problem = spec.problem(size)
if problem is not None:
    st.error(problem, icon=":material/error:")
    acmix_section(header=True)
    st.stop()
seen = cb.as_seen(rgb, cin)
x = cb.to_input(rgb, cin)
try:
    found = results(spec, key, size, x)
except budget.OverBudget as err:
    figures = over_budget(err.refusal)
    smaller = cb.fitting_size(spec, size, err.refusal.budget - err.refusal.held)
    st.error(
        _("This layer on a {size}×{size} input would need about {need} on top of the {held} this "
          "server holds now, over this server's memory budget of {budget}, so it was not run. A "
          "smaller input that fits: {fit}×{fit}.", size=size, fit=smaller, **figures)
        if smaller else
        _("This layer on a {size}×{size} input would need about {need} on top of the {held} this "
          "server holds now, over this server's memory budget of {budget}, so it was not run. Use a "
          "larger stride, fewer output channels or a smaller kernel.", size=size, **figures),
        icon=":material/memory:",
    )
    acmix_section(header=True)
    st.stop()
run = found.run
out_c, ho, wo = run.y.shape
with left:
    st.markdown(_("**Output shape:** {c} × {h} × {w} for a {size}×{size} input "
                  "(⌊({size} + 2·{p} − {k}) / {s}⌋ + 1 = {out}).",
                  c=out_c, h=ho, w=wo, size=size, p=p, k=k, s=s, out=spec.output_size(size)))
    st.caption(
        _("The layer sees the image scaled to [0, 1] and normalised with ImageNet's mean and "
          "standard deviation, as a ResNet would.") if cin == 3 else
        _("The layer sees the image's luminance scaled to [0, 1] and normalised with ImageNet's mean "
          "and standard deviation, as a ResNet would."))

# ---------------------------------------------------------------------------------------------
# One output value, opened up: the value every section reads, then the sections as lazy tabs
# ---------------------------------------------------------------------------------------------

st.header(_("One output value, opened up"))
pick = st.columns(3)
channel = ranged(
    pick[0], "number_input", _("Output channel c (used in every section below)"), out_c - 1,
    key="bias_channel", default=0, first=view.channel or None, on_change=reset_bias_slider,
    clamped=N_("Output channel {old} does not exist in this layer; showing channel {new}, the last."))
row = ranged(pick[1], "slider", _("Output row i"), ho - 1, key="bias_row", default=ho // 2,
             first=view.row, clamped=N_("Output row {old} does not exist at this size; showing row "
                                        "{new}, the last."))
col = ranged(pick[2], "slider", _("Output column j"), wo - 1, key="bias_col", default=wo // 2,
             first=view.col, clamped=N_("Output column {old} does not exist at this size; showing "
                                        "column {new}, the last."))
ov = cb.explain_output(layer, run, channel, row, col)

with right:
    # Up to 448 px wide on a desktop; never wider than its column (a phone is 390 px wide).
    st.html(WINDOW_CSS)
    st.container(key="bias_window").image(
        cb.window_picture(seen, ov.top, ov.left, k),
        caption=_("Red box: the window of the output value chosen below."),
        width=min(448, max(224, size)),
    )
    st.caption(origin)

n_pad = int(ov.is_padding.sum())
window = {"c": channel, "i": row, "j": col, "top": ov.top, "bottom": ov.top + k - 1,
          "left": ov.left, "right": ov.left + k - 1}
reads = (_("Output `y[{c}, {i}, {j}]` reads input rows {top}…{bottom} and columns {left}…{right} "
           "of all three input channels.", **window) if cin == 3 else
         _("Output `y[{c}, {i}, {j}]` reads input rows {top}…{bottom} and columns {left}…{right} "
           "of the input.", **window))
padded = (ngettext("{n} of its {taps} taps per channel falls in the zero padding (grey).",
                   "{n} of its {taps} taps per channel fall in the zero padding (grey).",
                   n_pad, n=n_pad, taps=k * k) if n_pad else
          _("None of them falls in the padding."))
st.markdown(f"{reads} {padded}")
pre = run.y_no_bias[channel].numpy()
learned = float(run.bias[channel])
kept_learned, kept_zero = cb.survival_fraction(pre, learned), cb.survival_fraction(pre, 0.0)
cancel, grad, demo = found.cancellation, found.gradient, found.first_padding
g_bn = None if cancel is None else cancel.bias_grad_through_bn.abs().max().item()
g_plain = None if cancel is None else cancel.bias_grad_without_bn.abs().max().item()
a_with = cb.conv_param_count(cb.IN_CHANNELS, cb.OUT_CHANNELS, cb.KERNEL, bias=True)
a_without = cb.conv_param_count(cb.IN_CHANNELS, cb.OUT_CHANNELS, cb.KERNEL, bias=False)


def sum_section() -> None:
    opened = st.columns([2, 3])
    opened[0].vega_lite_chart(spec=chart_spec(
        charts.patch_chart, charts.patch_frame(ov.patch, ov.weights, ov.products, ov.is_padding, ov.top, ov.left)
    ), width="content")
    with opened[1]:
        # Pairs in reading order: on a phone the columns stack, and the sum still reads top to bottom.
        for pair in (((_("Σ W[c] · patch"), f"{ov.dot:.6f}"),
                      (_("+ bias b[c]"), f"{ov.bias:+.6f}" if spec.bias else _("none"))),
                     ((_("= sum"), f"{ov.total:.6f}"), (_("value in layer(x)"), f"{ov.output:.6f}")),
                     ((_("difference"), sci(ov.difference)),)):
            for place, (label, value) in zip(st.columns(2), pair, strict=False):
                place.metric(label, value)
        st.caption(_("The sum is taken in float64 from the patch and weights shown; the output value is "
                     "the layer's own float32 forward. The difference is float32 rounding."))


# Fragments: moving the bias or padding slider reruns only its own part of the tab.
@st.fragment
def shift_section(pre: np.ndarray, channel: int, learned: float) -> None:
    lo, hi = cb.bias_range(pre, learned)
    # The slider starts exactly at the layer's bias (its grid runs through it).
    b_now = st.slider(
        _("Bias b[{c}]", c=channel), lo, hi, learned, 0.01, key="bias_value",
        format="%.4f",
        help=_("The range runs from a bias that cuts every position to one that keeps them all."),
    )
    z = pre + b_now
    shares = {"channel": channel, "learned": learned, "kept_learned": kept_learned,
              "positions": pre.size, "b": b_now, "kept_now": cb.survival_fraction(pre, b_now)}
    st.markdown(
        _("Adding b moves every value of channel {channel} by the same amount; the ReLU after it "
          "keeps only positive values. With the layer's bias ({learned:+.4f}) it keeps "
          "**{kept_learned:.1%}** of the {positions:,} positions; with b = {b:+.4f}, "
          "**{kept_now:.1%}**. A bias makes the layer affine rather than linear, and so chooses "
          "where the ReLU cuts.", **shares) if spec.bias else
        _("Adding b moves every value of channel {channel} by the same amount; the ReLU after it "
          "keeps only positive values. This layer has no bias (b = 0): it keeps "
          "**{kept_learned:.1%}** of the {positions:,} positions; with b = {b:+.4f}, "
          "**{kept_now:.1%}**. A bias would make the layer affine rather than linear, and so choose "
          "where the ReLU cuts.", **shares)
    )
    maps = st.columns(2)
    span = float(np.abs(pre).max())  # fixed while the slider moves, so colours shift with b
    maps[0].vega_lite_chart(spec=chart_spec(
        charts.map_heatmap, z, _("conv(x) + b, channel {channel}", channel=channel),
        _("before ReLU"), domain=(-span, span),
    ), width="content")
    maps[1].vega_lite_chart(spec=chart_spec(
        charts.map_heatmap, np.maximum(z, 0.0), _("ReLU(conv(x) + b), channel {channel}", channel=channel),
        _("after ReLU"), signed=False, domain=(0.0, span),
    ), width="content")
    sweep_b = np.linspace(lo, hi, 241)
    st.vega_lite_chart(spec=chart_spec(
        charts.survival_chart, sweep_b, cb.survival_sweep(pre, sweep_b), b_now, learned,
    ), width="stretch")


def constant_section() -> None:
    st.subheader(_("The same constant at every position"))
    if spec.bias:
        diff_c = (run.y[channel] - run.y_no_bias[channel]).double()
        d = st.columns(4)
        d[0].metric(f"b[{channel}]", f"{learned:+.7f}")
        d[1].metric(_("min of y − y_no_bias"), f"{float(diff_c.min()):+.7f}")
        d[2].metric(_("max of y − y_no_bias"), f"{float(diff_c.max()):+.7f}")
        d[3].metric(_("max |y − y_no_bias − b|"), sci(run.shift_deviation),
                    help=_("Largest deviation from the bias over all channels and positions."))
        st.caption(_(
            "`y` is `layer(x)`; `y_no_bias` the same weights with `bias=None`. Over all {channels} "
            "channels and {positions:,} positions the difference equals the channel's bias up to "
            "float32 rounding: conv(x) + b is affine, and the shift is the same everywhere.",
            channels=out_c, positions=ho * wo))
    else:
        st.caption(_("This layer has no bias, so layer(x) and the same weights without a bias agree "
                     "exactly (largest difference {difference}): there is no constant to add.",
                     difference=sci(run.shift_deviation)))


def padding_intro() -> None:
    st.subheader(_("Windows that see only padding output the bias"))
    first_empty, seed_pad = found.first_empty, found.layer_padding
    st.markdown(" ".join([
        _("Zero padding adds zeros around the (normalised) input, so a window lying entirely in the "
          "padding computes Σ W·0 + b = b.") if spec.bias else
        _("Zero padding adds zeros around the (normalised) input, so a window lying entirely in the "
          "padding computes Σ W·0 + b = 0, as this layer has no bias."),
        _("This layer's padding of {p} never produces such a window: every {k}×{k} window reaches at "
          "least **{taps}** real pixels per channel.", p=p, k=k, taps=seed_pad.min_real_taps)
        if int(seed_pad.all_padding.sum()) == 0 else
        _("This layer's padding of {p} already produces such windows.", p=p),
        _("From padding {first} on, with the same weights, some do:", first=first_empty),
    ]))


def describe_padding(demo: cb.PaddingDemo) -> str:
    n_all = int(demo.all_padding.sum())
    if not n_all:
        return _("No window is all padding at padding={padding}: each one reaches at least {taps} "
                 "real pixels per channel.", padding=demo.padding, taps=demo.min_real_taps)
    exact = _("exactly 0") if demo.max_deviation == 0 else sci(demo.max_deviation)
    if spec.bias:
        return ngettext(
            "At padding={padding}, {count:,} window sees only padding, and there every channel "
            "outputs its bias: the largest |y − b[c]| is {deviation}.",
            "At padding={padding}, {count:,} windows see only padding, and there every channel "
            "outputs its bias: the largest |y − b[c]| is {deviation}.",
            n_all, padding=demo.padding, count=n_all, deviation=exact)
    return ngettext(
        "At padding={padding}, {count:,} window sees only padding, and there every channel "
        "outputs 0: the largest |y| is {deviation}.",
        "At padding={padding}, {count:,} windows see only padding, and there every channel "
        "outputs 0: the largest |y| is {deviation}.",
        n_all, padding=demo.padding, count=n_all, deviation=exact)


@st.fragment
def padding_section(key: str, size: int, x: torch.Tensor) -> None:
    configure_torch(SERVER)  # a fragment rerun is a new thread: give it the server's thread count
    pad = st.slider(
        _("Padding for this demonstration"), cb.demo_padding_min(spec, size),
        cb.demo_padding_max(spec), max(found.first_empty, p), key="bias_padding",
        help=_("The layer uses padding={p}; the weights and bias stay the same.", p=p),
    )
    try:
        shown = padding_demo(spec, key, size, pad, x)
    except budget.OverBudget as err:
        st.warning(_("The demonstration at padding={padding} would need about {need} on top of the "
                     "{held} this server holds now, over this server's memory budget of {budget}, "
                     "so it was not run. Choose a smaller padding.", padding=pad,
                     **over_budget(err.refusal)), icon=":material/memory:")
        return
    n_all = int(shown.all_padding.sum())
    pcols = st.columns([3, 2])
    with pcols[1]:
        st.metric(_("output shape"), f"{out_c} × {shown.out_shape[0]} × {shown.out_shape[1]}")
        st.metric(_("windows entirely in padding"),
                  _("{count:,} of {total:,}", count=n_all, total=shown.all_padding.numel()))
        if n_all:
            st.metric(_("largest |y − b[c]| there, all channels"), sci(shown.max_deviation))
        st.caption(describe_padding(shown))
        st.caption(_("Zero in the normalised input is ImageNet's mean colour, not black: the padding "
                     "is a mid grey."))
    with pcols[0]:
        st.vega_lite_chart(spec=chart_spec(
            charts.mask_heatmap,
            shown.all_padding.numpy(), _("Output windows at padding={padding}", padding=pad),
            _("all padding: outputs b[c]") if spec.bias else _("all padding: outputs 0"),
            _("sees the image"),
        ), width="content")




def batchnorm_section() -> None:
    fold, bn = found.fold, batchnorm(spec)
    if cancel is None:
        st.info(_("This layer has no bias, so there is none for a training-mode BatchNorm to cancel; "
                  "switch *bias* on under *The layer* to see it cancel. Folding, below, still gives the "
                  "folded layer a bias."), icon=":material/info:")
    else:
        st.markdown(_("In training mode, BatchNorm subtracts each channel's mean over the batch and "
                      "positions, then rescales and adds its own shift β. A constant b[c] raises the "
                      "channel's mean by exactly b[c] and leaves its variance unchanged, so it cancels:"))
        # One step per line, so that the formula fits a phone's width.
        st.latex(
            r"\begin{aligned}&\mathrm{BN}(z + b)[c]\\ &\quad= \gamma_c\,\frac{(z[c] + b_c) - (\mu_c + b_c)}"
            r"{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c\\ &\quad= \mathrm{BN}(z)[c]\end{aligned}"
        )
        bn_maps = st.columns(2)
        bn_maps[0].vega_lite_chart(spec=chart_spec(
            charts.map_heatmap, cancel.with_bias[channel].numpy(),
            _("BN(conv(x) + b), channel {channel}", channel=channel), _("train BN"), size=220,
        ), width="content")
        bn_maps[1].vega_lite_chart(spec=chart_spec(
            charts.map_heatmap, cancel.without_bias[channel].numpy(),
            _("BN(conv(x)), channel {channel}", channel=channel), _("train BN"), size=220,
        ), width="content")
        c = st.columns(3)
        c[0].metric(_("largest |difference|, all channels"), sci(cancel.max_difference))
        c[1].metric(_("largest |∂L/∂b| through the BN"), sci(g_bn))
        c[2].metric(_("largest |∂L/∂b| without the BN"), sci(g_plain))
        st.caption(_("{loss}. Through a training-mode BN the bias gets no gradient (float32 rounding "
                     "only), so it would never learn anything. BN's γ and β here are illustrative values "
                     "(U(0.5, 1.5) and U(−0.5, 0.5), random seed {seed}); the cancellation holds for any.",
                     loss=r"$L = \tfrac{1}{2}\,\mathrm{mean}(\mathrm{out}^2)$", seed=cb.SEED + 1))

    st.markdown(
        _("In evaluation mode, BatchNorm uses fixed running statistics μ and σ², so it is an affine map "
          "per channel and folds into the convolution: a new weight and a new bias.") if spec.bias else
        _("In evaluation mode, BatchNorm uses fixed running statistics μ and σ², so it is an affine map "
          "per channel and folds into the convolution: a new weight and a new bias (b = 0 here, as this "
          "layer has none).")
    )
    st.latex(r"W'[c] = W[c]\cdot\frac{\gamma_c}{\sqrt{\sigma_c^2+\epsilon}}")
    st.latex(r"b'_c = (b_c - \mu_c)\,\frac{\gamma_c}{\sqrt{\sigma_c^2+\epsilon}} + \beta_c")
    channel_column = _("channel {channel}", channel=channel)
    fold_rows = pd.DataFrame(
        {
            _("quantity"): ["γ", "β", _("running mean μ"), _("running var σ²"), "γ/√(σ²+ε)", "b",
                            _("b′ (folded)")],
            channel_column: [
                float(bn.weight.detach()[channel]), float(bn.bias.detach()[channel]),
                float(bn.running_mean[channel]),
                float(bn.running_var[channel]), float(fold.scale[channel]), learned,
                float(fold.bias[channel]),
            ],
        }
    )
    f = st.columns([2, 3])
    f[0].dataframe(fold_rows, hide_index=True, column_config={
        channel_column: st.column_config.NumberColumn(format="%.6f")
    })
    with f[1]:
        st.metric(_("largest |BN(conv(x)) − conv′(x)|, all channels"), sci(fold.max_difference))
        st.caption(_("conv′ uses W′ and b′; BN(conv(x)) is BatchNorm2d in eval mode after the layer. "
                     "Outputs reach {largest:,.1f} in size, so the difference is float32 rounding. The "
                     "running statistics were accumulated, as training does, from this layer's output "
                     "on the built-in scene and its three flips.",
                     largest=float(fold.bn_output.abs().max())))
    st.markdown(_(
        "**Why ResNet's stem uses `bias=False`.** torchvision's ResNet follows `conv1` with `bn1`. In "
        "training the bias is cancelled and gets no gradient; β does its job. At inference a bias "
        "appears anyway, by folding. So `bias=True` there only adds {biases} parameters ({with_:,} "
        "instead of {without:,}) and an addition per output value.",
        biases=cb.OUT_CHANNELS, with_=a_with, without=a_without))


def learning_section() -> None:
    if grad is None:
        st.info(_("This layer has no bias to learn; switch *bias* on under *The layer* to see its "
                  "gradient."), icon=":material/info:")
    else:
        st.markdown(_("Each b[c] is added at every position of every image, so its gradient collects "
                      "the output gradient from all of them. Batch: the image and its mirror image "
                      "({batch} items); loss {loss}.", batch=grad.batch,
                      loss=r"$L = \tfrac{1}{2}\,\mathrm{mean}(y^2)$"))
        st.latex(
            r"\frac{\partial L}{\partial b_c} = \sum_{n}\sum_{i,j}\frac{\partial L}{\partial y[n, c, i, j]}"
        )
        gcols = st.columns(5)
        gcols[0].metric(_("autograd b.grad[{c}]", c=channel),
                        f"{float(grad.bias_grad[channel]):.4e}")
        gcols[1].metric(_("Σ y.grad, image"), f"{float(grad.per_item[0, channel]):.4e}")
        gcols[2].metric(_("Σ y.grad, mirror"), f"{float(grad.per_item[1, channel]):.4e}")
        gcols[3].metric(_("Σ y.grad, both"), f"{float(grad.output_grad_sum[channel]):.4e}")
        gcols[4].metric(_("max |b.grad − Σ y.grad|"), sci(grad.max_difference),
                        help=_("Largest |b.grad − Σ y.grad| over all {channels} channels.", channels=out_c))
        st.vega_lite_chart(spec=chart_spec(
            charts.agreement_chart,
            grad.output_grad_sum.numpy(), grad.bias_grad.numpy(),
            _("Σ ∂L/∂y over batch and positions"), _("autograd ∂L/∂b"),
            _("All {channels} channels: bias gradient vs summed output gradient", channels=out_c),
            highlight=channel,
        ), width="stretch")


def article_section() -> None:
    _subs, dep, acmix_total, declared_total = acmix_biases(*sidebar_acmix())
    if not spec.bias:
        st.info(_("The article's claims are about a layer with a bias; switch *bias* on under *The "
                  "layer* to see the evidence for each."), icon=":material/info:")
    else:
        h = found.homogeneity
        right_, imprecise = _("Right"), _("Imprecise")
        claims = [
            (
                glossed(cb.QUOTE_SCALAR, N_("a scalar added to each kernel's output")),
                right_,
                _("One number per output channel: bias shape ({channels},). It is added at every "
                  "position: y − y_no_bias differs from b[c] by at most {deviation}.",
                  channels=out_c, deviation=sci(run.shift_deviation)),
            ),
            (
                glossed(cb.QUOTE_NONLINEAR, N_("it increases the model's non-linear capacity")),
                imprecise,
                _("The layer itself stays affine: conv(x) + b shifts every value of a channel by the "
                  "same constant (largest deviation {shift}); the non-linearity is the ReLU. What is "
                  "true: without biases a ReLU network is positively homogeneous, "
                  "ReLU(conv({alpha:g}·x)) = {alpha:g}·ReLU(conv(x)) (here the two sides differ by "
                  "{without} relative to the largest output), so every kink passes through the origin. "
                  "Biases remove that limit by moving where each ReLU cuts: with this layer's small, "
                  "untrained biases the same identity is off by up to {with_:.1%} of the largest "
                  "output, and channel {channel} keeps {kept:.1%} of positions with b = {b:+.4f} and "
                  "{kept_zero:.1%} with b = 0.",
                  shift=sci(run.shift_deviation), alpha=h.alpha, without=sci(h.without_bias),
                  with_=h.with_bias, channel=channel, kept=kept_learned, b=learned, kept_zero=kept_zero),
            ),
            (
                glossed(cb.QUOTE_NEEDED, N_("usually the bias is needed, because it gives the model more "
                                            "fitting capacity")),
                _("Incomplete"),
                _("Before a BatchNorm it is redundant: BN(conv(x) + b) and BN(conv(x)) differ by at most "
                  "{difference}, and the bias's gradient through the BN is at most {through} (vs "
                  "{plain} without). ResNet's stem uses bias=False: {without:,} parameters instead of "
                  "{with_:,}.", difference=sci(cancel.max_difference), through=sci(g_bn),
                  plain=sci(g_plain), without=a_without, with_=a_with),
            ),
            (
                glossed(cb.QUOTE_LEARNED, N_("the bias is a learnable parameter, learned in training")),
                _("Right, and precisely"),
                _("Its gradient is the output gradient summed over batch and positions: autograd and "
                  "the sum differ by at most {difference}, over all {channels} channels.",
                  difference=sci(grad.max_difference), channels=out_c),
            ),
            (
                glossed(cb.QUOTE_NO_SHIFT, N_("with bias=False, that is without a bias, the kernel's "
                                              "output is not shifted")),
                right_,
                _("Without the bias the layer has {without:,} parameters and y_no_bias is the output "
                  "unshifted; with it, a window that sees only padding outputs b[c]. {padding}",
                  without=n_without, padding=describe_padding(demo)),
            ),
            (
                glossed(cb.QUOTE_DEP_CONV, N_("defines the feature-fusion convolution and the "
                                              "depthwise-separable convolution (ACmix's dep_conv, "
                                              "built with bias=True)")),
                _("Wrong"),
                _("dep_conv is a grouped convolution (groups = head_dim = {groups}), not a "
                  "depthwise-separable one, and although its constructor asks for bias=True the live "
                  "module has no bias: dep_conv.bias is None, {total:,} parameters instead of "
                  "{declared:,}.", groups=dep.groups, total=acmix_total, declared=declared_total),
            ),
        ]
        for said, verdict, evidence in claims:
            left_col, right_col = st.columns([2, 3])
            left_col.markdown(_("**{verdict}.** {quote}", verdict=verdict, quote=said))
            right_col.markdown(evidence)
            st.divider()


keep_values(KEPT_WIDGETS)
section, tabs = url_tabs(VIEW, {code: _(label) for code, label in VIEWS.items()}, "sum")
with tabs[list(VIEWS).index(section)]:
    if section == "sum":
        sum_section()
    elif section == "shift":
        shift_section(pre, channel, learned)
        constant_section()
        padding_intro()
        padding_section(key, size, run.x)
    elif section == "batchnorm":
        batchnorm_section()
    elif section == "learning":
        learning_section()
    elif section == "acmix":
        acmix_section()
    else:
        article_section()
