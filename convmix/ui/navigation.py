"""The app's pages, in menu order: the router builds st.navigation from this list and the home page
links to every entry, so a page is linked exactly when it exists."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    blurb: str


PAGE_SPECS: list[PageSpec] = [
    PageSpec("pages/home.py", "Home", ":material/home:", "What convmix is for."),
    PageSpec("pages/bias.py", "Bias in nn.Conv2d", ":material/exposure_plus_1:",
             "What bias=True does, shown on live tensors, and what the seed article gets wrong."),
    PageSpec("pages/walkthrough.py", "ACmix walkthrough", ":material/account_tree:",
             "Every submodule and step of ACmix's forward, with live tensors and an attention "
             "inspector."),
    PageSpec("pages/explorer.py", "Hyperparameter explorer", ":material/tune:",
             "Parameters, FLOPs, latency and memory as kernel, heads, stride, width and resolution vary."),
    PageSpec("pages/train.py", "Train it live", ":material/model_training:",
             "A small ACmix network learns 8×8 digits in your session: live curves, rate1 and rate2, the "
             "stem's biases, attention, and the ablation."),
]


def url_path(spec: PageSpec) -> str:
    """The page's URL path: "" for the first (default) page, else the file's stem."""
    return "" if spec is PAGE_SPECS[0] else spec.path.rsplit("/", 1)[-1].removesuffix(".py")


ROUTER_RAN = "_convmix_router_ran"


def mark_router_ran() -> None:
    st.session_state[ROUTER_RAN] = True


def ensure_router() -> None:
    """Make sure this page runs inside streamlit_app.py (the router and its shared sidebar).

    A fresh server starts in Streamlit's legacy multipage mode because the folder pages/ exists,
    and leaves it only when some session runs st.navigation. A visitor whose first request is a
    page URL (say /bias) would get that page file alone: no sidebar, no configuration. Such a run
    switches the mode off, exactly as st.navigation does, and reruns: the router then runs and
    opens the same page.
    """
    if st.session_state.get(ROUTER_RAN):
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


def build_pages() -> list:
    return [
        st.Page(spec.path, title=spec.title, icon=spec.icon, default=(i == 0))
        for i, spec in enumerate(PAGE_SPECS)
    ]


def page_links(config_params: dict[str, str]) -> None:
    """A link to every page but home, carrying the configuration in the URL."""
    for spec in PAGE_SPECS[1:]:
        st.page_link(spec.path, label=f"**{spec.title}**: {spec.blurb}", icon=spec.icon,
                     query_params=config_params)
