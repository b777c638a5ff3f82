"""Bounds on training runs: the memory estimate against the bytes a step really allocates, refusals
that say what fits, and the limit on runs at once."""

from __future__ import annotations

import threading
import time

import pytest
import torch
import torch.nn.functional as F

from convmix import ConfigError
from convmix.budget import BUDGET_ENV
from convmix.memory import cpu_allocator_peak
from convmix.train import MomentumSGD, TrainConfig, build_network
from convmix.train_limits import (
    MAX_CONCURRENT_RUNS,
    RUNS_ENV,
    RunSlots,
    StepTiming,
    configured_slots,
    estimate_run_bytes,
    estimate_run_seconds,
    eval_bytes,
    measure_timing,
    plan_run,
    step_bytes,
    time_refusal,
)
from tests.library_messages import assert_translated, in_both

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def measured_step_and_eval(config: TrainConfig) -> tuple[int, int]:
    """Peak bytes the CPU allocator holds during one training step (after the first, so momentum
    exists) and during one no-grad forward of an evaluation chunk: tensors and the convolutions'
    workspaces alike, as the estimates count them."""
    net = build_network(config, 5.0, 6.0)
    optimizer = MomentumSGD([p for p in net.parameters() if p.requires_grad], 0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 17, (config.batch, 1, 8, 8), generator=gen).float()
    y = torch.randint(0, 10, (config.batch,), generator=gen)

    def step():
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(0.01)

    def evaluate():
        with torch.no_grad():
            return net(torch.zeros(config.eval_chunk, 1, 8, 8))

    step()
    train = cpu_allocator_peak(step)
    net.eval()
    return train, cpu_allocator_peak(evaluate)


# Fixed costs the estimates bound generously (oneDNN's scratchpad, the stem's columns) dominate a
# one-channel network; a quarter MiB is nothing beside any budget.
SLACK = 256 << 10


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig(width=32, head=4, kernel_att=15, batch=48),
    TrainConfig(stride=1, batch=24, stem_bn=True),
    TrainConfig(width=24, head=3, stride=3, variant="fixed", batch=7),
    TrainConfig(kernel_att=3, head=1, batch=5, ablation="attention_only"),
    TrainConfig(ablation="plain_conv", batch=64),
    TrainConfig(width=1, head=1, kernel_att=1, batch=3),
])
def test_memory_estimates_cover_what_a_step_and_an_evaluation_allocate(config):
    train, forward = measured_step_and_eval(config)
    assert train <= step_bytes(config) <= 2 * train + SLACK
    assert forward <= eval_bytes(config) <= 2 * forward + SLACK


def test_a_run_over_the_memory_budget_is_refused_with_a_configuration_that_fits():
    big = TrainConfig(width=64, head=4, kernel_att=15, batch=256, stride=1)
    budget = 300 << 20
    plan = plan_run(big, budget=budget)
    assert not plan.ok and plan.seconds is None  # refused before anything was built or timed
    assert plan.memory_bytes == estimate_run_bytes(big) > budget
    assert "over this server's memory budget of 300.0 MiB" in plan.refusal
    assert "A nearby configuration that fits: batch 16 (about" in plan.refusal
    assert estimate_run_bytes(big.with_(batch=16)) <= budget < estimate_run_bytes(big.with_(batch=32))
    tight = plan_run(big, budget=512 << 10)
    assert "Reduce the batch, the window (kernel_att) or the width" in tight.refusal


def test_the_budget_comes_from_the_project_setting(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "1MiB")
    plan = plan_run(TrainConfig(), timing=StepTiming(32, 0.01, 0.003))
    assert plan.budget_bytes == 1 << 20 and not plan.ok and "1.0 MiB" in plan.refusal


def test_a_run_over_the_time_cap_is_refused_with_the_epochs_that_fit():
    config = TrainConfig(epochs=20)
    slow = StepTiming(batch=32, train_step_s=0.05, forward_s=0.02)
    plan = plan_run(config, time_limit_s=30.0, timing=slow)
    assert not plan.ok and plan.seconds == estimate_run_seconds(config, slow) > 30
    fit = int(plan.refusal.split(" epochs fit")[0].rsplit(" ", 1)[1])
    assert estimate_run_seconds(config, slow, epochs=fit) <= 30 < estimate_run_seconds(config, slow, epochs=fit + 1)
    assert "over the cap of 30 s per run" in plan.refusal
    hopeless = plan_run(config, time_limit_s=0.5, timing=slow)
    assert "Not even one epoch fits" in hopeless.refusal


def test_the_time_estimate_counts_steps_and_evaluations():
    config = TrainConfig(epochs=3, batch=32)
    timing = StepTiming(batch=16, train_step_s=0.016, forward_s=0.008)
    # 1,438 training digits at 1 ms each per epoch; 359 held-out digits at 0.5 ms, at step 0 and
    # at the end of each of the 3 epochs.
    expected = 3 * 1438 * 0.001 + 4 * 359 * 0.0005
    assert estimate_run_seconds(config, timing) == pytest.approx(expected)


def test_the_default_run_fits_and_its_timing_is_measured():
    plan = plan_run(TrainConfig(), time_limit_s=3600)
    assert plan.ok and plan.refusal is None and plan.seconds > 0
    timing = measure_timing(TrainConfig(batch=8))
    assert timing.batch == 8 and timing.train_step_s > 0 and timing.forward_s > 0


def test_an_invalid_configuration_is_not_planned():
    with pytest.raises(ConfigError, match="head"):
        plan_run(TrainConfig(head=3))


def test_run_slots_admit_at_most_their_capacity():
    slots = RunSlots(2)
    assert slots.try_acquire() and slots.try_acquire()
    assert not slots.try_acquire() and slots.active == 2
    slots.release()
    with slots.slot() as ok:
        assert ok and slots.active == 2
        with slots.slot() as refused:
            assert not refused
    assert slots.active == 1
    slots.release()
    with pytest.raises(RuntimeError):
        slots.release()
    assert "at most 2 at a time" in slots.busy_message()
    with pytest.raises(ValueError):
        RunSlots(0)


def test_run_slots_hold_under_threads():
    slots = RunSlots(3)
    start = threading.Barrier(12)
    lock = threading.Lock()
    state = {"now": 0, "most": 0, "admitted": 0}

    def visitor():
        start.wait()
        for _ in range(40):
            with slots.slot() as ok:
                if ok:
                    with lock:
                        state["now"] += 1
                        state["admitted"] += 1
                        state["most"] = max(state["most"], state["now"])
                    time.sleep(0.001)  # hold the slot a while, as a run would
                    with lock:
                        state["now"] -= 1

    threads = [threading.Thread(target=visitor) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["most"] == 3 and state["admitted"] > 0 and slots.active == 0


def test_the_number_of_runs_at_once_is_documented_and_configurable(monkeypatch):
    monkeypatch.delenv(RUNS_ENV, raising=False)
    assert configured_slots() == MAX_CONCURRENT_RUNS == 2
    monkeypatch.setenv(RUNS_ENV, "5")
    assert configured_slots() == 5
    for bad in ("0", "-1", "two", ""):
        monkeypatch.setenv(RUNS_ENV, bad)
        assert configured_slots() == MAX_CONCURRENT_RUNS


# -- every message in Chinese ---------------------------------------------------------------------


def test_every_refusal_and_the_busy_message_in_chinese():
    big = TrainConfig(width=64, head=4, kernel_att=15, batch=256, stride=1)
    slow = StepTiming(batch=32, train_step_s=0.05, forward_s=0.02)
    cases = {
        "memory, nearby": lambda: plan_run(big, budget=300 << 20).refusal,
        "memory, nothing fits": lambda: plan_run(big, budget=512 << 10).refusal,
        "time, epochs fit": lambda: plan_run(TrainConfig(epochs=20), time_limit_s=30.0, timing=slow).refusal,
        "time, one epoch fits": lambda: time_refusal(TrainConfig(epochs=2), 100.0, 60.0,
                                                     StepTiming(32, 0.8, 0.01)),
        "time, not even one": lambda: plan_run(TrainConfig(epochs=20), time_limit_s=0.5, timing=slow).refusal,
        "time, one epoch asked": lambda: plan_run(TrainConfig(epochs=1), time_limit_s=0.5, timing=slow).refusal,
        "busy, one": lambda: RunSlots(1).busy_message(),
        "busy, two": lambda: RunSlots(2).busy_message(),
    }
    seen = set()
    for case, make in cases.items():
        english, chinese = in_both(make)
        assert_translated(english, chinese)
        assert english not in seen, case
        seen.add(english)
    assert "1 epoch fits" in cases["time, one epoch fits"]() and "Training 1 epoch would" in cases["time, one epoch asked"]()
    assert RunSlots(1).busy_message().startswith("1 training run is") and "2 training runs are" in RunSlots(2).busy_message()
