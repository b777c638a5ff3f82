"""Reference (the authors' unfold) vs fast (window offsets over views) attention: latency and memory.

    python benchmarks/fast_vs_reference.py [--threads N] [--device auto|cpu|cuda] [--compile]
                                           [--no-table] [--seconds S]

One process, one module per configuration running both formulations (switched through `impl`),
timed in alternation round by round (convmix.bench.time_alternated: CUDA events on a GPU,
perf_counter elsewhere), so background load hits both alike. Peak memory of a no-grad forward is
measured by convmix.memory.measure_peak_bytes (max_memory_allocated on CUDA, the CPU allocator's
profiled events elsewhere).

Prints, at the default configuration (64->64 channels, 56x56, batch 1, float32): the latency ratio
(median over median) and the peak memory ratio, against the goal of >= 10x faster and >= 5x less
memory; then a table over kernel_att 3-11, stride 1-2 and widths 64-256. With --compile the fast
forward is also timed through torch.compile at the default configuration (compilation excluded).
These are printed ratios, not pass/fail tests: timings vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from convmix.allocator import keep_freed_pages  # noqa: E402
from convmix.bench import Budget, environment, pick_device, time_alternated  # noqa: E402
from convmix.compare import compare_impls, forward_callables  # noqa: E402
from convmix.config import ACmixConfig  # noqa: E402
from convmix.format import human_bytes  # noqa: E402
from convmix.runtime import thread_count  # noqa: E402

GOAL_LATENCY, GOAL_MEMORY = 10.0, 5.0
DEFAULT_BUDGET = Budget(warmup=2, min_rounds=21, max_rounds=400, seconds=10.0)
TABLE_BUDGET = Budget(warmup=1, min_rounds=7, max_rounds=60, seconds=3.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=thread_count(),
                        help="CPU threads for torch (default: $CONVMIX_THREADS, else the CPUs this process "
                        "may use, %(default)s here; the app uses 1, see convmix/runtime.py)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--seconds", type=float, default=DEFAULT_BUDGET.seconds,
                        help="timed seconds at the default configuration (at least 21 rounds)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(fast) at the default")
    parser.add_argument("--no-table", action="store_true", help="only the default configuration")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    keep_freed_pages()  # as the app, the CLI and the other benchmarks do (convmix.runtime.configure_torch)
    device = pick_device(args.device)
    env = environment(device, "float32")
    print(f"torch {env.torch_version} | device {env.device}: {env.device_name} | threads {env.threads}"
          f" | float32 | TF32 matmul {env.tf32_matmul}, cuDNN {env.tf32_cudnn}"
          f" | load average {_load()}")

    config = ACmixConfig()
    budget = Budget(DEFAULT_BUDGET.warmup, DEFAULT_BUDGET.min_rounds, DEFAULT_BUDGET.max_rounds, args.seconds)
    result = compare_impls(config, device=device, budget=budget)
    ref, fast = result.results["reference"], result.results["fast"]
    print(f"\ndefault: {config.describe()}")
    for r in (ref, fast):
        t = r.timing
        print(f"  {r.impl:9s} latency median {t.median_ms:9.2f} ms (IQR {t.p25_ms:.2f}-{t.p75_ms:.2f},"
              f" {t.samples} samples x {t.calls_per_sample} calls) | peak {human_bytes(r.peak_bytes):>10s}"
              f" ({r.peak_bytes:,} B; estimate {r.estimated_peak_bytes:,} B)")
    print(f"  max relative difference of the outputs: {result.max_relative_error:.1e}")
    print(f"  latency ratio reference/fast: {result.latency_ratio:.1f}x (goal >= {GOAL_LATENCY:g}x: "
          f"{'met' if result.latency_ratio >= GOAL_LATENCY else 'NOT met'})")
    print(f"  peak memory ratio reference/fast: {result.memory_ratio:.1f}x (goal >= {GOAL_MEMORY:g}x: "
          f"{'met' if result.memory_ratio >= GOAL_MEMORY else 'NOT met'})")
    if args.compile:
        _compiled(config, device, budget)
    if not args.no_table:
        _table(device)
    print(f"\nload average at the end {_load()}")
    return 0


def _compiled(config: ACmixConfig, device: torch.device, budget: Budget) -> None:
    module = config.build().to(device).eval()
    x = config.make_input(device=device)
    calls = forward_callables(module, x, ("reference", "fast"))
    compiled = torch.compile(module)

    def fast_compiled():
        module.impl = "fast"
        return compiled(x)

    calls["fast+compile"] = fast_compiled
    with torch.no_grad():
        module.impl = "reference"
        ref = module(x)
        error = float((fast_compiled() - ref).norm() / ref.norm())  # compiles (untimed)
        timings = time_alternated(calls, device, budget)
    print(f"\ntorch.compile (default configuration; output differs from the reference by {error:.1e}):")
    for name, t in timings.items():
        ratio = timings["reference"].median_ms / t.median_ms
        print(f"  {name:13s} {t.median_ms:9.2f} ms  reference/this {ratio:6.1f}x")


def _table(device: torch.device) -> None:
    print("\ntable (batch 1, 56x56, float32, head 4, fewer rounds than above):")
    header = (f"{'width':>5s} {'ka':>3s} {'s':>2s} | {'ref ms':>9s} {'fast ms':>8s} {'speed-up':>8s} | "
              f"{'ref peak':>10s} {'fast peak':>10s} {'mem ratio':>9s} | {'max rel diff':>12s}")
    print(header)
    print("-" * len(header))
    for width in (64, 128, 256):
        for kernel_att in (3, 5, 7, 9, 11):
            for stride in (1, 2):
                config = ACmixConfig(in_planes=width, out_planes=width, kernel_att=kernel_att, stride=stride)
                r = compare_impls(config, device=device, budget=TABLE_BUDGET)
                ref, fast = r.results["reference"], r.results["fast"]
                print(f"{width:5d} {kernel_att:3d} {stride:2d} | {ref.timing.median_ms:9.2f} "
                      f"{fast.timing.median_ms:8.2f} {r.latency_ratio:7.1f}x | "
                      f"{human_bytes(ref.peak_bytes):>10s} {human_bytes(fast.peak_bytes):>10s} "
                      f"{r.memory_ratio:8.1f}x | {r.max_relative_error:12.1e}", flush=True)


def _load() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
