"""LiveBytes / measure_peak_bytes measure real allocations.

Two independent references: allocations whose sizes are known by construction, and the CPU
allocator's own events as torch.profiler records them (profile_memory=True), which see every
malloc and free below the dispatcher that LiveBytes watches.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from convmix.config import ACmixConfig
from convmix.memory import LiveBytes, measure_peak_bytes


def test_known_allocations_and_frees():
    counter = LiveBytes()
    with counter:
        a = torch.empty(1000)  # 4,000 bytes
        b = torch.empty(500, dtype=torch.float64)  # 4,000 bytes
        assert (counter.live, counter.peak) == (8000, 8000)
        del a
        assert (counter.live, counter.peak) == (4000, 8000)
        c = torch.zeros(250, dtype=torch.int16)  # 500 bytes
        assert (counter.live, counter.peak) == (4500, 8000)
        d = torch.ones(3000, dtype=torch.bfloat16)  # 6,000 bytes
        assert (counter.live, counter.peak) == (10500, 10500)
        del b, c, d
        assert (counter.live, counter.peak) == (0, 10500)


def test_views_keep_their_storage_alive():
    counter = LiveBytes()
    with counter:
        a = torch.randn(10, 100)
        view = a.t()[3:7]
        flat = a.view(-1)
        del a
        assert counter.live == 4000  # the views still hold all 1,000 floats
        del view
        assert counter.live == 4000
        del flat
        assert counter.live == 0
    assert counter.peak == 4000


def test_a_copy_behind_a_view_is_counted():
    """reshape of a transposed tensor copies (clone) and returns a view of the copy (_unsafe_view):
    the copy's first tensor is gone at once, its storage lives on in the result."""
    a = torch.randn(10, 100)
    counter = LiveBytes()
    with counter:
        flat = a.t().reshape(-1)
        assert flat.data_ptr() != a.data_ptr()
        assert counter.live == 4000
        del flat
        assert counter.live == 0


def test_in_place_ops_and_views_of_outside_tensors_cost_nothing():
    outside = torch.randn(100)
    counter = LiveBytes()
    with counter:
        outside.add_(1)
        v = outside.view(10, 10)
        v.mul_(2)
        assert counter.live == 0
        y = outside * 2  # a new tensor
        y.add_(1)
        assert counter.live == 400
    assert counter.peak == 400


class KnownForward(nn.Module):
    """A forward whose allocations are known: a, b (n each), a freed, then c (2n)."""

    def forward(self, x):
        a = x * 2
        b = a + 1
        del a
        return torch.cat([b, b])


@pytest.mark.parametrize("dtype,size", [(torch.float32, 4), (torch.float64, 8), (torch.bfloat16, 2)])
def test_measure_peak_of_a_known_forward(dtype, size):
    x = torch.randn(2, 3, 10, 10, dtype=dtype)
    n = x.numel()
    # peak when c is created: b (n) + c (2n); a and b together (2n) come earlier
    assert measure_peak_bytes(KnownForward(), x) == 3 * n * size


def profiler_peak_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Peak of the CPU allocator's running total during one no-grad forward, from profiler events."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = module(x)
    del out
    events = sorted(
        (e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def test_profiler_reference_sees_a_known_forward():
    x = torch.randn(2, 3, 10, 10)
    assert profiler_peak_bytes(KnownForward(), x) == 3 * x.numel() * 4


@pytest.mark.parametrize("config", [
    ACmixConfig(in_planes=8, out_planes=16, head=2, kernel_att=5, stride=2, height=12, width=10, batch=2),
    ACmixConfig(in_planes=5, out_planes=12, head=3, kernel_att=3, stride=3, height=13, width=11,
                kernel_conv=5, dilation=2, variant="fixed"),
    ACmixConfig(in_planes=16, out_planes=8, head=4, kernel_att=1, kernel_conv=1, height=9, width=7,
                variant="fixed"),
    ACmixConfig(in_planes=4, out_planes=8, head=4, height=14, width=14),
])
def test_acmix_peak_equals_the_allocators(config):
    module, x = config.build(), config.make_input()
    measured = measure_peak_bytes(module, x)
    assert measured > 0
    assert abs(measured - profiler_peak_bytes(module, x)) <= 0.01 * measured


def test_acmix_peak_holds_the_unfolded_copies():
    """The measured peak is at least the tensors the weighted sum of values needs at once."""
    config = ACmixConfig(in_planes=4, out_planes=8, head=2, kernel_att=5, height=10, width=12)
    b, c, n, kk = config.batch, config.out_planes, config.height * config.width, config.kernel_att**2
    # q, k, v, q_att; unfold_k, unfold_v and their product; the attention weights
    alive = 4 * b * c * n + 3 * b * c * kk * n + b * config.head * kk * n
    assert measure_peak_bytes(config.build(), config.make_input()) >= 4 * alive
