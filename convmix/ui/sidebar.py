"""The shared sidebar: the ACmix configuration, each widget bound to the URL parameter of its name."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import streamlit as st

from convmix.config import LIMITS, ACmixConfig, misread_by_streamlit
from convmix.constraints import VARIANTS

_DEFAULT = ACmixConfig()
_HELP = {
    "in_planes": "Input channels Cin of the 1x1 projections conv1-3.",
    "out_planes": "Output channels C; must be divisible by head.",
    "kernel_att": "Attention window size ka (odd): each query attends to ka x ka keys.",
    "head": "Attention heads h; each head has C / h channels.",
    "kernel_conv": "Kernel size kc of the conv path (dep_conv). The authors' code only runs kc = 3.",
    "stride": "Stride s of both paths.",
    "dilation": "Dilation of the attention window. The authors' code only runs 1.",
    "height": "Input height H.",
    "width": "Input width W.",
    "batch": "Batch size B.",
    "seed": "Seed of the weights (seed) and of the random input (seed + 1).",
}
_GROUPS = (
    ("Module", ("in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride", "dilation")),
    ("Input", ("height", "width", "batch", "seed")),
)
URL_NOTES_KEY = "_convmix_url_notes"
CONFIG_KEY = "_convmix_config"


def url_notes_once(key: str, read: Callable[[dict], list[str]], names: Iterable[str]) -> list[str]:
    """Sentences for the URL values that were not taken as given, worked out once per session.

    On the first run the URL still holds what the visitor pasted; Streamlit drops values it cannot
    use silently, so `read` says which. Streamlit 1.67 also seeds an integer widget with
    int(float(text)): "1e400" raises OverflowError and "8.5" becomes 8 where the note says the
    default is used. Widgets seed from the URL the run started with, so such values of `names`
    are dropped from the URL and the run starts again.
    """
    if key not in st.session_state:
        params = st.query_params.to_dict()
        st.session_state[key] = read(params)
        misread = [name for name in names if name in params and misread_by_streamlit(params[name])]
        if misread:
            for name in misread:
                del st.query_params[name]
            st.rerun()
    return st.session_state[key]


def show_url_notes(notes: list[str]) -> None:
    for note in notes:
        st.warning(note, icon=":material/link_off:")


def config_sidebar(note: str = "") -> ACmixConfig:
    """Draw the configuration widgets; return the configuration and remember it for the pages.

    `note` (markdown) says how the current page uses the configuration, under the heading.
    """
    notes = url_notes_once(URL_NOTES_KEY, lambda params: ACmixConfig.from_query_params(params)[1],
                           _HELP)
    values: dict[str, object] = {}
    with st.sidebar:
        st.markdown("### ACmix configuration")
        if note:
            st.caption(note)
        values["variant"] = st.radio(
            "variant",
            VARIANTS,
            index=VARIANTS.index(_DEFAULT.variant),
            key="variant",
            bind="query-params",
            horizontal=True,
            help="official: the authors' code, quirks included. fixed: the same parameters with "
            "padding, stride and dilation repaired.",
        )
        for title, names in _GROUPS:
            st.caption(title)
            cols = st.columns(2)
            for i, name in enumerate(names):
                lo, hi = LIMITS[name]
                with cols[i % 2]:
                    values[name] = int(
                        st.number_input(
                            name,
                            min_value=lo,
                            max_value=hi,
                            value=getattr(_DEFAULT, name),
                            step=1,
                            key=name,
                            bind="query-params",
                            help=_HELP[name],
                        )
                    )
        show_url_notes(notes)
    config = ACmixConfig(**values)
    st.session_state[CONFIG_KEY] = config
    with st.sidebar:
        problems = config.problems()
        if problems:
            # Said here, once, beside the widgets that fix it; pages only point here.
            text = "**This configuration cannot run:**\n\n" + "\n".join(
                f"- {p.sentence()}" for p in problems)
            if config.variant == "official" and not config.with_(variant="fixed").problems():
                text += "\n\nThe **fixed** variant runs it: switch *variant* above."
            st.error(text, icon=":material/error:")
    return config


def current_config() -> ACmixConfig:
    """The configuration the sidebar set in this run."""
    return st.session_state.get(CONFIG_KEY, _DEFAULT)
