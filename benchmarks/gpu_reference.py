"""Measure the explorer's standard grid on a CUDA GPU and write the reference data set it ships.

    python benchmarks/gpu_reference.py [--dtypes float32 float16 bfloat16] [--batch 1 32]
                                       [--budget standard] [--out convmix/data/reference/NAME.csv]

The grid is the explorer's default preset (convmix.presets.DEFAULT_PRESET: every ACmix layer shape
of the authors' ResNet at 224×224, kernel_att 3, 5, 7, 9 and head 1, 2, 4, 8), at each batch size
and dtype. Each configuration is measured by convmix.bench.measure_config on the GPU:

  * every call is bracketed by a pair of CUDA events (torch.cuda.Event(enable_timing=True)), and
    the device is synchronised before the events are read;
  * every callable (ACmix, its Stage I, attention path and conv path, the Conv2d and local
    self-attention baselines) is warmed up first (cuDNN picks its algorithms, the caching allocator
    fills), then timed in alternation, round by round, so drift hits all alike;
  * peak memory is the caching allocator's own statistic: torch.cuda.max_memory_allocated after
    reset_peak_memory_stats, minus what was allocated before the forward (convmix.memory);
  * float32 rows record whether TF32 matmuls and convolutions were allowed; float16 and bfloat16
    run the module in that dtype.

The result is a result file (convmix.sweep.REQUIRED_COLUMNS first) that `read_results` accepts; by
default it is written to convmix/data/reference/<device>.csv, where the explorer finds it and shows
its rows of the visitor's sweep beside the server's own, labelled with the device. After the
measurements the script prints, per layer, the float16 and bfloat16 medians as ratios to float32,
measured side by side in this one run.

Without a CUDA device it refuses to run (exit status 2): a reference measured on a CPU is an
ordinary result file (`python -m convmix sweep`).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from convmix import bench, sweep  # noqa: E402
from convmix.config import ACmixConfig  # noqa: E402
from convmix.presets import DEFAULT_PRESET, PRESETS, RESNET_LAYERS  # noqa: E402

DTYPES = ("float32", "float16", "bfloat16")
BATCHES = (1, 32)


def reference_grid(batches: Sequence[int] = BATCHES, axes: dict | None = None) -> list[ACmixConfig]:
    """The standard grid: the default preset's axes at every batch size (official variant)."""
    axes = dict(axes or PRESETS[DEFAULT_PRESET].axes_dict())
    axes["batch"] = list(batches)
    return sweep.expand_grid(ACmixConfig(), axes).configs


def measure_grid(configs: Sequence[ACmixConfig], device: torch.device, dtypes: Sequence[str],
                 budget: bench.Budget, say: Callable[[str], None] = print) -> pd.DataFrame:
    """Every configuration in every dtype, as result rows (configurations that fail are reported and
    left out)."""
    frames = []
    total = len(configs) * len(dtypes)
    done = 0
    for dtype in dtypes:
        measured: dict[ACmixConfig, dict] = {}
        for config in configs:
            done += 1
            try:
                row = bench.measure_config(config, device=device, dtype=dtype, budget=budget)
            except (bench.MeasureError, RuntimeError) as err:
                say(f"[{done}/{total}] {dtype} {sweep.short_id(config)}: not measured: {err}")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            measured[config] = row
            say(f"[{done}/{total}] {dtype} {sweep.short_id(config)}: {row['latency_ms']:,.4f} ms "
                f"(IQR {row['latency_ms_p25']:,.4f} to {row['latency_ms_p75']:,.4f}), peak {row['peak_bytes']:,} B")
        if measured:
            frames.append(sweep.sweep_frame(list(measured), measured))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def dtype_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: the float16 and bfloat16 medians over the float32 median (same run)."""
    keys = [c for c in sweep.CONFIG_COLUMNS if c in df]
    wide = df.pivot_table(index=keys, columns="dtype", values="latency_ms", aggfunc="first")
    out = pd.DataFrame(index=wide.index)
    for dtype in ("float16", "bfloat16"):
        if dtype in wide and "float32" in wide:
            out[f"{dtype} / float32"] = wide[dtype] / wide["float32"]
    return out.reset_index()


def default_out(device: torch.device) -> Path:
    name = re.sub(r"[^a-z0-9]+", "-", bench.device_name(device).lower()).strip("-") or "gpu"
    return sweep.REFERENCE_DIR / f"{name}.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--batch", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--budget", choices=list(bench.BUDGETS), default="standard")
    parser.add_argument("--layer", nargs="+", choices=list(RESNET_LAYERS), default=None,
                        help="only these ResNet layers (default: all)")
    parser.add_argument("--kernel-att", nargs="+", type=int, default=None)
    parser.add_argument("--head", nargs="+", type=int, default=None)
    parser.add_argument("--out", default=None, help="default: convmix/data/reference/<device>.csv")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: torch sees no CUDA device here; this script measures the GPU reference only "
              "(use `python -m convmix sweep` for other devices).", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    axes = PRESETS[DEFAULT_PRESET].axes_dict()
    for name, given in (("layer", args.layer), ("kernel_att", args.kernel_att), ("head", args.head)):
        if given:
            axes[name] = given
    configs = reference_grid(args.batch, axes)
    env = bench.environment(device, "float32")
    print(f"{len(configs)} configurations × {len(args.dtypes)} dtypes on {env.device_name} (torch "
          f"{env.torch_version}, CUDA {torch.version.cuda}, TF32 matmul {env.tf32_matmul}, cuDNN TF32 "
          f"{env.tf32_cudnn}), budget {args.budget!r}", flush=True)
    start = time.perf_counter()
    df = measure_grid(configs, device, args.dtypes, bench.BUDGETS[args.budget],
                      lambda text: print(text, flush=True))
    if df.empty:
        print("error: nothing could be measured; nothing written.", file=sys.stderr)
        return 2
    data = sweep.to_csv(df)
    out = Path(args.out) if args.out else default_out(device)
    sweep.read_results(data, out.name)  # the explorer must accept what is written
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"wrote {len(df):,} rows to {out} in {time.perf_counter() - start:,.0f} s")
    ratios = dtype_ratios(df)
    if len(ratios.columns) > len(sweep.CONFIG_COLUMNS):
        print("median latency against float32, measured side by side in this run:")
        print(ratios.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
