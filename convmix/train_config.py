"""The configuration of a digits training run: hyperparameters, their bounds, URL round trip.

`TrainConfig` holds everything that determines a run, in plain types (it is stored in checkpoints).
`problems()` lists every violated constraint as a sentence that says what would work: the bounds
below, and ACmix's own constraints on an 8x8 input (convmix.constraints).

`variant`: the digits are 8x8, so with kernel_conv 3 and a stride of 1, 2, 4 or 8 the authors'
module ("official", the default, what the walkthrough shows) and the repaired one compute the same
values; other strides need "fixed" (the official one cannot run odd output sizes, Q3).

Ablations (the paper's comparison, same data, seeds and schedule): "learned" (rate1 and rate2
both learned), "attention_only" (rate2 fixed at 0), "conv_only" (rate1 fixed at 0), and
"plain_conv" (a 3x3 convolution in ACmix's place, about the same parameter count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from .config import _parse_int, _show
from .constraints import VARIANTS, ConfigError, Problem, input_problems, module_problems
from .digits import SIZE

ABLATIONS = {
    "learned": "rate1 and rate2 both learned, as published",
    "attention_only": "rate2 fixed at 0: the attention path only",
    "conv_only": "rate1 fixed at 0: the convolution path only",
    "plain_conv": "a plain 3x3 convolution in ACmix's place, about the same parameter count",
}
KERNEL_CONV = 3
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
