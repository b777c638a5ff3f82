"""Bounds on training runs: memory and time estimated before a run starts, and at most N at once.

A public demo trains in the visitors' sessions, so every run is checked first:
  * memory: `estimate_run_bytes` (weights, gradients, momentum, the data, and the larger of a
    training step's and an evaluation's peak; tests check it against the bytes a step really
    allocates) against the server's budget, `convmix.budget.memory_budget()`;
  * time: a few training steps of the same network, timed here and now, scaled to the run, against
    a time cap per run (the Trainer also stops at the cap, whatever the estimate said);
  * CPU: `RUN_SLOTS` lets at most MAX_CONCURRENT_RUNS runs compute at once in this process.
A refused run gets a message that says which bound failed and what would fit, in the visitor's
language (convmix.i18n).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import DTYPE_BYTES, ACmixConfig
from .digits import CLASSES, ROWS, SIZE, default_split, load_digits
from .format import human_bytes, join_items
from .i18n import _, ngettext
from .memory import Conv, conv_workspace_bytes, uses_mkldnn
from .train import MomentumSGD
from .train_config import KERNEL_CONV, TrainConfig
from .train_net import POOL, build_network, parameter_count, plain_conv_channels

# At most this many training runs compute at once per process. A run keeps one CPU core busy (more
# with more torch threads), and a hosted demo has about two: two runs at once keep the pages
# responsive, a third would only slow all of them down. Set $CONVMIX_TRAINING_RUNS on larger hosts.
MAX_CONCURRENT_RUNS = 2
RUNS_ENV = "CONVMIX_TRAINING_RUNS"
TIME_LIMIT_S = 60.0  # compute time a run may take (the default run needs under 10 s on a quiet core)
TIMING_BATCH = 32  # largest batch timed for an estimate; larger batches cost at most as much per digit
FLOAT = DTYPE_BYTES["float32"]
# A training step's peak (forward activations kept for backward, then their gradients) over the
# peak of a no-grad forward of the same batch, for the ACmix layer: measured 1.37-1.42 over widths
# 16-64, windows 3-15, strides 1-2 and batches 16-128; tests check the resulting estimate.
TRAIN_OVER_FORWARD = 1.5


def _acmix_config(config: TrainConfig, batch: int) -> ACmixConfig:
    return ACmixConfig(in_planes=config.width, out_planes=config.width, kernel_att=config.kernel_att,
                       head=config.head, kernel_conv=KERNEL_CONV, stride=config.stride, height=SIZE,
                       width=SIZE, batch=batch, variant=config.variant)


def _other_activations(config: TrainConfig, batch: int) -> int:
    """Elements of every activation outside ACmix: standardised input, stem (and BatchNorm) and
    ReLU outputs, the mixer's output for a plain convolution, its ReLU, the pooled map, logits."""
    w, n = config.width, SIZE * SIZE
    out = -(-SIZE // config.stride)
    channels = plain_conv_channels(config) if config.ablation == "plain_conv" else config.width
    stem = (3 if config.stem_bn else 2) * w * n
    mixer = (2 if config.ablation == "plain_conv" else 1) * channels * out * out
    return batch * (2 * n + stem + mixer + channels * POOL * POOL + 2 * CLASSES)


def _conv_workspace(config: TrainConfig, batch: int) -> int:
    """The largest workspace of the convolutions outside ACmix (the stem's, the plain mixer's): each
    is freed before the next convolution runs (convmix.memory.conv_workspace_bytes)."""
    threads = torch.get_num_threads()
    convs = [Conv(batch, 1, config.width, SIZE, SIZE, SIZE, SIZE, 3, padding=1)]
    if config.ablation == "plain_conv":
        out = -(-SIZE // config.stride)
        convs.append(Conv(batch, config.width, plain_conv_channels(config), SIZE, SIZE, out, out, 3,
                          stride=config.stride, padding=1))
    return max(conv_workspace_bytes(c, FLOAT, uses_mkldnn(c, "float32", threads), threads) for c in convs)


def step_bytes(config: TrainConfig, batch: int | None = None) -> int:
    """Peak bytes one training step allocates (activations, their gradients, the weights' gradients)."""
    b = batch or config.batch
    acmix = 0 if config.ablation == "plain_conv" else _acmix_config(config, b).estimate_peak_bytes()
    return (math.ceil(TRAIN_OVER_FORWARD * acmix) + 2 * FLOAT * _other_activations(config, b)
            + FLOAT * parameter_count(config) + _conv_workspace(config, b))


def eval_bytes(config: TrainConfig, batch: int | None = None) -> int:
    """Peak bytes of one no-grad forward of `batch` digits (default: an evaluation chunk)."""
    batch = batch or min(config.eval_chunk, len(default_split().held_out))
    acmix = 0 if config.ablation == "plain_conv" else _acmix_config(config, batch).estimate_peak_bytes()
    return acmix + FLOAT * _other_activations(config, batch) + _conv_workspace(config, batch)


def estimate_run_bytes(config: TrainConfig) -> int:
    """Memory a run holds at its peak: weights, gradients and momentum, the digits, and the larger of
    a training step and an evaluation chunk (an attention snapshot traces one digit: far less)."""
    data = ROWS * (SIZE * SIZE * FLOAT + 8)
    return (3 * FLOAT * parameter_count(config) + data
            + max(step_bytes(config), eval_bytes(config)))


# -- time -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepTiming:
    """Seconds of one training step and of one no-grad forward at `batch`, measured here."""

    batch: int
    train_step_s: float
    forward_s: float


def measure_timing(config: TrainConfig, repeats: int = 3) -> StepTiming:
    """Time a throwaway copy of the network on the first training digits: one warm-up, then the
    median of `repeats` training steps and of `repeats` no-grad forwards."""
    batch = min(config.batch, TIMING_BATCH)
    data, split = load_digits(), default_split()
    pixels, labels = data.images[split.train[:batch]], data.labels[split.train[:batch]]
    net = build_network(config, float(pixels.mean()), float(pixels.std()))
    optimizer = MomentumSGD([p for p in net.parameters() if p.requires_grad], 0.9)

    def train_step() -> None:
        loss = F.cross_entropy(net(pixels), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(1e-3)

    def forward() -> None:
        with torch.no_grad():
            net(pixels)

    def median_seconds(fn) -> float:
        fn()
        samples = []
        for _repeat in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return sorted(samples)[len(samples) // 2]

    train_s = median_seconds(train_step)
    net.eval()
    return StepTiming(batch, train_s, median_seconds(forward))


def estimate_run_seconds(config: TrainConfig, timing: StepTiming, log_every: int | None = None,
                         epochs: int | None = None) -> float:
    """Compute time of a run: its training steps plus one held-out evaluation per log, per digit as
    timed (a larger batch costs at most as much per digit, so this errs on the long side)."""
    split = default_split()
    epochs = epochs or config.epochs
    steps = epochs * config.steps_per_epoch(len(split.train))
    logs = 1 + math.ceil(steps / (log_every or config.steps_per_epoch(len(split.train))))
    train = epochs * len(split.train) * timing.train_step_s / timing.batch
    evaluate = logs * len(split.held_out) * timing.forward_s / timing.batch
    return train + evaluate


# -- refusals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """What a run would cost, and whether it may start (`refusal` is None) or why not."""

    config: TrainConfig
    memory_bytes: int
    budget_bytes: int
    seconds: float | None  # None when the memory check already refused the run (nothing was timed)
    time_limit_s: float
    refusal: str | None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def _smaller(config: TrainConfig) -> Iterator[tuple[str, TrainConfig]]:
    """Cheaper configurations near `config`, the gentlest change first, each with its settings as
    `name value` pairs (the settings' own names)."""
    batch = config.batch
    while batch > 1:
        batch //= 2
        yield f"batch {batch}", config.with_(batch=batch)
    ka = config.kernel_att
    while ka > 1:
        ka -= 2
        yield join_items([f"batch {batch}", f"kernel_att {ka}"]), config.with_(batch=batch, kernel_att=ka)
    width = config.width
    while width > config.head:
        width //= 2
        candidate = config.with_(batch=batch, kernel_att=ka, width=width)
        if not candidate.problems():
            yield join_items([f"batch {batch}", f"kernel_att {ka}", f"width {width}"]), candidate


def memory_refusal(config: TrainConfig, budget: int) -> str | None:
    """Why `config` may not start for lack of memory, and the gentlest change that fits; None when
    its estimate is within `budget`."""
    need = estimate_run_bytes(config)
    if need <= budget:
        return None
    text = _("Training this network would need about {need}, over this server's memory budget of {budget}, "
             "so it was not started.", need=human_bytes(need), budget=human_bytes(budget))
    for change, candidate in _smaller(config):
        fits = estimate_run_bytes(candidate)
        if fits <= budget:
            return text + " " + _("A nearby configuration that fits: {change} (about {fits}).", change=change,
                                  fits=human_bytes(fits))
    return text + " " + _("Reduce the batch, the window (kernel_att) or the width.")


def time_refusal(config: TrainConfig, seconds: float, time_limit_s: float, timing: StepTiming,
                 log_every: int | None = None) -> str | None:
    """Why a run over the time cap may not start, and how many epochs would fit; None when
    `seconds` is within the cap."""
    if seconds <= time_limit_s:
        return None
    per_epoch = estimate_run_seconds(config, timing, log_every, epochs=1)
    text = ngettext(
        "Training {epochs} epoch would take about {seconds:,.0f} s of computing (about {per_epoch:,.1f} s per "
        "epoch, timed on this server just now), over the cap of {cap:g} s per run, so it was not started.",
        "Training {epochs} epochs would take about {seconds:,.0f} s of computing (about {per_epoch:,.1f} s per "
        "epoch, timed on this server just now), over the cap of {cap:g} s per run, so it was not started.",
        config.epochs, epochs=config.epochs, seconds=seconds, per_epoch=per_epoch, cap=time_limit_s)
    fit = max((e for e in range(1, config.epochs) if estimate_run_seconds(config, timing, log_every, e) <= time_limit_s),
              default=0)
    if fit:
        return text + " " + ngettext("{fit} epoch fits (about {seconds:,.0f} s).",
                                     "{fit} epochs fit (about {seconds:,.0f} s).", fit, fit=fit,
                                     seconds=estimate_run_seconds(config, timing, log_every, fit))
    return text + " " + _("Not even one epoch fits: use a smaller width or window (kernel_att), or a larger stride.")


def plan_run(config: TrainConfig, *, time_limit_s: float = TIME_LIMIT_S, budget: int | None = None,
             timing: StepTiming | None = None, log_every: int | None = None) -> RunPlan:
    """Check a run before it starts: the memory estimate against the budget first (nothing is built
    when it fails), then a measured time estimate against the cap. Raises ConfigError for a
    configuration that cannot be built at all."""
    from .budget import memory_budget

    config.validate()
    budget = memory_budget() if budget is None else budget
    need = estimate_run_bytes(config)
    refusal = memory_refusal(config, budget)
    if refusal:
        return RunPlan(config, need, budget, None, time_limit_s, refusal)
    timing = timing or measure_timing(config)
    seconds = estimate_run_seconds(config, timing, log_every)
    return RunPlan(config, need, budget, seconds, time_limit_s,
                   time_refusal(config, seconds, time_limit_s, timing, log_every))


# -- at most N runs at once -----------------------------------------------------------------------


class RunSlots:
    """At most `capacity` runs compute at once. Non-blocking: a caller that gets no slot is told so
    at once (and can say so) instead of queueing a visitor's rerun behind others.

    A page holds a slot while it advances a run (one `Trainer.step(n)` chunk) and releases it after,
    so a paused or abandoned run holds nothing:

        with RUN_SLOTS.slot() as ok:
            if ok: trainer.step(20)
            else: show(RUN_SLOTS.busy_message())
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        return self._active

    def try_acquire(self) -> bool:
        with self._lock:
            if self._active >= self.capacity:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self._active == 0:
                raise RuntimeError("release() without a matching try_acquire()")
            self._active -= 1

    @contextmanager
    def slot(self) -> Iterator[bool]:
        acquired = self.try_acquire()
        try:
            yield acquired
        finally:
            if acquired:
                self.release()

    def busy_message(self) -> str:
        """Why no run may compute now (the visitor's language); the caller says what waits."""
        return ngettext(
            "{count} training run is using this server's processor right now (at most {count} at a time, so "
            "that every visitor's pages stay responsive).",
            "{count} training runs are using this server's processor right now (at most {count} at a time, "
            "so that every visitor's pages stay responsive).", self.capacity, count=self.capacity)


def configured_slots() -> int:
    """$CONVMIX_TRAINING_RUNS if it is a positive whole number, else MAX_CONCURRENT_RUNS."""
    text = os.environ.get(RUNS_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else MAX_CONCURRENT_RUNS


RUN_SLOTS = RunSlots(configured_slots())  # the one limiter of this process
