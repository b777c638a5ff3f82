"""Peak memory: LiveBytes (the tensors' footprint), measure_peak_bytes (the CPU allocator's peak,
kernel workspaces included) and estimate_peak_bytes (from shapes) against each other and against
allocations whose sizes are known by construction.
"""

from __future__ import annotations

import random
import statistics

import pytest
import torch
from torch import nn

from convmix.config import ACmixConfig
from convmix.memory import MKLDNN_SCRATCH_BYTES, LiveBytes, measure_peak_bytes


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


def test_measured_peak_includes_a_kernels_own_buffers():
    """A float64 3x3 convolution runs PyTorch's slow path, whose im2col columns (in * 9 values per
    output position, whole batch) exist only inside the op: the allocator's peak holds them beside
    the output, the tensors' footprint does not."""
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False).double()
    x = torch.randn(2, 4, 10, 12, dtype=torch.float64)
    output = 2 * 6 * 10 * 12 * 8
    columns = 2 * 4 * 9 * 10 * 12 * 8
    assert measure_peak_bytes(conv, x) == output + columns
    counter = LiveBytes()
    with torch.no_grad(), counter:
        conv(x)
    assert counter.peak == output


def test_measurement_ignores_other_threads():
    """Another thread allocating meanwhile (another visitor's forward) is not counted."""
    import threading

    stop = threading.Event()

    def busy():
        while not stop.is_set():
            torch.empty(1 << 20)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        x = torch.randn(2, 3, 10, 10)
        assert measure_peak_bytes(KnownForward(), x) == 3 * x.numel() * 4
    finally:
        stop.set()
        worker.join()


def random_running_configs(count: int, seed: int) -> list[ACmixConfig]:
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        variant = rng.choice(["official", "fixed"])
        head = rng.choice([1, 2, 3, 4, 8])
        config = ACmixConfig(
            in_planes=rng.choice([1, 3, 8, 16, 64]), out_planes=head * rng.choice([1, 2, 4, 8]),
            head=head, kernel_att=rng.choice([1, 3, 5, 7]),
            kernel_conv=3 if variant == "official" else rng.choice([1, 3, 5]),
            stride=rng.choice([1, 2, 3]), dilation=1 if variant == "official" else rng.choice([1, 2]),
            height=rng.randint(2, 30), width=rng.randint(2, 30), batch=rng.choice([1, 2, 3]),
            variant=variant, seed=rng.randint(0, 99),
        )
        if not config.problems():
            out.append(config)
    return out


@pytest.fixture
def threads():
    """Run with a given torch thread count (1x1 convolutions use oneDNN only with more than one)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_float64_estimate_equals_the_allocators_peak(impl, threads):
    """float64 runs PyTorch's own convolution code, modelled buffer by buffer: exact to the byte."""
    threads(2)
    for config in random_running_configs(16, seed=5):
        module = config.build(impl=impl).double()
        measured = measure_peak_bytes(module, config.make_input(dtype=torch.float64))
        assert config.estimate_peak_bytes("float64", impl) == measured, config.describe()


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_float32_estimate_bounds_the_allocators_peak_tightly(impl, n_threads, threads):
    """oneDNN's buffers are bounded, not modelled: never under the measurement, and close to it
    for most configurations (the bound is loose where a grouped convolution dominates and oneDNN
    needs fewer buffers than it might: at most about 2.2x on this draw)."""
    threads(n_threads)
    ratios = []
    for config in random_running_configs(16, seed=6):
        measured = measure_peak_bytes(config.build(impl=impl), config.make_input())
        estimate = config.estimate_peak_bytes("float32", impl)
        assert estimate >= measured, (config.describe(), estimate, measured)
        ratios.append((estimate - MKLDNN_SCRATCH_BYTES) / measured)
    assert statistics.median(ratios) <= 1.05, [f"{r:.2f}" for r in sorted(ratios)]
    assert sum(r <= 1.25 for r in ratios) >= 2 / 3 * len(ratios), [f"{r:.2f}" for r in sorted(ratios)]
    assert max(ratios) <= 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_estimate_at_the_default_configuration(dtype, impl, threads):
    threads(2)
    config = ACmixConfig()
    tdtype = getattr(torch, dtype)
    measured = measure_peak_bytes(config.build(impl=impl).to(tdtype), config.make_input(dtype=tdtype))
    assert measured <= config.estimate_peak_bytes(dtype, impl) <= 1.01 * measured


def test_acmix_peak_holds_the_unfolded_copies():
    """The measured peak is at least the tensors the weighted sum of values needs at once."""
    config = ACmixConfig(in_planes=4, out_planes=8, head=2, kernel_att=5, height=10, width=12)
    b, c, n, kk = config.batch, config.out_planes, config.height * config.width, config.kernel_att**2
    # q, k, v, q_att; unfold_k, unfold_v and their product; the attention weights
    alive = 4 * b * c * n + 3 * b * c * kk * n + b * config.head * kk * n
    assert measure_peak_bytes(config.build(), config.make_input()) >= 4 * alive
