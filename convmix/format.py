"""Formatting helpers for numbers, lists and visitor text shown on pages (in the visitor's language)."""

import re
from collections.abc import Iterable

from .i18n import _, pgettext


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{n} B"


_UNPRINTABLE = {c: "?" for c in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029]}


def literal(text: object, limit: int = 80) -> str:
    """Text from a visitor (a file name, a CSV cell) as a markdown code span: shown character for
    character, never read as markdown (no links, images, colours, icons or maths).

    Control characters become '?', and text longer than `limit` is cut with '…'.
    """
    s = str(text).translate(_UNPRINTABLE)
    if len(s) > limit:
        s = s[:limit] + "…"
    if not s:
        return _("(empty)")
    longest = max((len(run) for run in re.findall("`+", s)), default=0)
    fence = "`" * (longest + 1)
    # A span that starts or ends with a backtick (or a space) needs a space inside the fence.
    pad = " " if s[0] in "` " or s[-1] in "` " else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def join_items(items: Iterable[object]) -> str:
    """Items in a row, separated as the language separates list items ("a, b, c"; Chinese "a、b、c")."""
    return pgettext("list separator", ", ").join(str(item) for item in items)


def join_and(items: Iterable[object]) -> str:
    """"a, b and c" in the visitor's language (each item already a whole unit: a number, a phrase)."""
    words = [str(item) for item in items]
    if len(words) <= 1:
        return "".join(words)
    return _("{items} and {last}", items=join_items(words[:-1]), last=words[-1])


def join_or(items: Iterable[object]) -> str:
    """"a, b or c" in the visitor's language."""
    words = [str(item) for item in items]
    if len(words) <= 1:
        return "".join(words)
    return _("{items} or {last}", items=join_items(words[:-1]), last=words[-1])
