"""`python -m convmix train`: train the digits network, print its progress, write a checkpoint.

Example: python -m convmix train --seed 0 --epochs 8 --out model.pt

Prints one line per epoch (training loss, held-out loss and accuracy, the rates of the ACmix
layer) and, last, `held-out accuracy: 0.NNNN`. Exit status 0 when the run finished, 2 for a
configuration that cannot run or a file that cannot be written, 1 when the run stopped early (the
time cap, or a loss that stopped being finite).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cli_args import number_in, whole_number_in
from .train_config import ABLATIONS, LIMITS, LR_LIMITS, TrainConfig


def _int_in(name: str):
    return whole_number_in(*LIMITS[name])


_lr = number_in(*LR_LIMITS)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def add_train_parser(commands) -> argparse.ArgumentParser:
    """The `train` subcommand, added to the subparsers of `python -m convmix`."""
    from .constraints import VARIANTS

    d = TrainConfig()
    train = commands.add_parser(
        "train",
        help="train the digits network (stem conv, ACmix, pooling, linear) and write a checkpoint",
        description="Train a small ACmix network on scikit-learn's 8x8 digits on the CPU, seeded: the same "
        "flags give the same numbers. Prints per-epoch loss and held-out accuracy, last "
        "'held-out accuracy: 0.NNNN'; --out writes a checkpoint that torch.load(..., weights_only=True) reads.",
    )
    train.add_argument("--seed", type=_int_in("seed"), default=d.seed, help="seed (default %(default)s)")
    train.add_argument("--epochs", type=_int_in("epochs"), default=d.epochs, help="epochs (default %(default)s)")
    train.add_argument("--width", type=_int_in("width"), default=d.width,
                       help="channels of the stem and ACmix (default %(default)s)")
    train.add_argument("--kernel-att", type=_int_in("kernel_att"), default=d.kernel_att,
                       help="attention window, odd (default %(default)s)")
    train.add_argument("--head", type=_int_in("head"), default=d.head, help="heads (default %(default)s)")
    train.add_argument("--stride", type=_int_in("stride"), default=d.stride, help="ACmix stride (default %(default)s)")
    train.add_argument("--lr", type=_lr, default=d.lr, help="peak learning rate, cosine to 0 (default %(default)s)")
    train.add_argument("--batch", type=_int_in("batch"), default=d.batch, help="minibatch size (default %(default)s)")
    train.add_argument("--stem-bn", action="store_true", help="BatchNorm after the stem convolution")
    train.add_argument("--ablation", choices=list(ABLATIONS), default=d.ablation,
                       help="; ".join(f"{k}: {v}" for k, v in ABLATIONS.items()) + " (default %(default)s)")
    train.add_argument("--variant", choices=VARIANTS, default=d.variant,
                       help="ACmix variant (default %(default)s; strides that do not divide 8 need fixed)")
    train.add_argument("--time-limit", type=_seconds, default=None, metavar="SECONDS",
                       help="stop the run after this much computing (default: none)")
    train.add_argument("--out", default=None, metavar="FILE.pt", help="write the trained network here")
    return train


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(width=args.width, kernel_att=args.kernel_att, head=args.head, stride=args.stride,
                       lr=args.lr, epochs=args.epochs, batch=args.batch, seed=args.seed, stem_bn=args.stem_bn,
                       ablation=args.ablation, variant=args.variant)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from .constraints import ConfigError
    from .digits import DataError
    from .format import human_bytes
    from .train import Trainer
    from .train_checkpoint import save_checkpoint
    from .train_limits import estimate_run_bytes

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    config = config_from_args(args)
    problems = config.problems()
    if problems:
        for problem in problems:
            say(f"error: {problem.sentence()}")
        return 2
    if args.out:  # fail before training, not after
        out = Path(args.out)
        folder = out.parent if str(out.parent) else Path(".")
        if out.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
            why = "it is a folder" if out.is_dir() else f"{folder} is not a writable folder"
            say(f"error: cannot write {args.out}: {why}")
            return 2
    try:
        trainer = Trainer(config, time_limit_s=args.time_limit)
    except (DataError, ConfigError) as err:
        say(f"error: {err}")
        return 2
    layers = list(trainer.net.acmix_layers())
    params = sum(p.numel() for p in trainer.net.parameters())
    say(f"training the {config.ablation!r} network ({ABLATIONS[config.ablation]}): {params:,} parameters; "
        f"{len(trainer.split.train):,} training and {len(trainer.split.held_out):,} held-out digits; "
        f"{trainer.total_steps:,} steps; memory estimate {human_bytes(estimate_run_bytes(config))}; "
        f"{torch.get_num_threads()} CPU thread(s)")

    def show(record: dict) -> None:
        if record["step"] == 0 or record["step"] % trainer.steps_per_epoch:
            return
        rates = "".join(f", {name} rate1 {record['rate1'][name]:.3f} rate2 {record['rate2'][name]:.3f}"
                        for name in layers)
        print(f"epoch {record['step'] // trainer.steps_per_epoch}/{config.epochs}: train loss "
              f"{record['train_loss']:.4f}, held-out loss {record['held_out_loss']:.4f}, held-out accuracy "
              f"{record['held_out_accuracy']:.4f}{rates} ({record['seconds']:.1f} s)", flush=True)

    try:
        trainer.run(on_log=show)
    except KeyboardInterrupt:
        say("interrupted; nothing written.")
        return 130
    if trainer.stop_reason:
        say(f"stopped early: {trainer.stop_reason}.")
    if args.out:
        try:
            save_checkpoint(trainer, args.out)
        except OSError as err:
            say(f"error: cannot write {args.out}: {err.strerror}")
            return 2
        say(f"wrote {args.out}")
    print(f"held-out accuracy: {trainer.held_out_accuracy:.4f}", flush=True)
    return 1 if trainer.stop_reason else 0
