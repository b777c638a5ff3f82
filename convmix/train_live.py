"""Training while a page watches: short chunks under the run slots, and the ablation's four runs.

A page advances a run in chunks (`advance`): a few minibatches, about `CHUNK_SECONDS` of computing
at most, holding one of the process's run slots (convmix.train_limits.RUN_SLOTS) only meanwhile, so
a paused run or a closed tab holds nothing. `AblationRun` trains the four networks of the ablation
one after another in the same chunks; `AblationCache` keeps finished ablation runs, keyed by their
whole configuration, so identical settings are not trained twice in one process. No Streamlit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .digits import default_split
from .i18n import _
from .train import ABLATIONS, TrainConfig, Trainer, ablation_configs, summary
from .train_limits import RunSlots

# Computing per chunk: short enough that a click (pause, reset) is answered within about a second,
# long enough that drawing the charts after each chunk costs little beside it.
CHUNK_SECONDS = 0.6
# A live run logs about this many times (never less than once per epoch): each log evaluates all
# held-out digits, about a sixth of an epoch's training time, so more points would slow the run.
LIVE_LOGS = 24
MAX_LOGS_PER_EPOCH = 4
# Attention snapshots of the probe digit: the first step, the last, and two between.
SNAPSHOTS = 4
PROBE = 0  # the first held-out digit: its attention is recorded


def live_log_every(config: TrainConfig, train_size: int) -> int:
    """Steps between two logs of a live run: about LIVE_LOGS logs over the run, at most
    MAX_LOGS_PER_EPOCH per epoch, and a divisor of the steps per epoch, so that the logs fall on
    every epoch's end (where the trainer logs anyway) and no training point averages a stub of steps."""
    steps_per_epoch = config.steps_per_epoch(train_size)
    per_epoch = max(1, min(MAX_LOGS_PER_EPOCH, math.ceil(LIVE_LOGS / config.epochs)))
    return min(d for d in range(1, steps_per_epoch + 1)
               if steps_per_epoch % d == 0 and d * per_epoch >= steps_per_epoch)


def live_trainer(config: TrainConfig, time_limit_s: float) -> Trainer:
    """The trainer of a live run: the time cap, the live log interval, the attention snapshots."""
    return Trainer(config, time_limit_s=time_limit_s, snapshot_count=SNAPSHOTS, probe=PROBE,
                   log_every=live_log_every(config, len(default_split().train)))


def stopped_by_time_cap(stop_reason: str | None) -> bool:
    """Whether a trainer's `stop_reason` is its time cap (else, when set, a loss that was not finite)."""
    return stop_reason is not None and stop_reason.startswith("the time cap")


def stop_message(trainer: Trainer) -> str | None:
    """Why a run stopped before its last step, in the visitor's language, with what would work; None
    while it runs or when it finished. (`stop_reason` itself stays English: it is data, kept in the
    ablation's results and printed by the command line.)"""
    if trainer.stop_reason is None or trainer.finished:
        return None
    if stopped_by_time_cap(trainer.stop_reason):
        return _("The run reached the cap of {cap:g} s of computing after {done:,} of {total:,} steps and "
                 "stopped there. Fewer epochs, a smaller width or kernel_att, or a larger stride fit in the "
                 "cap.", cap=trainer.time_limit_s, done=trainer.step_count, total=trainer.total_steps)
    return _("The training loss stopped being a finite number at step {step:,}: the learning rate {lr:g} is "
             "too high for this network. Try {lower:.3g}.", step=trainer.step_count + 1, lr=trainer.config.lr,
             lower=trainer.config.lr / 3)


@dataclass(frozen=True)
class Chunk:
    """What one call to `advance` did: minibatches trained, or `busy` when no slot was free."""

    steps: int
    busy: bool = False


def advance(trainer: Trainer, slots: RunSlots, *, max_steps: int, seconds: float = CHUNK_SECONDS) -> Chunk:
    """Train up to `max_steps` minibatches, stopping early after about `seconds` of computing or
    when the run stops; one run slot is held meanwhile, none when the call returns."""
    with slots.slot() as ok:
        if not ok:
            return Chunk(0, busy=True)
        start = time.perf_counter()
        done = 0
        while done < max_steps and not trainer.stopped:
            done += trainer.step(1)
            if time.perf_counter() - start >= seconds:
                break
        return Chunk(done)


# -- the ablation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationResult:
    """One finished network of the ablation: its summary row and its held-out accuracy curve."""

    summary: dict
    curve: tuple[tuple[float, float], ...]  # (epoch, held-out accuracy) at every log
    cached: bool = False  # taken from the cache (its time is that of the run that computed it)


def ablation_result(trainer: Trainer) -> AblationResult:
    curve = tuple((r["epoch"], r["held_out_accuracy"]) for r in trainer.history)
    return AblationResult(summary(trainer), curve)


class AblationCache:
    """Finished ablation runs by configuration, shared by every visitor of the process, bounded
    in entries (a result is a few hundred bytes). Runs stopped by the time cap are not kept: how far
    they got depends on the machine's load, not on the settings."""

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._results: OrderedDict[TrainConfig, AblationResult] = OrderedDict()

    def get(self, config: TrainConfig) -> AblationResult | None:
        with self._lock:
            result = self._results.get(config)
            if result is not None:
                self._results.move_to_end(config)
            return result

    def put(self, config: TrainConfig, result: AblationResult) -> None:
        if stopped_by_time_cap(result.summary["stop_reason"]):
            return
        with self._lock:
            self._results[config] = AblationResult(result.summary, result.curve, cached=True)
            self._results.move_to_end(config)
            while len(self._results) > self.max_entries:
                self._results.popitem(last=False)

    def __len__(self) -> int:
        return len(self._results)


@dataclass
class AblationRun:
    """The four networks of the ablation for one configuration, trained one after another."""

    base: TrainConfig
    time_limit_s: float
    results: dict[str, AblationResult] = field(default_factory=dict)
    current: Trainer | None = None

    @property
    def configs(self) -> dict[str, TrainConfig]:
        return ablation_configs(self.base)

    @property
    def finished(self) -> bool:
        return len(self.results) == len(ABLATIONS)

    @property
    def running_name(self) -> str | None:
        return self.current.config.ablation if self.current is not None else None

    def take_cached(self, cache: AblationCache) -> None:
        """Fill in every network the cache already holds."""
        for name, config in self.configs.items():
            if name not in self.results and (name != self.running_name):
                hit = cache.get(config)
                if hit is not None:
                    self.results[name] = hit

    def advance(self, slots: RunSlots, cache: AblationCache, *, seconds: float = CHUNK_SECONDS) -> Chunk:
        """One chunk of the next unfinished network (cached networks need none)."""
        self.take_cached(cache)
        if self.finished:
            return Chunk(0)
        if self.current is None:
            name = next(n for n in ABLATIONS if n not in self.results)
            with slots.slot() as ok:  # building a trainer evaluates the held-out digits once
                if not ok:
                    return Chunk(0, busy=True)
                self.current = Trainer(self.configs[name], time_limit_s=self.time_limit_s, snapshot_count=1)
        trainer = self.current
        chunk = advance(trainer, slots, max_steps=trainer.steps_per_epoch, seconds=seconds)
        if trainer.stopped:
            result = ablation_result(trainer)
            self.results[trainer.config.ablation] = result
            cache.put(trainer.config, result)
            self.current = None
        return chunk

    @property
    def progress(self) -> float:
        """Share of the ablation's minibatches done (a cached network counts as done)."""
        done = len(self.results) + (self.current.progress if self.current is not None else 0.0)
        return done / len(ABLATIONS)
