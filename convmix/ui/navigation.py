"""The app's pages, in menu order: the router builds st.navigation from this list and the home page
links to every entry, so a page is linked exactly when it exists.

Titles, blurbs and sidebar notes are English source text marked with N_() and translated where
they are shown, so the menu and the links follow the visitor's language while each page keeps one
URL (its file's stem) in every language.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from convmix.i18n import N_, _
from convmix.ui.language import language_params


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str  # English source; shown as _(title)
    icon: str
    blurb: str
    sidebar_note: str = ""  # how the page uses the sidebar's configuration, when not wholly


PAGE_SPECS: list[PageSpec] = [
    PageSpec("pages/home.py", N_("Home"), ":material/home:", N_("What convmix is for.")),
    PageSpec("pages/bias.py", N_("Bias in nn.Conv2d"), ":material/exposure_plus_1:",
             N_("What bias=True does, shown on live tensors, and what a blog answer about it gets "
                "wrong."),
             N_("On this page the configuration below applies only to the section *Bias inside "
                "ACmix*. The page's own convolution (channels, kernel, stride, padding, bias) is set "
                "on the page, under *The layer*.")),
    PageSpec("pages/walkthrough.py", N_("ACmix walkthrough"), ":material/account_tree:",
             N_("Every submodule and step of ACmix's forward, with live tensors and an attention "
                "inspector.")),
    PageSpec("pages/explorer.py", N_("Hyperparameter explorer"), ":material/tune:",
             N_("Parameters, FLOPs, latency and memory as kernel, heads, stride, width and "
                "resolution vary.")),
    PageSpec("pages/network.py", N_("ACmix in ResNet"), ":material/lan:",
             N_("The paper's table checked against the released ResNets, a checkpoint's layers and "
                "learned rates, and any layer sent to the walkthrough with the activation that "
                "reaches it.")),
    PageSpec("pages/train.py", N_("Train it live"), ":material/model_training:",
             N_("A small ACmix network learns 8×8 digits in your session: live curves, rate1 and "
                "rate2, the stem's biases, attention, and the ablation.")),
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
    """st.Page objects in the current language; each page's URL path is its file's stem in every
    language (Streamlit would otherwise derive it from the file name too, but never from the title)."""
    return [
        st.Page(spec.path, title=_(spec.title), icon=spec.icon, default=(i == 0),
                **({"url_path": url_path(spec)} if i else {}))
        for i, spec in enumerate(PAGE_SPECS)
    ]


def spec_of(page) -> PageSpec | None:
    """The PageSpec of a page st.navigation returned (matched by URL path, the same in every language)."""
    return next((spec for spec in PAGE_SPECS if url_path(spec) == page.url_path), None)


def sidebar_note(page) -> str:
    """The translated sidebar note of `page` ("" when the configuration applies wholly)."""
    spec = spec_of(page)
    return _(spec.sidebar_note) if spec is not None and spec.sidebar_note else ""


def page_links() -> None:
    """A link to every page but home, in the visitor's language.

    Each link names the language (`?lang=`), so that it opens in the same language in a new tab
    too. The configuration goes along by itself when the link is clicked: Streamlit carries the
    URL-bound sidebar values across a page switch (passing them as query_params as well would
    write each one twice into the URL), and `lang` is not bound, so naming it does not repeat it.
    """
    with st.container(key=PAGE_LINKS_KEY):
        for spec in PAGE_SPECS[1:]:
            st.page_link(spec.path, label=_("**{title}**: {blurb}", title=_(spec.title), blurb=_(spec.blurb)),
                         icon=spec.icon, query_params=language_params())


PAGE_LINKS_KEY = "page_links"
# Streamlit draws a page link on one line and cuts what does not fit; these labels are sentences
# and wrap instead (on a phone most of each would be cut).
PAGE_LINKS_CSS = (f".st-key-{PAGE_LINKS_KEY} [data-testid='stPageLink-NavLink'] span, "
                  f".st-key-{PAGE_LINKS_KEY} [data-testid='stPageLink-NavLink'] p "
                  "{white-space: normal; overflow: visible;}")
