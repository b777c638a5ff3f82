"""ACmix against a naive forward written here from ACMIX.md, with explicit loops over windows.

The naive version shares no code with convmix: the 1x1 projections are einsums, reflection
padding and zero padding are index arithmetic, the attention path loops over batch, head, query
position and window offset, and the conv path sums over fc groups and dep_conv taps by hand.
It reads the module's parameters from its state dict only.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import pytest
import torch

from convmix import ACmix, coordinate_grid


@dataclass(frozen=True)
class Case:
    variant: str
    cin: int
    c: int
    head: int
    ka: int
    kc: int
    stride: int
    dilation: int
    batch: int
    height: int
    width: int

    def build(self) -> ACmix:
        return ACmix(self.cin, self.c, self.ka, self.head, self.kc, self.stride, self.dilation,
                     variant=self.variant)

    def __str__(self) -> str:
        return (f"{self.variant}-cin{self.cin}-c{self.c}-h{self.head}-ka{self.ka}-kc{self.kc}-"
                f"s{self.stride}-dil{self.dilation}-b{self.batch}-{self.height}x{self.width}")


OFF, FIX = "official", "fixed"
CASES = [
    # official: kernel_conv 3, dilation 1, sizes divisible by the stride
    Case(OFF, 2, 2, 1, 1, 3, 1, 1, 1, 5, 6),
    Case(OFF, 3, 4, 2, 3, 3, 1, 1, 2, 5, 6),
    Case(OFF, 4, 8, 4, 3, 3, 2, 1, 1, 6, 4),
    Case(OFF, 8, 6, 3, 5, 3, 1, 1, 1, 5, 5),
    Case(OFF, 5, 8, 2, 5, 3, 2, 1, 2, 6, 6),
    Case(OFF, 6, 6, 2, 3, 3, 3, 1, 1, 6, 9),
    Case(OFF, 2, 4, 4, 3, 3, 1, 1, 1, 2, 3),  # smallest input reflection padding 1 allows
    Case(OFF, 7, 4, 1, 5, 3, 1, 1, 1, 3, 4),  # smallest input reflection padding 2 allows
    Case(OFF, 4, 6, 3, 1, 3, 2, 1, 2, 4, 6),
    Case(OFF, 3, 8, 4, 5, 3, 3, 1, 1, 3, 6),
    Case(OFF, 2, 3, 1, 3, 3, 1, 1, 2, 7, 5),
    Case(OFF, 8, 8, 2, 3, 3, 2, 1, 1, 8, 4),
    # fixed: any odd kernel_conv, odd sizes with stride, dilated windows
    Case(FIX, 2, 2, 1, 1, 1, 1, 1, 1, 5, 6),
    Case(FIX, 3, 4, 2, 3, 5, 1, 1, 1, 5, 6),
    Case(FIX, 4, 6, 3, 3, 3, 2, 1, 2, 5, 7),
    Case(FIX, 5, 8, 4, 5, 1, 3, 1, 1, 7, 5),
    Case(FIX, 6, 4, 2, 3, 3, 1, 2, 1, 5, 6),
    Case(FIX, 2, 6, 2, 5, 5, 2, 2, 1, 5, 6),  # padding 4 on a 5-high map
    Case(FIX, 8, 8, 4, 3, 5, 3, 2, 2, 5, 5),
    Case(FIX, 3, 3, 3, 1, 3, 2, 2, 1, 3, 3),  # one-position window: padding 0 despite dilation
    Case(FIX, 4, 4, 1, 5, 3, 2, 1, 1, 3, 4),
    Case(FIX, 7, 6, 2, 3, 5, 3, 1, 1, 4, 7),
    Case(FIX, 2, 8, 2, 3, 1, 2, 2, 2, 6, 5),
    Case(FIX, 6, 2, 2, 5, 3, 1, 1, 1, 5, 3),
    Case(FIX, 5, 4, 4, 3, 3, 3, 2, 1, 5, 6),
    Case(FIX, 4, 6, 1, 3, 5, 2, 1, 1, 2, 2),  # kernel_conv 5 on a 2x2 map: all but one tap is padding
    Case(FIX, 3, 4, 2, 5, 5, 1, 2, 1, 5, 5),
    Case(FIX, 8, 4, 2, 3, 3, 2, 1, 1, 6, 6),
]


# ---------------------------------------------------------------------------------------------
# The naive forward
# ---------------------------------------------------------------------------------------------
def reflect(i: int, n: int) -> int:
    """Index into a map of size n of position i of its reflection padding (edge not repeated)."""
    if i < 0:
        i = -i
    if i >= n:
        i = 2 * (n - 1) - i
    assert 0 <= i < n, "reflection padding wider than the map"
    return i


def naive_grid(height: int, width: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' coordinates: float32 linspace(-1, 1), x along the width, y along the height."""
    gx = torch.linspace(-1.0, 1.0, width, dtype=torch.float32).to(dtype)
    gy = torch.linspace(-1.0, 1.0, height, dtype=torch.float32).to(dtype)
    return gx, gy


def naive_acmix(x: torch.Tensor, p: dict[str, torch.Tensor], case: Case) -> torch.Tensor:
    """ACmix of ACMIX.md computed position by position; `p` holds state-dict tensors."""
    bsz, _, hgt, wid = x.shape
    c, h, ka, kc, s = case.c, case.head, case.ka, case.kc, case.stride
    d = c // h
    if case.variant == "official":
        dil, pad_att, pad_conv = 1, (ka - 1) // 2, 1
        h_out, w_out = hgt // s, wid // s
    else:
        dil, pad_att, pad_conv = case.dilation, case.dilation * (ka - 1) // 2, kc // 2
        h_out, w_out = math.ceil(hgt / s), math.ceil(wid / s)

    def project(name: str) -> torch.Tensor:
        w, b = p[f"{name}.weight"][:, :, 0, 0], p[f"{name}.bias"]
        return torch.einsum("oi,biyx->boyx", w, x) + b[None, :, None, None]

    q, k, v = project("conv1"), project("conv2"), project("conv3")

    # Positional encoding pe[:, y, x] = Wp[:, 0] * gx[x] + Wp[:, 1] * gy[y] + bp.
    gx, gy = naive_grid(hgt, wid, x.dtype)
    wp, bp = p["conv_p.weight"][:, :, 0, 0], p["conv_p.bias"]
    pe = (wp[:, 0, None, None] * gx[None, None, :] + wp[:, 1, None, None] * gy[None, :, None]
          + bp[:, None, None])

    # Attention path: one query at a time, one window position at a time.
    per_batch = []
    for bi in range(bsz):
        heads = []
        for hh in range(h):
            ch = slice(hh * d, (hh + 1) * d)
            outputs = []
            for y in range(h_out):
                for xo in range(w_out):
                    ys, xs = y * s, xo * s
                    query = q[bi, ch, ys, xs] * d**-0.5
                    logits, values = [], []
                    for dy in range(ka):
                        for dx in range(ka):
                            ky = reflect(ys + dy * dil - pad_att, hgt)
                            kx = reflect(xs + dx * dil - pad_att, wid)
                            relative = pe[:, ys, xs] - pe[:, ky, kx]
                            logits.append((query * (k[bi, ch, ky, kx] + relative)).sum())
                            values.append(v[bi, ch, ky, kx])
                    logit = torch.stack(logits)
                    e = torch.exp(logit - logit.max())
                    weights = e / e.sum()
                    outputs.append(sum(weights[j] * values[j] for j in range(ka * ka)))
            heads.append(torch.stack(outputs, 1).reshape(d, h_out, w_out))
        per_batch.append(torch.cat(heads, 0))
    out_att = torch.stack(per_batch, 0)

    # Conv path. Group g of the fc input is (q, k, v)[g // h] restricted to head g % h.
    groups = [t[:, (g % h) * d:(g % h + 1) * d] for t in (q, k, v) for g in range(h)]
    wfc = p["fc.weight"][:, :, 0, 0]  # (kc^2, 3h)
    f_all = [sum(wfc[m, g] * groups[g] for g in range(3 * h)) for m in range(kc * kc)]
    # dep_conv: groups = d; output channel o reads input channels (o // h) * kc^2 + i, and
    # input channel cd * kc^2 + i of the permuted map is f_all[i] at head channel cd.
    owner = [o // h for o in range(c)]
    f_by_out = torch.stack([fm[:, owner] for fm in f_all], 1)  # (B, kc^2, C, H, W)
    wdep = p["dep_conv.weight"]  # (C, kc^2, kc, kc)
    conv_rows = []
    for y in range(h_out):
        row = []
        for xo in range(w_out):
            acc = torch.zeros(bsz, c, dtype=x.dtype)
            for a in range(kc):
                for bb in range(kc):
                    yy, xx = y * s + a - pad_conv, xo * s + bb - pad_conv
                    if 0 <= yy < hgt and 0 <= xx < wid:  # zero padding
                        acc = acc + (wdep[:, :, a, bb].T[None] * f_by_out[:, :, :, yy, xx]).sum(1)
            row.append(acc)
        conv_rows.append(torch.stack(row, -1))
    out_conv = torch.stack(conv_rows, -2)

    return p["rate1"] * out_att + p["rate2"] * out_conv


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def randomise(module: ACmix, seed: int) -> None:
    """Draw every parameter (rates and shift kernels too) at random, so no structure hides a bug."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in module.parameters():
            t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype))


def make_input(case: Case, seed: int, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(case.batch, case.cin, case.height, case.width, generator=gen, dtype=dtype)


def params_of(module: ACmix, requires_grad: bool = False) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().requires_grad_(requires_grad) for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# Values and gradients
# ---------------------------------------------------------------------------------------------
def test_cases_cover_the_space():
    assert len(CASES) >= 25
    for attr, wanted in [("variant", {OFF, FIX}), ("ka", {1, 3, 5}), ("stride", {1, 2, 3}),
                         ("dilation", {1, 2}), ("batch", {1, 2}), ("head", {1, 2, 3, 4})]:
        assert {getattr(cs, attr) for cs in CASES} >= wanted, attr
    assert {cs.kc for cs in CASES if cs.variant == FIX} >= {1, 3, 5}
    assert any(cs.height % 2 for cs in CASES) and any(cs.width % 2 == 0 for cs in CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_matches_naive_loops(case: Case):
    torch.manual_seed(0)
    module = case.build().double()
    randomise(module, seed=zlib.crc32(str(case).encode()))
    x = make_input(case, seed=1)
    with torch.no_grad():
        got = module(x)
        want = naive_acmix(x, params_of(module), case)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[14], CASES[18]], ids=str)
def test_forward_at_default_init_matches_naive_loops(case: Case):
    torch.manual_seed(3)
    module = case.build().double()
    x = make_input(case, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(module(x), naive_acmix(x, params_of(module), case),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[14], CASES[17], CASES[22]], ids=str)
def test_gradients_match_naive_loops(case: Case):
    torch.manual_seed(1)
    module = case.build().double()
    randomise(module, seed=7)
    x = make_input(case, seed=3)
    x_mod, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref_params = params_of(module, requires_grad=True)

    out_mod = module(x_mod)
    weights = torch.randn(out_mod.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    (out_mod * weights).sum().backward()
    (naive_acmix(x_ref, ref_params, case) * weights).sum().backward()

    torch.testing.assert_close(x_mod.grad, x_ref.grad, rtol=1e-9, atol=1e-10)
    named = dict(module.named_parameters())
    assert set(named) == set(ref_params)
    for name, param in named.items():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, ref_params[name].grad, rtol=1e-9, atol=1e-10,
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_fixed_equals_official_where_both_are_defined():
    """kernel_conv 3, dilation 1, sizes divisible by the stride: the variants must agree."""
    for stride, size in [(1, (5, 6)), (2, (6, 4))]:
        torch.manual_seed(5)
        official = ACmix(4, 6, 3, 2, 3, stride, variant="official").double()
        fixed = ACmix(4, 6, 3, 2, 3, stride, variant="fixed").double()
        fixed.load_state_dict(official.state_dict())
        x = torch.randn(2, 4, *size, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(fixed(x), official(x), rtol=0, atol=0)


def test_naive_reflection_and_fixed_dilation_are_not_trivial():
    """The naive indexing really reads reflected and dilated positions (guards the reference)."""
    assert [reflect(i, 4) for i in range(-3, 7)] == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    case = Case(FIX, 2, 2, 1, 3, 1, 1, 2, 1, 5, 5)
    dilated = case.build().double()
    randomise(dilated, seed=0)
    undilated = Case(FIX, 2, 2, 1, 3, 1, 1, 1, 1, 5, 5)
    x = make_input(case, seed=0)
    p = params_of(dilated)
    with torch.no_grad():
        assert not torch.allclose(naive_acmix(x, p, case), naive_acmix(x, p, undilated))


# ---------------------------------------------------------------------------------------------
# Initialisation and parameters
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kc,variant", [(3, "official"), (1, "fixed"), (5, "fixed")])
def test_default_init(kc: int, variant: str):
    module = ACmix(8, 8, 3, 2, kc, variant=variant)
    assert module.rate1.item() == 0.5 and module.rate2.item() == 0.5
    w = module.dep_conv.weight
    assert w.shape == (8, kc * kc, kc, kc)
    for o in range(8):
        for i in range(kc * kc):
            for a in range(kc):
                for b in range(kc):
                    assert w[o, i, a, b].item() == (1.0 if i == a * kc + b else 0.0)
    assert module.dep_conv.bias is None
    state = module.state_dict()
    assert "dep_conv.bias" not in state
    assert set(state) == {
        "rate1", "rate2", "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
        "conv3.weight", "conv3.bias", "conv_p.weight", "conv_p.bias", "fc.weight", "dep_conv.weight",
    }
    assert module.fc.bias is None


def test_shift_kernel_init_makes_the_conv_path_a_sum_of_shifts():
    """At init, out_conv[o] is the sum over offsets (a, b) of f_conv channel (o//h)*kc^2 + a*kc + b
    shifted by (a - 1, b - 1): checked on the conv alone with a hand-made f_conv."""
    module = ACmix(4, 4, 3, 2, 3)
    f = torch.randn(1, 2 * 9, 5, 6)
    out = module.dep_conv(f)
    fp = torch.zeros(1, 18, 7, 8)
    fp[:, :, 1:6, 1:7] = f
    for o in range(4):
        want = sum(fp[0, (o // 2) * 9 + a * 3 + b, a:a + 5, b:b + 6] for a in range(3) for b in range(3))
        torch.testing.assert_close(out[0, o], want)


def test_parameter_count_at_defaults():
    module = ACmix(64, 64)
    assert sum(p.numel() for p in module.parameters()) == 17_822
    # the constructor declares a bias of C values that the authors' init removes (Q1)
    assert 3 * (64 * 64 + 64) + 3 * 16 + 3 * 4 * 9 + 64 * 81 + 2 == 17_822


# ---------------------------------------------------------------------------------------------
# dtype, device, memory layout
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("height,width", [(1, 1), (2, 7), (5, 6), (56, 56), (13, 4)])
def test_grid_float32_equals_independent_linspace(height: int, width: int):
    x = torch.zeros(1, 1, height, width)
    grid = coordinate_grid(height, width, x)
    assert grid.shape == (1, 2, height, width) and grid.dtype == torch.float32
    exact_x = [-1.0 + 2.0 * i / (width - 1) if width > 1 else -1.0 for i in range(width)]
    exact_y = [-1.0 + 2.0 * i / (height - 1) if height > 1 else -1.0 for i in range(height)]
    for y in range(height):
        for xi in range(width):
            # within one float32 rounding step of the exact coordinate
            assert abs(grid[0, 0, y, xi].item() - exact_x[xi]) <= 1.2e-7
            assert abs(grid[0, 1, y, xi].item() - exact_y[y]) <= 1.2e-7
    # and bit for bit the authors' float32 linspace
    assert torch.equal(grid[0, 0, 0], torch.linspace(-1, 1, width))
    assert torch.equal(grid[0, 1, :, 0], torch.linspace(-1, 1, height))


def test_grid_follows_dtype():
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        grid = coordinate_grid(3, 4, torch.zeros(1, dtype=dtype))
        assert grid.dtype == dtype
        torch.testing.assert_close(grid, coordinate_grid(3, 4, torch.zeros(1)).to(dtype))


@pytest.mark.parametrize("variant", ["official", "fixed"])
def test_float64_and_bfloat16_run(variant: str):
    torch.manual_seed(0)
    module = ACmix(4, 8, 3, 2, 3, 2, variant=variant)
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        ref = module(x)
        out64 = module.to(torch.float64)(x.double())
        out16 = module.to(torch.bfloat16)(x.bfloat16())
    assert out64.dtype == torch.float64 and out16.dtype == torch.bfloat16
    torch.testing.assert_close(out64.float(), ref, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(out16).all()
    torch.testing.assert_close(out16.float(), ref, rtol=0.05, atol=0.1)


@pytest.mark.parametrize("case", [CASES[2], CASES[15], CASES[18]], ids=str)
def test_channels_last_input_gives_same_output(case: Case):
    torch.manual_seed(0)
    module = case.build()
    x = make_input(case, seed=0, dtype=torch.float32)
    x_cl = x.to(memory_format=torch.channels_last)
    assert not x_cl.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(module(x_cl), module(x), rtol=1e-5, atol=1e-6)
