"""Command line: `python -m convmix sweep ...` measures a hyperparameter grid and writes a result file.

Example: python -m convmix sweep --kernel-att 3 5 7 --head 1 4 --size 56 --out results.csv
         python -m convmix sweep --preset resnet-stages --out resnet.csv

Every flag that names a hyperparameter takes one or more values; the sweep is their product.
`--preset` starts from one of the explorer's presets (convmix.presets); a flag given beside it
replaces that axis's values. `--layer` sets the channels, input size and stride of ACmix layers
of the authors' ResNet, so it cannot be combined with --in-planes, --out-planes, --size or --stride.
Combinations ACmix cannot run are skipped with a note on stderr; progress goes to stderr too; the
CSV (one row per configuration, the columns of convmix.sweep.REQUIRED_COLUMNS first) goes to --out,
or to stdout without it. Exit status: 0 when at least one configuration was written, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from .cli_args import number_in, whole_number_in
from .config import LIMITS, ACmixConfig
from .constraints import VARIANTS
from .load import CpuSnapshot, cpu_snapshot
from .train_cli import add_train_parser


def _positive(name: str):
    return whole_number_in(*LIMITS[name])


_percent = number_in(0, 100)


def _threads(text: str) -> int | None:
    """'auto' -> None (convmix.sweep.sweep_threads chooses); else a whole number of threads."""
    from .runtime import MAX_THREADS

    if text.strip().lower() == "auto":
        return None
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{text!r} is not auto or a whole number from 1 to {MAX_THREADS:,}")
    return int(text)


def _size(text: str) -> tuple[int, int]:
    """'56' -> (56, 56); '32x48' -> (32, 48)."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use N or HxW, e.g. 56 or 32x48")
    height = _positive("height")(parts[0])
    width = _positive("width")(parts[-1])
    return height, width


def build_parser() -> argparse.ArgumentParser:
    from .bench import BUDGETS, CONFIDENCE, PRECISION, TORCH_DTYPES, available_impls
    from .presets import PRESETS, RESNET_LAYERS

    parser = argparse.ArgumentParser(prog="python -m convmix", description="convmix command line")
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser(
        "sweep",
        help="measure a hyperparameter grid and write a CSV result file",
        description="Measure ACmix over the product of the given values and write one CSV row per "
        "configuration: exact parameters, multiply-adds and FLOPs, and (unless --counts-only) latency "
        "with its quartiles, the parts and baselines, peak memory and the roofline floor.",
    )
    default = ACmixConfig()
    presets = ", ".join(f"{p.name} ({', '.join(a for a, _v in p.axes)})" for p in PRESETS.values())
    sweep.add_argument("--preset", choices=list(PRESETS), default=None,
                       help=f"start from one of the explorer's presets: {presets}")
    sweep.add_argument("--layer", nargs="+", choices=list(RESNET_LAYERS), default=None, metavar="NAME",
                       help="ACmix layers of the authors' ResNet (channels, size and stride at a 224x224 input): "
                       + ", ".join(s.label.replace("·", "") for s in RESNET_LAYERS.values()))
    sweep.add_argument("--in-planes", nargs="+", type=_positive("in_planes"), default=None,
                       metavar="N", help=f"input channels (default {default.in_planes})")
    sweep.add_argument("--out-planes", nargs="+", type=_positive("out_planes"), default=None, metavar="N",
                       help="output channels (default: equal to --in-planes, value by value)")
    sweep.add_argument("--kernel-att", nargs="+", type=_positive("kernel_att"), default=None,
                       metavar="N", help=f"attention window (default {default.kernel_att})")
    sweep.add_argument("--head", nargs="+", type=_positive("head"), default=None, metavar="N",
                       help=f"heads (default {default.head})")
    sweep.add_argument("--stride", nargs="+", type=_positive("stride"), default=None, metavar="N",
                       help=f"stride (default {default.stride})")
    sweep.add_argument("--kernel-conv", nargs="+", type=_positive("kernel_conv"), default=None,
                       metavar="N", help=f"conv kernel (default {default.kernel_conv})")
    sweep.add_argument("--dilation", nargs="+", type=_positive("dilation"), default=None, metavar="N",
                       help=f"dilation of the attention window (default {default.dilation})")
    sweep.add_argument("--size", nargs="+", type=_size, default=None,
                       metavar="N|HxW", help=f"input size (default {default.height})")
    sweep.add_argument("--batch", nargs="+", type=_positive("batch"), default=None, metavar="N",
                       help=f"batch size (default {default.batch})")
    sweep.add_argument("--variant", choices=VARIANTS, default=default.variant,
                       help="official: the authors' code; fixed: the repaired variant (default %(default)s)")
    sweep.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu or cuda")
    sweep.add_argument("--dtype", choices=list(TORCH_DTYPES), default="float32",
                       help="float32; float16 and bfloat16 on CUDA only (default %(default)s)")
    sweep.add_argument("--impl", choices=available_impls(), default="reference",
                       help="attention formulation registered in convmix.acmix.ATTENTION_IMPLS "
                       "(default %(default)s: the authors' unfold)")
    sweep.add_argument("--budget", choices=list(BUDGETS), default="standard",
                       help="timing effort per configuration, in rounds (each times ACmix, its parts and the "
                       "baselines once): " + ", ".join(f"{name} {b.min_rounds} to {b.max_rounds}"
                                                       for name, b in BUDGETS.items())
                       + "; past the least rounds, timing ends after "
                       + " / ".join(f"{b.seconds:g}" for b in BUDGETS.values())
                       + " s, or earlier by --precision (default %(default)s)")
    sweep.add_argument("--precision", type=_percent, default=PRECISION * 100, metavar="PERCENT",
                       help="stopping rule: once the budget's least rounds are done, stop as soon as the "
                       f"{CONFIDENCE * 100:.0f}%% confidence interval of every timed median (from order statistics, "
                       "so 5 rounds at least) lies within ±PERCENT of it, else go on until the budget's "
                       "seconds or rounds run out (default %(default)g; 0: no early stop)")
    sweep.add_argument("--threads", type=_threads, default=None, metavar="N|auto",
                       help="intra-op threads while measuring; default auto: $CONVMIX_THREADS when set, "
                       "else one per CPU that other processes leave idle (what they kept busy since the "
                       "command started, at least half a second, or the 1-minute load average if higher): "
                       "more threads than free cores slow every measurement many times over; the count is "
                       "written in every row")
    sweep.add_argument("--memory-limit", default=None, metavar="BYTES",
                       help="the most this process may hold (e.g. 4GiB): skip configurations whose "
                       "measurement, with everything the process already holds, would need more; "
                       "default: $CONVMIX_MEMORY_BUDGET or 1 GiB on the CPU, none on CUDA")
    sweep.add_argument("--time-limit", default=None, metavar="SECONDS",
                       help="skip configurations whose measurement is estimated to take longer "
                       "(CPU only; e.g. 60); default: none")
    sweep.add_argument("--counts-only", action="store_true",
                       help="write exact counts only, without measuring latency or memory")
    sweep.add_argument("--out", default=None, metavar="FILE.csv", help="output file (default: stdout)")
    add_train_parser(commands)
    return parser


_SHAPE_FLAGS = {"in_planes": "--in-planes", "out_planes": "--out-planes", "size": "--size", "stride": "--stride"}


def grid_axes(args: argparse.Namespace) -> tuple[list[tuple[int, int]], dict[str, list]]:
    """The input sizes and the axes of the sweep: the preset's axes, then every flag given (a flag
    replaces the preset's values for its axis). Raises ValueError on a contradiction."""
    from .presets import PRESETS

    default = ACmixConfig()
    axes: dict[str, list] = PRESETS[args.preset].axes_dict() if args.preset else {}
    layer = args.layer if args.layer is not None else axes.pop("layer", None)
    axes.pop("layer", None)
    if layer is not None:
        given = [flag for name, flag in _SHAPE_FLAGS.items() if getattr(args, name) is not None]
        if given:
            raise ValueError(f"--layer (or the preset) sets the channels, input size and stride of each layer; "
                             f"leave out {', '.join(given)}.")
        axes = {"layer": list(layer), **axes}
        sizes = [(default.height, default.width)]
    else:
        sizes = args.size or [(default.height, default.width)]
        if args.out_planes is not None:
            axes.pop("channels", None)
            axes["in_planes"] = args.in_planes or [default.in_planes]
            axes["out_planes"] = args.out_planes
        elif args.in_planes is not None or "channels" not in axes:
            axes.pop("channels", None)
            axes["channels"] = args.in_planes or [default.in_planes]  # in_planes = out_planes, value by value
    for name in ("kernel_att", "head", "stride", "kernel_conv", "dilation", "batch"):
        given = getattr(args, name)
        if given is not None:
            axes[name] = given
        elif name not in axes and not (name == "stride" and "layer" in axes):
            axes[name] = [getattr(default, name)]
    return sizes, axes


def run_sweep(args: argparse.Namespace, started: CpuSnapshot | None = None) -> int:
    """The sweep command; `started` is a /proc/stat snapshot from the command's start, from which
    the CPUs other processes leave idle are counted (convmix.sweep.sweep_threads)."""
    import torch

    from . import bench
    from .budget import configured_budget, parse_bytes, parse_seconds
    from .sweep import (
        Grid,
        SweepError,
        expand_grid,
        idle_cpus,
        measure_configs,
        short_id,
        sweep_frame,
        to_csv,
    )
    from .sweep import sweep_threads as choose_threads

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        device = bench.pick_device(args.device)
        if not args.counts_only:
            bench.check_dtype(device, args.dtype)
        if args.memory_limit:
            limit = parse_bytes(args.memory_limit)
        elif device.type == "cuda":
            limit = None
        else:
            limit, note = configured_budget()
            if note:
                raise ValueError(note)
        seconds = parse_seconds(args.time_limit) if args.time_limit else None
    except ValueError as err:
        say(f"error: {err}")
        return 2

    grid = Grid()
    try:
        sizes, axes = grid_axes(args)
        for height, width in dict.fromkeys(sizes):
            part = expand_grid(ACmixConfig(height=height, width=width, variant=args.variant), axes)
            grid.configs += part.configs
            grid.skipped += part.skipped
    except (SweepError, ValueError) as err:
        say(f"error: {err}")
        return 2
    for note in grid.skip_notes(limit=20):
        say(f"note: {note}")
    configs = grid.configs
    if not configs:
        say("error: no configuration in this sweep can run (see the notes above); nothing written.")
        return 2

    measured: dict = {}
    if not args.counts_only:
        budget = replace(bench.BUDGETS[args.budget], precision=args.precision / 100 or None)
        threads = torch.get_num_threads()
        torch.set_num_threads(choose_threads(args.threads, idle=lambda: idle_cpus(since=started)))
        say(f"measuring {len(configs):,} configuration(s) on {bench.device_name(device)} ({device.type}, "
            f"{args.dtype}, impl {args.impl}, {bench.environment(device, args.dtype).threads} threads)")

        def progress(i, n, config, row, error):
            if error:
                say(f"[{i}/{n}] {short_id(config)}: skipped: {error}")
            else:
                say(f"[{i}/{n}] {short_id(config)}: {row['latency_ms']:,.3f} ms "
                    f"(IQR {row['latency_ms_p25']:,.3f} to {row['latency_ms_p75']:,.3f}, "
                    f"{row['timed_samples']} rounds), peak {row['peak_bytes']:,} bytes")

        try:
            measured, _ = measure_configs(
                configs,
                lambda c: bench.measure_config(c, device=device, dtype=args.dtype, impl=args.impl,
                                               budget=budget, memory_limit=limit, time_limit=seconds),
                progress,
            )
        finally:
            torch.set_num_threads(threads)  # the sweep's choice is for its measurements only
        if not measured:
            say("error: no configuration could be measured (see above); nothing written.")
            return 2
        configs = [c for c in configs if c in measured]
    data = to_csv(sweep_frame(configs, measured))
    if args.out:
        try:
            with open(args.out, "wb") as f:
                f.write(data)
        except OSError as err:
            say(f"error: cannot write {args.out}: {err.strerror}")
            return 2
        say(f"wrote {len(configs):,} row(s) to {args.out}")
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


def configure_threads() -> str | None:
    """Set torch's threads for a lone measurement (convmix.runtime); the error when
    $CONVMIX_THREADS cannot be used (then nothing is set)."""
    from .runtime import MEASUREMENT, configure_torch, thread_setting

    _threads, note = thread_setting(MEASUREMENT)
    if note:
        return note
    configure_torch(MEASUREMENT)
    return None


def main(argv: list[str] | None = None) -> int:
    # Other processes' CPU use is counted from here, through the parser's imports and the grid (this
    # process's own time is left out), so that choosing a sweep's threads waits little or not at all.
    started = cpu_snapshot()
    args = build_parser().parse_args(argv)
    if args.command in ("sweep", "train"):
        problem = configure_threads()
        if problem:
            print(f"error: {problem}.", file=sys.stderr)
            return 2
    if args.command == "sweep":
        try:
            return run_sweep(args, started)
        except KeyboardInterrupt:
            print("interrupted; nothing written.", file=sys.stderr)
            return 130
    if args.command == "train":
        from .train_cli import run_train

        return run_train(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
