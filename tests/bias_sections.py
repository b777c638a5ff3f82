"""The bias page's sections after the output value's pickers are tabs drawn lazily (pages/bias.py
VIEWS): only the open one runs. Helpers to open them under AppTest as a click in the browser does."""

from __future__ import annotations

from collections.abc import Iterator

from convmix.i18n import _, language

# code -> English label, in the page's order (a test checks them against the page's tabs)
SECTIONS = {
    "sum": "The sum, term by term",
    "shift": "Bias as a shift",
    "batchnorm": "Bias and BatchNorm",
    "learning": "Learning the bias",
    "acmix": "Bias inside ACmix",
    "article": "What the article gets wrong",
}


def open_section(at, code: str, lang: str = "en"):
    """Click a tab: the tabs' value (the label in the page's language), and what their on_change
    callback keeps (AppTest runs no callback for a value set through the session state)."""
    with language(lang):
        label = _(SECTIONS[code])
    at.session_state[f"bias_view__{lang}"] = label
    at.session_state["_bias_view_value"] = code
    return at.run()


def each_section(at, lang: str = "en") -> Iterator[str]:
    """Open every section in turn, yielding its code once it is drawn (the page ends on the last)."""
    for code in SECTIONS:
        open_section(at, code, lang)
        yield code
