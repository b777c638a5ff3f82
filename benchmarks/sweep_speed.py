"""Configurations measured per minute by a sweep, the old way and the new way, side by side in one run.

Two sweeps, each measured the old way and the new way in alternation (old/new, then new/old, ...):

  * the command line: `python -m convmix sweep --kernel-att 3 5 7 --head 1 4 --stride 1 2 --size 56`
    (12 configurations), a fresh process each time, timed from start to exit;
  * the explorer: what the page's "Measure" button does, click after click (plan a click from the
    time estimates, then measure within the server's memory budget and time limit), over
    configurations spread evenly across the page's default sweep; in this process, warmed first
    (the time estimates' probes and the roofline's peaks done), as on a server that has measured
    before.

The old way: the timing stops only when the budget's seconds have passed (no early stop: precision
0), with the intra-op threads the process had before sweeps chose their own (convmix.runtime: one
per usable CPU), ACmix's parts timed alone on tensors captured by a forward of their own
(benchmarks/parts_alone.py), and the command line's first peak-memory measurement importing
torch._inductor (torch.profiler.profile's first use did). The new way: the stopping rule
(convmix.bench.settled, the CLI's --precision), the sweep's thread choice
(convmix.sweep.sweep_threads) and the parts clocked inside ACmix's own forward
(convmix.bench.PartClock).

    python benchmarks/sweep_speed.py [--repeats 2] [--explorer-configs 12] [--threads N] [--old-threads N]
                                     [--same-threads] [--only cli|explorer] [--loaded]

`--same-threads` runs the old way with the new way's threads: the stopping rule's share of the gain,
and the medians of both ways side by side (they agree within the noise when the rule keeps their
meaning). `--loaded` runs everything beside a process that keeps one core busy (benchmarks/load.py's
bounded background load), as on a shared server. Timings on a shared machine vary with its load: the load average is printed before and
after, and each repeat's figures are printed as they come.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.parts_alone import parts_timed_alone  # noqa: E402
from convmix import bench, sweep  # noqa: E402
from convmix.budget import memory_budget, time_limit  # noqa: E402
from convmix.config import ACmixConfig  # noqa: E402
from convmix.presets import DEFAULT_PRESET, PRESETS  # noqa: E402
from convmix.runtime import configure_torch, thread_count  # noqa: E402

CLI_SWEEP = ["--kernel-att", "3", "5", "7", "--head", "1", "4", "--stride", "1", "2", "--size", "56"]
# The old command line: its first peak-memory measurement imported torch._inductor (through
# torch.profiler.profile), it timed ACmix's parts alone, and its budget warmed ACmix and its parts
# up once more after the forward that captured the parts' inputs; `--precision 0` turns the early
# stop off.
OLD_CLI = """
import sys, torch._inductor
from convmix import bench
from convmix.__main__ import main
from benchmarks.parts_alone import parts_timed_alone
from benchmarks.sweep_speed import old_budget
bench.BUDGETS["standard"] = old_budget(bench.BUDGETS["standard"])
with parts_timed_alone():
    code = main(sys.argv[1:])
sys.exit(code)
"""
MAX_PLANNED = 24  # as pages/explorer.py: configurations whose time is estimated to plan one click


def old_budget(new: bench.Budget) -> bench.Budget:
    """The old way's timing: no early stop, and one more warm-up pass for every callable (with
    `warmed`, ACmix and its parts then get the one call each that the old warm-up gave them)."""
    return replace(new, precision=None, warmup=new.warmup + 1)


def cli_once(way: str, threads: int | None, out: Path) -> tuple[float, pd.DataFrame]:
    if way == "old":
        command = [sys.executable, "-c", OLD_CLI, "sweep", *CLI_SWEEP, "--precision", "0"]
    else:
        command = [sys.executable, "-m", "convmix", "sweep", *CLI_SWEEP]
    command += ["--threads", str(threads or "auto"), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{way} command line failed:\n{done.stderr[-2000:]}")
    return seconds, pd.read_csv(out)


def explorer_configs(count: int) -> list[ACmixConfig]:
    configs = sweep.expand_grid(ACmixConfig(), PRESETS[DEFAULT_PRESET].axes_dict()).configs
    step = max(1, len(configs) // count)
    return configs[::step][:count]


def explorer_once(configs: list[ACmixConfig], effort: bench.Budget, threads: int,
                  way: str) -> tuple[float, pd.DataFrame, int]:
    """Click after click as pages/explorer.py does until every configuration is measured (or left
    out by the plan); (seconds, rows, clicks)."""
    with parts_timed_alone() if way == "old" else nullcontext():
        return _clicks(configs, effort, threads)


def _clicks(configs: list[ACmixConfig], effort: bench.Budget, threads: int) -> tuple[float, pd.DataFrame, int]:
    torch.set_num_threads(threads)
    cap, limit = time_limit(), memory_budget()
    pending, rows, clicks = list(configs), {}, 0
    start = time.perf_counter()
    while pending:
        clicks += 1
        plan = sweep.plan_batch(pending, cap, lambda c: (bench.measurement_seconds(c, "reference", effort),
                                                         bench.expected_seconds(c, "reference", effort)),
                                MAX_PLANNED)
        click = time.monotonic()
        for config in plan.batch:
            if time.monotonic() - click > cap:
                break
            try:
                rows[config] = bench.measure_config(config, device="cpu", budget=effort, memory_limit=limit,
                                                    time_limit=cap)
            except bench.MeasureError as err:
                print(f"    {sweep.short_id(config)}: not measured: {err}")
            pending.remove(config)
        pending = [c for c in pending if c not in plan.too_slow]
    seconds = time.perf_counter() - start
    return seconds, sweep.sweep_frame(list(rows), rows), clicks


def per_minute(count: int, seconds: float) -> float:
    return 60.0 * count / seconds


TIMED_COLUMNS = {"latency_ms": "ACmix", **{f"{n}_ms": n for n in (*bench.PARTS, *bench.BASELINES)}}


def agreement(old: list[pd.DataFrame], new: list[pd.DataFrame]) -> str:
    """The new way's medians against the old way's, configuration by configuration (each way's
    median over its runs): ACmix's, each part's (clocked inside the forward against timed alone)
    and each baseline's."""
    keys = list(sweep.CONFIG_COLUMNS)

    def pooled(frames: list[pd.DataFrame]) -> pd.DataFrame:
        rows = pd.concat(frames, ignore_index=True)
        return rows.groupby(keys, as_index=False).agg(**{c: (c, "median") for c in TIMED_COLUMNS},
                                                      timed_samples=("timed_samples", "median"),
                                                      threads=("threads", "first"))

    both = pooled(old).merge(pooled(new), on=keys, suffixes=("_old", "_new"))
    if both.empty or (both["threads_old"] != both["threads_new"]).any():
        return "medians not compared (different threads)"
    ratios = []
    for column, name in TIMED_COLUMNS.items():
        ratio = both[f"{column}_new"] / both[f"{column}_old"]
        ratios.append(f"{name} {statistics.geometric_mean(ratio):.3f} ({ratio.min():.2f} to {ratio.max():.2f})")
    return ("median new/old per configuration, geometric mean (range): " + ", ".join(ratios)
            + f"; rounds per configuration, median: old {both['timed_samples_old'].median():.0f}, "
            f"new {both['timed_samples_new'].median():.0f}")


def report(name: str, count: int, times: dict[str, list[float]]) -> None:
    old, new = (statistics.median(times[w]) for w in ("old", "new"))
    print(f"{name}: old {per_minute(count, old):.1f} configurations/min (median of {len(times['old'])} runs, "
          f"{old:.1f} s), new {per_minute(count, new):.1f} configurations/min ({new:.1f} s): "
          f"{old / new:.2f}× as many per minute; runs paired: "
          + ", ".join(f"{o / n:.2f}×" for o, n in zip(times["old"], times["new"], strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--explorer-configs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None,
                        help="the new way's threads (default: the sweep's choice, convmix.sweep.sweep_threads)")
    parser.add_argument("--old-threads", type=int, default=thread_count(),
                        help="the old way's threads (default: one per usable CPU, as before)")
    parser.add_argument("--same-threads", action="store_true", help="the old way with the new way's threads")
    parser.add_argument("--only", choices=("cli", "explorer"), default=None)
    parser.add_argument("--loaded", action="store_true",
                        help="beside a process that keeps one core busy (at most --load-seconds)")
    parser.add_argument("--load-seconds", type=float, default=1800.0)
    args = parser.parse_args()
    configure_torch()
    if not args.loaded:
        return measure(args)
    from benchmarks.load import BusyCore

    with BusyCore(args.load_seconds) as busy:
        print(f"background load: one spinning process pinned to CPU {busy.cpu}")
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    new_threads = args.threads or sweep.sweep_threads()
    threads = {"old": new_threads if args.same_threads else args.old_threads, "new": new_threads}
    new_effort = bench.BUDGETS["standard"]
    efforts = {"old": old_budget(new_effort), "new": new_effort}
    print(f"{os.cpu_count()} CPUs; threads old {threads['old']}, new {threads['new']}; budget standard; "
          f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")

    if args.only in (None, "cli"):
        times: dict[str, list[float]] = {"old": [], "new": []}
        rows: dict[str, list[pd.DataFrame]] = {"old": [], "new": []}
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for way in ("old", "new") if repeat % 2 == 0 else ("new", "old"):
                    # The new way chooses its threads itself unless told (they are in its rows).
                    chosen = None if way == "new" and not args.threads and not args.same_threads else threads[way]
                    seconds, frame = cli_once(way, chosen, Path(tmp) / f"{way}.csv")
                    times[way].append(seconds)
                    rows[way].append(frame)
                    print(f"  command line, {way}: {len(frame)} configurations in {seconds:.1f} s "
                          f"({int(frame['threads'].iloc[0])} threads)", flush=True)
        count = len(rows["new"][0])
        report(f"command line ({count} configurations)", count, times)
        print("  " + agreement(rows["old"], rows["new"]))

    if args.only in (None, "explorer"):
        configs = explorer_configs(args.explorer_configs)
        for way in ("old", "new"):  # warm: the estimates' probes and the roofline's peaks, as on a used server
            torch.set_num_threads(threads[way])
            for config in configs:
                bench.expected_seconds(config, "reference", efforts[way])
            bench.measure_config(configs[0].with_(height=8, width=8), device="cpu", budget=bench.BUDGETS["quick"])
        times = {"old": [], "new": []}
        rows = {"old": [], "new": []}
        for repeat in range(args.repeats):
            for way in ("old", "new") if repeat % 2 == 0 else ("new", "old"):
                seconds, frame, clicks = explorer_once(configs, efforts[way], threads[way], way)
                times[way].append(seconds)
                rows[way].append(frame)
                print(f"  explorer, {way}: {len(frame)} configurations in {seconds:.1f} s, {clicks} clicks",
                      flush=True)
        report(f"explorer ({len(configs)} configurations of the default sweep)", len(configs), times)
        print("  " + agreement(rows["old"], rows["new"]))
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
