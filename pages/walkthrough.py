"""ACmix step by step: every submodule and step of one traced forward, of any ACmix layer on the
input that really reaches it. Layout only: which module and input come from
convmix.ui.walkthrough_source (the URL, a choice made on the ResNet or training page, else the
sidebar's module on a photograph), the numbers from convmix.walkthrough, read from the trace that
convmix.ui.cache.get_walk keeps per source (so the inspector and the rate sliders never rerun the
forward), the words from convmix.walkthrough_text and the catalogs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st

from convmix import charts_walkthrough as charts
from convmix import images, sources
from convmix import walkthrough as wt
from convmix import walkthrough_text as words
from convmix.budget import OverBudget
from convmix.counting import module_param_counts
from convmix.format import human_bytes
from convmix.i18n import _, get_language, ngettext
from convmix.network_text import picture_credit, picture_title
from convmix.quirks import QUIRKS, cite
from convmix.runtime import SERVER, configure_torch
from convmix.ui import walkthrough_source as ws
from convmix.ui.cache import conv_p_gradients, get_walk, steps_table
from convmix.ui.code import code_line
from convmix.ui.language import language_params
from convmix.ui.navigation import ensure_router
from convmix.ui.sidebar import current_config
from convmix.ui.widgets import choice, set_choice

ensure_router()

FLOAT = st.column_config.NumberColumn(format="%.4g")
STAT = st.column_config.NumberColumn(format="%.3g", width=62)
FC_HEADS_SHOWN = 16  # rows per q/k/v drawn in the fc matrix
MAP_SIZE = 250  # a step's heatmap: fits the expander's right column at 1400 px, and a phone
PANEL_SIZE = 136  # one of the inspector's five window panels: five fit in a row at 1400 px
SECTION_KEY = "wt_section"  # the open section's id (convmix.walkthrough.SECTIONS); ?section= follows it
SECTION_NOTE = "_wt_section_note"
INPUT_KEY = "wt_input"  # the sidebar module's input: a picture id, UPLOAD or sources.NOISE
INPUT_FROM_URL = "_wt_input_from_url"  # the URL's picture value last adopted (or written)
UPLOAD = "upload"
UPLOADED = "_wt_uploaded_picture"  # the UploadedPicture this session last uploaded here
PICTURE_IDS = [p.id for p in images.pictures()]
# Formulas scroll inside their own box, and markdown tables too, so that nothing widens the page on a
# phone; below 640 px the slice selector's small inputs take two per row.
PAGE_CSS = """<style>
[data-testid='stMain'] .katex-display {overflow-x: auto; overflow-y: hidden; padding: 2px 0;}
[data-testid='stMain'] [data-testid='stMarkdownContainer'] table {display: block; overflow-x: auto;}
@media (max-width: 640px) {
  .st-key-wt_slice [data-testid='stColumn'] {min-width: calc(50% - 1rem) !important;}
}
</style>"""


def keep_in_range(key: str, lo: int, hi: int, default: int) -> None:
    """Give a widget its default on first use, and again when a new configuration moves its
    range past the stored value."""
    value = st.session_state.get(key)
    if not isinstance(value, int) or not lo <= value <= hi:
        st.session_state[key] = default


def show_map(ms: wt.MapSlice, *, signed: bool = True, size: int = 260, value_title: str | None = None):
    df, _block = wt.map_frame(ms.values)
    st.altair_chart(charts.map_heatmap(df, ms.title, signed=signed, size=size, value_title=value_title),
                    width="content")
    st.caption(f"`{ms.index}`")


def show_refusal(err: sources.SourceError) -> None:
    """A refusal in the visitor's language; anything from a file or a reader apart, as plain text."""
    st.error(err.message, icon=":material/block:")
    if err.details:
        st.code(err.details, language=None, wrap_lines=True)


# ---------------------------------------------------------------------------------------------
# The section tabs: a language-neutral id in the URL (?section=attention_inspector)
# ---------------------------------------------------------------------------------------------


def open_section() -> str:
    """The open section's id: the session's, else the URL's (ids and the old English titles both
    work), else the overview."""
    if SECTION_KEY not in st.session_state:
        raw = st.query_params.get_all("section")
        section, bad = wt.section_from_url(raw) if raw else (wt.DEFAULT_SECTION, None)
        st.session_state[SECTION_KEY] = section
        if bad is not None:
            st.session_state[SECTION_NOTE] = bad
    if st.session_state[SECTION_KEY] not in wt.SECTION_IDS:
        st.session_state[SECTION_KEY] = wt.DEFAULT_SECTION
    return st.session_state[SECTION_KEY]


def _tab_clicked(tab_key: str, ids_by_title: dict[str, str]) -> None:
    st.session_state[SECTION_KEY] = ids_by_title.get(st.session_state.get(tab_key), wt.DEFAULT_SECTION)


def section_tabs() -> list[tuple[str, object]]:
    """The tabs (one widget per language, as translated menus are), the open one set from the
    section id, and ?section= written from it."""
    section = open_section()
    titles = {key: wt.section_title(key) for key in wt.SECTION_IDS}
    tab_key = f"wt_tabs__{get_language()}"
    if st.session_state.get(tab_key) != titles[section]:
        st.session_state[tab_key] = titles[section]
    tabs = st.tabs(list(titles.values()), key=tab_key, on_change=_tab_clicked,
                   args=(tab_key, {title: key for key, title in titles.items()}))
    if section == wt.DEFAULT_SECTION:
        if "section" in st.query_params:
            del st.query_params["section"]
    elif st.query_params.get("section") != section:
        st.query_params["section"] = section
    return list(zip(wt.SECTION_IDS, tabs, strict=True))


# ---------------------------------------------------------------------------------------------
# Which module, which input
# ---------------------------------------------------------------------------------------------


def input_label(value: str) -> str:
    if value == UPLOAD:
        return _("a picture of your own (upload)")
    if value == sources.NOISE:
        return _("seeded random noise")
    return picture_title(images.picture(value))


def url_input(named) -> str | None:
    """The input menu's value that the URL names (None: the URL names no input)."""
    if isinstance(named, sources.RandomInit):
        return sources.NOISE
    if isinstance(named, sources.RandomInitPicture):
        if isinstance(named.picture, sources.UploadedPicture):
            st.session_state[UPLOADED] = named.picture
            return UPLOAD
        return named.picture.id
    return None


def sidebar_source(config, named) -> sources.Source:
    """The sidebar's module on the input chosen here (a photograph, an upload or noise; URL-bound)."""
    from_url = url_input(named)
    if from_url is not None and from_url != st.session_state.get(INPUT_FROM_URL):
        set_choice(INPUT_KEY, from_url)  # a URL the page did not write: it decides
    value = choice(st.selectbox, _("Input"), [*PICTURE_IDS, UPLOAD, sources.NOISE], key=INPUT_KEY,
                   format_func=input_label, default=PICTURE_IDS[0], url=False,
                   help=_("A photograph goes through the seed's stem convolution (with BatchNorm, ReLU and "
                          "max-pooling, as in ResNet) before it reaches ACmix, so the maps below show its "
                          "structure. Seeded noise is what the module is tested on."))
    if value == sources.NOISE:
        return sources.RandomInit(config)
    if value == UPLOAD:
        picture = ws.picture_upload("wt_picture_upload", UPLOADED)[1]
        if picture is None:
            st.info(_("No picture uploaded yet: showing the first built-in photograph meanwhile."),
                    icon=":material/upload_file:")
            return ws.default_source(config)
        return sources.RandomInitPicture(config, picture)
    return sources.RandomInitPicture(config, sources.BuiltinPicture(value))


def network_controls(source: sources.NetworkLayer) -> sources.Source:
    """What the visitor may change here about a network's layer (the digit), and the way back."""
    if isinstance(source.network, sources.DigitsRef):
        count = sources.held_out_count()
        if st.session_state.get("_wt_digit_for") != (source.network, source.layer) or \
                not isinstance(st.session_state.get("wt_digit"), int):
            st.session_state["wt_digit"] = source.image.position
            st.session_state["_wt_digit_for"] = (source.network, source.layer)
        keep_in_range("wt_digit", 0, count - 1, 0)
        digit = int(st.number_input(_("Held-out digit"), 0, count - 1, key="wt_digit",
                                    help=_("Number {low} to {high} of the {count:,} digits the network never "
                                           "trained on; 0 is the one whose attention the training page "
                                           "follows.", low=0, high=count - 1, count=count)))
        if digit != source.image.position:
            source = dataclasses.replace(source, image=sources.HeldOutDigit(digit))
            ws.remember(source)
    cols = st.columns(2)
    if cols[0].button(_("Back to the sidebar's module"), key="wt_forget", icon=":material/tune:",
                      help=_("Show the ACmix configuration of the sidebar again, on a photograph.")):
        ws.forget()
        for key in sources.QUERY_KEYS:
            if key in st.query_params:
                del st.query_params[key]
        st.rerun()
    with cols[1]:
        if isinstance(source.network, sources.DigitsRef):
            st.page_link("pages/train.py", label=_("Train it live"), icon=":material/model_training:",
                         query_params=language_params())
        else:
            st.page_link("pages/network.py", label=_("Choose another layer or picture"), icon=":material/lan:",
                         query_params={**sources.to_query(source), **language_params()})
    return source


def write_url(source: sources.Source) -> None:
    """?net=…&layer=…&picture=… name the source shown (the default photograph is left out)."""
    params = sources.to_query(source)
    if words.is_sidebar_source(source):
        st.session_state[INPUT_FROM_URL] = params["picture"]
        if params["picture"] == PICTURE_IDS[0]:
            params = {}
    for key in sources.QUERY_KEYS:
        if key in params:
            if st.query_params.get(key) != params[key]:
                st.query_params[key] = params[key]
        elif key in st.query_params:
            del st.query_params[key]


def shown_image(source, config) -> tuple[np.ndarray, str] | None:
    """The picture or digit that goes in, as the visitor sees it, with a caption; None for noise."""
    resolver = ws.resolver()
    try:
        if isinstance(source, sources.RandomInitPicture):
            rgb = sources.picture_rgb(source.picture, 4 * config.height, 4 * config.width, resolver)
            credit = (picture_credit(images.picture(source.picture.id))
                      if isinstance(source.picture, sources.BuiltinPicture) else "")
            return rgb, credit
        if isinstance(source, sources.NetworkLayer) and isinstance(source.image, sources.HeldOutDigit):
            pixels = sources.digit_pixels(source.image)[0, 0].numpy()
            grey = (255 - pixels * 255 / 16).astype(np.uint8)  # ink dark on white, as written
            return np.kron(grey, np.ones((20, 20), dtype=np.uint8)), _("the held-out digit, 8×8 pixels")
        if isinstance(source, sources.NetworkLayer):
            rgb = sources.picture_rgb(source.image, source.image_size, source.image_size, resolver)
            credit = (picture_credit(images.picture(source.image.id))
                      if isinstance(source.image, sources.BuiltinPicture) else "")
            return rgb, credit
        if isinstance(source, sources.LayerAlone) and source.picture is not None:
            return sources.picture_rgb(source.picture, 4 * source.size, 4 * source.size, resolver), ""
    except sources.SourceError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# The page: which source
# ---------------------------------------------------------------------------------------------

st.html(PAGE_CSS)
st.title(_("ACmix, step by step"))
st.markdown(_(
    "Every line of ACmix's forward, with the tensors to prove it: the sidebar's module on a photograph, a "
    "layer of the authors' ResNet (chosen on the *ACmix in ResNet* page), or the layer you trained on the "
    "*Train it live* page. Every tensor below was recorded from **one** forward of the module itself "
    "(`convmix.acmix.ACmix`, whose official variant computes the authors' code value for value) on the "
    "input named in the box; the inspector and the sliders re-read those recorded tensors and never run "
    "the forward again (only the conv_p section's gradient check runs the module once more, with "
    "autograd, on a copy)."))

open_section()
if (bad_section := st.session_state.pop(SECTION_NOTE, None)) is not None:
    st.warning(_("URL parameter section={value} is not a section of this page; showing the overview.",
                 value=repr(bad_section)), icon=":material/link_off:")

requested = current_config()
named, notes = ws.source_for_walkthrough(requested)
for note in notes:
    st.warning(note.message(), icon=":material/link_off:")

box = st.container(border=True, key="wt_source")
with box:
    st.markdown("**" + _("What this page shows") + "**")
    box_text, box_image = st.columns([3, 1], gap="medium")
    described = box_text.container()

if words.is_sidebar_source(named):
    plan = wt.plan_walkthrough(requested)
    if plan.problems and plan.fallback:
        with box_text:
            st.info(_(
                "The official variant cannot run this configuration (the sidebar says why). Shown instead: the "
                "**fixed** variant, with the same submodules and parameters, dep_conv padded by kernel_conv // 2, "
                "`h_out = ceil(H / stride)` and the window dilation applied."), icon=":material/build:")
    if plan.shown is None:
        with box_text:
            if plan.refusal is not None:
                st.error(plan.refusal.message(), icon=":material/memory:")
            elif plan.requested.variant == "official":
                st.info(_("Neither variant can run this configuration, so there is nothing to walk through: the "
                          "sidebar says why and what would work."), icon=":material/arrow_back:")
            else:
                st.info(_("This variant cannot run this configuration, so there is nothing to walk through: the "
                          "sidebar says why and what would work."), icon=":material/arrow_back:")
        st.stop()
    with box_text:
        source = sidebar_source(plan.shown, named)
else:
    with box_text:
        st.caption(_("The sidebar's configuration does not apply while a network's layer is shown."))
        source = network_controls(named)
write_url(source)

try:
    walk = get_walk(source)
except OverBudget as err:  # fits the budget, but not beside what the server holds right now
    with box_text:
        st.error(str(err), icon=":material/memory:")
    st.stop()
except sources.SourceError as err:
    with box_text:
        show_refusal(err)
    st.stop()

config = walk.config
module, trace = walk.module, walk.trace
shift = wt.weights_are_shift(module)
with described:
    st.markdown(words.module_sentence(source, config))
    st.markdown(words.input_sentence(source, config, dict(walk.facts)))
if (image := shown_image(source, config)) is not None:
    box_image.image(image[0], width=160)
    if image[1]:
        box_image.caption(image[1])

d, h = config.head_dim, config.head
params = module_param_counts(module)
total = trace.total_cost()

code_line(f"{words.module_code(config)}  ->  output {tuple(trace.output.shape)}")
cols = st.container(key="wt_metrics").columns(4)
cols[0].metric(_("Parameters"), f"{sum(params.values()):,}",
               help=_("Read from the live module: {counts}",
                      counts=", ".join(f"{k} {v:,}" for k, v in params.items())))
cols[1].metric(_("Multiply-adds"), f"{total.macs:,}")
cols[2].metric("FLOPs", f"{total.flops:,}",
               help=_("Counted by one convention (convmix.counting): 2 per multiply-add, n adds for an n-term "
                      "sum, 1 per bias add and per elementwise operation, 5 per softmax element. Not a count of "
                      "machine instructions."))
cols[3].metric(_("Trace holds"), human_bytes(trace.tensor_bytes()),
               help=_("All recorded tensors, shared storage counted once."))

# ---------------------------------------------------------------------------------------------
# The slice every heatmap shows
# ---------------------------------------------------------------------------------------------

kk, kc2 = config.kernel_att**2, config.kernel_conv**2
pad_att, dil = module.padding_att, wt.window_dilation(config)
pad_conv = module.dep_conv.padding[0]
keep_in_range("wt_batch", 0, config.batch - 1, 0)
keep_in_range("wt_head", 0, h - 1, 0)
keep_in_range("wt_channel", 0, d - 1, 0)
with st.container(border=True, key="wt_slice"):
    st.markdown(_("**Slice shown in the heatmaps** (the index under each map says exactly which)"))
    c = st.columns([0.8, 0.8, 0.8, 1.7, 2.6])
    batch = c[0].number_input(_("batch item"), 0, config.batch - 1, key="wt_batch")
    head = c[1].number_input(_("head"), 0, h - 1, key="wt_head")
    channel = c[2].number_input(_("channel in head"), 0, d - 1, key="wt_channel",
                                help=_("0 … {last}; output channel = head · {d} + this.", last=d - 1, d=d))
    with c[3]:
        window = choice(st.selectbox, _("window position (unfold, logits, softmax)"), list(range(kk)),
                        key="wt_window", default=kk // 2, url=False,
                        format_func=lambda j: wt.window_label(j, config.kernel_att, pad_att, dil))
    with c[4]:
        offset = choice(st.selectbox, _("conv offset (f_all, f_conv)"), list(range(kc2)), key="wt_offset",
                        default=kc2 // 2, url=False,
                        format_func=lambda i: wt.offset_label(i, config.kernel_conv, pad_conv))
sel = wt.Selection(int(batch), int(head), int(channel), int(window), int(offset))
out_channel = sel.head * d + sel.channel


def draw_step(step, expanded: bool) -> None:
    """One step in an expander; its heatmaps are only built while the expander is open."""
    owner = step.info.owner or _("tensor op")
    shape = " × ".join(map(str, step.shape))
    box = st.expander(f"**{step.name}** · {owner} · {shape}", expanded=expanded,
                      key=f"wt_step_{step.name}", on_change="rerun")
    with box:
        if box.open is False:
            return
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.markdown(f"**{wt.step_summary(step.name)}** " + wt.explanation(step.name, config))
            st.latex(wt.STEP_TEXT[step.name].formula)
            st.caption(_("This project, `convmix/acmix.py` line {line}:", line=step.line))
            st.code(step.source, language="python", wrap_lines=True)
            st.caption(_("The authors' statement:"))
            st.code(step.info.code, language="python", wrap_lines=True)
            row = steps.loc[steps["step"] == step.name].iloc[0]
            headers = [_("shape"), _("memory"), _("parameters of {owner}", owner=owner), _("multiply-adds"), "FLOPs"]
            st.markdown(
                "| " + " | ".join(headers) + " |\n|---|---|---|---|---|\n"
                f"| {shape} | {wt.memory_text(row)} | {step.params:,} | {step.cost.macs:,} | {step.cost.flops:,} |\n\n"
                + _("Statistics of the whole tensor: mean {mean:.4g} · std {std:.4g} · min {min:.4g} · max {max:.4g}",
                    mean=row["mean"], std=row["std"], min=row["min"], max=row["max"])
            )
        with right:
            for ms in wt.step_maps(step, sel, config):
                show_map(ms, signed=step.name != "att", size=MAP_SIZE)


steps = steps_table(source)
groups = wt.group_steps(trace)
titles = dict(wt.GROUPS)


def overview() -> None:
    st.markdown(_(
        "The forward in order. **Stage I**: three 1×1 convolutions make q, k, v, shared by both paths. "
        "**Attention path**: heads, scaling, the conv_p positional encoding, reflection padding, unfold, "
        "logits, softmax, weighted sum. **Convolution path**: fc mixes the q/k/v head groups, a reshape, and "
        "the grouped dep_conv. **Mix**: rate1 and rate2. Parameters are those of the step's owning submodule; "
        "multiply-adds and FLOPs are the step's own (reshapes, padding and unfolding only move data)."))
    table = wt.display_steps(steps)
    names = {key: _(title) for key, title in wt.STEPS_COLUMNS}
    # Widths that fit every column, FLOPs included, in the main area at 1400 px.
    widths = {"stage": 72, "step": 78, "shape": 132, "memory": 74, "owner": 66}
    config_cols = {names[k]: st.column_config.TextColumn(width=w) for k, w in widths.items()}
    config_cols |= {names[k]: STAT for k in ("mean", "std", "min", "max")}
    config_cols |= {names["parameters"]: st.column_config.NumberColumn(format="%,d", width=62),
                    names["multiply-adds"]: st.column_config.NumberColumn(format="%,d", width=92),
                    names["FLOPs"]: st.column_config.NumberColumn(format="%,d", width=100)}
    st.dataframe(table, hide_index=True, width="stretch", height=35 * (len(table) + 1) + 3,
                 column_config=config_cols)
    st.markdown(_("**Parameters per submodule** (live module): {counts}; total **{total:,}**.",
                  counts=", ".join(f"`{k}` {v:,}" for k, v in params.items()), total=sum(params.values())))


def step_group(key: str) -> None:
    st.subheader(_(titles[key]))
    st.markdown(_(wt.GROUP_INTRO[key]))
    for i, step in enumerate(groups[key]):
        draw_step(step, expanded=(i == 0))

# ---------------------------------------------------------------------------------------------
# Mix: rate sliders re-mix the recorded path outputs
# ---------------------------------------------------------------------------------------------


@st.fragment
def mix_section() -> None:
    configure_torch(SERVER)  # a fragment rerun is a new thread: give it the server's thread count
    shown = get_walk(source)  # fragment reruns: the page's own walk is gone (see the end of the page)
    trace, module = shown.trace, shown.module
    out_att, out_conv = trace["out_att"].tensor, trace["out_conv"].tensor
    own1, own2 = float(module.rate1.detach()), float(module.rate2.detach())
    lo = min(-1.0, np.floor(min(own1, own2) * 20) / 20 - 0.5)
    hi = max(2.0, np.ceil(max(own1, own2) * 20) / 20 + 0.5)
    if st.session_state.get("_wt_rates_for") != source:  # a new module: start at its own rates
        st.session_state.update(wt_rate1=own1, wt_rate2=own2, _wt_rates_for=source)
    st.markdown(_(
        "The module's own rates are rate1 = {rate1:g} and rate2 = {rate2:g}. Move the sliders to re-mix the "
        "**recorded** out_att and out_conv; each path's share is |rate|·‖path output‖ divided by the sum of "
        "both (‖·‖ the L2 norm over the whole tensor).", rate1=own1, rate2=own2))
    c = st.columns(2)
    r1 = c[0].slider(_("rate1 (attention)"), float(lo), float(hi), step=0.05, key="wt_rate1")
    r2 = c[1].slider(_("rate2 (convolution)"), float(lo), float(hi), step=0.05, key="wt_rate2")
    shares = wt.path_shares(out_att, out_conv, r1, r2)
    m = st.container(key="wt_mix_metrics").columns(4)
    m[0].metric(_("attention share"), f"{shares.attention:.1%}")
    m[1].metric(_("convolution share"), f"{shares.convolution:.1%}")
    m[2].metric("‖out_att‖", f"{shares.norm_att:,.2f}")
    m[3].metric("‖out_conv‖", f"{shares.norm_conv:,.2f}")
    remixed = wt.remix(out_att, out_conv, r1, r2)
    same = float((wt.remix(out_att, out_conv, own1, own2) - trace["out"].tensor.double()).abs().max())
    st.caption(_("Check: re-mixing at the module's own rates reproduces the traced `out` to within {error:.2g} "
                 "(largest difference).", error=same))
    if shares.norm_conv > shares.norm_att:
        st.markdown(_(
            "At equal rates the convolution path is the larger one here (‖out_conv‖ / ‖out_att‖ = {ratio:.1f}): "
            "out_conv adds up {count} shifted fc outputs, while out_att is a weighted *average* of values "
            "(softmax weights are non-negative and sum to 1), which shrinks it.",
            ratio=shares.norm_conv / max(shares.norm_att, 1e-300), count=kc2))
    left, right = st.columns(2)
    with left:
        df, _block = wt.map_frame(remixed[sel.batch, out_channel].numpy())
        st.altair_chart(charts.map_heatmap(
            df, _("rate1·out_att + rate2·out_conv, channel {channel}", channel=out_channel), size=MAP_SIZE),
            width="content")
        st.caption(f"`{r1:g} · out_att[{sel.batch}, {out_channel}] + {r2:g} · out_conv[{sel.batch}, {out_channel}]`")
    with right:
        st.altair_chart(charts.channel_share_chart(wt.channel_shares(out_att, out_conv, r1, r2)),
                        width="stretch")


def mix() -> None:
    st.subheader(_("Mix"))
    st.markdown(_(wt.GROUP_INTRO["mix"]))
    for step in groups["mix"]:
        draw_step(step, expanded=True)
    st.subheader(_("Re-mix with rate1 and rate2"))
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


CELL_COLUMNS = ("j", "dy", "dx", "offset_y", "offset_x", "key_row", "key_col", "reflected", "content",
                "positional", "logit", "weight")


def output_headers() -> dict[str, str]:
    return {"channel in head": _("channel in head"), "output channel": _("output channel"),
            "Σ_j w_j · v_j": "Σ_j w_j · v_j", "out_att entry": _("out_att entry"),
            "difference": _("difference")}


def cell_headers() -> dict[str, str]:
    return {"j": "j", "dy": "dy", "dx": "dx", "offset_y": _("offset y"), "offset_x": _("offset x"),
            "key_row": _("key row"), "key_col": _("key column"), "reflected": _("from reflection padding"),
            "content": _("content"), "positional": _("position"), "logit": _("logit"),
            "weight": _("weight")}


@st.fragment
def inspector_section() -> None:
    configure_torch(SERVER)  # a fragment rerun is a new thread: give it the server's thread count
    shown = get_walk(source)  # fragment reruns: the page's own walk is gone (see the end of the page)
    trace = shown.trace
    ho, wo = config.out_height, config.out_width
    # Batch item, head and channel are the slice selector's above: one selector, one truth.
    b, n, ch = sel.batch, sel.head, sel.channel
    # Start near the top-left corner, where the window reaches into the reflection padding.
    keep_in_range("wt_qrow", 0, ho - 1, min(1, ho - 1))
    keep_in_range("wt_qcol", 0, wo - 1, min(2, wo - 1))
    c = st.columns([1, 1, 2])
    r = int(c[0].number_input(_("query row"), 0, ho - 1, key="wt_qrow"))
    q = int(c[1].number_input(_("query column"), 0, wo - 1, key="wt_qcol"))
    c[2].markdown(_("Batch item **{batch}**, head **{head}**, channel **{channel}** in the head: set in the "
                    "slice selector above.", batch=b, head=n, channel=ch))
    insp = wt.inspect_query(trace, config, b, n, r, q)
    cells = insp.cells

    top = st.columns(2, gap="medium")
    with top[0]:
        df, _block = wt.map_frame(trace["out_att"].tensor[b, n * d + ch].double().numpy())
        st.altair_chart(
            charts.map_heatmap(df, _("out_att channel {channel}: click a query", channel=n * d + ch), size=250,
                               select=True, marker=(r, q)),
            key="wt_query_map", on_select=pick_query_from_map, selection_mode=charts.QUERY_SELECTION,
            width="content",
        )
        st.caption(_("Query ({row}, {col}) of the {ho}×{wo} output sits at input position ({in_row}, "
                     "{in_col}).", row=r, col=q, ho=ho, wo=wo, in_row=insp.in_row, in_col=insp.in_col))
    with top[1]:
        st.altair_chart(
            charts.key_window_chart(wt.key_window_frame(trace, config, insp, ch),
                                    (insp.in_row, insp.in_col),
                                    _("k_pad, head {head}, channel {channel}", head=n, channel=ch),
                                    cell=max(8, min(20, 250 // (2 * insp.padding + 5)))),
            width="content",
        )
        n_reflected = int(cells["reflected"].sum())
        st.caption(_(
            "Outlined: the {ka}×{ka} window (p = {p}); faded: reflection padding, each cell a copy of the input "
            "cell named in its tooltip; ringed: the query. {reflected} of the {count} window positions read a "
            "padding copy.", ka=config.kernel_att, p=insp.padding, reflected=n_reflected, count=len(cells)))
    st.markdown(_(
        "**The window, position by position** (dashed outline: the key is a reflection-padding copy). The "
        "positional code is 0 at the centre and, away from the border, the same at every query; content + "
        "position = logit; softmax turns the logits into weights."))
    with st.container(horizontal=True, key="wt_window_panels", gap="small"):
        for panel in charts.window_panels(wt.window_panels_frame(insp, ch), size=PANEL_SIZE):
            st.altair_chart(panel, width="content")
    err = float((cells["content"] + cells["positional"] - cells["logit"]).abs().max())
    st.caption(_("Check: content + position = the recorded logit to within {error:.2g}; the recorded weights "
                 "sum to {total:.6f}.", error=err, total=cells["weight"].sum()))
    headers = cell_headers()
    with st.expander(_("All window positions as a table"), expanded=False):
        table = cells[list(CELL_COLUMNS)].assign(
            reflected=cells["reflected"].map(lambda v: _("yes") if v else _("no"))).rename(columns=headers)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={headers[k]: FLOAT for k in ("content", "positional", "logit", "weight")})
    st.markdown(_("**Output: Σ_j w_j · v_j beside the recorded out_att entry** (head {head})", head=n))
    worst = float(insp.output["difference"].abs().max())
    heads = output_headers()
    st.dataframe(insp.output.rename(columns=heads), hide_index=True, width="stretch",
                 height=35 * (min(d, 16) + 1) + 3,
                 column_config={heads[k]: st.column_config.NumberColumn(format="%.7f")
                                for k in ("Σ_j w_j · v_j", "out_att entry")}
                 | {heads["difference"]: st.column_config.NumberColumn(format="%.2e")})
    st.caption(_("Largest difference over the head's {d} channels: {error:.2g} (float32 rounding).", d=d,
                 error=worst))


def attention_inspector() -> None:
    st.subheader(_("Attention inspector"))
    st.markdown(_(
        "Pick a query (or click one on the map); the head and the channel drawn are those of the slice selector "
        "above. The query's logits are q·(k_j + pe_q − pe_key,j) over the window positions j, its weights their "
        "softmax, and its output the weighted sum of the window's values, computed here from the recorded "
        "tensors and set beside the recorded output."))
    inspector_section()

# ---------------------------------------------------------------------------------------------
# conv_p
# ---------------------------------------------------------------------------------------------


def conv_p() -> None:
    st.subheader(_("conv_p: positions as features"))
    st.markdown(_(
        "`conv_p = nn.Conv2d(2, head_dim, kernel_size=1)` maps the 2-channel coordinate grid to d = {d} channels "
        "({params:,} parameters: 2·{d} weights and {d} biases). Each output channel is a plane over the image, "
        "w_x·x + w_y·y + b, shared by all heads. The logits only use pe_q − pe_key = w_x·(x_q − x_key) + "
        "w_y·(y_q − y_key): a *relative* position term in which the bias cancels.", d=d, params=params["conv_p"]))
    g1, g2, g3 = st.columns(3)
    grid_maps = wt.step_maps(trace["grid"], sel, config)
    with g1:
        show_map(grid_maps[0], size=200)
    with g2:
        show_map(grid_maps[1], size=200)
    with g3:
        show_map(wt.step_maps(trace["pe"], sel, config)[0], size=200)
    plane = wt.conv_p_plane_error(trace, module)
    st.caption(_("Check: the recorded pe equals w_x·grid_x + w_y·grid_y + b from conv_p's weights to within "
                 "{error:.2g} in every channel.", error=plane))
    st.dataframe(wt.conv_p_frame(module).rename(columns={"channel": _("channel"), "bias": _("bias")}),
                 hide_index=True, width="content",
                 column_config={"w_x": FLOAT, "w_y": FLOAT, _("bias"): FLOAT})
    st.markdown(_(
        "**conv_p's bias is a dead parameter.** It adds the same vector to the query's and to every key's "
        "positional code, so pe_q − pe_key does not contain it: the output does not depend on it, and its "
        "gradient is exactly zero in exact arithmetic. Training never moves it, and a tolerance on it can only "
        "measure rounding (which is why the tests compare it to the size of `conv_p.weight`'s gradient)."))
    refusal = wt.conv_p_gradients_refusal(config)
    if refusal is not None:
        st.caption(_("Live check not run: {reason}", reason=refusal.message()))
        return
    try:
        g = conv_p_gradients(source)
    except OverBudget as err:
        st.caption(_("Live check not run: {reason}", reason=str(err)))
        return
    cols = st.columns(2)
    cols[0].metric(_("`‖∂L/∂conv_p.bias‖ / ‖∂L/∂conv_p.weight‖`, float64"), f"{g.bias64 / g.weight64:.1e}")
    cols[1].metric(_("the same, float32"), f"{g.bias32 / g.weight32:.1e}")
    st.caption(_(
        "Live evidence: autograd through a copy of this module on its recorded input, loss `L = Σ out · R` with a "
        "fixed random R. `conv_p.weight` gets a gradient of norm {norm:.3g}; `conv_p.bias` gets {b64:.1e} in "
        "float64 and {b32:.1e} in float32: a few units of each dtype's rounding (ε = 2.2e-16 and 1.2e-7), "
        "nothing else.", norm=g.weight64, b64=g.bias64, b32=g.bias32))

# ---------------------------------------------------------------------------------------------
# fc
# ---------------------------------------------------------------------------------------------


def fc() -> None:
    st.subheader(_("fc: 3·head groups in, kernel_conv² groups out"))
    st.markdown(_(
        "`fc = nn.Conv2d(3·head, kernel_conv², kernel_size=1, bias=False)`. Its input is q, k and v each viewed "
        "as (B, {h}, {d}, H·W) and concatenated: {h3} groups (q/k/v × head) of {d} channels. A 1×1 convolution "
        "over that group axis mixes, for each within-head channel and position, the {h3} group values into "
        "{kc2} outputs, one per kernel offset of dep_conv. The weight is therefore a **{h3} × {kc2}** matrix "
        "(3·head × kernel_conv²), {params:,} parameters, shared by all {d} channels.",
        h=h, d=d, h3=3 * h, kc2=kc2, params=params["fc"]))
    if h == 1:
        paper = _(
            "**Why 3N × k²** ({quirk}). The paper's first figure labels this layer 3N_head × k²N_conv, two "
            "different N; read as one N, a separate set of kernel_conv² outputs per head, it would hold {rows} × "
            "{cols} = {count:,} weights here (the same as 3N × k² only because this configuration has one head).",
            quirk=cite("Q10"), rows=3 * h, cols=kc2 * h, count=3 * h * kc2 * h)
    else:
        paper = _(
            "**Why 3N × k²** ({quirk}). The paper's first figure labels this layer 3N_head × k²N_conv, two "
            "different N; read as one N, a separate set of kernel_conv² outputs per head, it would hold {rows} × "
            "{cols} = {count:,} weights here.", quirk=cite("Q10"), rows=3 * h, cols=kc2 * h, count=3 * h * kc2 * h)
    st.markdown(paper + " " + _(
        "The code's fc is 3N × k² (N = heads), and the authors confirmed in their issue tracker (LeapLabTHU/ACmix, "
        "issue 5) that this is correct: the heads are mixed together, and the conv path's groups come from the "
        "grouped dep_conv, whose groups are the head_dim channels."))
    st.altair_chart(charts.fc_matrix_chart(wt.fc_matrix_frame(module, max_heads=FC_HEADS_SHOWN)), width="stretch")
    shapes = _("Shapes: {before} → {after}.", before=" × ".join(map(str, trace["qkv_groups"].shape)),
               after=" × ".join(map(str, trace["f_all"].shape)))
    rows = _("Rows: input group g of the concatenation (q heads, then k, then v). Columns: output group i, the "
             "kernel offset (dy, dx) that dep_conv's shift kernels give it.")
    if h > FC_HEADS_SHOWN:
        rows = _("Only the rows of heads 0 … {last} of q, k and v are drawn.", last=FC_HEADS_SHOWN - 1) + " " + rows
    st.caption(rows + " " + shapes)

# ---------------------------------------------------------------------------------------------
# dep_conv
# ---------------------------------------------------------------------------------------------


def dep_conv() -> None:
    st.subheader(_("dep_conv: shift kernels, a grouped convolution, no bias"))
    bias = wt.dep_conv_bias(module)
    group = out_channel // h
    st.markdown(ngettext(
        "`dep_conv = nn.Conv2d(d·kc², C, kernel_size={kc}, groups=d, padding={pad}, stride={s})`: {d} groups, "
        "each reading {kc2} channels (the fc outputs of one within-head channel) and writing {h} output "
        "channel. At initialisation every output channel holds the same shift kernels: input channel i of its "
        "group has a single 1 at kernel position (i // kc, i % kc), so the convolution adds up the kc² fc "
        "outputs, each shifted by one kernel offset.",
        "`dep_conv = nn.Conv2d(d·kc², C, kernel_size={kc}, groups=d, padding={pad}, stride={s})`: {d} groups, "
        "each reading {kc2} channels (the fc outputs of one within-head channel) and writing {h} output "
        "channels. At initialisation every output channel holds the same shift kernels: input channel i of its "
        "group has a single 1 at kernel position (i // kc, i % kc), so the convolution adds up the kc² fc "
        "outputs, each shifted by one kernel offset.", h, kc=config.kernel_conv, pad=pad_conv, s=config.stride,
        d=d, kc2=kc2, h=h))
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.altair_chart(
            charts.shift_kernel_chart(wt.shift_kernel_frame(module, out_channel), config.kernel_conv,
                                      _("dep_conv's weights of output channel {channel} (group {group})",
                                        channel=out_channel, group=group)),
            width="content",
        )
        st.caption(_("Output channel {channel} (head {head}, channel {within} in the slice selector).",
                     channel=out_channel, head=sel.head, within=sel.channel) + " "
                   + (_("The weights are exactly the shift kernels.") if shift
                      else _("The weights are not the shift kernels.")))
    with right:
        if shift:
            check = wt.check_shift(trace, module)
            st.metric(_("Largest |out_conv − shift sum|"), f"{check.max_difference:.2g}",
                      help=_("The shift sum is computed from the traced f_all by zero padding and slicing "
                             "(convmix.walkthrough.shift_sum), not by a convolution."))
            st.markdown(_(
                "**Live check.** Σ over the {kc2} offsets of the traced f_all, zero-padded by {pad} and sliced with "
                "stride {s}, against the traced out_conv: largest difference **{error:.2g}** where out_conv's "
                "values reach {scale:.3g}. At initialisation the conv path *is* a sum of shifted copies. (In the "
                "authors' ResNet model file a network-wide Kaiming init runs after the module is built and "
                "overwrites these kernels: {quirk}.)", kc2=kc2, pad=pad_conv, s=config.stride,
                error=check.max_difference, scale=check.max_magnitude, quirk=cite("Q11")))
        else:
            distance = wt.shift_distance(module)
            st.metric(_("‖W − shift kernels‖ / ‖shift kernels‖"), f"{distance:.3g}",
                      help=_("0 for ACmix's own initialisation; the larger, the further these weights are from "
                             "a sum of shifted copies."))
            st.markdown(words.trained_note(source, shift) + " " + _(
                "So here the conv path is a learned grouped convolution, not a sum of shifted copies: the shift "
                "kernels are only where it starts. ({quirk}.)", quirk=cite("Q11")))
        st.markdown(_(
            "**The missing bias** ({quirk}). The constructor asks for `bias=True`, but `reset_parameters` assigns "
            "the result of a fill helper that returns nothing, so `dep_conv.bias` is **{state}** here: {without:,} "
            "parameters (C·kc⁴) instead of {with_bias:,}. State dict keys: {keys}.", quirk=cite("Q1"),
            state=_("present") if bias.present else "None", without=bias.params_without, with_bias=bias.params_with,
            keys=", ".join(f"`{k}`" for k in module.state_dict() if k.startswith("dep_conv"))))

# ---------------------------------------------------------------------------------------------
# Channel grouping
# ---------------------------------------------------------------------------------------------


GROUPING_HEADERS = ("output channel", "attention head", "channel in head", "conv group", "f_conv channels",
                    "q/k/v channels (conv)")


def channel_grouping() -> None:
    st.subheader(_("Channel grouping: the two paths order channels differently"))
    within, across = wt.group_spread(trace, config)
    st.markdown(_(
        "**Attention path.** Output channel c is channel c % {d} of head c // {d}: heads are contiguous blocks of "
        "d = {d} channels. It averages v channel c with weights computed from the q and k channels of its head.",
        d=d) + "\n\n" + _(
        "**Convolution path.** After fc and the reshape, f_conv channel g·{kc2} + i is fc output i of within-head "
        "channel g, and dep_conv (groups = d = {d}) gives output channels g·{h} … g·{h} + {last} to group g. So "
        "output channel o belongs to group **o // h** (h = {h}) and is built from channel o // h of *every* head "
        "of q, k and v, while the same index in the attention path belongs to head o // d.",
        kc2=kc2, d=d, h=h, last=h - 1))
    if shift:
        st.markdown(_("Live evidence: at initialisation the {h} output channels of one conv group are identical "
                      "(largest difference within a group {within:.2g}, between groups {across:.3g}).",
                      h=h, within=within, across=across))
    else:
        st.markdown(_("With these weights the {h} output channels of one conv group differ (largest difference "
                      "within a group {within:.3g}, between groups {across:.3g}): the grouping is in the structure "
                      "(groups = d), and each group's kernels have moved apart from the identical shift kernels "
                      "they start from.", h=h, within=within, across=across))
    grouping = wt.channel_grouping_frame(config)
    for strip in charts.grouping_charts(grouping):
        st.altair_chart(strip, width="stretch")
    headers = {"output channel": _("output channel"), "attention head": _("attention head"),
               "channel in head": _("channel in head"), "conv group": _("conv group"),
               "f_conv channels": _("f_conv channels"), "q/k/v channels (conv)": _("q/k/v channels (conv path)")}
    st.dataframe(grouping.rename(columns=headers), hide_index=True, width="stretch", height=320)


def quirks() -> None:
    st.subheader(_("The authors' quirks"))
    st.markdown(_("What the authors' ACmix code does that a reader would not expect, each reproducible. The codes "
                  "Q1–Q11 appear elsewhere in this app, always with the short name given here."))
    evidence = _("Evidence:")
    for quirk in QUIRKS.values():  # name, what and evidence read themselves in the visitor's language
        st.markdown(f"**{quirk.code}: {quirk.name}.** {quirk.what}  \n*{evidence}* {quirk.evidence}")


VIEWS = {
    "overview": overview,
    "stage_i": lambda: step_group("Stage I"),
    "attention_path": lambda: step_group("attention"),
    "convolution_path": lambda: step_group("convolution"),
    "mix": mix,
    "attention_inspector": attention_inspector,
    "conv_p": conv_p,
    "fc": fc,
    "dep_conv": dep_conv,
    "channel_grouping": channel_grouping,
    "quirks": quirks,
}
# Only the open tab runs (the tabs track their state), and the URL names it (?section=<id>).
for name, tab in section_tabs():
    with tab:
        if tab.open is not False:
            if (refusal := wt.section_refusal(config, name, shift=shift)) is not None:
                st.error(refusal.message(), icon=":material/memory:")
                continue
            VIEWS[name]()
# Streamlit keeps this run's functions (fragments, callbacks) and so its globals: let go of the
# tensors, so that a session never holds a trace beyond the cache's (the fragments fetch theirs).
walk = trace = module = groups = None
