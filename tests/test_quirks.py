"""The authors' quirks Q1-Q11: every name, description and piece of evidence in Chinese, and a code
never cited bare."""

from __future__ import annotations

import pytest

from convmix.i18n import language
from convmix.quirks import QUIRKS, cite
from tests.library_messages import assert_translated, in_both


def test_the_eleven_quirks():
    assert list(QUIRKS) == [f"Q{i}" for i in range(1, 12)]


@pytest.mark.parametrize("code", list(QUIRKS))
def test_every_quirk_in_chinese(code):
    quirk = QUIRKS[code]
    for part in ("name", "what", "evidence"):
        english, chinese = in_both(lambda part=part: getattr(quirk, part))
        assert english == getattr(quirk, f"{part}_msgid")  # English is the source text itself
        assert_translated(english, chinese)


def test_a_citation_names_the_quirk_in_the_visitors_language():
    assert cite("Q9") == "quirk Q9 (unfold copies k and v kernel_att² times)"
    with language("zh"):
        cited = cite("Q9")
        assert "Q9" in cited and QUIRKS["Q9"].name in cited
    assert_translated(*in_both(lambda: cite("Q1")))
