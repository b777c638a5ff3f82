"""The fast attention formulation (convmix.fast) against the reference (the authors' unfold).

The two share the module's parameters and the code outside the attention path, and nothing inside
it: the reference multiplies K unfolded copies of k, v and pe, the fast path walks window offsets
over views of the padded maps and folds pe into the keys. Values and gradients (input and every
parameter) must agree within 1e-5 relative error in float32, for every configuration either
variant accepts. Memory claims are checked against LiveBytes on real forwards.
"""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from convmix import ATTENTION_IMPLS, ACmix, fast_attention
from convmix.bench import MeasureError
from convmix.compare import compare_impls
from convmix.config import DTYPE_BYTES, ACmixConfig
from convmix.fast import fast_attention_parts, fast_attention_peak_elements
from convmix.memory import MKLDNN_SCRATCH_BYTES, LiveBytes, measure_peak_bytes

TOL32 = 1e-5
TOL64 = 1e-10
# conv_p's bias adds the same vector to the query's and the key's positional encoding, so it cancels
# in q . (pe_query - pe_key): its true gradient is zero and both formulations return rounding noise.
CANCELLING = {"conv_p.bias"}


@dataclass(frozen=True)
class Case:
    variant: str
    cin: int
    c: int
    head: int
    ka: int
    stride: int = 1
    dilation: int = 1
    kc: int = 3
    batch: int = 1
    height: int = 8
    width: int = 8

    def config(self) -> ACmixConfig:
        return ACmixConfig(
            in_planes=self.cin, out_planes=self.c, kernel_att=self.ka, head=self.head,
            kernel_conv=self.kc, stride=self.stride, dilation=self.dilation, height=self.height,
            width=self.width, batch=self.batch, variant=self.variant, seed=self.cin * 31 + self.ka,
        )

    def __str__(self) -> str:
        return (f"{self.variant}-cin{self.cin}-c{self.c}-h{self.head}-ka{self.ka}-s{self.stride}-"
                f"dil{self.dilation}-kc{self.kc}-b{self.batch}-{self.height}x{self.width}")


OFF, FIX = "official", "fixed"
CASES = [
    # official: kernel_conv 3, dilation 1, sizes divisible by the stride
    Case(OFF, 8, 16, 4, 7, height=12, width=10),
    Case(OFF, 3, 4, 1, 1, height=5, width=7),
    Case(OFF, 4, 6, 3, 3, height=9, width=13),  # odd sizes, stride 1
    Case(OFF, 5, 8, 2, 5, stride=2, batch=2, height=10, width=6),
    Case(OFF, 6, 6, 2, 3, stride=3, height=9, width=12),
    Case(OFF, 4, 4, 4, 9, height=11, width=10),  # head_dim 1
    Case(OFF, 2, 3, 1, 11, height=6, width=7),  # smallest input padding 5 allows, one head
    Case(OFF, 8, 32, 16, 5, stride=2, height=8, width=12),  # many heads
    Case(OFF, 3, 8, 2, 11, stride=2, batch=2, height=12, width=14),
    Case(OFF, 7, 10, 5, 7, stride=3, height=12, width=6),
    # fixed: odd sizes with stride, dilated windows, any odd kernel_conv
    Case(FIX, 4, 8, 2, 3, stride=2, height=7, width=9),
    Case(FIX, 5, 6, 3, 5, stride=3, height=13, width=7),
    Case(FIX, 6, 8, 4, 3, dilation=2, height=9, width=11),
    Case(FIX, 3, 6, 2, 5, dilation=3, stride=2, height=15, width=13),
    Case(FIX, 4, 4, 1, 3, dilation=3, stride=3, batch=2, height=10, width=8),
    Case(FIX, 2, 12, 12, 7, dilation=2, height=14, width=13),  # head_dim 1, dilated
    Case(FIX, 8, 8, 2, 1, kc=1, stride=2, height=5, width=5),
    Case(FIX, 3, 10, 2, 9, kc=5, stride=3, height=11, width=17),
    Case(FIX, 5, 4, 1, 11, kc=7, stride=2, batch=2, height=9, width=6),
    Case(FIX, 1, 2, 2, 3, dilation=2, stride=3, height=3, width=4),  # tiny input, stride > size / 2
]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm()) if b.norm() > 0 else float((a - b).norm())


def forward_and_grads(module: ACmix, x: torch.Tensor, impl: str, seed: int = 0):
    """Output and the gradients of a fixed random projection of it w.r.t. x and every parameter."""
    module.impl = impl
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (out * weights.to(out.dtype)).sum().backward()
    grads = {"input": x.grad}
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return out.detach(), grads


def assert_matches(config: ACmixConfig, dtype: torch.dtype = torch.float32, tol: float = TOL32) -> None:
    module = config.build().to(dtype)
    x = config.make_input(dtype=dtype)
    with torch.no_grad():  # the in-place (inference) path
        module.impl = "reference"
        ref_out = module(x)
        module.impl = "fast"
        fast_out = module(x)
    assert fast_out.shape == ref_out.shape == config.output_shape
    assert rel(fast_out, ref_out) <= tol, config.describe()

    ref_out_g, ref_grads = forward_and_grads(module, x, "reference")
    fast_out_g, fast_grads = forward_and_grads(module, x, "fast")  # the autograd path
    assert rel(fast_out_g, ref_out_g) <= tol, config.describe()
    assert set(fast_grads) == set(ref_grads)
    for name, ref in ref_grads.items():
        got = fast_grads[name]
        assert got is not None and got.shape == ref.shape, name
        if name in CANCELLING:
            scale = ref_grads["conv_p.weight"].norm()
            assert (got - ref).norm() <= tol * scale, (name, config.describe())
        else:
            assert rel(got, ref) <= tol, (name, rel(got, ref), config.describe())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_values_and_gradients_match_reference(case: Case):
    config = case.config()
    assert not config.problems(), config.problems()
    assert_matches(config)


def random_accepted_configs(count: int, seed: int) -> list[ACmixConfig]:
    """Configurations drawn over the whole space, kept only when their variant accepts them."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        variant = rng.choice((OFF, FIX))
        head, head_dim = rng.randint(1, 6), rng.randint(1, 5)
        ka = rng.choice((1, 3, 5, 7, 9, 11))
        stride = rng.randint(1, 3)
        dilation = rng.randint(1, 3) if variant == FIX else 1
        pad = (dilation * (ka - 1) + 1) // 2
        height, width = pad + rng.randint(1, 10), pad + rng.randint(1, 10)
        if variant == OFF:
            height, width = height + (-height) % stride, width + (-width) % stride
        config = ACmixConfig(
            in_planes=rng.randint(1, 9), out_planes=head * head_dim, kernel_att=ka, head=head,
            kernel_conv=3 if variant == OFF else rng.choice((1, 3, 5)), stride=stride, dilation=dilation,
            height=height, width=width, batch=rng.randint(1, 2), variant=variant, seed=rng.randint(0, 999),
        )
        if not config.problems():
            out.append(config)
    return out


def test_random_accepted_configurations_match_reference():
    configs = random_accepted_configs(40, seed=6)
    # The draw covers what the issue asks for: both variants, strides 2 and 3, dilation, one head.
    assert {c.variant for c in configs} == {OFF, FIX}
    assert {c.stride for c in configs} == {1, 2, 3}
    assert {c.dilation for c in configs} >= {2, 3}
    assert 1 in {c.head for c in configs} and max(c.head for c in configs) >= 5
    for config in configs:
        assert_matches(config)


@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[8], CASES[13], CASES[18]], ids=str)
def test_float64_matches_reference_tightly(case: Case):
    assert_matches(case.config(), torch.float64, TOL64)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 3e-3), (torch.bfloat16, 2e-2)])
def test_half_precision_runs_and_agrees(dtype: torch.dtype, tol: float):
    config = CASES[3].config()
    module = config.build().to(dtype)
    x = config.make_input(dtype=dtype)
    with torch.no_grad():
        ref = module(x)
        module.impl = "fast"
        out = module(x)
    assert out.dtype == dtype
    assert rel(out.double(), ref.double()) <= tol


def test_conv_p_bias_gradient_is_zero_in_both():
    """Why CANCELLING exists: in float64 the reference's own conv_p.bias gradient vanishes."""
    config = CASES[0].config()
    module = config.build().double()
    x = config.make_input(dtype=torch.float64)
    for impl in ("reference", "fast"):
        _, grads = forward_and_grads(module, x, impl)
        assert grads["conv_p.weight"].norm() > 1e-3
        assert grads["conv_p.bias"].norm() <= 1e-12 * grads["conv_p.weight"].norm()


def test_the_tolerance_would_catch_a_wrong_formulation():
    """A fast path that dropped the relative positional term would fail the comparison."""
    config = CASES[0].config()
    module = config.build()
    x = config.make_input()
    with torch.no_grad():
        ref = module(x)
        ATTENTION_IMPLS["no_pe"] = lambda m, q, k, v, pe, q_pe, g: fast_attention(
            m, q, k, v, torch.zeros_like(pe), torch.zeros_like(q_pe), g)
        try:
            module.impl = "no_pe"
            wrong = module(x)
        finally:
            del ATTENTION_IMPLS["no_pe"]
    assert rel(wrong, ref) > 100 * TOL32


def test_switching_impl_on_a_built_module_shares_parameters():
    config = CASES[3].config()
    module = config.build()
    params = {name: p for name, p in module.named_parameters()}
    state = {k: v.clone() for k, v in module.state_dict().items()}
    x = config.make_input()
    with torch.no_grad():
        ref = module(x)
        module.impl = "fast"
        fast = module(x)
    assert {name: p for name, p in module.named_parameters()} == params  # the same objects
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
    assert "impl='fast'" in repr(module)
    assert rel(fast, ref) <= TOL32

    # A training step taken through the fast path moves the parameters the reference reads.
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    module(x).square().mean().backward()
    optimizer.step()
    module.impl = "reference"
    with torch.no_grad():
        after_ref = module(x)
        module.impl = "fast"
        after_fast = module(x)
    assert rel(after_ref, ref) > 1e-4
    assert rel(after_fast, after_ref) <= TOL32

    # build(impl="fast") draws the same weights from the seed.
    built_fast = config.build(impl="fast")
    assert built_fast.impl == "fast"
    assert all(torch.equal(a, b) for a, b in zip(built_fast.parameters(), config.build().parameters(), strict=True))
    with pytest.raises(ValueError, match="impl must be one of"):
        module.impl = "fastest"


def test_fast_is_registered_by_importing_convmix():
    code = "from convmix import ACmix; print(ACmix(4, 4, impl='fast').impl)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fast"


def attention_inputs(config: ACmixConfig) -> tuple[ACmix, tuple, object]:
    """The tensors the forward hands its attention path, captured through the recorder hook."""
    module = config.build()
    seen = {}
    module._recorder = lambda name, tensor, line: seen.setdefault(name, tensor)
    with torch.no_grad():
        module(config.make_input())
    module._recorder = None
    q_att = seen.get("q_strided", seen["q_att"])
    g = module.geometry(config.batch, config.height, config.width)
    return module, (q_att, seen["k_att"], seen["v_att"], seen["pe"], seen["q_pe"]), g


@pytest.mark.parametrize("grad", [False, True])
def test_fast_attention_leaves_its_inputs_untouched(grad: bool):
    for case in (CASES[1], CASES[12], CASES[16]):  # kernel_att 1 has no padding to copy into
        module, inputs, g = attention_inputs(case.config())
        inputs = tuple(t.clone().requires_grad_(grad) for t in inputs)
        before = [t.detach().clone() for t in inputs]
        with torch.set_grad_enabled(grad):
            out = fast_attention(module, *inputs, g)
        assert out.requires_grad == grad
        assert all(torch.equal(t.detach(), b) for t, b in zip(inputs, before, strict=True))


def test_inference_mode_and_channels_last():
    config = CASES[3].config()
    module = config.build()
    x = config.make_input()
    with torch.no_grad():
        ref = module(x)
    module.impl = "fast"
    with torch.inference_mode():
        assert rel(module(x), ref) <= TOL32
    cl = module.to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert rel(cl(x.to(memory_format=torch.channels_last)), ref) <= TOL32


# -- memory --------------------------------------------------------------------------------------------
MEMORY_CONFIGS = [
    ACmixConfig(),  # the default: the conv path peaks
    ACmixConfig(in_planes=8, out_planes=16, head=16, kernel_att=11, height=20, width=18),  # logits peak
    ACmixConfig(in_planes=4, out_planes=8, head=8, kernel_att=7, dilation=3, height=20, width=24,
                variant="fixed", stride=2),
    ACmixConfig(in_planes=6, out_planes=12, head=3, kernel_att=9, stride=3, height=15, width=13,
                batch=2, variant="fixed"),
    ACmixConfig(in_planes=3, out_planes=4, head=1, kernel_att=3, height=9, width=7),
]


@pytest.mark.parametrize("config", MEMORY_CONFIGS, ids=lambda c: c.describe())
def test_attention_peak_formula_equals_live_bytes(config: ACmixConfig):
    """The fast path alone, its inputs allocated beforehand: its peak is exactly the formula."""
    module, inputs, g = attention_inputs(config)
    counter = LiveBytes()
    with torch.no_grad(), counter:
        out = fast_attention(module, *inputs, g)
    del out
    assert counter.peak == 4 * fast_attention_peak_elements(config)


def stage1_elements(config: ACmixConfig) -> int:
    return 4 * config.batch * config.out_planes * config.height * config.width + config.head_dim * (
        config.height * config.width)


@pytest.mark.parametrize("config", MEMORY_CONFIGS, ids=lambda c: c.describe())
def test_fast_peak_estimate_matches_measured_forward(config: ACmixConfig):
    module = config.build(impl="fast")
    measured = measure_peak_bytes(module, config.make_input())
    estimate = config.estimate_peak_bytes(impl="fast")
    assert measured <= estimate <= 1.15 * measured + MKLDNN_SCRATCH_BYTES, (estimate, measured)


def test_memory_configs_include_one_where_the_attention_path_peaks():
    """Otherwise the whole-forward check above could not see a wrong attention formula."""
    elt = DTYPE_BYTES["float32"]
    attention_peaks = [
        c for c in MEMORY_CONFIGS
        if elt * (stage1_elements(c) + fast_attention_peak_elements(c)) == c.estimate_peak_bytes(impl="fast")
    ]
    assert attention_peaks


def test_fast_needs_far_less_memory_at_the_default_configuration():
    config = ACmixConfig()
    x = config.make_input()
    ref = measure_peak_bytes(config.build(), x)
    fast = measure_peak_bytes(config.build(impl="fast"), x)
    assert ref >= 5 * fast
    # The reference's peak holds the K-fold unfolded copies (Q9): three of B*C*K*Ho*Wo floats.
    unfolded = config.batch * config.out_planes * config.kernel_att**2 * config.out_height * config.out_width
    assert ref >= 3 * 4 * unfolded > fast


# -- the side-by-side helper ---------------------------------------------------------------------------
def test_compare_impls_reports_both_side_by_side():
    config = CASES[0].config()
    result = compare_impls(config, device="cpu")
    assert set(result.results) == {"reference", "fast"}
    assert result.max_relative_error <= TOL32
    for impl, r in result.results.items():
        assert r.peak_bytes == measure_peak_bytes(config.build(impl=impl), config.make_input())
        assert r.timing.median_ms > 0 and r.timing.samples >= 3
    assert result.memory_ratio == result.results["reference"].peak_bytes / result.results["fast"].peak_bytes
    assert result.env.threads == torch.get_num_threads()
    assert [row["impl"] for row in result.rows()] == ["reference", "fast"]


def test_compare_impls_refuses_what_does_not_fit_and_what_cannot_run():
    with pytest.raises(MeasureError, match="over this server's memory budget"):
        compare_impls(ACmixConfig(out_planes=512, height=512, width=512), memory_limit=1 << 30)
    with pytest.raises(MeasureError, match="must divide"):
        compare_impls(ACmixConfig(head=3))


def test_sizes_quoted_on_the_home_page_equal_the_traced_tensors():
    from convmix.compare import logits_elements, unfolded_copy_elements
    from convmix.trace import trace_forward

    config = CASES[9].config()
    trace = trace_forward(config.build(), config.make_input())
    assert unfolded_copy_elements(config) == trace["unfold_k"].tensor.numel() == trace["unfold_v"].tensor.numel()
    assert logits_elements(config) == trace["att"].tensor.numel()
    parts = fast_attention_parts(config)  # the fast path's buffers, as the home page names them
    assert parts["logits"] == trace["att"].tensor.numel()
    assert parts["padded map"] == trace["k_pad"].tensor.numel() == trace["v_pad"].tensor.numel()
    assert parts["padded pe"] == trace["pe_pad"].tensor.numel()
    assert parts["output"] == trace["out_att"].tensor.numel()


# -- the home page's side-by-side section --------------------------------------------------------------
SMALL = {"in_planes": 8, "out_planes": 8, "height": 12, "width": 12}


def test_home_compares_reference_and_fast_on_demand(app):
    at = app(query_params=SMALL)
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Where the reference's time goes" in text and "unfold_k" in text
    assert not [m for m in at.metric if m.label == "Fast latency"]  # nothing measured before the click
    at.button(key="home_compare_button").click().run()
    assert not at.exception
    labels = {m.label: m for m in at.metric}
    for label in ("Reference latency", "Fast latency", "Reference peak memory", "Fast peak memory"):
        assert label in labels
    config = ACmixConfig(**SMALL)
    from convmix.format import human_bytes

    assert labels["Fast peak memory"].value == human_bytes(measure_peak_bytes(config.build("fast"), config.make_input()))
    assert labels["Reference peak memory"].value == human_bytes(measure_peak_bytes(config.build(), config.make_input()))
    assert labels["Fast latency"].delta.endswith(("× faster", "× slower"))  # no timing is asserted
    # Another configuration in the sidebar: the old numbers are not shown as if they were its own.
    at.sidebar.number_input(key="head").set_value(2).run()
    assert not at.exception
    assert "Fast latency" not in {m.label for m in at.metric}


def test_home_comparison_is_skipped_for_a_configuration_that_cannot_run(app):
    at = app(query_params={**SMALL, "head": 3})
    assert not at.exception
    assert any("Nothing to compare" in c.value for c in at.caption)
    assert "home_compare_button" not in [b.key for b in at.button]


def test_home_refuses_a_comparison_over_the_memory_budget(app):
    at = app(query_params={"in_planes": 256, "out_planes": 256, "height": 256, "width": 256, "kernel_att": 11})
    at.button(key="home_compare_button").click().run()
    assert not at.exception
    assert any("memory budget" in w.value and "nearby configuration" in w.value for w in at.warning)
    assert "Fast latency" not in {m.label for m in at.metric}
