"""Every page survives hostile URLs: at least 200 seeded random ones each, no exception, memory in budget.

Values are negative, huge, non-numeric, empty, fractional, infinite, script-like, or valid but
expensive; each URL sets a random subset of the configuration's parameters.
"""

from __future__ import annotations

import random
import resource
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from convmix import budget
from convmix.config import LIMITS, ACmixConfig
from convmix.ui.navigation import PAGE_SPECS

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
URLS_PER_PAGE = 200
TEST_BUDGET = 96 << 20  # small, so that the expensive-but-valid URLs are refused quickly
HOSTILE = [
    "-1", "0", "-99999999999", "1e400", "-inf", "inf", "nan", "NaN", "8.5", "0x10", "1_000", "",
    " ", "abc", "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'; DROP TABLE x;--",
    "%00", "\x00", "9" * 40, "１６", "${7*7}", "{{7*7}}", "../../etc/passwd", "true", "[1,2]",
]
NAMES = list(LIMITS) + ["variant"]


def hostile_urls(seed: int, count: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    urls = []
    for _ in range(count):
        params = {}
        for name in rng.sample(NAMES, rng.randint(1, len(NAMES))):
            roll = rng.random()
            if name == "variant":
                params[name] = rng.choice(["official", "fixed", "Fixed", "", "<b>x</b>", "official;"])
            elif roll < 0.5:
                params[name] = rng.choice(HOSTILE)
            else:  # plausible and in-range, often expensive: sizes and channels near the top
                lo, hi = LIMITS[name]
                params[name] = str(rng.choice([lo, hi, rng.randint(lo, hi), rng.randint(lo, min(hi, 64))]))
        urls.append(params)
    return urls


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _visit_every_page(params: dict[str, str]) -> list:
    """Open the app with `params` in the URL, then every other page; return what raised."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(params)
    at.run()
    failures = []
    for i, spec in enumerate(PAGE_SPECS):
        if i:
            at.switch_page(spec.path).run()
        if at.exception:
            failures.append((params, spec.title, [e.message for e in at.exception]))
    return failures


@pytest.mark.parametrize("chunk", range(4))
def test_every_page_survives_hostile_urls(chunk, monkeypatch):
    """Each URL opens the app (home) and then every other page, as a visitor clicking through."""
    monkeypatch.setenv(budget.BUDGET_ENV, str(TEST_BUDGET))
    urls = hostile_urls(seed=2026, count=URLS_PER_PAGE)
    chunk_urls = urls[chunk::4]
    _visit_every_page({})  # one-off imports (Altair, pyarrow, ...) are not what is measured
    rss_before = _max_rss_bytes()
    failures = []
    for params in chunk_urls:
        failures += _visit_every_page(params)
    assert failures == []
    # Caches keep a few results; an unguarded forward of these sizes would show here.
    assert _max_rss_bytes() - rss_before < 4 * TEST_BUDGET


def test_hostile_values_are_reported_and_defaults_kept():
    config, notes = ACmixConfig.from_query_params({"head": "<script>", "stride": "1e400", "batch": "-3"})
    assert config == ACmixConfig()
    assert len(notes) == 3 and all("using" in n for n in notes)
