"""The training page's state and controls: its settings bound to the URL, the visitor's run and
ablation in session state, and the clicks that start, pause, resume and reset them.

Session state (other pages may read the first key; the rest is this page's own):
  * ``TRAINER_KEY`` ("convmix_trainer"): the visitor's `convmix.train.Trainer`, absent before the
    first Start and after Reset. Its `net` is the trained network (`net.acmix_layers()`), `config`
    its TrainConfig; `convmix.train_checkpoint.acmix_input(trainer.net)` gives a trained ACmix layer
    with the input it receives for a held-out digit.
  * ``JOB_KEY``: what the page advances while it is open: "run", "ablation" or None (paused).
  * ``ABLATION_KEY``: the visitor's `convmix.train_live.AblationRun`, if any.

The settings are TrainConfig's fields, each bound to the URL parameter `train_<field>` (the shared
sidebar already uses `width` for the input's width). The URL is read once per session, safely, by
TrainConfig.from_query_params (a value it does not take falls back with a note) into
``SETTINGS_KEY``; after that the widgets are the truth, ``SETTINGS_KEY`` keeps them while the page
is away, and the URL follows them, so a copied URL reproduces the settings.
"""

from __future__ import annotations

from dataclasses import fields

import streamlit as st

from convmix.budget import memory_budget
from convmix.constraints import VARIANTS
from convmix.digits import SIZE, default_split
from convmix.i18n import _, get_language
from convmix.train import ABLATIONS, LIMITS, LR_LIMITS, TrainConfig, Trainer
from convmix.train_config import ablation_label
from convmix.train_limits import RUN_SLOTS, TIME_LIMIT_S, measure_timing, memory_refusal, plan_run
from convmix.train_live import AblationCache, AblationRun, live_log_every, live_trainer

URL_PREFIX = "train_"  # the page's URL parameters: train_width, train_lr ... (the sidebar owns width)

TRAINER_KEY = "convmix_trainer"
JOB_KEY = "_convmix_train_job"
ABLATION_KEY = "_convmix_train_ablation"
MESSAGE_KEY = "_convmix_train_message"  # a refusal to show once, after the click that caused it
URL_PARAMS_KEY = "_convmix_train_url_params"  # the train_ parameters the session's first URL held
SETTINGS_KEY = "_convmix_train_settings"  # the settings as last set (a TrainConfig); outlives the widgets
TRANSLATED_MENUS = ("ablation",)  # settings whose menu shows translated labels

# Below 640 px Streamlit stacks columns one per row; these blocks of small items take two per row.
TWO_PER_ROW = ("train_numbers_width", "train_numbers_lr", "train_metrics", "train_attention")
_TWO_PER_ROW_SELECTOR = ", ".join(f".st-key-{key} [data-testid='stColumn']" for key in TWO_PER_ROW)
PHONE_CSS = ("<style>@media (max-width: 640px) {" + _TWO_PER_ROW_SELECTOR
             + " {min-width: calc(50% - 1rem) !important;}}</style>")


def param_key(name: str) -> str:
    """The URL parameter of a setting."""
    return URL_PREFIX + name


def widget_key(name: str) -> str:
    """The widget of a setting. A keyed widget keeps its value as the label it showed, so a menu of
    translated labels gets one widget per language; its value is carried over through SETTINGS_KEY."""
    return param_key(name) + ("_" + get_language() if name in TRANSLATED_MENUS else "")


# -- settings ---------------------------------------------------------------------------------------


def _read_url_once() -> None:
    """First run of the session: the settings come from the URL (bad values fall back to defaults)."""
    if URL_PARAMS_KEY in st.session_state:
        return
    params = {k: v for k, v in st.query_params.to_dict().items() if k.startswith(URL_PREFIX)}
    st.session_state[URL_PARAMS_KEY] = params
    st.session_state[SETTINGS_KEY] = TrainConfig.from_query_params(params, prefix=URL_PREFIX)[0]


def _seed_widgets() -> None:
    """A widget drawn for the first time (this session, since the page was left, or in this language)
    starts from the settings as last set; one that exists keeps the visitor's latest value."""
    settings = st.session_state[SETTINGS_KEY]
    for f in fields(TrainConfig):
        if widget_key(f.name) not in st.session_state:
            st.session_state[widget_key(f.name)] = getattr(settings, f.name)


def _help() -> dict[str, str]:
    return {
        "width": _("Channels of the stem convolution and of ACmix (in and out). Not the sidebar's width, "
                   "which is an input size in pixels."),
        "head": _("Attention heads; head must divide width."),
        "kernel_att": _("Side of the attention window, odd: each query attends to kernel_att × kernel_att "
                        "positions."),
        "stride": _("Stride of ACmix (of the plain convolution in the ablation)."),
        "lr": _("Peak learning rate of SGD with momentum 0.9; it falls along a cosine to 0 by the last step."),
        "epochs": _("Passes over the {count:,} training digits.", count=len(default_split().train)),
        "batch": _("Digits per minibatch (one training step)."),
        "seed": _("Seed of the weights (seed) and of the order of the training digits (seed + 1): the same "
                  "seed and settings give the same curves."),
        "stem_bn": _("BatchNorm between the stem convolution and its ReLU: it subtracts each channel's mean, "
                     "so the stem's bias gets no gradient."),
        "ablation": _("Which network this run trains; the ablation below trains all four."),
        "variant": _("official: the authors' ACmix; fixed: the repaired one, which also runs strides that do "
                     "not divide {size}.", size=SIZE),
    }


def settings_block() -> TrainConfig:
    """Draw the settings (in a bordered block) and return them; keep the URL in step with them."""
    _read_url_once()
    _seed_widgets()
    helps = _help()
    st.caption(_("Names as in `TrainConfig`, `python -m convmix train` and this page's URL (`train_width`, "
                 "`train_lr`, …)."))
    values: dict[str, object] = {}
    rows = (("width", "head", "kernel_att", "stride"), ("lr", "epochs", "batch", "seed"))
    for row in rows:
        cols = st.container(key=f"train_numbers_{row[0]}").columns(4)
        for col, name in zip(cols, row, strict=True):
            with col:
                if name == "lr":
                    low, high = LR_LIMITS
                    values[name] = float(st.number_input(
                        "lr", min_value=low, max_value=high, step=0.005, format="%.4f", key=widget_key(name),
                        help=helps[name]))
                else:
                    low, high = LIMITS[name]
                    values[name] = int(st.number_input(
                        name, min_value=low, max_value=high, step=1, key=widget_key(name),
                        help=helps[name]))
    cols = st.columns([2, 1, 1], vertical_alignment="center")
    with cols[0]:
        values["ablation"] = st.selectbox(
            _("Network"), list(ABLATIONS), format_func=ablation_label, key=widget_key("ablation"),
            help=helps["ablation"])
    with cols[1]:
        values["variant"] = st.radio("variant", VARIANTS, key=widget_key("variant"), horizontal=True,
                                     help=helps["variant"])
    with cols[2]:
        values["stem_bn"] = bool(st.toggle(_("BatchNorm after the stem"), key=widget_key("stem_bn"),
                                           help=helps["stem_bn"]))
    config = TrainConfig(**values)
    st.session_state[SETTINGS_KEY] = config
    _write_url(config)
    return config


def _write_url(config: TrainConfig) -> None:
    """Put every setting that differs from the default into the URL, and nothing else of this page."""
    wanted = config.to_query_params(only_changed=True, prefix=URL_PREFIX)
    for f in fields(TrainConfig):
        key = param_key(f.name)
        if key in wanted:
            if st.query_params.get(key) != wanted[key]:
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]


def show_url_notes() -> None:
    """A warning for every setting the URL named that TrainConfig did not take (the library's words)."""
    params = st.session_state.get(URL_PARAMS_KEY, {})
    for note in TrainConfig.from_query_params(params, prefix=URL_PREFIX)[1]:
        st.warning(note, icon=":material/link_off:")


# -- the visitor's run and ablation -----------------------------------------------------------------


def trainer() -> Trainer | None:
    return st.session_state.get(TRAINER_KEY)


def job() -> str | None:
    return st.session_state.get(JOB_KEY)


def ablation() -> AblationRun | None:
    return st.session_state.get(ABLATION_KEY)


@st.cache_resource(show_spinner=False)
def ablation_cache() -> AblationCache:
    """Finished ablation runs of every visitor of this process."""
    return AblationCache()


def _say(kind: str, text: str) -> None:
    st.session_state[MESSAGE_KEY] = (kind, text)


def pop_message() -> tuple[str, str] | None:
    return st.session_state.pop(MESSAGE_KEY, None)


def _refusal(config: TrainConfig, log_every: int | None) -> tuple[str, str] | None:
    """Why `config` may not start now, as (kind, text): over the memory budget or the time cap
    ("error"), or no free run slot to time it in ("warning"); None when it may start."""
    refusal = memory_refusal(config, memory_budget())
    if refusal:
        return "error", refusal
    with RUN_SLOTS.slot() as ok:
        if not ok:
            return "warning", RUN_SLOTS.busy_message() + " " + _("Try again in a moment.")
        timing = measure_timing(config)
    plan = plan_run(config, time_limit_s=TIME_LIMIT_S, timing=timing, log_every=log_every)
    return None if plan.ok else ("error", plan.refusal)


def start_run(config: TrainConfig) -> None:
    """Start: check the run, then build it (the ablation, if running, pauses)."""
    refusal = _refusal(config, live_log_every(config, len(default_split().train)))
    if refusal:
        _say(*refusal)
        return
    with RUN_SLOTS.slot() as ok:  # building the trainer evaluates the held-out digits once
        if not ok:
            _say("warning", RUN_SLOTS.busy_message() + " " + _("Try again in a moment."))
            return
        st.session_state[TRAINER_KEY] = live_trainer(config, TIME_LIMIT_S)
    st.session_state[JOB_KEY] = "run"


def pause() -> None:
    st.session_state[JOB_KEY] = None


def resume_run() -> None:
    if trainer() is not None and not trainer().stopped:
        st.session_state[JOB_KEY] = "run"


def reset_run() -> None:
    st.session_state.pop(TRAINER_KEY, None)
    if job() == "run":
        st.session_state[JOB_KEY] = None


def start_ablation(config: TrainConfig) -> None:
    """Check every network not yet in the cache, then train them one after another."""
    run = AblationRun(config.with_(ablation="learned"), TIME_LIMIT_S)
    run.take_cached(ablation_cache())
    for name, variant in run.configs.items():
        if name in run.results:
            continue
        refusal = _refusal(variant, None)
        if refusal:
            kind, text = refusal
            _say(kind, _("{network}: {reason}", network=ablation_label(name), reason=text))
            return
    st.session_state[ABLATION_KEY] = run
    st.session_state[JOB_KEY] = None if run.finished else "ablation"


def resume_ablation() -> None:
    if ablation() is not None and not ablation().finished:
        st.session_state[JOB_KEY] = "ablation"
