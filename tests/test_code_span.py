"""convmix.ui.code.code_span: one line of code as a markdown code span that reads back as exactly
that line, whatever backticks it holds (decoded here by CommonMark's code span rule, §6.1)."""

import re

import pytest

from convmix.ui.code import code_span


def read_code_span(markdown: str) -> str:
    """CommonMark: a span opens with a run of n backticks and closes at the next run of exactly n;
    a single space is stripped from each end when both ends have one (and not only spaces)."""
    opening = re.match(r"`+", markdown)
    assert opening, markdown
    n = len(opening.group())
    closing = next(m for m in re.finditer(r"`+", markdown[n:]) if len(m.group()) == n)
    assert n + closing.end() == len(markdown), f"{markdown!r} closes before its end"
    inner = markdown[n:n + closing.start()]
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip(" "):
        inner = inner[1:-1]
    return inner


@pytest.mark.parametrize("text", [
    "nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=True)",
    "x = `y`", "``double`` and `single`", "`starts", "ends`", "`both`", " spaced ", "a * b_c <d> & $e$",
])
def test_code_span_reads_back_as_the_text(text):
    assert read_code_span(code_span(text)) == text
