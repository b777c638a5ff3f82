"""Formatting helpers: sizes, visitor text as literal code, and lists joined as each language joins them."""

from __future__ import annotations

import pytest

from convmix.format import human_bytes, join_and, join_items, join_or, literal
from convmix.i18n import language


@pytest.mark.parametrize(("items", "english", "chinese"), [
    ([], "", ""),
    (["1"], "1", "1"),
    (["3", "5"], "3 and 5", "3 和 5"),
    (["1", "2", "4", "8", "16"], "1, 2, 4, 8 and 16", "1、2、4、8 和 16"),
])
def test_lists_are_joined_as_each_language_joins_them(items, english, chinese):
    assert join_and(items) == english
    assert join_or(items) == english.replace(" and ", " or ")
    with language("zh"):
        assert join_and(items) == chinese
        assert join_or(items) == chinese.replace(" 和 ", " 或 ")


def test_items_and_literal():
    assert join_items([1, 2, 3]) == "1, 2, 3"
    with language("zh"):
        assert join_items([1, 2, 3]) == "1、2、3"
        assert literal("") == "（空）"
    assert literal("") == "(empty)" and literal("a`b") == "``a`b``"
    assert human_bytes(1536) == "1.5 KiB"
