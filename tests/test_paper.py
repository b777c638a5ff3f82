"""The paper check's counts against what the network's forward executes.

Formulas (convmix.paper) are compared with tests/netcount.py, which costs every aten op the
authors' network runs and attributes it through hooks on the forward; the convolution and linear
multiply-adds also with torch's FlopCounterMode. At 224×224 the network runs on the meta device
(shapes only, no arithmetic), so the counts are those of the real input size at no cost; one real
CPU forward at 64×64 shows that meta and real execution dispatch the same operations.
"""

from __future__ import annotations

import pytest
import torch
from netcount import count_network
from torch.utils.flop_counter import FlopCounterMode

from convmix import paper
from convmix.models import acmix_resnet, block_layout


def formula_by_module(entries) -> dict[tuple[str, str], tuple[int, int]]:
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for e in entries:
        macs, flops = out.get((e.module, e.kind), (0, 0))
        out[(e.module, e.kind)] = (macs + e.macs, flops + e.flops)
    return {k: v for k, v in out.items() if v != (0, 0)}


@pytest.fixture(scope="module")
def executed_224():
    """depth -> executed counts per (module, kind) of one 224×224 forward (meta device)."""
    out = {}
    for depth in (26, 38, 50):
        model = acmix_resnet(depth, device="meta")
        out[depth] = count_network(model, torch.empty(1, 3, 224, 224, device="meta"))
    return out


@pytest.mark.parametrize("depth", [26, 38, 50])
def test_every_module_count_matches_execution_at_224(executed_224, depth):
    formula = formula_by_module(paper.network_entries(depth))
    assert formula == executed_224[depth]


def test_real_forward_counts_equal_meta_and_formula():
    x = torch.randn(2, 3, 64, 64)
    real = count_network(acmix_resnet(26, seed=3), x)
    meta = count_network(acmix_resnet(26, device="meta"), x.to("meta"))
    assert real == meta == formula_by_module(paper.network_entries(26, 64, batch=2))


@pytest.mark.parametrize("depth,size", [(26, 96), (38, 160), (50, 128)])
def test_other_sizes_match_execution(depth, size):
    executed = count_network(acmix_resnet(depth, device="meta"), torch.empty(1, 3, size, size, device="meta"))
    assert formula_by_module(paper.network_entries(depth, size)) == executed


@pytest.mark.parametrize("depth", [26, 38, 50])
def test_conv_and_linear_macs_match_flop_counter_mode(depth):
    """torch's own counter sees convolutions and matrix products only (2 FLOPs per multiply-add)."""
    model = acmix_resnet(depth, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() == 2 * paper.conv_linear_macs(depth)


def test_totals_per_stage_and_kind_add_up():
    entries = paper.network_entries(50)
    whole = paper.totals(entries)
    for by, names in (("stage", paper.STAGES), ("kind", paper.KINDS)):
        parts = paper.totals(entries, by)
        assert set(parts) == set(names)
        assert sum(p.params for p in parts.values()) == whole.params
        assert sum(p.macs for p in parts.values()) == whole.macs
        assert sum(p.flops for p in parts.values()) == whole.flops


@pytest.mark.parametrize("depth", [26, 38, 50])
def test_parameters_per_stage_and_kind_match_the_model(depth):
    model = acmix_resnet(depth, device="meta")
    by_stage: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for name, p in model.named_parameters():
        first = name.split(".")[0]
        stage = first if first.startswith("layer") else ("head" if first == "fc" else "stem")
        by_stage[stage] = by_stage.get(stage, 0) + p.numel()
        parts = name.split(".")
        if len(parts) > 3 and parts[2] == "conv2":  # inside an ACmix: layerS.B.conv2.<sub>...
            kind = paper.ACMIX_KIND_OF_PARAM[parts[3]]
        elif "bn" in parts[-2] or parts[-2] == "1":
            kind = "BatchNorm"
        elif parts[-2] == "0":
            kind = "downsample conv"
        elif first == "fc":
            kind = "fc"
        elif first == "conv1":
            kind = "stem conv"
        else:
            kind = "bottleneck 1×1 conv"
        by_kind[kind] = by_kind.get(kind, 0) + p.numel()
    entries = paper.network_entries(depth)
    assert {k: v.params for k, v in paper.totals(entries, "stage").items()} == by_stage
    assert {k: v.params for k, v in paper.totals(entries, "kind").items() if v.params} == by_kind


def test_audit_figures_reproduced():
    for depth in (26, 38, 50):
        assert round(paper.conv_linear_macs(depth) / 1e9, 3) == paper.AUDIT_CONV_LINEAR_GMACS[depth]
        with_att = paper.conv_linear_macs(depth) + paper.attention_product_macs(depth)
        assert round(with_att / 1e9, 3) == paper.AUDIT_WITH_ATTENTION_GMACS[depth]
    assert paper.conv_linear_macs(26) == 2_155_049_984
    assert paper.attention_product_macs(50) == 135_224_320


def test_attention_products_equal_the_executed_dot_products(executed_224):
    """Attention multiply-adds executed minus conv_p's convolution (2 x head_dim per position)."""
    for depth in (26, 38, 50):
        attention = sum(m for (_, kind), (m, _) in executed_224[depth].items() if kind == "ACmix attention")
        conv_p = sum(2 * (s.width // 4) * s.in_size[0] * s.in_size[1] for s in block_layout(depth))
        assert attention - conv_p == paper.attention_product_macs(depth)


def test_parameter_gap_and_dep_conv_weights():
    assert [paper.dep_conv_weights(d) for d in (26, 38, 50)] == [150_336, 228_096, 305_856]
    # 81 per output channel of dep_conv: the weight tensors of the built model
    for depth in (26, 38, 50):
        model = acmix_resnet(depth, device="meta")
        dep = sum(m.dep_conv.weight.numel() for _, m in model.acmix_modules())
        assert dep == paper.dep_conv_weights(depth)
    assert paper.parameter_gap_interval(26) == (62_184, 162_184)
    assert paper.rounds_to(10_487_816 + 150_336, 10.6, 1e6)
    assert not paper.rounds_to(10_487_816, 10.6, 1e6)


def test_findings_are_labelled_and_match_the_counts():
    found = {f.statement: f for f in paper.findings()}
    assert all(f.status in ("established", "hypothesis", "does not hold") for f in found.values())
    statuses = [f.status for f in paper.findings()]
    assert statuses == ["established", "established", "established", "hypothesis", "established",
                        "established", "hypothesis", "does not hold"]
    pct = paper.findings()[1].figures["percent_below"]
    assert [round(pct[d], 2) for d in (26, 38, 50)] == [1.06, 1.30, 1.43]


def test_stage1_shares_at_real_shapes():
    shares = paper.stage1_shares(50)
    assert len(shares) == 16
    first = shares[0]
    assert first.in_shape == (64, 56, 56) and first.out_size == (56, 56) and first.stride == 1
    # 3·N·64² of 3·N·64² + 2·N·64·49 + 2·N·16 + N·64·27 + N·64·81 per position
    assert first.share_macs == pytest.approx(12288 / (12288 + 6272 + 32 + 1728 + 5184))
    strided = [s for s in shares if s.stride == 2]
    assert [(s.in_shape, s.out_size) for s in strided] == [
        ((128, 56, 56), (28, 28)), ((256, 28, 28), (14, 14)), ((512, 14, 14), (7, 7))]
    last = shares[-1]
    assert last.in_shape == (512, 7, 7)
    assert 0.85 < last.share_macs < 0.9
    for s in shares:
        assert s.stage1_macs + s.attention_macs + s.conv_macs == s.total_macs


def test_summary_rows():
    rows = paper.summary_rows()
    assert [r["network"] for r in rows] == ["ACmix ResNet-26", "ACmix ResNet-38", "ACmix ResNet-50"]
    assert [r["parameters (code)"] for r in rows] == [10_487_816, 14_410_896, 18_333_976]
    assert [r["parameters (table, M)"] for r in rows] == [10.6, 14.6, 18.6]
    assert [r["FLOPs (table, G)"] for r in rows] == [2.3, 2.9, 3.6]
    assert rows[2]["all multiply-adds"] == rows[2]["+ attention dot products"] == 3_502_300_672
