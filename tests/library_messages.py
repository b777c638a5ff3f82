"""What the library's translation tests share: a message made in English and again in Chinese, and
the check that the Chinese one is a translation (no English prose left, every number of the English
kept, not the English itself)."""

from __future__ import annotations

import re
from collections.abc import Callable

from convmix.i18n import language
from tests.i18n_text import english_runs

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers(text: str) -> set[str]:
    """The numbers written in `text` (1,024 and 0.05 as written)."""
    return set(_NUMBER.findall(text))


def message_of(value: object) -> str:
    """A returned sentence, or a raised error's message (its `message` attribute where it has one:
    the part a page shows as text)."""
    if isinstance(value, BaseException):
        return getattr(value, "message", None) or str(value)
    return str(value)


def made(make: Callable[[], object], lang: str) -> str:
    """The message `make()` returns or raises, made in `lang`."""
    with language(lang):
        try:
            return message_of(make())
        except Exception as err:  # noqa: BLE001 - the error is the message under test
            return message_of(err)


def in_both(make: Callable[[], object]) -> tuple[str, str]:
    return made(make, "en"), made(make, "zh")


def assert_translated(english: str, chinese: str) -> None:
    assert chinese != english, english
    assert english_runs(chinese) == [], (english_runs(chinese), chinese)
    lost = numbers(english) - numbers(chinese)
    assert not lost, (lost, english, chinese)
