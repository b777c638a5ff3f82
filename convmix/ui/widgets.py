"""Selection widgets whose option labels are translated, optionally bound to the URL.

Two things go wrong with a plain keyed `st.selectbox(..., format_func=_label, key=k)` in a bilingual
app (both seen in Chromium with Streamlit 1.67):
  * after the language changes, the frontend keeps showing the keyed widget's old labels (a select
    box or multiselect still reads "banana" where the options now say 香蕉);
  * bound to the URL (`bind="query-params"`), it writes the translated label, so a link would read
    `?fruit=香蕉` and mean nothing to an English session.

`choice()` draws one widget per language (its key carries the language), keeps the visitor's
choice in a language-neutral value that survives a language switch (and a page switch), and, with
`url=True`, writes that value to `?<key>=` itself (several values comma-separated; removed when it
equals the default). A URL value that is not one of the options is dropped with a note the page
shows (`url_notes()`), as the sidebar does for its own parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from convmix.i18n import _, get_language

_VALUE = "_convmix_choice_value_{key}"
_NOTES = "_convmix_choice_notes"


def _parse(raw: object, options: Sequence, multi: bool):
    """The options named by URL text (by their str()); None when it names none of them."""
    text = raw[-1] if isinstance(raw, (list, tuple)) and raw else raw
    if not isinstance(text, str):
        return None
    by_text = {str(o): o for o in options}
    if not multi:
        return by_text.get(text.strip())
    parts = [p.strip() for p in text.split(",") if p.strip()]
    chosen = [by_text[p] for p in parts if p in by_text]
    if len(chosen) != len(parts):
        return None
    return list(dict.fromkeys(chosen))


def _shown(raw: object) -> str:
    """A URL value as a note quotes it: its first 40 characters, letters, digits and -_.,+ only."""
    return repr("".join(ch for ch in str(raw)[:40] if ch.isalnum() or ch in "-_.,+ "))


def _serialize(value, multi: bool) -> str:
    return ",".join(str(v) for v in value) if multi else str(value)


def choice(
    widget: Callable[..., Any],
    label: str,
    options: Sequence,
    *,
    key: str,
    format_func: Callable[[Any], str],
    default: Any,
    url: bool = True,
    multi: bool = False,
    **kwargs: Any,
) -> Any:
    """Draw `widget` (st.selectbox, st.radio, st.multiselect, st.segmented_control, st.pills …) over
    `options` with translated labels; return the chosen option(s).

    `default` is the value when neither the visitor nor the URL chose one; `multi=True` for widgets
    that return a list (st.multiselect, or segmented_control/pills with selection_mode="multi").
    Options must be language-neutral values (codes, numbers), each with a distinct str().
    """
    store = _VALUE.format(key=key)
    options = list(options)
    if store not in st.session_state:
        value = default
        raw = st.query_params.get_all(key) if url and key in st.query_params else None
        if raw:
            parsed = _parse(raw, options, multi)
            if parsed is None:
                st.session_state.setdefault(_NOTES, []).append(
                    _("URL parameter {name}={value} is not one of this menu's choices; using the default.",
                      name=key, value=_shown(raw[-1])))
            else:
                value = parsed
        st.session_state[store] = value
    value = st.session_state[store]
    if multi:
        value = [v for v in (value or []) if v in options]
    elif value not in options:
        value = default if default in options else (options[0] if options else None)
    widget_key = f"{key}__{get_language()}"
    if widget_key not in st.session_state:
        st.session_state[widget_key] = value
    chosen = widget(label, options, format_func=format_func, key=widget_key, **kwargs)
    st.session_state[store] = chosen
    if url:
        if chosen == default or (multi and list(chosen or []) == list(default or [])):
            if key in st.query_params:
                del st.query_params[key]
        else:
            text = _serialize(chosen, multi) if chosen is not None else ""
            if st.query_params.get(key) != text:
                st.query_params[key] = text
    return chosen


def toggle(label: str, *, key: str, default: bool = False, url: bool = True, help: str | None = None) -> bool:
    """st.toggle kept as `choice` keeps a menu: one widget per language, a language-neutral value in
    the session, and with `url=True` `?<key>=true` or `false` (removed at the default); a URL value
    that is neither is dropped with a note (`url_notes()`)."""
    store = _VALUE.format(key=key)
    if store not in st.session_state:
        value = default
        if url and key in st.query_params:
            raw = st.query_params.get(key, "")
            if raw.strip().lower() in ("true", "false"):
                value = raw.strip().lower() == "true"
            else:
                st.session_state.setdefault(_NOTES, []).append(
                    _("URL parameter {name}={value} is neither true nor false; using the default.",
                      name=key, value=_shown(raw)))
        st.session_state[store] = value
    widget_key = f"{key}__{get_language()}"
    if widget_key not in st.session_state:
        st.session_state[widget_key] = st.session_state[store]
    chosen = bool(st.toggle(label, key=widget_key, help=help))
    st.session_state[store] = chosen
    if url:
        if chosen == default:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != str(chosen).lower():
            st.query_params[key] = str(chosen).lower()
    return chosen


def set_choice(key: str, value: Any) -> None:
    """Change a choice from code (a chart click, a preset): every language's widget follows."""
    st.session_state[_VALUE.format(key=key)] = value
    prefix = f"{key}__"
    for name in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        del st.session_state[name]


def url_notes() -> list[str]:
    """Notes on URL values the menus could not use (each said once), for the page to show."""
    return st.session_state.pop(_NOTES, [])


def url_tabs(param: str, views: Mapping[str, str], default: str,
             initial: str | None = None) -> tuple[str, list]:
    """st.tabs over `views` (code -> translated label), drawn lazily: only the open tab's content
    needs drawing (the caller draws it for the returned code; a click reruns the page). The open
    tab's code is kept in the session and in `?<param>=` (removed when it is `default`). A session
    opens the tab its URL names, else `initial` (default: `default`). One widget per language, as
    `choice` draws. Returns (open code, tab containers)."""
    store = f"_{param}_value"
    codes = list(views)
    if store not in st.session_state:
        raw = st.query_params.get(param)
        st.session_state[store] = raw if raw in views else initial if initial in views else default
    current = st.session_state[store]
    key = f"{param}__{get_language()}"
    by_label = {label: code for code, label in views.items()}

    def changed() -> None:
        st.session_state[store] = by_label.get(st.session_state.get(key), default)

    tabs = st.tabs(list(views.values()), key=key, default=views[current], on_change=changed)
    opened = next((codes[i] for i, tab in enumerate(tabs) if tab.open), current)
    st.session_state[store] = opened
    if opened == default:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != opened:
        st.query_params[param] = opened
    return opened, list(tabs)


def keep_values(keys: Sequence[str]) -> None:
    """Keep the values of keyed widgets that this run may not draw (a closed lazy tab's): Streamlit
    forgets a widget's state after a run that did not draw it. Call before drawing; buttons and
    file uploaders cannot be set this way and are not to be listed."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
