"""Translations: gettext catalogs and the language of the current run. Importable without Streamlit.

Every sentence a visitor reads is written in English in the source, wrapped in `_()` (or
`ngettext` / `pgettext`), and translated from the catalog `convmix/locale/<lang>/LC_MESSAGES/
convmix.po` (compiled to `convmix.mo`). Following Django's convention, the msgid is the whole
English sentence with named placeholders, here in `str.format` syntax with format specs:

    _("The module has {count:,} parameters.", count=n)

so a translator sees whole sentences, numbers never live in the translated text, and a missing
translation falls back to readable English. Text defined at import time (tables of labels) is
marked with `N_()` and translated where it is shown: `_(LABEL)`.

The language is held in a context variable: each Streamlit run (a thread of its own) sets it once
at the top of the router; library code called during the run translates into it, and code outside
Streamlit (tests, the CLI, a notebook) gets English unless it calls `set_language` or uses the
`language()` context manager. Adding a language is adding its catalog and an entry in LANGUAGES.

Placeholder pitfall: `_` is a function here, so never use `_` as a throwaway variable in a module
or function that translates.
"""

from __future__ import annotations

import contextvars
import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

DOMAIN = "convmix"
LOCALE_DIR = Path(__file__).with_name("locale")
# Language code -> its own name (what the language menu shows). English is the source language.
LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}
# The language menu's label, in both languages: a visitor who cannot read the current one finds it too.
LANGUAGE_MENU_LABEL = "Language · 语言"
DEFAULT_LANGUAGE = "en"

_active: contextvars.ContextVar[str] = contextvars.ContextVar("convmix_language", default=DEFAULT_LANGUAGE)


@cache
def catalog(lang: str) -> _gettext.NullTranslations:
    """The compiled catalog of `lang` (the source language and unknown codes translate to English)."""
    if lang == DEFAULT_LANGUAGE or lang not in LANGUAGES:
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])


def get_language() -> str:
    return _active.get()


def set_language(lang: str) -> None:
    """Make `lang` the language of this context (a Streamlit run, a test); unknown codes raise."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    _active.set(lang)


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Translate into `lang` inside the block, then restore the previous language."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    token = _active.set(lang)
    try:
        yield
    finally:
        _active.reset(token)


def _(message: str, /, **values: object) -> str:
    """`message` in the active language, with `values` filled into its {placeholders}."""
    text = catalog(get_language()).gettext(message)
    return text.format(**values) if values else text


def ngettext(singular: str, plural: str, n: int, /, **values: object) -> str:
    """The singular or plural form for `n`, in the active language, with `values` filled in."""
    text = catalog(get_language()).ngettext(singular, plural, n)
    return text.format(**values) if values else text


def pgettext(context: str, message: str, /, **values: object) -> str:
    """`message` translated in `context`, for short words whose translation depends on where they
    stand (e.g. a column header vs a verb)."""
    text = catalog(get_language()).pgettext(context, message)
    return text.format(**values) if values else text


def N_(message: str) -> str:
    """Mark `message` for extraction without translating it now (translate it with `_` where shown)."""
    return message


def parse_language(value: object) -> str | None:
    """A language code from URL text or a browser locale ('zh', 'zh-CN', 'zh_Hans', 'EN-us'), or None."""
    if not isinstance(value, str):
        return None
    code = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return code if code in LANGUAGES else None
