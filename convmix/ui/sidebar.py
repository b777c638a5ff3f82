"""The shared sidebar: the ACmix configuration, each widget bound to the URL parameter of its name."""

from __future__ import annotations

import math

import streamlit as st

from convmix.config import LIMITS, ACmixConfig
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


def _misread_by_streamlit(raw: object) -> bool:
    """True for URL text that Streamlit's int widgets crash on (infinite) or truncate (8.5)."""
    try:
        number = float(str(raw))
    except ValueError:
        return False
    return math.isinf(number) or (math.isfinite(number) and number != int(number))


def config_sidebar() -> ACmixConfig:
    """Draw the configuration widgets; return the configuration and remember it for the pages."""
    if URL_NOTES_KEY not in st.session_state:
        # First run of this session: the URL still holds what the visitor pasted. Streamlit drops
        # values it cannot parse silently, so say here what was not taken as given.
        params = st.query_params.to_dict()
        _, notes = ACmixConfig.from_query_params(params)
        st.session_state[URL_NOTES_KEY] = notes
        # Streamlit 1.67 seeds an int widget with int(float(text)): "1e400" raises OverflowError
        # and "8.5" becomes 8 where the note says the default is used. Widgets seed from the URL
        # the run started with, so drop such values and start the run again.
        misread = [name for name in _HELP if name in params and _misread_by_streamlit(params[name])]
        if misread:
            for name in misread:
                del st.query_params[name]
            st.rerun()
    values: dict[str, object] = {}
    with st.sidebar:
        st.markdown("### ACmix configuration")
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
        for note in st.session_state[URL_NOTES_KEY]:
            st.warning(note, icon=":material/link_off:")
    config = ACmixConfig(**values)
    st.session_state[CONFIG_KEY] = config
    with st.sidebar:
        problems = config.problems()
        if problems:
            st.error(
                "**This configuration cannot run:**\n\n"
                + "\n".join(f"- {p.sentence()}" for p in problems),
                icon=":material/error:",
            )
    return config


def current_config() -> ACmixConfig:
    """The configuration the sidebar set in this run."""
    return st.session_state.get(CONFIG_KEY, _DEFAULT)
