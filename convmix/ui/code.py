"""One line of Python shown as code, without st.code.

st.code loads Streamlit's syntax highlighter, whose first use costs a visitor's browser about 0.3 s
of a first render on a 2-core machine (benchmarks/load.py); a page whose only code is one line
shows it as a markdown code span instead, in the same monospace font, wrapped on a phone.
"""

from __future__ import annotations

import re

import streamlit as st


def code_span(text: str) -> str:
    """`text` as a markdown code span: delimited by one backtick more than its longest run of them,
    and padded with a space at both ends where CommonMark would otherwise misread it (text that
    starts or ends with a backtick, or starts and ends with a space: one would be stripped)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    spaced = text.startswith(" ") and text.endswith(" ") and text.strip(" ")
    pad = " " if text.startswith("`") or text.endswith("`") or spaced else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_line(text: str, place=st) -> None:
    place.markdown(code_span(text))
