"""ACmix in ResNet: the paper's table checked against the released network, the weights of a
network (built here or uploaded) layer by layer, and one layer chosen for the walkthrough.

Layout only: counts come from convmix.paper, weights and statistics from convmix.checkpoint,
the chosen layer and its input from convmix.sources (through convmix.ui.walkthrough_source's
shared, byte-bounded cache), the paper check's words from convmix.network_text, charts from
convmix.charts_network. Refusals are the library's own messages.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from convmix import charts_network as charts
from convmix import images, paper, sources
from convmix import network_text as text
from convmix.budget import memory_budget
from convmix.checkpoint import (
    EXTENSIONS,
    CheckpointError,
    find_acmix_layers,
    kernel_att_note,
    layer_statistics,
    load_checkpoint,
    max_file_bytes,
    statistics_frame,
)
from convmix.format import human_bytes
from convmix.i18n import _, get_language, ngettext
from convmix.models import DEPTHS, KERNEL_ATT
from convmix.ui import walkthrough_source as ws
from convmix.ui.charts import chart_spec
from convmix.ui.navigation import ensure_router
from convmix.ui.sidebar import current_config
from convmix.ui.widgets import keep_values, url_tabs

ensure_router()

MODES = ("built", "upload")
PICTURE_IDS = [p.id for p in images.pictures()]
UPLOAD, NOISE = "__upload__", "__noise__"
MAX_ALONE_SIZE = 128
CURRENT_CHECKPOINT = "_net_current_checkpoint"  # the CheckpointRef this session last loaded
CURRENT_PICTURE = "_net_current_picture"  # the UploadedPicture this session last uploaded
UPLOAD_LIMIT = "_net_upload_limit"  # (budget, the uploader's limit) as first shown in this session
VIEW = "network_view"  # the URL parameter of the open tab: paper (the default) or weights
# Widgets whose values survive while their tab is closed (buttons and uploaders cannot be set).
KEPT_WIDGETS = ("net_measure", "net_share_depth", "net_mode", "net_depth", "net_seed", "net_picture", "net_layer",
                "net_image_size", "net_alone_size", "net_alone_kernel_att", "net_alone_stride")


def show_refusal(err: CheckpointError | sources.SourceError, kind: str = "error") -> None:
    """A refusal in the visitor's language; anything from the file itself apart, as plain text."""
    getattr(st, kind)(err.message, icon=":material/error:" if kind == "error" else ":material/info:")
    if err.details:
        st.code(err.details, language=None, wrap_lines=True)


# ---------------------------------------------------------------------------------------------
# The URL: read once when the page opens, written back after the widgets
# ---------------------------------------------------------------------------------------------


def seed_from_url() -> None:
    if "net_mode" in st.session_state:
        return
    named, notes = sources.from_query(st.query_params.to_dict(), current_config(), ws.chosen(),
                                      ws.uploaded_pictures())
    for note in notes:
        st.warning(note.message(), icon=":material/link_off:")
    if isinstance(named, sources.NetworkLayer) and isinstance(named.network, sources.ResNetRef):
        st.session_state.update(net_mode="built", net_depth=named.network.depth,
                                net_seed=named.network.seed, net_layer=named.layer,
                                net_image_size=named.image_size)
        if isinstance(named.image, sources.BuiltinPicture):
            st.session_state["net_picture"] = named.image.id
    elif isinstance(named, sources.NetworkLayer | sources.LayerAlone):
        st.session_state.update(net_mode="upload", net_layer=named.layer)
        st.session_state[CURRENT_CHECKPOINT] = named.network


def write_url(params: dict[str, str]) -> None:
    for key in sources.QUERY_KEYS:
        if key in params:
            if st.query_params.get(key) != params[key]:
                st.query_params[key] = params[key]
        elif key in st.query_params:
            del st.query_params[key]


# ---------------------------------------------------------------------------------------------
# Paper check
# ---------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False)
def summary_table(lang: str) -> pd.DataFrame:
    return charts.summary_frame()


@st.cache_data(show_spinner=False)
def candidate_tables(lang: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return charts.candidate_frames()


@st.cache_data(show_spinner=False)
def findings(lang: str) -> list[text.FindingText]:
    return [text.finding_text(f) for f in paper.findings()]


@st.cache_data(show_spinner=False)
def totals_frame(by: str, lang: str) -> pd.DataFrame:
    return charts.totals_frame(by)


@st.cache_data(show_spinner=False)
def share_frame(depth: int, lang: str) -> pd.DataFrame:
    return charts.stage_share_frame(depth, text.PAPER_SIZE)


STATUS_STYLE = {"established": ("green", ":material/check_circle:"),
                "does not hold": ("red", ":material/cancel:"),
                "hypothesis": ("orange", ":material/help:")}


def paper_check(lang: str) -> None:
    st.markdown(_(
        "The README of the authors' repository gives parameters and FLOPs for the three ACmix ResNets. "
        "Below are the counts of the released network, computed from its layout module by module "
        "(the test suite checks every count against the operations the network's forward executes), "
        "beside the table's figures, and an independent audit's statements, each with its evidence."))
    st.subheader(_("The three networks beside the README table"))
    st.dataframe(summary_table(lang), hide_index=True)
    st.caption(_("✓: prints as the table's figure when rounded to its last digit; ✗: does not. One "
                 "{size}×{size} image; multiply-adds and FLOPs as counted in convmix.counting.",
                 size=text.PAPER_SIZE))

    st.subheader(_("The audit's statements"))
    params_table, flops_table = candidate_tables(lang)
    for finding in findings(lang):
        color, icon = STATUS_STYLE.get(finding.status, ("gray", ":material/info:"))
        with st.container(border=True):
            st.badge(text.label(text.STATUS_LABELS, finding.status), icon=icon, color=color)
            st.markdown(f"**{finding.statement}**")
            st.markdown(finding.evidence)
            if finding.topic == "candidates_fit":
                st.dataframe(params_table, hide_index=True)
            if finding.topic == "candidates_match":
                st.dataframe(flops_table, hide_index=True)

    st.subheader(_("Per stage and per kind of module"))
    st.session_state.setdefault("net_measure", "params")
    measure = st.segmented_control(
        _("Count"), list(text.MEASURE_LABELS), key="net_measure",
        format_func=lambda m: text.label(text.MEASURE_LABELS, m), required=True)
    for group in ("stage", "kind"):
        st.vega_lite_chart(spec=chart_spec(charts.totals_chart, totals_frame(group, lang), measure, group),
                           width="stretch")

    st.subheader(_("Does Stage I dominate?"))
    shares = paper.stage1_shares(max(DEPTHS), text.PAPER_SIZE)
    first, last = (f"{h}×{w}×{c}" for c, h, w in (shares[0].in_shape, shares[-1].in_shape))
    st.markdown(_(
        "The paper says that Stage I, the three 1×1 projections, takes most of ACmix's computation, so that "
        "sharing it between the two paths makes the second path almost free. Here is each ACmix layer at "
        "the shape it really has in the network for a {size}×{size} image, from {first} in layer1 to "
        "{last} in layer4.", size=text.PAPER_SIZE, first=first, last=last))
    st.session_state.setdefault("net_share_depth", 50)
    depth = st.segmented_control(_("Network"), list(DEPTHS), key="net_share_depth",
                                 format_func=text.network_name, required=True)
    df = share_frame(depth, lang)
    st.vega_lite_chart(spec=chart_spec(charts.stage_share_chart, df), width="stretch")
    layers = df.drop_duplicates("position")
    low, high = layers.loc[layers["stage1_share"].idxmin()], layers.loc[layers["stage1_share"].idxmax()]
    below = int((layers["stage1_share"] <= 0.5).sum())
    st.markdown(_(
        "In ResNet-{depth}, Stage I's share ranges from {low:.1f} % ({low_layer}, input {low_shape}) to "
        "{high:.1f} % ({high_layer}, input {high_shape}).", depth=depth, low=100 * low["stage1_share"],
        low_layer=low["module"], low_shape=low["shape"], high=100 * high["stage1_share"],
        high_layer=high["module"], high_shape=high["shape"]) + " " + (ngettext(
            "In {count} layer it is at or under half: there the claim does not hold.",
            "In {count} layers it is at or under half: there the claim does not hold.", below, count=below)
        if below else _("It is above half in every layer of this network.")))
    table = layers[["module", "shape", "stride", "stage1_share"]].copy()
    table["stage1_share"] = [f"{100 * v:.1f} %" for v in table["stage1_share"]]
    table.columns = [_("layer"), _("input C×H×W"), _("stride"), _("Stage I's share")]
    st.dataframe(table, hide_index=True)


# ---------------------------------------------------------------------------------------------
# Weights: a network built here, or a checkpoint
# ---------------------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def statistics(key: str, _state) -> pd.DataFrame:
    """Per-layer statistics of a state dict, keyed by what determines it (network ref or upload hash)."""
    return statistics_frame(layer_statistics(_state, find_acmix_layers(_state)))


def built_network(resolver) -> tuple[sources.ResNetRef, dict, bool] | None:
    cols = st.columns(2)
    st.session_state.setdefault("net_depth", 26)
    st.session_state.setdefault("net_seed", 0)
    depth = cols[0].segmented_control(_("Network"), list(DEPTHS), key="net_depth",
                                      format_func=text.network_name, required=True)
    seed = int(cols[1].number_input(_("Seed"), 0, 2**31 - 1, key="net_seed",
                                    help=_("Seed of the random initialisation.")))
    ref = sources.ResNetRef(depth, seed)
    try:
        with st.spinner(_("Building the network…")):
            model = resolver.network(ref)
    except sources.SourceError as err:
        show_refusal(err, "warning")
        return None
    st.info(_(
        "Random initialisation, drawn from seed {seed} as the authors' code does it: rate1 = rate2 = 0.5 in "
        "every layer, and the network's init loop overwrites dep_conv's shift kernels with Kaiming normal "
        "weights. Nothing here is learned; upload a trained checkpoint to see what training changes.",
        seed=seed), icon=":material/casino:")
    return ref, model.state_dict(), True


def upload_limit(budget: int) -> int:
    """The uploader's limit: what reading a checkpoint would be admitted for when this session first
    showed the uploader (convmix.checkpoint.max_file_bytes). It is kept for the session, because the
    uploader forgets its file when its limit changes; reading a file is admitted again when it comes."""
    kept = st.session_state.get(UPLOAD_LIMIT)
    if kept is None or kept[0] != budget:
        kept = st.session_state[UPLOAD_LIMIT] = (budget, max_file_bytes(budget))
    return kept[1]


def uploaded_checkpoint(resolver) -> tuple[sources.CheckpointRef, dict, bool] | None:
    budget = memory_budget()
    limit = upload_limit(budget)
    file = st.file_uploader(
        _("Checkpoint (.pth, .pt or .safetensors)"), type=[e.lstrip(".") for e in EXTENSIONS],
        key="net_upload", max_upload_size=max(1, limit // 2**20),
        help=_("A state dict saved by torch.save, bare or wrapped under state_dict or model, with or "
               "without DataParallel's module. prefixes; or a safetensors file."))
    st.caption(_("Up to {limit}: what this server's memory budget of {budget} leaves for reading a checkpoint "
                 "beside what the server holds. Files are read with torch.load(weights_only=True) or "
                 "safetensors, so nothing in them runs.", limit=human_bytes(limit), budget=human_bytes(budget)))
    ref = None
    if file is not None:
        data = file.getvalue()
        sha = ws.upload_hash(file)
        ref = sources.CheckpointRef(sha, file.name)
        if ("checkpoint", sha) not in resolver.cache:
            try:
                with st.spinner(_("Reading the checkpoint…")):
                    resolver.keep_checkpoint(sha, load_checkpoint(data, file.name, budget, resolver.make_room))
            except CheckpointError as err:
                show_refusal(err)
                return None
        st.session_state[CURRENT_CHECKPOINT] = ref
        ws.remember_upload(ref)
    else:
        ref = st.session_state.get(CURRENT_CHECKPOINT)
        if ref is None:
            st.info(_("No checkpoint uploaded yet. Upload one, or build a network here."),
                    icon=":material/upload_file:")
            return None
    try:
        checkpoint = resolver.checkpoint(ref)
    except sources.SourceError as err:
        show_refusal(err, "warning")
        return None
    if file is None:
        st.caption(_("Using the checkpoint uploaded earlier in this session:"))
    summary = pd.DataFrame([
        [_("file"), ref.filename],
        [_("format"), checkpoint.format],
        [_("weights found under"), checkpoint.wrapper or _("the top level (a bare state dict)")],
        [_("key prefix removed"), checkpoint.stripped_prefix or _("none")],
        [_("entries beside the weights"), ", ".join(checkpoint.other_entries[:12]) or _("none")],
        [_("tensors"), f"{len(checkpoint.state_dict):,}"],
        [_("values"), f"{checkpoint.parameter_count:,}"],
        [_("size in memory"), human_bytes(checkpoint.tensor_bytes)],
    ], columns=[_("checkpoint"), _("value")])
    st.dataframe(summary, hide_index=True)
    if checkpoint.non_finite:
        st.warning(ngettext("{count} tensor holds NaN or infinite values:",
                            "{count} tensors hold NaN or infinite values:", len(checkpoint.non_finite),
                            count=len(checkpoint.non_finite)), icon=":material/warning:")
        st.code(", ".join(checkpoint.non_finite), language=None, wrap_lines=True)
    runs = True
    try:
        model = resolver.network(ref)
        st.success(_("The whole network runs: ACmix ResNet-{depth} with {classes:,} classes, loaded with "
                     "strict=True. A layer's input can be the activation that really reaches it.",
                     depth=model.depth, classes=model.fc.out_features), icon=":material/check_circle:")
    except sources.SourceError as err:
        runs = False
        show_refusal(err, "info")
    return ref, checkpoint.state_dict, runs


def layers_table(found) -> pd.DataFrame:
    rows = []
    for layer in found:
        rows.append([
            charts.short_layer(layer.name),
            f"{layer.in_planes} → {layer.out_planes}" if layer.usable else "—",
            str(layer.head) if layer.usable else "—",
            str(layer.kernel_conv) if layer.usable else "—",
            str(layer.stride) if layer.stride is not None else "—",
            layer.stride_source,
            "✓" if layer.usable else "✗",
        ])
    return pd.DataFrame(rows, columns=[_("layer"), _("channels"), _("heads"), "kernel_conv", _("stride"),
                                       _("where the stride comes from"), _("usable")])


def statistics_charts(stats: pd.DataFrame) -> None:
    rate = charts.series_frame(stats, {"rate1": _("rate1 (attention path)"), "rate2": _("rate2 (convolution path)")})
    st.vega_lite_chart(spec=chart_spec(charts.across_depth_chart, rate, _("Learned rate1 and rate2 across depth"),
                                       _("value")), width="stretch")
    if (stats["rate1"] == stats["rate2"]).all():
        st.caption(_("rate1 equals rate2 in every layer, so the two lines coincide."))
    share = charts.series_frame(stats, {"attention_weight": _("|rate1| / (|rate1| + |rate2|)")})
    st.vega_lite_chart(spec=chart_spec(charts.across_depth_chart,
        share, _("The attention path's weight in the mix"), _("share"), rule=0.5,
        domain=(0, 1)), width="stretch")
    st.caption(_("How much of the output comes from the attention path if both paths' outputs had the same "
                 "size; the dashed line marks equal weights."))
    weights = {f"rms {k}": k for k in ("conv1.weight", "conv2.weight", "conv3.weight", "conv_p.weight",
                                       "fc.weight", "dep_conv.weight")}
    st.vega_lite_chart(spec=chart_spec(charts.across_depth_chart,
        charts.series_frame(stats, weights), _("Root mean square of each weight"),
        _("root mean square"), log=True), width="stretch")
    st.caption(_("The root mean square of a weight does not grow with the layer's width, so layers of "
                 "different widths compare directly."))
    cols = st.columns(2)
    dist = charts.series_frame(stats, {"dep_conv_shift_distance": _("‖W − shift‖ / ‖shift‖")})
    cols[0].vega_lite_chart(spec=chart_spec(charts.across_depth_chart,
        dist, _("dep_conv: distance from the shift kernels"), _("relative distance")), width="stretch")
    energy = charts.series_frame(stats, {"dep_conv_shift_energy": _("energy on the own shift tap")})
    cols[1].vega_lite_chart(spec=chart_spec(charts.across_depth_chart,
        energy, _("dep_conv: energy on each kernel's own tap"),
        _("share"), rule=1 / stats["kernel_conv"].iloc[0] ** 2, domain=(0, 1)), width="stretch")
    st.caption(_("A shift kernel puts all its energy on its own tap (share 1, distance 0); random weights "
                 "spread it evenly (share 1/kc², the dashed line)."))


def statistics_table(stats: pd.DataFrame) -> pd.DataFrame:
    columns = {
        "name": _("layer"), "rate1": "rate1", "rate2": "rate2", "rate_ratio": "rate1 / rate2",
        "attention_weight": _("attention weight"), "dep_conv_shift_distance": _("dep_conv distance from shift"),
        "dep_conv_shift_energy": _("dep_conv own-tap energy"), "conv_p_bias_mean": _("conv_p bias mean"),
    }
    return stats[list(columns)].rename(columns=columns)


# ---------------------------------------------------------------------------------------------
# One layer for the walkthrough
# ---------------------------------------------------------------------------------------------


def picture_choice(allow_noise: bool, resolver) -> sources.PictureRef | None | str:
    """The picture chosen (None for seeded noise), or the string "missing" when an upload is awaited."""
    options = PICTURE_IDS + [UPLOAD] + ([NOISE] if allow_noise else [])
    by_id = {p.id: p for p in images.pictures()}

    def name(option: str) -> str:
        if option == UPLOAD:
            return _("a picture of your own (upload)")
        if option == NOISE:
            return _("seeded random noise")
        return text.picture_title(by_id[option])

    if st.session_state.get("net_picture") not in options:
        st.session_state["net_picture"] = PICTURE_IDS[0]
    choice = st.selectbox(_("Input picture"), options, key="net_picture", format_func=name)
    if choice == NOISE:
        return None
    if choice != UPLOAD:
        st.caption(text.picture_credit(by_id[choice]))
        return sources.BuiltinPicture(choice)
    state, ref = ws.picture_upload("net_picture_upload", CURRENT_PICTURE)
    if state == "none":
        st.info(_("No picture uploaded yet."), icon=":material/upload_file:")
    elif state == "earlier":
        st.caption(_("Using the picture uploaded earlier in this session."))
    return "missing" if ref is None else ref


def layer_for_walkthrough(network: sources.NetworkRef, found, runs: bool, resolver) -> dict[str, str]:
    """Choose a layer and an input; preview it; offer it to the walkthrough. Returns the URL params."""
    usable = [layer for layer in found if layer.usable]
    if not usable:
        st.warning(_("No usable ACmix layer was found, so none can be opened in the walkthrough."),
                   icon=":material/warning:")
        return {}
    names = [layer.name for layer in usable]
    if st.session_state.get("net_layer") not in names:
        st.session_state["net_layer"] = names[0]
    name = st.selectbox(_("ACmix layer"), names, key="net_layer", format_func=charts.short_layer)
    layer = usable[names.index(name)]
    picture = picture_choice(allow_noise=not runs, resolver=resolver)
    if runs:
        depth = network.depth if isinstance(network, sources.ResNetRef) else resolver.network(network).depth
        sizes = sources.resnet_image_sizes(depth)
        if st.session_state.get("net_image_size") not in sizes:
            st.session_state["net_image_size"] = sources.DEFAULT_IMAGE_SIZE
        size = st.select_slider(_("Image size (pixels, square)"), sizes, key="net_image_size",
                                help=_("The picture is resized and centre-cropped to this size, then goes "
                                       "through the network's own forward up to the layer."))
        if picture == "missing":
            return {}
        source = sources.NetworkLayer(network, name, picture, size)
        config = sources.resnet_layer_config(depth, name, size)
    else:
        st.caption(kernel_att_note())
        cols = st.columns(3)
        for key, value in (("net_alone_size", 56), ("net_alone_kernel_att", KERNEL_ATT),
                           ("net_alone_stride", layer.stride or 1)):
            st.session_state.setdefault(key, value)
        size = int(cols[0].number_input(_("Input size (H = W)"), 8, MAX_ALONE_SIZE, key="net_alone_size"))
        kernel_att = int(cols[1].number_input("kernel_att", 1, 31, step=2, key="net_alone_kernel_att"))
        stride = int(cols[2].number_input(_("stride"), 1, 8, key="net_alone_stride"))
        if picture == "missing":
            return {}
        source = sources.LayerAlone(network, name, picture, size, kernel_att, stride)
        config = None
    if config is not None:
        module = (f"ACmix({config.in_planes}, {config.out_planes}, kernel_att={config.kernel_att}, "
                  f"head={config.head}, stride={config.stride})")
        shape = f"{config.batch}×{config.in_planes}×{config.height}×{config.width}"
        st.caption(_("The walkthrough will show {module} on the activation of shape {shape} that reaches it.",
                     module=module, shape=shape))
    if not preview(source):
        return sources.to_query(source)
    chosen = ws.chosen()
    cols = st.columns([1, 1])
    if chosen == source:
        cols[0].success(_("The walkthrough shows this layer."), icon=":material/check:")
        with cols[0]:
            ws.walkthrough_link(source, _("Open it in the walkthrough"))
    elif cols[0].button(_("Show this layer in the walkthrough"), type="primary", key="net_choose"):
        ws.remember(source)
        st.rerun()
    if chosen is not None and cols[1].button(_("Back to the sidebar's configuration"), key="net_forget",
                                             help=_("The walkthrough shows the sidebar's module on seeded "
                                                    "noise again.")):
        ws.forget()
        st.rerun()
    return sources.to_query(source)


def preview(source) -> bool:
    """Show what reaches the layer; False (after saying why) when it cannot be built here."""
    with st.expander(_("The input this layer receives"), expanded=True):
        try:
            with st.spinner(_("Running the network up to the layer…")):
                m = ws.materialized(source)
        except sources.SourceError as err:
            show_refusal(err, "warning")
            return False
        x = m.x[0]
        cols = st.columns(3)
        cols[0].metric(_("shape"), " × ".join(map(str, m.x.shape)))
        cols[1].metric(_("memory estimate checked"), human_bytes(m.estimate_bytes),
                       help=_("Estimated before anything ran, against this server's memory budget of {budget}.",
                              budget=human_bytes(memory_budget())))
        cols[2].metric(_("positive values"), f"{100 * (x > 0).float().mean().item():.1f} %")
        cols = st.columns(2)
        shown = shown_picture(source)
        if shown is not None:
            cols[0].image(shown, caption=_("What goes in: {h}×{w} pixels", h=shown.shape[0], w=shown.shape[1]),
                          width=260)
        with cols[1]:
            st.vega_lite_chart(spec=chart_spec(charts.activation_heatmap, charts.channel_mean_map(x),
                _("Mean over its {c} channels", c=x.shape[0]), _("mean")), width="content")
    return True


def shown_picture(source):
    """The picture as the network or the stem receives it, or None for noise (or a lost upload)."""
    if isinstance(source, sources.NetworkLayer):
        picture, size = source.image, source.image_size
    elif isinstance(source, sources.LayerAlone) and source.picture is not None:
        picture, size = source.picture, 4 * source.size
    else:
        return None
    try:
        return sources.picture_rgb(picture, size, size, ws.resolver())
    except sources.SourceError:
        return None


def broken_layers(found) -> None:
    """Layers whose weights do not form an ACmix, each with what is wrong (the library's sentences
    name keys from the file: shown as plain text, in a table)."""
    broken = [layer for layer in found if not layer.usable]
    if not broken:
        return
    st.warning(ngettext("{count} layer cannot be used:", "{count} layers cannot be used:", len(broken),
                        count=len(broken)), icon=":material/warning:")
    rows = [problem for layer in broken for problem in layer.problems]
    st.dataframe(pd.DataFrame({_("what is wrong"): rows}), hide_index=True)


def network_layers(ref, state, runs: bool, resolver) -> dict[str, str]:
    """The layers found, their statistics across depth, and one chosen for the walkthrough.
    Returns the URL parameters of the choice."""
    found = find_acmix_layers(state)
    st.subheader(ngettext("{count} ACmix layer found", "{count} ACmix layers found", len(found),
                          count=len(found)))
    if not found:
        st.warning(_("The weights hold no ACmix layer (no key ends in dep_conv.weight)."),
                   icon=":material/warning:")
        return {}
    st.dataframe(layers_table(found), hide_index=True)
    broken_layers(found)
    st.caption(_("Configuration read from the weights' shapes: channels from conv1, heads from conv_p "
                 "(head_dim = channels / heads), kernel_conv from fc.") + " " + kernel_att_note())
    stats = statistics(ref.sha256 if isinstance(ref, sources.CheckpointRef) else repr(ref), state)
    if len(stats):
        st.subheader(_("What the layers hold, across depth"))
        statistics_charts(stats)
        st.dataframe(statistics_table(stats), hide_index=True)
        st.download_button(_("Download the statistics (CSV)"), stats.to_csv(index=False),
                           file_name="acmix_layer_statistics.csv", mime="text/csv")
    st.subheader(_("Open a layer in the walkthrough"))
    return layer_for_walkthrough(ref, found, runs, resolver)


def weights_and_layers() -> None:
    resolver = ws.resolver()
    mode = st.radio(_("Weights"), MODES, key="net_mode", horizontal=True, format_func=lambda m: {
        "built": _("a network built here (random initialisation)"), "upload": _("a checkpoint (upload)")}[m])
    loaded = built_network(resolver) if mode == "built" else uploaded_checkpoint(resolver)
    params = network_layers(*loaded, resolver) if loaded is not None else {}
    if not params and loaded is not None and isinstance(loaded[0], sources.ResNetRef):
        params = {"net": f"resnet{loaded[0].depth}", "net_seed": str(loaded[0].seed)}
    write_url(params)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

lang = get_language()
st.title(_("ACmix in ResNet"))
st.markdown(_(
    "ACmix was designed to replace the 3×3 convolutions of ResNet. This page checks the paper's table "
    "against the released network, reads the weights of a network layer by layer (built here, or your "
    "own checkpoint), and sends one layer, with the activation that really reaches it, to the walkthrough."))
seed_from_url()
keep_values(KEPT_WIDGETS)  # a look at the other tab resets nothing
# Only the open tab is drawn (the weights tab builds networks and draws a dozen elements more).
# ?network_view=weights opens it, as does a URL that names a network or layer; the URL names a
# network only while the weights tab is open, so that it always reproduces the view.
names_layer = any(key in st.query_params for key in sources.QUERY_KEYS)
view, (paper_tab, weights_tab) = url_tabs(VIEW, {"paper": _("Paper check"), "weights": _("Weights and layers")},
                                          "paper", initial="weights" if names_layer else None)
if view == "paper":
    write_url({})
    with paper_tab:
        paper_check(lang)
else:
    with weights_tab:
        weights_and_layers()
