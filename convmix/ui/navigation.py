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
    sidebar_note: str = ""  # how the page uses the sidebar's configuration, when not wholly


PAGE_SPECS: list[PageSpec] = [
    PageSpec("pages/home.py", "Home", ":material/home:", "What convmix is for."),
    PageSpec("pages/bias.py", "Bias in nn.Conv2d", ":material/exposure_plus_1:",
             "What bias=True does, shown on live tensors, and what a blog answer about it gets wrong.",
             "On this page the configuration below applies only to the section *Bias inside "
             "ACmix*. The page's own convolution (channels, kernel, stride, padding, bias) is set "
             "on the page, under *The layer*."),
    PageSpec("pages/walkthrough.py", "ACmix walkthrough", ":material/account_tree:",
             "Every submodule and step of ACmix's forward, with live tensors and an attention "
             "inspector."),
    PageSpec("pages/explorer.py", "Hyperparameter explorer", ":material/tune:",
             "Parameters, FLOPs, latency and memory as kernel, heads, stride, width and resolution vary."),
    PageSpec("pages/network.py", "ACmix in ResNet", ":material/lan:",
             "The paper's table checked against the released ResNets, a checkpoint's layers and learned "
             "rates, and any layer sent to the walkthrough with the activation that reaches it."),
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


def sidebar_note(title: str) -> str:
    """The sidebar note of the page with this title ("" when the configuration applies wholly)."""
    return next((spec.sidebar_note for spec in PAGE_SPECS if spec.title == title), "")


def page_links() -> None:
    """A link to every page but home. The configuration goes along by itself: Streamlit carries
    the URL-bound sidebar values across a page switch (passing them as query_params as well
    would write each one twice into the URL)."""
    for spec in PAGE_SPECS[1:]:
        st.page_link(spec.path, label=f"**{spec.title}**: {spec.blurb}", icon=spec.icon)
