"""Reference vs fast attention on one configuration: latency and peak memory, side by side.

One module (one set of parameters) runs both formulations, switched through its `impl` attribute,
on one input. Peak memory comes from `measure_peak_bytes` (the allocator's statistics on CUDA,
its profiled events on the CPU), latency from `convmix.bench.time_alternated` (the two forwards timed in
alternation, so background load hits both alike), under bench's process-wide MEASURE_LOCK.
The two outputs are compared too, so a result never shows a speed-up of something that differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import fast  # noqa: F401  (registers ATTENTION_IMPLS["fast"])
from .bench import (
    BUDGETS,
    MEASURE_LOCK,
    Budget,
    Environment,
    MeasureError,
    Timing,
    check_dtype,
    environment,
    pick_device,
    time_alternated,
)
from .budget import check, forward_bytes
from .config import DTYPE_BYTES, ACmixConfig
from .memory import measure_peak_bytes

IMPLS = ("reference", "fast")


@dataclass(frozen=True)
class ImplResult:
    impl: str
    timing: Timing
    peak_bytes: int  # measured
    estimated_peak_bytes: int  # ACmixConfig.estimate_peak_bytes, from shapes alone


@dataclass(frozen=True)
class Comparison:
    config: ACmixConfig
    results: dict[str, ImplResult]
    max_relative_error: float  # ||fast - reference|| / ||reference|| on the same input
    env: Environment

    @property
    def latency_ratio(self) -> float:
        """How many times faster fast is than the reference (median over median)."""
        return self.results["reference"].timing.median_ms / self.results["fast"].timing.median_ms

    @property
    def memory_ratio(self) -> float:
        """How many times less peak memory fast needs than the reference."""
        return self.results["reference"].peak_bytes / max(1, self.results["fast"].peak_bytes)

    def rows(self) -> list[dict]:
        """One dict per implementation, for a table."""
        return [
            {
                "impl": r.impl,
                "latency_ms": r.timing.median_ms,
                "latency_ms_p25": r.timing.p25_ms,
                "latency_ms_p75": r.timing.p75_ms,
                "samples": r.timing.samples,
                "peak_bytes": r.peak_bytes,
                "estimated_peak_bytes": r.estimated_peak_bytes,
            }
            for r in self.results.values()
        ]


def unfolded_copy_elements(config: ACmixConfig) -> int:
    """Values in one of the reference's K-fold tensors (unfold_k, unfold_v, the logits' elementwise
    terms, the weighted sum): B*C*K*Ho*Wo."""
    return config.batch * config.out_planes * config.kernel_att**2 * config.out_height * config.out_width


def logits_elements(config: ACmixConfig) -> int:
    """Values in the attention logits, the only K-fold tensor the fast path stores: B*h*K*Ho*Wo."""
    return config.batch * config.head * config.kernel_att**2 * config.out_height * config.out_width


def comparison_bytes(config: ACmixConfig, dtype: str = "float32") -> int:
    """Memory a comparison needs: weights, input and the reference's forward (the larger), plus the two
    outputs kept for the error check."""
    return forward_bytes(config, dtype, "reference") + 2 * DTYPE_BYTES[dtype] * math.prod(config.output_shape)


def compare_impls(
    config: ACmixConfig,
    *,
    device: str | torch.device = "auto",
    dtype: str = "float32",
    budget: Budget = BUDGETS["quick"],
    memory_limit: int | None = None,
    impls: Sequence[str] = IMPLS,
) -> Comparison:
    """Measure `impls` (reference and fast) on `config`'s module and seeded input.

    Raises MeasureError when the configuration cannot run, the device or dtype is not measured, or
    the comparison would need more than `memory_limit` bytes (checked from shapes, before anything
    is allocated). Holds convmix.bench.MEASURE_LOCK while it measures (a plain Lock: do not call
    this while holding it).
    """
    problems = config.problems()
    if problems:
        raise MeasureError(" ".join(p.sentence() for p in problems))
    if memory_limit is not None:
        refusal = check(config, memory_limit, lambda c: comparison_bytes(c, dtype),
                        what="Comparing reference and fast on this configuration")
        if refusal is not None:
            raise MeasureError(refusal.message())
    dev = device if isinstance(device, torch.device) else pick_device(device)
    tdtype = check_dtype(dev, dtype)
    with MEASURE_LOCK:
        return _compare_unlocked(config, dev, tdtype, dtype, budget, tuple(impls))


def _compare_unlocked(config, dev, tdtype, dtype, budget, impls) -> Comparison:
    module = config.build().to(device=dev, dtype=tdtype).eval()
    x = config.make_input(dtype=tdtype, device=dev)
    peaks, outputs = {}, {}
    for impl in impls:
        module.impl = impl
        peaks[impl] = measure_peak_bytes(module, x)
        with torch.no_grad():
            outputs[impl] = module(x)
    ref = outputs["reference"].double()
    error = max(
        float((outputs[i].double() - ref).norm() / ref.norm().clamp_min(1e-300)) for i in impls
    )
    del outputs, ref

    with torch.no_grad():
        timings = time_alternated(forward_callables(module, x, impls), dev, budget)
    results = {
        impl: ImplResult(impl, timings[impl], peaks[impl], config.estimate_peak_bytes(dtype, impl))
        for impl in impls
    }
    return Comparison(config, results, error, environment(dev, dtype))


def forward_callables(module, x: torch.Tensor, impls: Sequence[str]) -> dict:
    """impl -> a call of `module` on `x` with that attention formulation (switched per call)."""

    def forward(impl: str):
        def call():
            module.impl = impl
            return module(x)

        return call

    return {impl: forward(impl) for impl in impls}
