"""How long a forward of a configuration will take on this machine's CPU, estimated before running it.

A forward is the sum of its parts, each estimated from the work counted for the configuration and a
rate measured here, once per shape, on a small instance of the same operation (a probe):

  * Stage I, three 1×1 convolutions in_planes -> out_planes over B·H·W positions, and fc, a 1×1
    convolution 3·head -> kernel_conv² over B·head_dim·H·W positions: probed as the same
    convolution (the same weight shape) on a few positions.
  * dep_conv, a grouped convolution: probed with 2 groups of the same per-group shape
    (kernel_conv² channels in, min(head, 32) out, the same kernel and stride) on an 8×8 output.
    Its speed per multiply-add differs a hundredfold between shapes, hence a probe per shape.
  * the attention path: the formulation itself (reference or fast) on one head of min(d, 8)
    channels at a small size, scaled by the work B·C·(K·Ho·Wo + padded area); and never less than
    its memory traffic over the K-fold tensors at the bandwidth of a large copy (a small probe runs
    in cache, a large forward does not).
  * copies (heads, the fc input, f_conv, the mix): bytes moved at the measured copy bandwidth.
  * building a module: its parameters initialised twice (PyTorch's default, then the authors'),
    at the measured rate of a uniform fill.

A probe's rate is the best of a few runs. A small probe may also run faster per unit of work than
the full-size operation (its data stays in cache), so the sum is multiplied by SAFETY: measured
side by side on a shared 2-core machine, the unscaled estimate came to 0.4 to 1.4 times the
measured forward (benchmarks/time_estimate.py prints the ratios), so a refusal comes early rather
than late. Estimates are for the CPU only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ACmixConfig

PROBE_WORK = 1 << 24  # multiply-adds (or elements) of one probe call
SAFETY = 2.0  # see the module docstring
PROBE_REPEATS = 5
_PROBES: dict[tuple, float] = {}  # shape key -> seconds per unit of work
_STALE: set[tuple] = set()  # keys to probe again (see remeasure)
_PROBE_LOCK = threading.Lock()
_MAX_PROBES = 512
# Passes over the K-fold tensors (B·C·K·Ho·Wo floats), reads and writes: the reference's unfold of
# k and v (im2col writes, then the view is read), its three elementwise logit terms, the sum, the
# weighted sum and its sum, about 16 in all as measured (benchmarks/time_estimate.py); the fast
# formulation reads a window of k and v per offset and accumulates.
_KFOLD_PASSES = {"reference": 16, "fast": 6}


def _best_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    with torch.no_grad():
        fn()  # first call: allocator and kernel selection
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def _rate(key: tuple, probe: Callable[[int], tuple[Callable[[], object], float]], size: int) -> float:
    """Seconds per unit of work for `key`, measured once: `probe(size)` returns (call, work units).

    Callers size a probe to a few million multiply-adds or bytes: small enough to cost milliseconds,
    large enough that a call's fixed overhead does not dominate it. The best of PROBE_REPEATS calls
    is kept; after `remeasure()`, a probe runs again and the faster of both rates is kept (a busy
    machine only ever makes a probe slower, so the faster one is the better estimate).
    """
    with _PROBE_LOCK:
        known = _PROBES.get(key)
        if known is not None and key not in _STALE:
            return known
    call, work = probe(size)
    rate = _best_seconds(call, PROBE_REPEATS) / max(work, 1.0)
    with _PROBE_LOCK:
        if known is not None:
            rate = min(rate, known)
        _STALE.discard(key)
        if len(_PROBES) >= _MAX_PROBES:
            _PROBES.clear()
        _PROBES[key] = rate
    return rate


def remeasure() -> None:
    """Probe every shape again at its next use, keeping the faster rate: a second opinion before an
    estimate refuses work (a probe that ran while the machine was busy estimates too high)."""
    with _PROBE_LOCK:
        _STALE.update(_PROBES)


def _positions(work_per_position: int, least: int = 16, most: int = 1 << 16) -> int:
    """Probe positions for about PROBE_WORK units of work."""
    return max(least, min(most, PROBE_WORK // max(1, work_per_position)))


def clear_probes() -> None:
    with _PROBE_LOCK:
        _PROBES.clear()
        _STALE.clear()


# -- rates ------------------------------------------------------------------------------------------
def dense_seconds(cin: int, cout: int, positions: int) -> float:
    """A 1×1 convolution cin -> cout over `positions` positions."""

    def probe(n: int):
        x, w = torch.randn(1, cin, 1, n), torch.randn(cout, cin, 1, 1)
        return (lambda: F.conv2d(x, w)), float(cin * cout * n)

    return cin * cout * positions * _rate(("dense", cin, cout), probe, _positions(cin * cout))


def conv_seconds(cin: int, cout: int, kernel: int, stride: int, out_positions: int) -> float:
    """A dense kernel×kernel convolution cin -> cout, probed with at most ~1M weights."""
    limit = max(1, (1 << 20) // (kernel * kernel))
    ci = max(1, min(cin, math.isqrt(limit)))
    co = max(1, min(cout, limit // ci))

    def probe(n: int):
        side = math.isqrt(n) * stride
        x, w = torch.randn(1, ci, side, side), torch.randn(co, ci, kernel, kernel)
        out = ((side + 2 * (kernel // 2) - kernel) // stride + 1) ** 2
        return (lambda: F.conv2d(x, w, None, stride, kernel // 2)), float(co * ci * kernel * kernel * out)

    rate = _rate(("conv", ci, co, kernel, stride), probe, _positions(ci * co * kernel * kernel, 64, 1 << 12))
    return cin * cout * kernel * kernel * out_positions * rate


def grouped_seconds(groups: int, per_group_in: int, per_group_out: int, kernel: int, stride: int,
                    padding: int, out_positions: int) -> float:
    """A grouped convolution (dep_conv): `groups` groups of per_group_in -> per_group_out channels."""
    g, co = min(groups, 2), min(per_group_out, 32)

    def probe(n: int):
        side = math.isqrt(n) * stride + max(0, kernel - 1 - 2 * padding)
        x = torch.randn(1, g * per_group_in, side, side)
        w = torch.randn(g * co, per_group_in, kernel, kernel)
        out = ((side + 2 * padding - kernel) // stride + 1) ** 2
        macs = g * co * per_group_in * kernel * kernel * out
        return (lambda: F.conv2d(x, w, None, stride, padding, 1, g)), float(macs)

    macs = groups * per_group_out * per_group_in * kernel * kernel * out_positions
    size = _positions(g * co * per_group_in * kernel * kernel, 64, 1 << 12)
    return macs * _rate(("grouped", per_group_in, co, kernel, stride, padding), probe, size)


def copy_seconds(nbytes: float) -> float:
    """Moving `nbytes` (reads plus writes) at the bandwidth of a 16 MiB copy."""

    def probe(_: int):
        src = torch.randn(1 << 22)
        dst = torch.empty_like(src)
        return (lambda: dst.copy_(src)), float(2 * src.numel() * src.element_size())

    return nbytes * _rate(("copy",), probe, 1)


def fill_seconds(elements: int) -> float:
    """Initialising `elements` parameters (a uniform fill, as PyTorch's default init draws)."""

    def probe(_: int):
        t = torch.empty(512, 4096)
        return (lambda: nn.init.kaiming_uniform_(t, a=math.sqrt(5))), float(t.numel())

    return elements * _rate(("fill",), probe, 1)


def attention_seconds(config: ACmixConfig, impl: str = "reference") -> float:
    """The attention path (ACMIX.md 5-7) of `config` in formulation `impl`."""
    c = config
    height, width, d = _attention_probe_size(c, min(c.head_dim, 8))
    rows = c.batch * c.out_planes // d  # (batch × head) rows of d channels in the full problem
    probe_config = c.with_(in_planes=1, out_planes=d, head=1, batch=1, height=height, width=width)
    probe_rows = max(1, min(rows, int(PROBE_WORK // 8 // max(_attention_work(probe_config), 1.0))))

    def probe(n: int):
        # n rows of d channels: the batch axis carries the rows (the probe's shapes are the full
        # problem's with fewer heads, and a smaller map when the full one is large).
        from . import fast  # noqa: F401  (registers ATTENTION_IMPLS["fast"])
        from .acmix import ATTENTION_IMPLS

        cfg = probe_config.with_(batch=n)
        module = cfg.build(impl=impl)
        x = cfg.make_input()
        with torch.no_grad():
            q, k, v = module.conv1(x), module.conv2(x), module.conv3(x)
            inputs = module.attention_inputs(x, q, k, v)
        g = module.geometry(n, height, width)
        attention = ATTENTION_IMPLS[impl]
        return (lambda: attention(module, *inputs, g)), _attention_work(cfg)

    key = ("attention", impl, c.kernel_att, c.stride, c.dilation, c.variant, d, height, width, probe_rows)
    probed = _attention_work(c) * _rate(key, probe, probe_rows)
    kfold = c.batch * c.out_planes * c.kernel_att**2 * c.out_height * c.out_width
    traffic = copy_seconds(4.0 * _KFOLD_PASSES.get(impl, 11) * kfold)
    return max(probed, traffic)


def _attention_work(cfg: ACmixConfig) -> float:
    """The attention path's work: per channel, K values per output position and the padded map."""
    kk = cfg.kernel_att**2
    return float(cfg.batch * cfg.out_planes * (kk * cfg.out_height * cfg.out_width + cfg.padded_area))


def _attention_probe_size(c: ACmixConfig, d: int) -> tuple[int, int, int]:
    """The configuration's input size, or a smaller one on which the window, stride and dilation
    still run, and fewer channels (a divisor of head_dim), so that one row is about
    PROBE_WORK / 8 units of work where the configuration allows it; (height, width, channels)."""
    target = PROBE_WORK // 8
    one_row = c.with_(in_planes=1, out_planes=d, head=1, batch=1)
    h, w = c.height, c.width
    if _attention_work(one_row) > target:
        side = max(1, math.isqrt(target // (d * c.kernel_att**2))) * c.stride
        h, w = min(c.height, side), min(c.width, side)
        while (h, w) != (c.height, c.width) and one_row.with_(height=h, width=w).problems():
            h, w = min(c.height, h + c.stride), min(c.width, w + c.stride)
    while d > 1 and _attention_work(one_row.with_(out_planes=d, height=h, width=w)) > target:
        d //= 2  # a large window needs a large map: fewer channels then
    while c.head_dim % d:
        d -= 1
    return h, w, d


# -- a whole forward ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForwardSeconds:
    """Estimated seconds of one float32 no-grad forward, by part, and of building the module."""

    stage1: float
    attention: float
    conv_path: float  # fc, the f_conv copy and dep_conv
    other: float  # head split, positional encoding, the fc input, the final mix
    build: float

    @property
    def total(self) -> float:
        return self.stage1 + self.attention + self.conv_path + self.other


def forward_seconds(config: ACmixConfig, impl: str = "reference") -> ForwardSeconds:
    """Estimate one forward of `config` (and building its module) on this machine's CPU."""
    c = config
    b, cin, cout, h, d = c.batch, c.in_planes, c.out_planes, c.head, c.head_dim
    n, no, kc2 = c.height * c.width, c.out_height * c.out_width, c.kernel_conv**2
    stage1 = 3 * dense_seconds(cin, cout, b * n) + dense_seconds(2, d, n)
    attention = attention_seconds(c, impl)
    fc = dense_seconds(3 * h, kc2, b * d * n)
    pad = c.kernel_conv // 2 if c.variant == "fixed" else 1
    dep = grouped_seconds(d, kc2, h, c.kernel_conv, c.stride, pad, b * no)
    f_conv = copy_seconds(2 * 4 * b * kc2 * d * n)
    other = copy_seconds(4 * (2 * b * cout * n + 2 * 3 * b * cout * n + 7 * b * cout * no + 2 * b * cout * no))
    params = sum(c.param_counts().values())
    build = fill_seconds(2 * params)
    return ForwardSeconds(SAFETY * stage1, SAFETY * attention, SAFETY * (fc + dep + f_conv), SAFETY * other,
                          SAFETY * build)


def baseline_conv_seconds(config: ACmixConfig) -> float:
    """The explorer's baseline: a dense kernel_conv × kernel_conv Conv2d(in_planes, out_planes)."""
    c = config
    out_positions = c.batch * c.out_height * c.out_width
    return SAFETY * conv_seconds(c.in_planes, c.out_planes, c.kernel_conv, c.stride, out_positions)
