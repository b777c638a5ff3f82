"""How long the explorer page's default latency sweep takes on this machine.

Runs exactly what one click on the page's "Measure" button does at the default settings: the
sidebar's default configuration, the page's default axes (convmix.sweep.DEFAULT_VARIED with their
default values) and the default timing effort ("standard"), in a fresh process, so the one-off
peak measurement (matmul and copy for the roofline) is included as it is on a first click.

    python benchmarks/explorer_default_sweep.py [--budget quick|standard|thorough]

Prints progress per configuration and the total; the page aims for under 30 seconds. Timings on a
shared machine vary with its load, so the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from convmix import bench, sweep  # noqa: E402
from convmix.config import ACmixConfig  # noqa: E402
from convmix.runtime import configure_torch  # noqa: E402

TARGET_SECONDS = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=list(bench.BUDGETS), default="standard")
    args = parser.parse_args()
    configure_torch()
    axes = {name: list(sweep.AXES[name].default) for name in sweep.DEFAULT_VARIED}
    grid = sweep.expand_grid(ACmixConfig(), axes)
    device = bench.pick_device("auto")
    env = bench.environment(device, "float32")
    print(f"default sweep: {', '.join(f'{k} in {v}' for k, v in axes.items())} on {ACmixConfig().describe()}")
    print(f"{len(grid.configs)} configurations, budget {args.budget!r}, on {env.device_name} ({device.type}, "
          f"{env.threads} threads, torch {env.torch_version})")
    print(f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    start = time.perf_counter()
    for i, config in enumerate(grid.configs, 1):
        t0 = time.perf_counter()
        row = bench.measure_config(config, device=device, budget=bench.BUDGETS[args.budget])
        print(f"[{i}/{len(grid.configs)}] {sweep.short_id(config)}: ACmix {row['latency_ms']:,.2f} ms "
              f"(IQR {row['latency_ms_p25']:,.2f} to {row['latency_ms_p75']:,.2f}, {row['timed_samples']} "
              f"rounds), measured in {time.perf_counter() - t0:.1f} s", flush=True)
    total = time.perf_counter() - start
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"total: {total:.1f} s for {len(grid.configs)} configurations "
          f"({total / TARGET_SECONDS:.2f} × the {TARGET_SECONDS:.0f} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
