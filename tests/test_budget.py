"""The memory budget: estimates from shapes match what is really allocated, and refusals help."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from convmix import budget
from convmix.config import ACmixConfig
from convmix.memory import MKLDNN_SCRATCH_BYTES, measure_peak_bytes
from convmix.trace import estimate_trace_bytes, trace_forward

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def _random_configs(n: int, seed: int):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        cfg = ACmixConfig(
            in_planes=rng.choice([3, 8]), out_planes=rng.choice([4, 8, 16]), head=rng.choice([1, 2, 4]),
            kernel_att=rng.choice([1, 3, 5, 7]), kernel_conv=rng.choice([1, 3, 5]),
            stride=rng.choice([1, 2, 3]), dilation=rng.choice([1, 2]), height=rng.randint(5, 20),
            width=rng.randint(5, 20), batch=rng.choice([1, 2]), variant=rng.choice(["fixed", "official"]),
        )
        if not cfg.problems():
            out.append(cfg)
    return out


@pytest.mark.parametrize("cfg", _random_configs(30, seed=7), ids=lambda c: c.describe())
def test_trace_estimate_equals_the_traced_tensors(cfg):
    trace = trace_forward(cfg.build(), cfg.make_input())
    assert estimate_trace_bytes(cfg) == trace.tensor_bytes()


@pytest.mark.parametrize("cfg", _random_configs(10, seed=8), ids=lambda c: c.describe())
def test_forward_estimate_bounds_what_a_forward_needs(cfg):
    module, x = cfg.build(), cfg.make_input()
    needed = measure_peak_bytes(module, x)
    held = sum(p.numel() * p.element_size() for p in module.parameters()) + x.numel() * x.element_size()
    estimate = budget.forward_bytes(cfg)
    assert needed + held <= estimate <= 3 * (needed + held) + MKLDNN_SCRATCH_BYTES


@pytest.mark.parametrize(
    "text, value",
    [("1GiB", 1 << 30), ("512 MiB", 512 << 20), ("2e9", 2_000_000_000), ("1.5g", 3 << 29), (4096, 4096)],
)
def test_parse_bytes(text, value):
    assert budget.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1GiB", "0", "1 parsec", "1e400e"])
def test_parse_bytes_refuses_nonsense(text):
    with pytest.raises(ValueError):
        budget.parse_bytes(text)


def test_budget_comes_from_the_environment_then_the_secret(monkeypatch):
    monkeypatch.delenv(budget.BUDGET_ENV, raising=False)
    assert budget.memory_budget() == budget.DEFAULT_BUDGET
    assert budget.memory_budget("256MiB") == 256 << 20
    monkeypatch.setenv(budget.BUDGET_ENV, "2GiB")
    assert budget.memory_budget("256MiB") == 2 << 30


def test_a_configuration_within_budget_passes():
    assert budget.check(ACmixConfig(), budget.DEFAULT_BUDGET) is None


@pytest.mark.parametrize(
    "cfg",
    [
        ACmixConfig(batch=64, height=512, width=512),
        ACmixConfig(in_planes=2048, out_planes=2048, kernel_att=31, height=1024, width=1024, batch=64),
        ACmixConfig(stride=4, height=1024, width=1024, batch=8, kernel_att=15),
    ],
)
def test_refusal_names_estimate_budget_and_a_nearby_fit(cfg):
    limit = 1 << 30
    refusal = budget.check(cfg, limit, budget.trace_bytes, "Tracing this forward pass")
    assert refusal is not None
    assert refusal.estimate == budget.trace_bytes(cfg) > limit
    assert refusal.nearby is not None and not refusal.nearby.problems()
    assert budget.trace_bytes(refusal.nearby) <= limit
    text = refusal.message()
    assert "1.0 GiB" in text and "nearby configuration" in text and refusal.change in text


def test_pages_refuse_to_build_a_module_over_budget(app, monkeypatch):
    """Weights alone over the budget: home and the bias page say so and build nothing."""
    monkeypatch.setenv(budget.BUDGET_ENV, "128MiB")
    big = dict(in_planes=2048, out_planes=2048, kernel_conv=15, variant="fixed", height=16, width=16)
    assert budget.module_bytes(ACmixConfig(**big)) > 128 << 20
    for page in (None, "pages/bias.py"):
        at = app(page=page, query_params=big)
        assert not at.exception
        warnings = " ".join(w.value for w in at.warning)
        assert "Building this module would need about" in warnings and "128.0 MiB" in warnings


def test_secret_budget_is_adopted_when_no_environment_variable(monkeypatch):
    # Empty counts as unset; monkeypatch puts back whatever was there before, also after the app
    # has set the variable from the secret.
    monkeypatch.setenv(budget.BUDGET_ENV, "")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["memory_budget"] = "64MiB"
    at.run()
    assert not at.exception
    assert os.environ[budget.BUDGET_ENV] == str(64 << 20)
