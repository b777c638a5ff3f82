"""Parameter and operation counts: formulas (convmix.counting) against the running module.

Parameters are checked against the module's own tensors; multiply-adds and FLOPs per step against
tests/opcount.py, a TorchDispatchMode that costs every aten op the forward executes; the
convolutions also against torch's FlopCounterMode.
"""

from __future__ import annotations

import random

import pytest
import torch
from opcount import OpCounter, count_steps
from torch.utils.flop_counter import FlopCounterMode

from convmix import ACmix
from convmix.config import ACmixConfig
from convmix.counting import SUBMODULES, Cost, module_param_counts, param_formula, stage_costs, total_cost


def module_numels(module: ACmix) -> dict[str, int]:
    """Parameters per submodule straight from named_parameters (prefix before the first dot)."""
    out: dict[str, int] = {}
    for name, p in module.named_parameters():
        owner = name.split(".")[0]
        out[owner] = out.get(owner, 0) + p.numel()
    return out


PARAM_CASES = [
    (64, 64, 4, 3), (3, 8, 2, 1), (16, 32, 8, 5), (7, 21, 3, 3), (128, 256, 16, 7), (1, 1, 1, 1),
    (5, 12, 12, 5), (32, 48, 6, 3),
]


@pytest.mark.parametrize("cin,c,head,kc", PARAM_CASES)
def test_param_formula_matches_the_module(cin, c, head, kc):
    module = ACmix(cin, c, 3, head, kc, variant="fixed")
    formula = param_formula(cin, c, head, kc)
    assert set(formula) == set(SUBMODULES)
    assert formula == module_numels(module) == module_param_counts(module)
    assert sum(formula.values()) == sum(p.numel() for p in module.parameters())
    d = c // head
    assert sum(formula.values()) == 3 * (cin * c + c) + 3 * d + 3 * head * kc**2 + c * kc**4 + 2


def test_parameters_at_defaults():
    assert sum(param_formula(64, 64, 4, 3).values()) == 17_822
    assert sum(ACmixConfig().param_counts().values()) == 17_822
    # kernel_att and stride change no parameter
    assert ACmixConfig(kernel_att=3, stride=2).param_counts() == ACmixConfig().param_counts()


def counting_configs() -> list[ACmixConfig]:
    """24 configurations: both variants, strides 1-3, several widths, batch 1 and 2."""
    fixed = [
        ACmixConfig(in_planes=8, out_planes=8, head=2, kernel_att=3, height=6, width=6),
        ACmixConfig(in_planes=4, out_planes=16, head=4, kernel_att=5, stride=2, height=8, width=6, batch=2),
        ACmixConfig(in_planes=16, out_planes=12, head=3, kernel_att=7, stride=3, height=9, width=6),
        ACmixConfig(in_planes=3, out_planes=6, head=1, kernel_att=3, kernel_conv=5, stride=2, height=7,
                    width=9, batch=2, variant="fixed"),
        ACmixConfig(in_planes=6, out_planes=24, head=4, kernel_att=5, kernel_conv=1, stride=3,
                    dilation=2, height=10, width=11, variant="fixed"),
        ACmixConfig(in_planes=32, out_planes=32, head=8, kernel_att=3, kernel_conv=3, stride=1,
                    dilation=2, height=5, width=7, batch=2, variant="fixed"),
    ]
    rng = random.Random(2024)
    out = list(fixed)
    while len(out) < 24:
        variant = rng.choice(["official", "fixed"])
        head = rng.choice([1, 2, 4])
        stride = rng.randint(1, 3)
        config = ACmixConfig(
            in_planes=rng.choice([2, 8, 16, 24]), out_planes=head * rng.choice([1, 2, 4, 6]),
            kernel_att=rng.choice([1, 3, 5]), head=head,
            kernel_conv=3 if variant == "official" else rng.choice([1, 3, 5]),
            stride=stride, dilation=1 if variant == "official" else rng.randint(1, 2),
            height=stride * rng.randint(2, 4), width=stride * rng.randint(2, 4) + (variant == "fixed"),
            batch=rng.randint(1, 2), variant=variant,
        )
        if not config.problems():
            out.append(config)
    return out


COUNTING = counting_configs()


def test_counting_configurations_cover_the_brief():
    assert len(COUNTING) >= 20
    assert {c.variant for c in COUNTING} == {"official", "fixed"}
    assert {c.stride for c in COUNTING} >= {1, 2, 3}
    assert len({c.out_planes for c in COUNTING}) >= 4
    assert {c.batch for c in COUNTING} == {1, 2}


@pytest.mark.parametrize("config", COUNTING, ids=lambda c: c.describe())
def test_step_costs_equal_executed_ops(config):
    counted, unknown = count_steps(config.build(), config.make_input())
    assert unknown == set()
    formula = config.step_costs()
    assert set(formula) <= set(counted)
    for name, (macs, flops) in counted.items():
        assert formula.get(name, Cost()) == Cost(macs, flops), name
    executed = Cost(sum(m for m, _ in counted.values()), sum(f for _, f in counted.values()))
    assert total_cost(formula) == executed


CONV_STEPS = ("q", "k", "v", "pe", "f_all", "out_conv")


@pytest.mark.parametrize("config", COUNTING[::4], ids=lambda c: c.describe())
def test_convolutions_agree_with_flop_counter_mode(config):
    module, x = config.build(), config.make_input()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    costs = config.step_costs()
    # FlopCounterMode: 2 FLOPs per multiply-add of each convolution, bias adds and all else ignored
    assert counter.get_total_flops() == sum(2 * costs[name].macs for name in CONV_STEPS)
    per_op = counter.get_flop_counts()["Global"]
    assert set(per_op) == {torch.ops.aten.convolution}


def test_opcount_sees_a_known_computation():
    """The reference counter itself: a 3-term dot product is 3 multiply-adds, 6 FLOPs; a conv with
    bias on a 1x1 output costs its weight numel in multiply-adds plus one bias add."""
    a, b = torch.randn(3), torch.randn(3)
    counter = OpCounter()
    with counter:
        (a * b).sum(0)
    assert counter.take() == (3, 6)
    conv = torch.nn.Conv2d(2, 4, 3)
    with torch.no_grad(), counter:
        conv(torch.randn(1, 2, 3, 3))
        torch.softmax(torch.randn(2, 7), 1)
    assert counter.take() == (4 * 2 * 9, 2 * 4 * 2 * 9 + 4 + 5 * 14)
    with counter:
        torch.linalg.svd(torch.randn(3, 3))
    assert counter.unknown  # anything it cannot cost is reported, not silently free


def acmix_md_stage_macs(cin: int, c: int, ka: int, head: int, kc: int, n: int) -> dict[str, int]:
    """ACMIX.md's cost paragraph, batch 1, stride 1: Stage I 3*N*Cin*C; conv path N*C*3kc^2 +
    N*C*kc^4; attention 2*N*C*K plus conv_p (2 multiply-adds per head channel and position)."""
    d = c // head
    return {
        "Stage I": 3 * n * cin * c,
        "convolution": n * c * 3 * kc**2 + n * c * kc**4,
        "attention": 2 * n * c * ka**2 + 2 * d * n,
    }


@pytest.mark.parametrize("width,share_range", [(64, (0.45, 0.55)), (512, (0.85, 0.92))])
def test_stage_one_share_claims(width, share_range):
    config = ACmixConfig(in_planes=width, out_planes=width)
    stages = stage_costs(config.step_costs())
    expected = acmix_md_stage_macs(width, width, 7, 4, 3, 56 * 56)
    for stage, macs in expected.items():
        assert stages[stage].macs == macs, stage
    assert stages["mix"].macs == 0
    share = stages["Stage I"].macs / sum(cost.macs for cost in stages.values())
    assert share_range[0] <= share <= share_range[1], share
