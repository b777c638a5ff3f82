"""The shared sidebar: the ACmix configuration, each widget bound to the URL parameter of its name.

Widget labels are the constructor's argument names (the same in every language, and in the URL);
their help, the headings, the notes and the problems are translated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import streamlit as st

from convmix.config import LIMITS, ACmixConfig, misread_by_streamlit
from convmix.constraints import VARIANTS
from convmix.i18n import N_, _

_DEFAULT = ACmixConfig()
_HELP = {
    "in_planes": N_("Input channels Cin of the 1x1 projections conv1-3."),
    "out_planes": N_("Output channels C; must be divisible by head."),
    "kernel_att": N_("Attention window size ka (odd): each query attends to ka x ka keys."),
    "head": N_("Attention heads h; each head has C / h channels."),
    "kernel_conv": N_("Kernel size kc of the conv path (dep_conv). The authors' code only runs kc = 3."),
    "stride": N_("Stride s of both paths."),
    "dilation": N_("Dilation of the attention window. The authors' code only runs 1."),
    "height": N_("Input height H."),
    "width": N_("Input width W."),
    "batch": N_("Batch size B."),
    "seed": N_("Seed of the weights (seed) and of the random input (seed + 1)."),
}
# The parameters in the constructor's order, two per row. Each row is a pair of columns of its own:
# below 640 px Streamlit stacks columns, and one pair of columns for the whole group would list the
# first column, then the second (in_planes, kernel_att, …, out_planes, head, …).
_GROUPS = (
    (N_("Module"), ("in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride", "dilation")),
    (N_("Input"), ("height", "width", "batch", "seed")),
)
PER_ROW = 2
URL_NOTES_KEY = "_convmix_url_notes"
CONFIG_KEY = "_convmix_config"


def rows(names: Iterable[str], per_row: int = PER_ROW) -> list[tuple[str, ...]]:
    """`names` in rows of `per_row`, in order (the last row may be shorter)."""
    names = tuple(names)
    return [names[i:i + per_row] for i in range(0, len(names), per_row)]


def url_notes_once(key: str, read: Callable[[dict], list[str]], names: Iterable[str]) -> list[str]:
    """Sentences for the URL values that were not taken as given, in the current language.

    The first run of a session keeps the URL the visitor pasted (Streamlit drops values it cannot
    use silently, so `read` says which); every run words the notes again from it, so that they
    follow a change of language. Streamlit 1.67 also seeds an integer widget with int(float(text)):
    "1e400" raises OverflowError and "8.5" becomes 8 where the note says the default is used.
    Widgets seed from the URL the run started with, so such values of `names` are dropped from the
    URL and the run starts again.
    """
    if key not in st.session_state:
        params = st.query_params.to_dict()
        st.session_state[key] = params
        misread = [name for name in names if name in params and misread_by_streamlit(params[name])]
        if misread:
            for name in misread:
                del st.query_params[name]
            st.rerun()
    return read(st.session_state[key])


def show_url_notes(notes: list[str]) -> None:
    for note in notes:
        st.warning(note, icon=":material/link_off:")


def problems_text(config: ACmixConfig) -> str:
    """The sidebar's box for a configuration that cannot run (markdown); "" when it runs."""
    problems = config.problems()
    if not problems:
        return ""
    text = _("**This configuration cannot run:**") + "\n\n" + "\n".join(f"- {p.sentence()}" for p in problems)
    if config.variant == "official" and not config.with_(variant="fixed").problems():
        text += "\n\n" + _("The **fixed** variant runs it: switch *variant* above.")
    return text


def config_sidebar(note: str = "") -> ACmixConfig:
    """Draw the configuration widgets; return the configuration and remember it for the pages.

    `note` (markdown) says how the current page uses the configuration, under the heading.
    """
    notes = url_notes_once(URL_NOTES_KEY, lambda params: ACmixConfig.from_query_params(params)[1],
                           _HELP)
    values: dict[str, object] = {}
    with st.sidebar:
        st.markdown("### " + _("ACmix configuration"))
        # The note's container is drawn on every page, noted or not: Streamlit 1.67 drops the bound
        # widgets below from the URL when leaving a page on which they stood one element lower.
        with st.container(key="convmix_sidebar_note"):
            if note:
                st.caption(note)
        values["variant"] = st.radio(
            "variant",
            VARIANTS,
            index=VARIANTS.index(_DEFAULT.variant),
            key="variant",
            bind="query-params",
            horizontal=True,
            help=_("official: the authors' code, quirks included. fixed: the same parameters with "
                   "padding, stride and dilation repaired."),
        )
        for title, names in _GROUPS:
            st.caption(_(title))
            for row in rows(names):
                for name, column in zip(row, st.columns(PER_ROW), strict=False):
                    lo, hi = LIMITS[name]
                    with column:
                        values[name] = int(
                            st.number_input(
                                name,
                                min_value=lo,
                                max_value=hi,
                                value=getattr(_DEFAULT, name),
                                step=1,
                                key=name,
                                bind="query-params",
                                help=_(_HELP[name]),
                            )
                        )
        show_url_notes(notes)
    config = ACmixConfig(**values)
    st.session_state[CONFIG_KEY] = config
    text = problems_text(config)
    if text:
        # Said here, once, beside the widgets that fix it; pages only point here.
        st.sidebar.error(text, icon=":material/error:")
    return config


def current_config() -> ACmixConfig:
    """The configuration the sidebar set in this run."""
    return st.session_state.get(CONFIG_KEY, _DEFAULT)
