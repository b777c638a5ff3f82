"""The trace: the module's own forward with a recorder, checked step by step against ACMIX.md.

Step names are part of the contract (pages and URLs refer to them). In order:

    q, k, v                      Stage I projections
    grid, pe                     coordinate grid and its positional encoding
    q_att, k_att, v_att          heads (q scaled)
    q_strided                    only when stride > 1: the query positions
    q_pe                         positional encoding at the query positions
    k_pad, unfold_k              reflection-padded keys and their kernel_att^2 window copies
    pe_pad, unfold_rpe           the same for the positional encoding
    logits, att                  window logits and their softmax
    v_pad, unfold_v              padded values and their window copies
    out_att                      attention path output
    qkv_groups, f_all, f_conv    fc input (3*head groups), fc output, regrouped for dep_conv
    out_conv                     conv path output
    out                          rate1 * out_att + rate2 * out_conv
"""

from __future__ import annotations

import itertools

import pytest
import torch
from opcount import count_steps

from convmix import ACmix
from convmix.config import ACmixConfig
from convmix.trace import STEP_INFO, trace_forward

STEPS_STRIDE_1 = [
    "q", "k", "v", "grid", "pe", "q_att", "k_att", "v_att", "q_pe", "k_pad", "unfold_k", "pe_pad",
    "unfold_rpe", "logits", "att", "v_pad", "unfold_v", "out_att", "qkv_groups", "f_all", "f_conv",
    "out_conv", "out",
]
STEPS_STRIDED = STEPS_STRIDE_1[:8] + ["q_strided"] + STEPS_STRIDE_1[8:]

CONFIGS = [
    ACmixConfig(in_planes=3, out_planes=8, head=2, kernel_att=3, height=5, width=6, batch=2),
    ACmixConfig(in_planes=4, out_planes=6, head=3, kernel_att=5, stride=2, height=6, width=8),
    ACmixConfig(in_planes=5, out_planes=4, head=1, kernel_att=3, kernel_conv=5, stride=3,
                dilation=2, height=7, width=5, batch=2, variant="fixed"),
    ACmixConfig(in_planes=2, out_planes=8, head=4, kernel_att=1, kernel_conv=1, stride=2,
                height=5, width=5, variant="fixed"),
]


def run(config: ACmixConfig, **kwargs):
    module = config.build()
    x = config.make_input(dtype=torch.float64)
    module = module.double()
    return module, x, trace_forward(module, x, **kwargs)


def reflect(i: int, n: int) -> int:
    i = -i if i < 0 else i
    return 2 * (n - 1) - i if i >= n else i


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
def test_step_names_and_order(config):
    _, _, trace = run(config)
    assert trace.names == (STEPS_STRIDED if config.stride > 1 else STEPS_STRIDE_1)
    assert set(trace.names) == set(STEP_INFO) - ({"q_strided"} if config.stride == 1 else set())


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
def test_output_is_the_modules(config):
    module, x, trace = run(config)
    with torch.no_grad():
        direct = module(x)
    assert torch.equal(trace.output, direct)
    assert torch.equal(trace["out"].tensor, direct)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
def test_shapes_follow_acmix_md(config):
    _, _, trace = run(config)
    b, c, h, d = config.batch, config.out_planes, config.head, config.head_dim
    hh, ww = config.height, config.width
    s = config.stride
    ho, wo = (hh // s, ww // s) if config.variant == "official" else (-(-hh // s), -(-ww // s))
    kk, kc2 = config.kernel_att**2, config.kernel_conv**2
    dil = config.dilation if config.variant == "fixed" else 1  # official refuses dilation > 1
    p = dil * (config.kernel_att - 1) // 2
    expected = {
        "q": (b, c, hh, ww), "k": (b, c, hh, ww), "v": (b, c, hh, ww),
        "grid": (1, 2, hh, ww), "pe": (1, d, hh, ww),
        "q_att": (b * h, d, hh, ww), "k_att": (b * h, d, hh, ww), "v_att": (b * h, d, hh, ww),
        "q_strided": (b * h, d, ho, wo), "q_pe": (1, d, ho, wo),
        "k_pad": (b * h, d, hh + 2 * p, ww + 2 * p), "unfold_k": (b * h, d, kk, ho, wo),
        "pe_pad": (1, d, hh + 2 * p, ww + 2 * p), "unfold_rpe": (1, d, kk, ho, wo),
        "logits": (b * h, kk, ho, wo), "att": (b * h, kk, ho, wo),
        "v_pad": (b * h, d, hh + 2 * p, ww + 2 * p), "unfold_v": (b * h, d, kk, ho, wo),
        "out_att": (b, c, ho, wo),
        "qkv_groups": (b, 3 * h, d, hh * ww), "f_all": (b, kc2, d, hh * ww), "f_conv": (b, d * kc2, hh, ww),
        "out_conv": (b, c, ho, wo), "out": (b, c, ho, wo),
    }
    for step in trace.steps:
        assert step.shape == expected[step.name], step.name
    assert config.output_shape == (b, c, ho, wo)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
def test_recorded_tensors_are_consistent(config):
    """Each step recomputed from the recorded tensors it depends on, by a different formulation."""
    module, x, t = run(config)
    T = {name: t[name].tensor for name in t.names}
    b, h, d = config.batch, config.head, config.head_dim
    hh, ww, s, ka = config.height, config.width, config.stride, config.kernel_att
    dil = config.dilation if config.variant == "fixed" else 1
    p = (config.dilation * (ka - 1) + 1) // 2
    ho, wo = T["out"].shape[-2:]

    # Stage I and the positional encoding as matrix products
    for name, conv in (("q", module.conv1), ("k", module.conv2), ("v", module.conv3)):
        want = torch.einsum("oi,biyx->boyx", conv.weight[:, :, 0, 0], x) + conv.bias[None, :, None, None]
        torch.testing.assert_close(T[name], want)
    torch.testing.assert_close(
        T["pe"], torch.einsum("oi,biyx->boyx", module.conv_p.weight[:, :, 0, 0], T["grid"])
        + module.conv_p.bias[None, :, None, None])

    # heads: channel c of batch item bi belongs to head c // d
    for bi, head in itertools.product(range(b), range(h)):
        torch.testing.assert_close(T["k_att"][bi * h + head], T["k"][bi, head * d:(head + 1) * d])
        torch.testing.assert_close(T["q_att"][bi * h + head], T["q"][bi, head * d:(head + 1) * d] * d**-0.5)
    queries = T["q_strided"] if s > 1 else T["q_att"]
    torch.testing.assert_close(queries, T["q_att"][:, :, ::s, ::s])
    torch.testing.assert_close(T["q_pe"], T["pe"][:, :, ::s, ::s])

    # reflection padding and window copies, by index arithmetic
    for name, src in (("k_pad", "k_att"), ("v_pad", "v_att"), ("pe_pad", "pe")):
        rows = [reflect(i - p, hh) for i in range(hh + 2 * p)]
        cols = [reflect(j - p, ww) for j in range(ww + 2 * p)]
        torch.testing.assert_close(T[name], T[src][:, :, rows][:, :, :, cols], rtol=0, atol=0)
    for name, padded in (("unfold_k", "k_pad"), ("unfold_v", "v_pad"), ("unfold_rpe", "pe_pad")):
        for dy, dx, y, xo in itertools.product(range(ka), range(ka), range(ho), range(wo)):
            got = T[name][:, :, dy * ka + dx, y, xo]
            want = T[padded][:, :, y * s + dy * dil, xo * s + dx * dil]
            assert torch.equal(got, want), (name, dy, dx, y, xo)

    # logits, softmax, weighted sum
    logits = torch.einsum("ncyx,ncjyx->njyx", queries, T["unfold_k"]) + torch.einsum(
        "ncyx,ncjyx->njyx", queries, T["q_pe"].unsqueeze(2) - T["unfold_rpe"])
    torch.testing.assert_close(T["logits"], logits)
    torch.testing.assert_close(T["att"], torch.softmax(T["logits"], dim=1))
    torch.testing.assert_close(T["att"].sum(1), torch.ones_like(T["att"].sum(1)))
    out_att = torch.einsum("njyx,ncjyx->ncyx", T["att"], T["unfold_v"]).reshape(b, -1, ho, wo)
    torch.testing.assert_close(T["out_att"], out_att)

    # conv path: groups, fc, regrouping
    for g in range(3 * h):
        src = (T["q"], T["k"], T["v"])[g // h]
        head = g % h
        torch.testing.assert_close(T["qkv_groups"][:, g], src[:, head * d:(head + 1) * d].reshape(b, d, -1))
    torch.testing.assert_close(
        T["f_all"], torch.einsum("mg,bgcn->bmcn", module.fc.weight[:, :, 0, 0], T["qkv_groups"]))
    kc2 = config.kernel_conv**2
    for cd, m in itertools.product(range(d), range(kc2)):
        assert torch.equal(T["f_conv"][:, cd * kc2 + m].reshape(b, -1), T["f_all"][:, m, cd])
    torch.testing.assert_close(T["out_conv"], module.dep_conv(T["f_conv"]))

    # the mix, recomputed from the recorded path outputs
    torch.testing.assert_close(T["out"], module.rate1 * T["out_att"] + module.rate2 * T["out_conv"])


def test_tracing_leaves_the_module_unchanged():
    config = CONFIGS[1]
    module = config.build()
    x = config.make_input()
    with torch.no_grad():
        before = module(x)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    trace = trace_forward(module, x)
    assert module._recorder is None
    with torch.no_grad():
        assert torch.equal(module(x), before)
    assert torch.equal(trace.output, before)
    for k, v in module.state_dict().items():
        assert torch.equal(v, state[k])
    assert not trace.output.requires_grad and not trace["q"].tensor.requires_grad


def test_recorder_is_removed_after_an_exception():
    config = CONFIGS[0]
    module = config.build()

    def fail(*_):
        raise RuntimeError("boom inside the forward")

    handle = module.fc.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        trace_forward(module, config.make_input())
    assert module._recorder is None
    handle.remove()
    with torch.no_grad():
        module(config.make_input())  # runs normally, nothing listens any more
    assert module._recorder is None


def test_trace_with_gradients():
    config = CONFIGS[0]
    module = config.build()
    trace = trace_forward(module, config.make_input(), grad=True)
    assert trace.output.requires_grad
    trace.output.sum().backward()
    assert module.conv1.weight.grad is not None


@pytest.mark.parametrize("config", CONFIGS[:2], ids=lambda c: c.describe())
def test_step_metadata(config):
    module, _, trace = run(config)
    numel = {name: sum(p.numel() for p in mod.parameters())
             for name, mod in module.named_children()}
    owners = {
        "q": numel["conv1"], "k": numel["conv2"], "v": numel["conv3"], "pe": numel["conv_p"],
        "f_all": numel["fc"], "out_conv": numel["dep_conv"],
        "out": module.rate1.numel() + module.rate2.numel(),
    }
    costs = config.step_costs()
    for step in trace.steps:
        assert step.params == owners.get(step.name, 0), step.name
        assert f'rec("{step.name}"' in step.source, (step.name, step.source)
        assert step.info.stage in {"Stage I", "attention", "convolution", "mix"}
        assert step.info.summary and step.info.code
        assert step.cost == costs.get(step.name, type(step.cost)()), step.name
    assert trace.total_cost().macs == sum(c.macs for c in costs.values())


def test_tensor_bytes_counts_shared_storage_once():
    config = CONFIGS[0]
    _, _, trace = run(config)
    # k_att and v_att are views of k and v; unfold_* are views of im2col's output
    storages = {}
    for step in trace.steps:
        st = step.tensor.untyped_storage()
        storages[st.data_ptr()] = st.nbytes()
    assert trace.tensor_bytes() == sum(storages.values())
    assert trace.tensor_bytes() < sum(s.tensor.numel() * s.tensor.element_size() for s in trace.steps)


def test_default_module_trace_runs():
    module = ACmix(64, 64)
    x = torch.randn(1, 64, 14, 14)
    trace = trace_forward(module, x)
    assert trace["unfold_k"].shape == (4, 16, 49, 14, 14)


@pytest.mark.parametrize("config", CONFIGS + [ACmixConfig()], ids=lambda c: c.describe())
def test_traces_of_both_impls_count_the_same_work(config):
    """The fast impl records no logits or att step; their counts ride on out_att, so both traces
    total the official formulation's count, which the reference trace's steps sum to by an
    independent route: the per-step counts measured while the module runs (tests/opcount.py)."""
    module, x = config.build(), config.make_input()
    reference = trace_forward(module, x)
    module.impl = "fast"
    fast = trace_forward(module, x)
    assert "logits" not in fast and "att" not in fast
    assert fast.total_cost() == reference.total_cost()
    counted, _ = count_steps(config.build(), x)
    assert reference.total_cost().macs == sum(m for m, _ in counted.values())
    carried = reference["logits"].cost + reference["att"].cost + reference["out_att"].cost
    assert fast["out_att"].cost == carried
    for name in set(fast.names) - {"out_att"}:
        assert fast[name].cost == reference[name].cost, name


def test_default_trace_total_is_the_documented_count():
    """ACMIX.md's cost formulas at the default, by hand: 3·3136·64·64 (Stage I) + 2·16·3136
    (conv_p) + 2·64·49·3136 (logits, weighted sum) + 3136·64·27 (fc) + 3136·64·81 (dep_conv)
    = 79,980,544 multiply-adds; a trace of the fast impl reports the same."""
    config = ACmixConfig()
    module, x = config.build(impl="fast"), config.make_input()
    assert trace_forward(module, x).total_cost().macs == 79_980_544
