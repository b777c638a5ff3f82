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
]


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
