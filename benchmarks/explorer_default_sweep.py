"""How long one click of the explorer's "Measure" button takes at the default settings, against its plan.

Runs what the page does: the sidebar's default configuration, the page's default sweep (the preset
convmix.presets.DEFAULT_PRESET), the default timing effort ("standard") and the server's time limit
(convmix.budget.time_limit, 30 s unless configured). The page plans the click from time estimates
(convmix.sweep.plan_batch): which configurations fit the limit, and which are estimated beyond it
even alone. This script prints that plan, then measures the planned batch in a fresh process (so
the one-off peak measurement for the roofline is included, as on a first click) and prints the
measured time beside the estimate, as a ratio.

    python benchmarks/explorer_default_sweep.py [--budget quick|standard|thorough] [--clicks N]

`--clicks N` plans and measures N clicks one after the other (default 1). Timings on a shared
machine vary with its load, so the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from convmix import bench, sweep  # noqa: E402
from convmix.budget import time_limit  # noqa: E402
from convmix.config import ACmixConfig  # noqa: E402
from convmix.presets import DEFAULT_PRESET, PRESETS  # noqa: E402
from convmix.runtime import configure_torch  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=list(bench.BUDGETS), default="standard")
    parser.add_argument("--clicks", type=int, default=1)
    args = parser.parse_args()
    configure_torch()
    effort = bench.BUDGETS[args.budget]
    axes = PRESETS[DEFAULT_PRESET].axes_dict()
    grid = sweep.expand_grid(ACmixConfig(), axes)
    device = bench.pick_device("auto")
    env = bench.environment(device, "float32")
    limit = time_limit()
    print(f"default sweep (preset {DEFAULT_PRESET}): {len(grid.configs)} configurations, budget {args.budget!r}, "
          f"time limit {limit:g} s, on {env.device_name} ({device.type}, {env.threads} threads, "
          f"torch {env.torch_version})")
    print(f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    pending = list(grid.configs)
    for click in range(1, args.clicks + 1):
        if device.type == "cpu":
            plan = sweep.plan_batch(pending, limit, lambda c: (bench.measurement_seconds(c, "reference", effort),
                                                               bench.expected_seconds(c, "reference", effort)))
        else:
            plan = sweep.Plan(batch=list(pending))
        print(f"click {click}: plan {len(plan.batch)} configurations, estimated {plan.seconds:.1f} s; "
              f"{len(plan.too_slow)} estimated beyond the limit")
        start = time.perf_counter()
        done = 0
        for config in plan.batch:
            if time.perf_counter() - start > limit:
                print("  the time limit passed: the rest of the batch waits for the next click")
                break
            t0 = time.perf_counter()
            try:
                row = bench.measure_config(config, device=device, budget=effort, time_limit=limit)
            except bench.MeasureError as err:
                print(f"  {sweep.short_id(config)}: not measured: {err}")
                continue
            done += 1
            pending.remove(config)
            spread = (row["latency_ms_p75"] - row["latency_ms_p25"]) / row["latency_ms"]
            print(f"  {sweep.short_id(config)}: ACmix {row['latency_ms']:,.2f} ms (spread {spread:.0%}, "
                  f"{row['timed_samples']} rounds, others used {row['others_cpu_share']:.0%} of the CPUs), "
                  f"measured in {time.perf_counter() - t0:.1f} s", flush=True)
        total = time.perf_counter() - start
        ratio = f"{total / plan.seconds:.2f} × the estimate" if plan.seconds else "no estimate (not a CPU)"
        print(f"click {click}: {done} measured in {total:.1f} s ({ratio}; {total / limit:.2f} × the limit)")
        pending = [c for c in pending if c not in plan.too_slow]
        if not pending:
            break
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
