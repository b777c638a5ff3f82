"""The visitor's language: `?lang=en|zh` (the sidebar's menu, bound to the URL), else the browser's.

The router calls `choose_language()` before it draws anything, so that page titles, the sidebar and
every page translate into the same language (convmix.i18n keeps it for the run), and
`language_menu()` at the top of the sidebar.
"""

from __future__ import annotations

import streamlit as st

from convmix.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGE_MENU_LABEL,
    LANGUAGES,
    _,
    get_language,
    parse_language,
    set_language,
)

KEY = "lang"  # the widget key and the URL parameter
_NOTE_KEY = "_convmix_lang_note"
_PINNED_KEY = "_convmix_lang_pinned"  # the visitor (or the URL) chose a language: the URL carries it


def browser_language() -> str:
    """The browser's language when convmix has a catalog for it, else English."""
    try:
        locale = st.context.locale
    except Exception:  # no browser behind this run (e.g. a bare script run)
        locale = None
    return parse_language(locale) or DEFAULT_LANGUAGE


def choose_language() -> str:
    """Decide this run's language and make it active: the menu's value once it exists, else the URL's
    `lang`, else the browser's language, else English."""
    chosen = st.session_state.get(KEY)
    if chosen not in LANGUAGES:
        raw = st.query_params.get(KEY)
        chosen = parse_language(raw) if raw is not None else None
        if raw is not None and chosen is None and _NOTE_KEY not in st.session_state:
            # Shown as text in a warning: keep letters, digits and dashes only (no markup).
            st.session_state[_NOTE_KEY] = "".join(ch for ch in str(raw)[:20] if ch.isalnum() or ch in "-_")
        if chosen is not None:
            st.session_state[_PINNED_KEY] = True  # the URL named it: keep naming it
        chosen = chosen or browser_language()
        st.session_state[KEY] = chosen  # the menu starts here (it has no default of its own)
    set_language(chosen)
    return chosen


def _pin() -> None:
    st.session_state[_PINNED_KEY] = True


def language_menu() -> None:
    """English / 中文 in the sidebar; says once if the URL's value was not understood.

    The menu is not a URL-bound widget: Streamlit would write the option's label (中文) into the URL.
    It writes the code itself, `?lang=zh`, once the visitor has chosen or the URL named it, so that
    a copied link opens in the same language (and a page switch, which clears the URL, gets it back).
    """
    with st.sidebar:
        chosen = st.radio(
            LANGUAGE_MENU_LABEL,
            list(LANGUAGES),
            format_func=LANGUAGES.__getitem__,
            key=KEY,
            horizontal=True,
            on_change=_pin,
        )
        bad = st.session_state.pop(_NOTE_KEY, None)
        if bad is not None:
            st.warning(
                _("URL parameter lang={value} is not a language this app has; showing {language}.",
                  value=repr(bad), language=LANGUAGES[chosen]),
                icon=":material/translate:",
            )
    if st.session_state.get(_PINNED_KEY):
        if st.query_params.get(KEY) != chosen:
            st.query_params[KEY] = chosen
    elif KEY in st.query_params:
        del st.query_params[KEY]  # a value that was not understood


def language_params() -> dict[str, str]:
    """The query parameter that carries the current language in a link the app makes."""
    return {KEY: get_language()}
