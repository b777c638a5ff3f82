"""Train the digits network step by step, seeded, without Streamlit.

`Trainer(config)` holds the network, the optimizer (SGD with momentum 0.9, the learning rate on a
cosine from `lr` to 0), the order of the training digits and its generator. `step(n)` advances n
minibatches and returns, so a page can start, pause (stop calling), resume (call again) and reset
(a new Trainer) a run, with `progress` for a bar. `history` logs the training and held-out loss and
accuracy, rate1 and rate2 of every ACmix layer, the stem's biases and their gradient, and with
BatchNorm after the stem its bias and weight; `snapshots` keep the attention of one held-out digit
at a few steps, read from the ACmix layer's own traced forward.

Determinism: the weights come from a generator seeded with `seed` (convmix.train_net), the order
of the training digits from another seeded with `seed + 1`; the global RNG is never used. Every
operation has a deterministic CPU kernel. The same configuration gives the same history to the
last logged value whether it runs in one call or in many (with the same torch thread count).

The configuration, the network and its helpers live in convmix.train_config and
convmix.train_net; their public names are re-exported here, so `from convmix.train import ...`
reaches everything a page needs.
"""

from __future__ import annotations

import math
import threading
import time

import torch
import torch.nn.functional as F

from .digits import Digits, Split, default_split, load_digits
from .train_config import (
    ABLATIONS,
    EVAL_CHUNK_RANGE,
    KERNEL_CONV,
    LIMITS,
    LR_LIMITS,
    TrainConfig,
)
from .train_net import (
    POOL,
    AttentionSnapshot,
    DigitsNet,
    active_parameter_count,
    attention_snapshot,
    build_network,
    layer_inputs,
    parameter_count,
    plain_conv_channels,
)

__all__ = [
    "ABLATIONS", "EVAL_CHUNK_RANGE", "KERNEL_CONV", "LIMITS", "LR_LIMITS", "MOMENTUM", "POOL", "TIMING_KEYS",
    "AttentionSnapshot", "DigitsNet", "MomentumSGD", "TrainConfig", "Trainer", "ablation_configs",
    "active_parameter_count", "attention_snapshot", "build_network", "layer_inputs", "lr_at",
    "parameter_count", "plain_conv_channels", "summary",
]

MOMENTUM = 0.9


# -- training -------------------------------------------------------------------------------------


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Cosine schedule from lr to 0 over the run (the rate used by minibatch number `step`)."""
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


class MomentumSGD:
    """SGD with momentum as torch.optim.SGD computes it (dampening 0, no weight decay, no Nesterov):
    buf = grad on the first step, then buf = momentum * buf + grad; p -= lr * buf.

    Written out because torch.optim imports torch._dynamo on first use, seconds and many MB on a
    small host; a test checks it against torch.optim.SGD.
    """

    def __init__(self, params: list[torch.Tensor], momentum: float):
        self.params = list(params)
        self.momentum = momentum
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            buf = self.buffers[i]
            if buf is None:
                buf = self.buffers[i] = p.grad.detach().clone()
            else:
                buf.mul_(self.momentum).add_(p.grad)
            p.add_(buf, alpha=-lr)


# History keys whose values depend on the machine's speed, not on the seed and settings.
TIMING_KEYS = ("seconds",)


class Trainer:
    """One run: network, optimizer, data order and generators; `step(n)` advances n minibatches.

    Pause is simply not calling `step`; resume is calling it again; reset is a new Trainer.
    `history` holds one record (plain floats and lists) per logged step: step 0 before training,
    then every `log_every` steps and at the end of every epoch. `snapshots` holds the attention of
    one held-out digit (`probe`) at `snapshot_count` evenly spaced steps, the first and last included.
    A run stops early, with `stop_reason`, when its compute time passes `time_limit_s` or its loss
    stops being finite.
    """

    def __init__(self, config: TrainConfig, *, time_limit_s: float | None = None, log_every: int | None = None,
                 snapshot_count: int = 4, probe: int = 0, data: Digits | None = None, split: Split | None = None):
        self.config = config.validate()
        self.data = data if data is not None else load_digits()
        self.split = split if split is not None else default_split()
        train_pixels = self.data.images[self.split.train]
        self.net = build_network(config, float(train_pixels.mean()), float(train_pixels.std()))
        self.optimizer = MomentumSGD([p for p in self.net.parameters() if p.requires_grad], MOMENTUM)
        self._order_gen = torch.Generator().manual_seed(config.seed + 1)
        self._order = self.split.train
        self.steps_per_epoch = config.steps_per_epoch(len(self.split.train))
        self.total_steps = config.epochs * self.steps_per_epoch
        self.log_every = log_every or self.steps_per_epoch
        if self.log_every < 1:
            raise ValueError(f"log_every must be at least 1, not {log_every}")
        if not 0 <= probe < len(self.split.held_out):
            raise ValueError(f"probe must be a held-out index from 0 to {len(self.split.held_out) - 1}, not {probe}")
        self.probe_index = int(self.split.held_out[probe])
        self.probe_label = int(self.data.labels[self.probe_index])
        self.snapshot_steps = sorted({round(self.total_steps * i / max(1, snapshot_count - 1))
                                      for i in range(max(1, snapshot_count))})
        self.time_limit_s = time_limit_s
        self.step_count = 0
        self.seconds = 0.0  # compute time spent in this run so far
        self.stop_reason: str | None = None
        self.history: list[dict] = []
        self.snapshots: list[AttentionSnapshot] = []
        self._since_log = [0.0, 0, 0]  # summed loss, correct, seen since the last log
        self._lock = threading.Lock()
        start = time.perf_counter()
        self._log()
        self._maybe_snapshot()
        self.seconds += time.perf_counter() - start

    # -- state --
    @property
    def finished(self) -> bool:
        return self.step_count >= self.total_steps

    @property
    def stopped(self) -> bool:
        return self.finished or self.stop_reason is not None

    @property
    def progress(self) -> float:
        return self.step_count / self.total_steps

    @property
    def epoch(self) -> float:
        return self.step_count / self.steps_per_epoch

    @property
    def probe_pixels(self) -> torch.Tensor:
        """The held-out digit whose attention is recorded: (1, 1, 8, 8), raw pixel values."""
        return self.data.images[self.probe_index : self.probe_index + 1]

    # -- running --
    def step(self, n: int = 1) -> int:
        """Advance up to n minibatches; returns how many ran (fewer at the end, the time cap or a
        non-finite loss)."""
        done = 0
        with self._lock:
            while done < n and not self.stopped:
                if self.time_limit_s is not None and self.seconds >= self.time_limit_s:
                    self.stop_reason = (
                        f"the time cap of {self.time_limit_s:g} s per run was reached after "
                        f"{self.step_count:,} of {self.total_steps:,} steps")
                    self._log_if_new()
                    break
                start = time.perf_counter()
                if self._train_step():
                    if self.step_count % self.log_every == 0 or self.step_count % self.steps_per_epoch == 0:
                        self._log()
                    self._maybe_snapshot()
                    done += 1
                else:
                    self._log_if_new()
                self.seconds += time.perf_counter() - start
        return done

    def run(self, on_log=None) -> None:
        """Train to the end (or the cap); `on_log(record)` is called after every new history record."""
        while not self.stopped:
            before = len(self.history)
            self.step(1)
            if on_log is not None:
                for record in self.history[before:]:
                    on_log(record)

    def _train_step(self) -> bool:
        s = self.step_count % self.steps_per_epoch
        if s == 0:
            self._order = self.split.train[torch.randperm(len(self.split.train), generator=self._order_gen)]
        idx = self._order[s * self.config.batch : (s + 1) * self.config.batch]
        pixels, labels = self.data.images[idx], self.data.labels[idx]
        self.net.train()
        logits = self.net(pixels)
        loss = F.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            self.stop_reason = (
                f"the training loss became {loss.item()} at step {self.step_count + 1:,}; the learning "
                f"rate {self.config.lr:g} is too high for this network: try {self.config.lr / 3:.3g}")
            return False
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step(lr_at(self.config, self.step_count, self.total_steps))
        self.step_count += 1
        self._since_log[0] += loss.item() * len(idx)
        self._since_log[1] += int((logits.argmax(1) == labels).sum())
        self._since_log[2] += len(idx)
        return True

    def evaluate(self, indices: torch.Tensor) -> tuple[float, float]:
        """Mean cross-entropy and accuracy over `indices`, eval mode, no grad, in fixed chunks."""
        self.net.eval()
        loss, correct = 0.0, 0
        with torch.no_grad():
            chunk = self.config.eval_chunk
            for start in range(0, len(indices), chunk):
                idx = indices[start : start + chunk]
                logits = self.net(self.data.images[idx])
                loss += float(F.cross_entropy(logits, self.data.labels[idx], reduction="sum"))
                correct += int((logits.argmax(1) == self.data.labels[idx]).sum())
        self.net.train()
        return loss / len(indices), correct / len(indices)

    def _log(self) -> None:
        total_loss, correct, seen = self._since_log
        held_loss, held_acc = self.evaluate(self.split.held_out)
        net = self.net
        record = {
            "step": self.step_count,
            "epoch": self.epoch,
            "lr": lr_at(self.config, max(0, self.step_count - 1), self.total_steps) if self.step_count else self.config.lr,
            "train_loss": total_loss / seen if seen else None,
            "train_accuracy": correct / seen if seen else None,
            "held_out_loss": held_loss,
            "held_out_accuracy": held_acc,
            "rate1": {name: m.rate1.item() for name, m in net.acmix_layers().items()},
            "rate2": {name: m.rate2.item() for name, m in net.acmix_layers().items()},
            "stem_bias": net.stem.bias.detach().tolist(),
            "stem_bias_grad": None if net.stem.bias.grad is None else net.stem.bias.grad.tolist(),
            "bn_bias": None if net.stem_bn is None else net.stem_bn.bias.detach().tolist(),
            "bn_weight": None if net.stem_bn is None else net.stem_bn.weight.detach().tolist(),
            "seconds": self.seconds,
        }
        self.history.append(record)
        self._since_log = [0.0, 0, 0]

    def _log_if_new(self) -> None:
        """Log the state a run stops in, unless the last record already shows it."""
        if self.history[-1]["step"] != self.step_count:
            self._log()

    def _maybe_snapshot(self) -> None:
        if self.step_count in self.snapshot_steps and self.net.acmix_layers():
            if not self.snapshots or self.snapshots[-1].step != self.step_count:
                self.snapshots.append(attention_snapshot(
                    self.net, self.probe_pixels, self.probe_label, self.step_count, self.epoch))

    @property
    def held_out_accuracy(self) -> float:
        """Held-out accuracy at the last logged step."""
        return self.history[-1]["held_out_accuracy"]


# -- the ablation ---------------------------------------------------------------------------------


def ablation_configs(config: TrainConfig) -> dict[str, TrainConfig]:
    """The four networks of the ablation, differing from `config` only in `ablation`: same data,
    seed, schedule and hyperparameters."""
    return {name: config.with_(ablation=name) for name in ABLATIONS}


def summary(trainer: Trainer) -> dict:
    """One row of the ablation table: what the run reached, its size and its compute time."""
    last = trainer.history[-1]
    return {
        "ablation": trainer.config.ablation,
        "held_out_accuracy": last["held_out_accuracy"],
        "held_out_loss": last["held_out_loss"],
        "parameters": parameter_count(trainer.config),
        "active_parameters": active_parameter_count(trainer.config),
        "steps": trainer.step_count,
        "seconds": trainer.seconds,
        "stop_reason": trainer.stop_reason,
    }
