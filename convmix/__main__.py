"""Command line: `python -m convmix sweep ...` measures a hyperparameter grid and writes a result file.

Example: python -m convmix sweep --kernel-att 3 5 7 --head 1 4 --size 56 --out results.csv

Every flag that names a hyperparameter takes one or more values; the sweep is their product.
Combinations ACmix cannot run are skipped with a note on stderr; progress goes to stderr too; the
CSV (one row per configuration, the columns of convmix.sweep.REQUIRED_COLUMNS first) goes to --out,
or to stdout without it. Exit status: 0 when at least one configuration was written, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from .config import LIMITS, ACmixConfig
from .constraints import VARIANTS
from .train_cli import add_train_parser


def _positive(name: str):
    lo, hi = LIMITS[name]

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo} to {hi:,}")
        return value

    return parse


def _size(text: str) -> tuple[int, int]:
    """'56' -> (56, 56); '32x48' -> (32, 48)."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use N or HxW, e.g. 56 or 32x48")
    height = _positive("height")(parts[0])
    width = _positive("width")(parts[-1])
    return height, width


def build_parser() -> argparse.ArgumentParser:
    from .bench import BUDGETS, TORCH_DTYPES, available_impls

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
    sweep.add_argument("--in-planes", nargs="+", type=_positive("in_planes"), default=[default.in_planes],
                       metavar="N", help=f"input channels (default {default.in_planes})")
    sweep.add_argument("--out-planes", nargs="+", type=_positive("out_planes"), default=None, metavar="N",
                       help="output channels (default: equal to --in-planes, value by value)")
    sweep.add_argument("--kernel-att", nargs="+", type=_positive("kernel_att"), default=[default.kernel_att],
                       metavar="N", help=f"attention window (default {default.kernel_att})")
    sweep.add_argument("--head", nargs="+", type=_positive("head"), default=[default.head], metavar="N",
                       help=f"heads (default {default.head})")
    sweep.add_argument("--stride", nargs="+", type=_positive("stride"), default=[default.stride], metavar="N",
                       help=f"stride (default {default.stride})")
    sweep.add_argument("--kernel-conv", nargs="+", type=_positive("kernel_conv"), default=[default.kernel_conv],
                       metavar="N", help=f"conv kernel (default {default.kernel_conv})")
    sweep.add_argument("--size", nargs="+", type=_size, default=[(default.height, default.width)],
                       metavar="N|HxW", help=f"input size (default {default.height})")
    sweep.add_argument("--batch", nargs="+", type=_positive("batch"), default=[default.batch], metavar="N",
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
                       help="timing effort per configuration (default %(default)s)")
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


def grid_axes(args: argparse.Namespace) -> dict[str, list]:
    axes: dict[str, list] = {}
    if args.out_planes is None:
        axes["channels"] = args.in_planes  # in_planes = out_planes, value by value
    else:
        axes["in_planes"], axes["out_planes"] = args.in_planes, args.out_planes
    axes.update(kernel_att=args.kernel_att, head=args.head, kernel_conv=args.kernel_conv, stride=args.stride,
                batch=args.batch)
    return axes


def run_sweep(args: argparse.Namespace) -> int:
    from . import bench
    from .budget import configured_budget, parse_bytes, parse_seconds
    from .sweep import Grid, SweepError, expand_grid, measure_configs, short_id, sweep_frame, to_csv

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
        for height, width in dict.fromkeys(args.size):
            part = expand_grid(ACmixConfig(height=height, width=width, variant=args.variant), grid_axes(args))
            grid.configs += part.configs
            grid.skipped += part.skipped
    except SweepError as err:
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
        budget = bench.BUDGETS[args.budget]
        say(f"measuring {len(configs):,} configuration(s) on {bench.device_name(device)} ({device.type}, "
            f"{args.dtype}, impl {args.impl}, {bench.environment(device, args.dtype).threads} threads)")

        def progress(i, n, config, row, error):
            if error:
                say(f"[{i}/{n}] {short_id(config)}: skipped: {error}")
            else:
                say(f"[{i}/{n}] {short_id(config)}: {row['latency_ms']:,.3f} ms "
                    f"(IQR {row['latency_ms_p25']:,.3f} to {row['latency_ms_p75']:,.3f}), "
                    f"peak {row['peak_bytes']:,} bytes")

        measured, _ = measure_configs(
            configs,
            lambda c: bench.measure_config(c, device=device, dtype=args.dtype, impl=args.impl,
                                           budget=budget, memory_limit=limit, time_limit=seconds),
            progress,
        )
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sweep":
        from .runtime import configure_torch

        configure_torch()
        try:
            return run_sweep(args)
        except KeyboardInterrupt:
            print("interrupted; nothing written.", file=sys.stderr)
            return 130
    if args.command == "train":
        from .runtime import configure_torch
        from .train_cli import run_train

        configure_torch()
        return run_train(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
