"""How close convmix.speed's time estimate comes to measured forwards, side by side in one run.

For each configuration: the estimated seconds of one float32 forward (probes measured here, before
and after convmix.speed.SAFETY), the measured median of a few forwards, and their ratio (above 1:
the estimate errs on the slow side, which refuses early rather than late). Then the estimated duration of the shortest explorer
measurement (standard effort) against the per-request limit.

    python benchmarks/time_estimate.py [--repeats 3]

On a machine shared with other work the measured times and the probes both vary; ratios are what
to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from convmix import bench, speed  # noqa: E402
from convmix.budget import DEFAULT_TIME_LIMIT  # noqa: E402
from convmix.config import ACmixConfig  # noqa: E402
from convmix.runtime import configure_torch  # noqa: E402

CONFIGS = {
    "default 64→64 56×56": ACmixConfig(),
    "default, batch 8": ACmixConfig(batch=8),
    "256 ch, head 8, 28×28, batch 4": ACmixConfig(in_planes=256, out_planes=256, head=8, height=28, width=28, batch=4),
    "512 ch, ka 3, 14×14, batch 2": ACmixConfig(in_planes=512, out_planes=512, kernel_att=3, head=8, height=14,
                                                width=14, batch=2),
    "ka 15 dilated, 64×64": ACmixConfig(kernel_att=15, dilation=2, height=64, width=64, variant="fixed"),
    "kc 15, head 32, 48×48, batch 4": ACmixConfig(in_planes=8, out_planes=64, kernel_att=1, head=32, kernel_conv=15,
                                                  height=48, width=48, batch=4, variant="fixed"),
    "64→512, head 1, kc 15, 16×16": ACmixConfig(in_planes=64, out_planes=512, head=1, kernel_conv=15, height=16,
                                                width=16, variant="fixed"),
}


def measured(config: ACmixConfig, repeats: int) -> float:
    module, x = config.build().eval(), config.make_input()
    with torch.no_grad():
        module(x)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_torch()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 forwards on the CPU")
    print(f"{'configuration':<34} {'estimate s':>11} {'measured s':>11} {'ratio':>7} {'unscaled':>9} "
          f"{'measure est. s':>15}")
    ratios = []
    for name, config in CONFIGS.items():
        start = time.perf_counter()
        estimate = speed.forward_seconds(config).total
        probing = time.perf_counter() - start
        real = measured(config, args.repeats)
        ratio = estimate / real
        ratios.append(ratio)
        whole = bench.measurement_seconds(config, "reference", bench.BUDGETS["standard"])
        print(f"{name:<34} {estimate:11.3f} {real:11.3f} {ratio:7.2f} {ratio / speed.SAFETY:9.2f} "
              f"{whole:15.1f}   (probes {probing:.2f} s)")
    print(f"\nestimate / measured: median {statistics.median(ratios):.2f}, range {min(ratios):.2f} to "
          f"{max(ratios):.2f}; the server refuses measurements estimated above {DEFAULT_TIME_LIMIT:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
