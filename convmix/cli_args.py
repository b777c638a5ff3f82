"""Argument types for the command lines (`python -m convmix sweep` and `python -m convmix train`):
a value outside its range is refused by argparse with a sentence that says which range works."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number_in(lo: int, hi: int) -> Callable[[str], int]:
    """A decimal whole number from lo to hi."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo} to {hi:,}")
        return value

    return parse


def number_in(lo: float, hi: float) -> Callable[[str], float]:
    """A number from lo to hi (nan and infinities are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= value <= hi:  # also false for nan
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g} to {hi:g}")
        return value

    return parse
