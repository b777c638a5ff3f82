"""convmix.speed: the time estimate that refuses minutes-long work (item 7 of issue 11).

No test asserts a duration; these check the estimate's structure (work scales, probes are kept, a
second opinion keeps the faster rate) and that the issue's reproductions are far over the limit
while the defaults are far under it. benchmarks/time_estimate.py prints estimate/measured ratios.
"""

from __future__ import annotations

import pytest

from convmix import bench, compare, speed
from convmix.config import ACmixConfig


@pytest.fixture(autouse=True)
def fresh_probes():
    speed.clear_probes()
    yield
    speed.clear_probes()


def test_estimates_scale_with_the_work():
    assert speed.dense_seconds(64, 64, 2000) == pytest.approx(2 * speed.dense_seconds(64, 64, 1000))
    one = speed.grouped_seconds(16, 9, 4, 3, 1, 1, 100)
    assert speed.grouped_seconds(32, 9, 4, 3, 1, 1, 100) == pytest.approx(2 * one)
    assert speed.copy_seconds(2e9) == pytest.approx(2 * speed.copy_seconds(1e9))
    small = speed.forward_seconds(ACmixConfig(batch=1))
    assert speed.forward_seconds(ACmixConfig(batch=8)).total > 4 * small.total


def test_each_shape_is_probed_once_and_a_second_opinion_keeps_the_faster(monkeypatch):
    calls = []
    timings = iter([4.0, 1.0, 9.0])
    monkeypatch.setattr(speed, "_best_seconds", lambda fn, repeats=3: calls.append(fn) or next(timings))

    def probe(n):
        return (lambda: None), 2.0

    assert speed._rate(("test",), probe, 1) == 2.0
    assert speed._rate(("test",), probe, 1) == 2.0 and len(calls) == 1  # kept
    speed.remeasure()
    assert speed._rate(("test",), probe, 1) == 0.5  # probed again, faster: taken
    speed.remeasure()
    assert speed._rate(("test",), probe, 1) == 0.5  # slower this time: the faster one stays
    assert len(calls) == 3


@pytest.mark.parametrize(
    "config, limit, what",
    [
        # The explorer's measurement that held the lock for 233 s.
        (ACmixConfig(in_planes=8, out_planes=64, kernel_att=1, head=32, kernel_conv=15, height=48, width=48,
                     batch=64, variant="fixed"), 30, "measure"),
        # One forward of ACmix(64, 2048, head=1, kernel_conv=15) at 16×16 took 22 s: reference vs fast
        # runs at least a dozen.
        (ACmixConfig(in_planes=64, out_planes=2048, head=1, kernel_conv=15, height=16, width=16,
                     variant="fixed"), 30, "compare"),
    ],
)
def test_the_slow_reproductions_are_estimated_over_the_limit(config, limit, what):
    if what == "measure":
        seconds = bench.measurement_seconds(config, "reference", bench.BUDGETS["standard"])
    else:
        seconds = compare.comparison_seconds(config, bench.BUDGETS["standard"])
    assert seconds > limit


def test_the_default_configuration_is_well_within_the_limit():
    config = ACmixConfig()
    assert bench.measurement_seconds(config, "reference", bench.BUDGETS["standard"]) < 30
    assert compare.comparison_seconds(config, bench.BUDGETS["standard"]) < 30


@pytest.mark.parametrize(
    "config",
    [
        ACmixConfig(in_planes=2048, out_planes=2048, height=224, width=224, batch=64),
        ACmixConfig(kernel_att=15, dilation=2, height=256, width=256, variant="fixed", batch=4),
        ACmixConfig(kernel_att=31, dilation=8, height=512, width=512, variant="fixed"),
    ],
    ids=["wide", "large window", "largest window"],
)
def test_probes_are_small_pieces_of_the_work(config):
    """A probe must not cost what the estimate is meant to prevent: its tensors stay a small part
    of the configuration's own forward (a dilated 31×31 window needs a 121×121 map at least)."""
    from convmix.budget import forward_bytes
    from convmix.memory import LiveBytes

    counter = LiveBytes()
    with counter:
        speed.forward_seconds(config)
    assert counter.peak <= min(300 << 20, forward_bytes(config) // 10)
