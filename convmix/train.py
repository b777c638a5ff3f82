"""Train a small ACmix network on scikit-learn's 8x8 digits, step by step, seeded, without Streamlit.

The network (`DigitsNet`): a stem `Conv2d(1, width, 3, padding=1, bias=True)`, optionally
BatchNorm after it, ReLU, one `convmix.acmix.ACmix(width, width, kernel_att, head, stride=stride)`,
ReLU, average pooling to a 2x2 grid, and a linear classifier over the 4·width pooled values. Raw
pixels (0-16) go in: the network standardises them with the training split's mean and standard
deviation, held as buffers, so a checkpoint is self-contained.

Ablations (the paper's comparison, same data, seeds and schedule): "learned" (rate1 and rate2
both learned), "attention_only" (rate2 fixed at 0), "conv_only" (rate1 fixed at 0), and
"plain_conv" (a 3x3 convolution in ACmix's place, its output channels chosen so that the whole
network has about as many parameters as the "learned" one). A fixed rate is a parameter with
requires_grad off, left out of the optimizer: it stays exactly 0.

`variant`: the digits are 8x8, so with kernel_conv 3 and a stride of 1, 2, 4 or 8 the authors'
module ("official", the default, what the walkthrough shows) and the repaired one compute the same
values; other strides need "fixed" (the official one cannot run odd output sizes, Q3).

Determinism: weights are drawn from a private generator seeded with `seed`, the order of the
training digits from another seeded with `seed + 1`; the global RNG is neither used nor disturbed,
so several runs can train at once in one process. Every operation used has a deterministic CPU
kernel. `Trainer.step(n)` advances n minibatches; the same configuration gives the same history to
the last logged value whether it runs in one call or in many (with the same torch thread count).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .acmix import ACmix
from .config import _parse_int, _show
from .constraints import VARIANTS, ConfigError, Problem, input_problems, module_problems
from .digits import CLASSES, SIZE, Digits, Split, default_split, load_digits
from .trace import trace_forward

ABLATIONS = {
    "learned": "rate1 and rate2 both learned, as published",
    "attention_only": "rate2 fixed at 0: the attention path only",
    "conv_only": "rate1 fixed at 0: the convolution path only",
    "plain_conv": "a plain 3x3 convolution in ACmix's place, about the same parameter count",
}
KERNEL_CONV = 3
POOL = 2  # the pooled grid is POOL x POOL
MOMENTUM = 0.9
# Held-out digits per evaluation forward: the training batch, within these bounds, so that an
# evaluation needs little more memory than a training step and a tiny batch does not mean hundreds
# of forwards.
EVAL_CHUNK_RANGE = (16, 128)

# Bounds on what a visitor can ask for (the memory budget and the time cap bound them further).
LIMITS: dict[str, tuple[int, int]] = {
    "width": (1, 64),
    "kernel_att": (1, 15),  # an 8x8 input admits reflection padding up to 7
    "head": (1, 64),
    "stride": (1, 8),
    "epochs": (1, 50),
    "batch": (1, 256),
    "seed": (0, 2**31 - 2),
}
LR_LIMITS = (1e-4, 1.0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; plain types only (it is stored in checkpoints)."""

    width: int = 16
    kernel_att: int = 7
    head: int = 4
    stride: int = 2
    lr: float = 0.05
    epochs: int = 8
    batch: int = 32
    seed: int = 0
    stem_bn: bool = False
    ablation: str = "learned"
    variant: str = "official"

    def problems(self) -> list[Problem]:
        """Every violated constraint as a sentence that says what would work."""
        out = []
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                out.append(Problem(name, f"{name} must be an integer from {lo} to {hi:,}, not {value!r}."))
        lo, hi = LR_LIMITS
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not lo <= self.lr <= hi:
            out.append(Problem("lr", f"lr must be a number from {lo:g} to {hi:g}, not {self.lr!r}."))
        if not isinstance(self.stem_bn, bool):
            out.append(Problem("stem_bn", f"stem_bn must be True or False, not {self.stem_bn!r}."))
        if self.ablation not in ABLATIONS:
            out.append(Problem("ablation", f"ablation must be one of {', '.join(ABLATIONS)}, not {self.ablation!r}."))
        if self.variant not in VARIANTS:
            out.append(Problem("variant", f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}."))
        if out:
            return out
        out += module_problems(
            self.width, self.width, self.kernel_att, self.head, KERNEL_CONV, self.stride, 1, self.variant
        )
        if self.variant == "official" and SIZE % self.stride:
            fits = ", ".join(str(s) for s in range(1, LIMITS["stride"][1] + 1) if SIZE % s == 0)
            out.append(Problem(
                "official_size_divisible_by_stride",
                f"The digits are {SIZE}x{SIZE}, which stride {self.stride} does not divide; the authors' "
                f"module expects h_out = H // stride but its unfold gives ceil(H / stride) (Q3).",
                fix=f"Use stride {fits}, or the fixed variant.",
            ))
        else:
            out += input_problems(SIZE, SIZE, self.kernel_att, self.stride, 1, self.variant)
        return out

    def validate(self) -> TrainConfig:
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    def with_(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """From plain values (a checkpoint): unknown or missing keys are an error, not a default."""
        names = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or set(values) != names:
            got = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise ConfigError([Problem("config_keys", f"a training configuration has the keys {sorted(names)}, not {got}.")])
        return cls(**values).validate()

    def to_query_params(self, only_changed: bool = False, prefix: str = "") -> dict[str, str]:
        """URL parameters that `from_query_params` reads back to this configuration."""
        default = TrainConfig()
        return {prefix + k: (str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v))
                for k, v in asdict(self).items() if not only_changed or getattr(default, k) != v}

    @classmethod
    def from_query_params(cls, params: Mapping[str, object], prefix: str = "") -> tuple[TrainConfig, list[str]]:
        """Parse URL parameters named `prefix + field` safely: unknown keys are ignored, malformed or
        out-of-range values fall back to the default, each with a message. The result may still
        break a constraint between fields (head must divide width...): ask `problems()`."""
        values: dict[str, object] = {}
        notes: list[str] = []
        default = cls()
        choices = {"ablation": tuple(ABLATIONS), "variant": VARIANTS, "stem_bn": ("true", "false")}
        for f in fields(cls):
            key = prefix + f.name
            if key not in params:
                continue
            raw = params[key]
            if isinstance(raw, (list, tuple)):
                raw = raw[-1] if raw else ""
            text = str(raw).strip()[:40]
            fallback = getattr(default, f.name)
            if f.name in choices:
                if text.lower() in choices[f.name]:
                    values[f.name] = text.lower() == "true" if f.name == "stem_bn" else text.lower()
                else:
                    notes.append(f"URL parameter {key}={_show(text)} is not one of {', '.join(choices[f.name])}; "
                                 f"using {str(fallback).lower() if f.name == 'stem_bn' else fallback}.")
                continue
            if f.name == "lr":
                lo, hi = LR_LIMITS
                try:
                    number: float | int | None = float(text) if len(text) <= 20 else None
                except ValueError:
                    number = None
                kind = "a number"
            else:
                lo, hi = LIMITS[f.name]
                number = _parse_int(text)
                kind = "a whole number"
            if number is None:
                notes.append(f"URL parameter {key}={_show(text)} is not {kind}; using {fallback}.")
            elif not lo <= number <= hi:  # also refuses nan
                span = f"{lo:g} to {hi:g}" if f.name == "lr" else f"{lo} to {hi:,}"
                notes.append(f"URL parameter {key}={_show(text)} is outside {span}; using {fallback}.")
            else:
                values[f.name] = number
        return cls(**values), notes

    def steps_per_epoch(self, train_size: int) -> int:
        return -(-train_size // self.batch)

    @property
    def eval_chunk(self) -> int:
        lo, hi = EVAL_CHUNK_RANGE
        return min(hi, max(lo, self.batch))


# -- the network --------------------------------------------------------------------------------


class DigitsNet(nn.Module):
    """stem conv (bias) -> [BatchNorm] -> ReLU -> ACmix (or a plain conv) -> ReLU -> pool -> linear."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        w = config.width
        self.stem = nn.Conv2d(1, w, 3, padding=1, bias=True)
        self.stem_bn = nn.BatchNorm2d(w) if config.stem_bn else None
        if config.ablation == "plain_conv":
            channels = plain_conv_channels(config)
            self.mixer: nn.Module = nn.Conv2d(w, channels, 3, stride=config.stride, padding=1, bias=True)
        else:
            channels = w
            self.mixer = ACmix(w, w, config.kernel_att, config.head, KERNEL_CONV, config.stride, variant=config.variant)
        self.pool = nn.AdaptiveAvgPool2d(POOL)
        self.classifier = nn.Linear(channels * POOL * POOL, CLASSES)
        self.register_buffer("pixel_mean", torch.zeros(()))
        self.register_buffer("pixel_std", torch.ones(()))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 1, 8, 8) raw pixel values 0-16 -> (B, 10) logits."""
        x = self.stem((pixels - self.pixel_mean) / self.pixel_std)
        if self.stem_bn is not None:
            x = self.stem_bn(x)
        x = torch.relu(self.mixer(torch.relu(x)))
        return self.classifier(self.pool(x).flatten(1))

    def acmix_layers(self) -> dict[str, ACmix]:
        """Every ACmix layer by its name in the state dict (none in the plain-convolution ablation)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, ACmix)}


def _param_count(config: TrainConfig, plain_channels: int | None = None) -> int:
    """Parameters of DigitsNet by formula (ACMIX.md for the ACmix layer)."""
    w = config.width
    total = 9 * w + w + (2 * w if config.stem_bn else 0)
    if plain_channels is None:
        d = w // config.head
        total += 3 * (w * w + w) + 3 * d + 3 * config.head * KERNEL_CONV**2 + w * KERNEL_CONV**4 + 2
        channels = w
    else:
        total += (9 * w + 1) * plain_channels
        channels = plain_channels
    return total + (channels * POOL * POOL + 1) * CLASSES


def plain_conv_channels(config: TrainConfig) -> int:
    """Output channels of the plain 3x3 convolution that bring the network closest in parameters to
    the same configuration with ACmix (ties: the smaller)."""
    target = _param_count(config)
    return min(range(1, 4 * config.width + 1), key=lambda c: (abs(_param_count(config, c) - target), c))


def parameter_count(config: TrainConfig) -> int:
    """Parameters of the network `config` builds (the formula; tests check it against the module)."""
    if config.ablation == "plain_conv":
        return _param_count(config, plain_conv_channels(config))
    return _param_count(config)


def active_parameter_count(config: TrainConfig) -> int:
    """Parameters that can change the output: without a path's rate, that path's own parameters
    (fc and dep_conv for the convolution, conv_p for the attention) and the fixed rate do not."""
    total = parameter_count(config)
    w, d = config.width, config.width // config.head
    if config.ablation == "attention_only":
        total -= 3 * config.head * KERNEL_CONV**2 + w * KERNEL_CONV**4 + 1
    elif config.ablation == "conv_only":
        total -= 3 * d + 1
    return total


# Functions that draw random numbers and accept a `generator`: PyTorch's initialisers and the
# Tensor methods they call.
_RANDOM_DRAWS = frozenset({
    "uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
    "trunc_normal_", "orthogonal_", "sparse_", "random_", "bernoulli_", "exponential_", "cauchy_",
    "log_normal_", "geometric_", "rand", "randn", "randint", "randperm",
})


class _PrivateGenerator(TorchFunctionMode):
    """While active (in this thread only: modes are thread-local), every random initialiser that is
    not given a generator draws from `gen` instead of the global RNG."""

    def __init__(self, gen: torch.Generator):
        super().__init__()
        self.gen = gen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if getattr(func, "__name__", "") in _RANDOM_DRAWS and kwargs.get("generator") is None:
            kwargs["generator"] = self.gen
        return func(*args, **kwargs)


def build_network(config: TrainConfig, pixel_mean: float = 0.0, pixel_std: float = 1.0) -> DigitsNet:
    """The network of `config` with PyTorch's default initialisation (ACmix's own for ACmix), every
    random number drawn from a generator seeded with `seed`: the global RNG is neither read nor
    advanced, so runs in other threads neither disturb this one nor are disturbed by it."""
    config.validate()
    with _PrivateGenerator(torch.Generator().manual_seed(config.seed)):
        net = DigitsNet(config)
    net.pixel_mean.fill_(pixel_mean)
    net.pixel_std.fill_(pixel_std)
    _fix_rates(net, config)
    return net


def _fix_rates(net: DigitsNet, config: TrainConfig) -> None:
    fixed = {"attention_only": "rate2", "conv_only": "rate1"}.get(config.ablation)
    if fixed is None:
        return
    for layer in net.acmix_layers().values():
        rate = getattr(layer, fixed)
        with torch.no_grad():
            rate.zero_()
        rate.requires_grad_(False)


# -- activations seen inside the network's own forward ---------------------------------------------


def layer_inputs(net: DigitsNet, pixels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The input that reaches every ACmix layer during `net(pixels)` (forward hooks, eval mode,
    no grad), and the network's logits."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        layer.register_forward_hook(lambda _m, args, _out, name=name: seen.__setitem__(name, args[0].detach()))
        for name, layer in net.acmix_layers().items()
    ]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = net(pixels)
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    return seen, logits


@dataclass(frozen=True)
class AttentionSnapshot:
    """The attention of one held-out digit at one step: per ACmix layer, the softmax weights of
    its own traced forward, shape (head, kernel_att², out_height, out_width)."""

    step: int
    epoch: float
    attention: dict[str, torch.Tensor]
    prediction: int
    confidence: float  # softmax probability of the true label


def attention_snapshot(net: DigitsNet, pixels: torch.Tensor, label: int, step: int, epoch: float) -> AttentionSnapshot:
    inputs, logits = layer_inputs(net, pixels)
    attention = {}
    for name, layer in net.acmix_layers().items():
        trace = trace_forward(layer, inputs[name])
        att = trace["att"].tensor  # (head, K, Ho, Wo) for one digit
        attention[name] = att.clone()
    probs = torch.softmax(logits[0], 0)
    return AttentionSnapshot(step, epoch, attention, int(probs.argmax()), float(probs[label]))


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
