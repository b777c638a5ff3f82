"""The way ACmix's parts were timed before they were clocked inside its forward: each part alone.

One extra no-grad forward captured the tensors the forward handed its pieces (through the recorder
hook `_rec`); then Stage I (conv1-3 on x), the attention path (ATTENTION_IMPLS[impl] on the captured
q/k/v/pe) and the conv path (fc on the captured q/k/v groups plus dep_conv on the captured f_conv, or
the impl's CONV_PATH_IMPLS formulation on q, k, v) were timed as callables of their own, in the same
rounds as ACmix and the baselines. A round thus ran the attention path three times.

`parts_timed_alone()` puts that way back into convmix.bench for a block of code (the sweep
benchmark's "old way", and the test that compares the parts' medians both ways): the callables,
their warm-up and the time estimates. The memory estimate keeps the new way's, which leaves out the
captured tensors: the configurations these compare are small.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch

from convmix import bench
from convmix.acmix import ATTENTION_IMPLS, CONV_PATH_IMPLS, ACmix
from convmix.config import ACmixConfig

CAPTURED = ("q", "k", "v", "q_att", "q_strided", "k_att", "v_att", "pe", "q_pe", "qkv_groups", "f_conv")
# The capture forward had just run ACmix, each part and local attention on the same tensors.
WARMED_BY_CAPTURE = ("acmix", *bench.PARTS, "local_attention")


def capture_inputs(module: ACmix, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One no-grad forward; keep the tensors the forward handed to its attention and conv pieces."""
    kept: dict[str, torch.Tensor] = {}

    def record(name: str, tensor: torch.Tensor, line: int) -> None:
        if name in CAPTURED:
            kept[name] = tensor

    module._recorder = record
    try:
        with torch.no_grad():
            module(x)
    finally:
        module._recorder = None
    if "q_strided" in kept:  # with stride > 1 the attention path receives the strided queries
        kept["q_att"] = kept.pop("q_strided")
    return kept


def alone_callables(module: ACmix, x: torch.Tensor, config: ACmixConfig, impl: str) -> dict[str, Callable]:
    """ACmix, its three parts on their own captured inputs, and the two baselines, ready to call."""
    seen = capture_inputs(module, x)
    g = module.geometry(config.batch, config.height, config.width)
    attention = ATTENTION_IMPLS[impl]
    q_att, k_att, v_att, pe, q_pe = (seen[n] for n in ("q_att", "k_att", "v_att", "pe", "q_pe"))
    q, k, v, qkv, f_conv = (seen[n] for n in ("q", "k", "v", "qkv_groups", "f_conv"))
    fast_conv_path = CONV_PATH_IMPLS.get(impl)
    conv = bench.plain_conv(config).to(device=x.device, dtype=x.dtype)
    local = bench.LocalSelfAttention(module, impl)
    return {
        "acmix": lambda: module(x),
        "stage1": lambda: (module.conv1(x), module.conv2(x), module.conv3(x)),
        "attention_path": lambda: attention(module, q_att, k_att, v_att, pe, q_pe, g),
        "conv_path": (lambda: fast_conv_path(module, q, k, v)) if fast_conv_path
        else (lambda: (module.fc(qkv), module.dep_conv(f_conv))),
        "conv2d": lambda: conv(x),
        "local_attention": lambda: local(x),
    }


@contextmanager
def _alone_timed_callables(module: ACmix, x: torch.Tensor, config: ACmixConfig, impl: str):
    yield alone_callables(module, x, config, impl), {}


def _alone_round_seconds(config: ACmixConfig, impl: str):
    """bench._round_seconds as it was: a round called ACmix, its three parts and both baselines, and
    the capture forward came on top of the peak-memory forward (folded into the build here, so that
    bench's estimates add it)."""
    from convmix.speed import baseline_conv_seconds, fill_seconds, forward_seconds

    f = forward_seconds(config, impl)
    conv = baseline_conv_seconds(config)
    parts = f.stage1 + f.attention + f.conv_path
    build = f.build + fill_seconds(bench.baseline_conv_bytes(config) // 4)
    return build + f.total, f.total, f.total + parts + conv + f.stage1 + f.attention, conv


@contextmanager
def parts_timed_alone():
    """Within the block, convmix.bench measures (and estimates its measurements) the old way."""
    saved = bench.timed_callables, bench.WARMED_BY_PEAK_FORWARD, bench._round_seconds
    bench.timed_callables, bench.WARMED_BY_PEAK_FORWARD = _alone_timed_callables, WARMED_BY_CAPTURE
    bench._round_seconds = _alone_round_seconds
    try:
        yield
    finally:
        bench.timed_callables, bench.WARMED_BY_PEAK_FORWARD, bench._round_seconds = saved
