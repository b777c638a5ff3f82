"""The default digits run: held-out accuracy and wall time on one CPU thread; a training step against
the forward of the same batch.

    python benchmarks/train_digits.py [--runs N] [--threads T] [--ablation] [--seconds S]

Goals (issue 14): held-out accuracy at least 0.95, wall time at most 20 s on one thread.
Each run is `Trainer(TrainConfig()).run()`, timed from the loading of the digits to the last
evaluation (the import of torch excluded), with the time estimate `plan_run` makes beforehand.
Wall time depends on what else the machine runs: the process CPU time and the load average are
printed beside it. Then a training step (forward, backward, update) and a no-grad forward of the
same 32 digits are timed in alternation (convmix.bench.time_alternated), so load hits both alike,
and their ratio printed. With --ablation the four networks of the ablation are trained too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from convmix import digits  # noqa: E402
from convmix.bench import Budget, device_name, time_alternated  # noqa: E402
from convmix.train import (  # noqa: E402
    ABLATIONS,
    MOMENTUM,
    MomentumSGD,
    TrainConfig,
    Trainer,
    ablation_configs,
    build_network,
    summary,
)
from convmix.train_limits import plan_run  # noqa: E402

GOAL_ACCURACY, GOAL_SECONDS = 0.95, 20.0


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def timed_run(config: TrainConfig) -> tuple[Trainer, float, float]:
    digits.load_digits.cache_clear()
    digits.default_split.cache_clear()
    wall, cpu = time.perf_counter(), time.process_time()
    trainer = Trainer(config)
    trainer.run()
    return trainer, time.perf_counter() - wall, time.process_time() - cpu


def step_vs_forward(config: TrainConfig, seconds: float) -> None:
    data, split = digits.load_digits(), digits.default_split()
    idx = split.train[: config.batch]
    pixels, labels = data.images[idx], data.labels[idx]
    train_pixels = data.images[split.train]
    net = build_network(config, float(train_pixels.mean()), float(train_pixels.std()))
    optimizer = MomentumSGD([p for p in net.parameters() if p.requires_grad], MOMENTUM)

    def forward_no_grad():
        with torch.no_grad():
            net(pixels)

    def forward_autograd():
        net(pixels).sum()

    def train_step():
        loss = F.cross_entropy(net(pixels), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(1e-4)

    fns = {"forward, no grad": forward_no_grad, "forward, autograd on": forward_autograd,
           "training step": train_step}
    timings = time_alternated(fns, torch.device("cpu"),
                              Budget(warmup=3, min_rounds=30, max_rounds=2000, seconds=seconds, max_seconds=4 * seconds))
    base = timings["forward, no grad"].median_ms
    print(f"\nbatch of {config.batch} training digits, timed in alternation ({timings['training step'].samples} rounds):")
    for name, t in timings.items():
        print(f"  {name:22s} median {t.median_ms:7.3f} ms (IQR {t.p25_ms:.3f} to {t.p75_ms:.3f})"
              f"  = {t.median_ms / base:5.2f} x the no-grad forward")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="default runs to time (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds for step vs forward")
    parser.add_argument("--ablation", action="store_true", help="also train the four ablation networks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig()
    print(f"torch {torch.__version__} | {device_name(torch.device('cpu'))} | threads {torch.get_num_threads()}"
          f" | load average {_load()} | os.cpu_count {os.cpu_count()}")
    print(f"default run: {config}")

    plan = plan_run(config, time_limit_s=3600)
    print(f"estimated beforehand: {plan.seconds:.1f} s of computing, {plan.memory_bytes / 2**20:.1f} MiB")
    walls, cpus, accuracies = [], [], []
    for i in range(args.runs):
        trainer, wall, cpu = timed_run(config)
        walls.append(wall)
        cpus.append(cpu)
        accuracies.append(trainer.held_out_accuracy)
        rates = trainer.history[-1]
        print(f"run {i + 1}: held-out accuracy {trainer.held_out_accuracy:.4f}, wall {wall:.2f} s (in the trainer "
              f"{trainer.seconds:.2f} s), CPU {cpu:.2f} s,"
              f" rate1 {rates['rate1']['mixer']:.3f}, rate2 {rates['rate2']['mixer']:.3f}, load average {_load()}")
    if len(set(accuracies)) != 1:
        print("error: the same seed gave different accuracies", accuracies)
        return 1
    wall = statistics.median(walls)
    print(f"\nheld-out accuracy {accuracies[0]:.4f} (goal >= {GOAL_ACCURACY}): "
          f"{'met' if accuracies[0] >= GOAL_ACCURACY else 'NOT met'}")
    print(f"wall time, median of {len(walls)}: {wall:.2f} s (min {min(walls):.2f}, max {max(walls):.2f}; "
          f"CPU {statistics.median(cpus):.2f} s) on {args.threads} thread(s) (goal <= {GOAL_SECONDS:g} s): "
          f"{'met' if wall <= GOAL_SECONDS else 'NOT met'}")

    step_vs_forward(config, args.seconds)

    if args.ablation:
        print(f"\nablation (seed {config.seed}, same data, schedule and hyperparameters):")
        print(f"  {'network':16s} {'held-out acc':>12s} {'params':>7s} {'active':>7s} {'seconds':>8s}")
        for name, c in ablation_configs(config).items():
            trainer, _, _ = timed_run(c)
            row = summary(trainer)
            print(f"  {name:16s} {row['held_out_accuracy']:12.4f} {row['parameters']:7,d} "
                  f"{row['active_parameters']:7,d} {row['seconds']:8.2f}   {ABLATIONS[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
