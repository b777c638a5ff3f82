"""Reference vs fast attention on one configuration: latency and peak memory, side by side.

One module (one set of parameters) runs both formulations, switched through its `impl` attribute,
on one input. Peak memory comes from `measure_peak_bytes` (the allocator's statistics on CUDA,
its profiled events on the CPU), latency from `convmix.bench.time_alternated` (the two forwards timed in
alternation, so background load hits both alike), under bench's process-wide MEASURE_LOCK
(bench.measuring).
The two outputs are compared too, so a result never shows a speed-up of something that differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from . import fast  # noqa: F401  (registers ATTENTION_IMPLS["fast"])
from .bench import (
    BUDGETS,
    FLOOR_ROUNDS,
    Budget,
    Environment,
    MeasureError,
    Timing,
    check_dtype,
    environment,
    measuring,
    pick_device,
    time_alternated,
)
from .budget import OverBudget, admitted, check, check_time, forward_bytes
from .config import DTYPE_BYTES, ACmixConfig
from .memory import measure_peak_bytes
from .speed import remeasure

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
    """Memory a comparison needs: weights, input and the reference's forward (the larger), the two
    outputs kept for the error check and that check's float64 copies (the reference, the other
    output and their difference), or, if larger, dep_conv's weight built twice (budget.build_bytes)."""
    out = math.prod(config.output_shape)
    rebuilt = DTYPE_BYTES[dtype] * config.out_planes * config.kernel_conv**4  # budget.build_bytes
    return forward_bytes(config, dtype, "reference") + max(rebuilt, (2 * DTYPE_BYTES[dtype] + 3 * 8) * out)


def comparison_seconds(config: ACmixConfig, budget: Budget = BUDGETS["quick"],
                       impls: Sequence[str] = IMPLS) -> float:
    """Estimated seconds of the shortest comparison on the CPU: building the module, two forwards per
    implementation (peak memory, output), then warmup and at least min(FLOOR_ROUNDS, min_rounds)
    rounds of one forward per implementation (convmix.speed estimates each)."""
    from .speed import forward_seconds

    forwards = {impl: forward_seconds(config, impl) for impl in impls}
    rounds = max(1, budget.warmup) + min(FLOOR_ROUNDS, budget.min_rounds)
    per_round = sum(f.total for f in forwards.values())
    return forwards[impls[0]].build + (2 + rounds) * per_round


def compare_impls(
    config: ACmixConfig,
    *,
    device: str | torch.device = "auto",
    dtype: str = "float32",
    budget: Budget = BUDGETS["quick"],
    memory_limit: int | None = None,
    time_limit: float | None = None,
    still_wanted: Callable[[], bool] | None = None,
    impls: Sequence[str] = IMPLS,
) -> Comparison:
    """Measure `impls` (reference and fast) on `config`'s module and seeded input.

    Raises MeasureError when the configuration cannot run, the device or dtype is not measured, the
    comparison would need more than `memory_limit` bytes beside what the process holds
    (convmix.budget), or, on the CPU, would take longer than `time_limit` seconds (estimated, before
    anything is allocated; the timing then also stops in time). Holds convmix.bench.MEASURE_LOCK
    while it measures (do not call this while holding it); while waiting for the lock, drops the
    work (Abandoned) once `still_wanted()` says nobody waits for it.
    """
    problems = config.problems()
    if problems:
        raise MeasureError(" ".join(p.sentence() for p in problems))
    if memory_limit is not None:
        refusal = check(config, memory_limit, lambda c: comparison_bytes(c, dtype),
                        what="Comparing reference and fast on this configuration", held=0)
        if refusal is not None:
            raise MeasureError(refusal.message())
    dev = device if isinstance(device, torch.device) else pick_device(device)
    tdtype = check_dtype(dev, dtype)
    impls = tuple(impls)
    with measuring(still_wanted):
        if memory_limit is None:
            budget = _within_time(config, budget, impls, time_limit, dev)
            return _compare_unlocked(config, dev, tdtype, dtype, budget, impls)
        try:
            with admitted(config, memory_limit, lambda c: comparison_bytes(c, dtype),
                          what="Comparing reference and fast on this configuration"):
                # The time estimate's probes are small pieces of this comparison: inside its reservation.
                budget = _within_time(config, budget, impls, time_limit, dev)
                return _compare_unlocked(config, dev, tdtype, dtype, budget, impls)
        except OverBudget as err:
            raise MeasureError(str(err)) from None


def _within_time(config: ACmixConfig, budget: Budget, impls: tuple[str, ...], time_limit: float | None,
                 dev: torch.device) -> Budget:
    """Refuse (MeasureError) a CPU comparison estimated over `time_limit` seconds; else the timing
    budget cut so that the comparison stays within it."""
    if time_limit is None or dev.type != "cpu":
        return budget
    refusal = check_time(config, time_limit, lambda c: comparison_seconds(c, budget, impls),
                         what="Comparing reference and fast on this configuration", second_opinion=remeasure)
    if refusal is not None:
        raise MeasureError(refusal.message())
    spare = time_limit - comparison_seconds(config, budget, impls)
    return replace(budget, max_seconds=max(0.0, min(budget.max_seconds, spare)))


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
