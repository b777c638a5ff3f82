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

Sentences (problems, URL notes, the ablations' labels) are in the visitor's language (convmix.i18n).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from .config import _parse_int, _show, integer_problems
from .constraints import VARIANTS, ConfigError, Problem, input_problems, module_problems
from .digits import SIZE
from .format import join_items, join_or
from .i18n import N_, _
from .quirks import cite

ABLATIONS = {
    "learned": "rate1 and rate2 both learned, as published",
    "attention_only": "rate2 fixed at 0: the attention path only",
    "conv_only": "rate1 fixed at 0: the convolution path only",
    "plain_conv": "a plain 3x3 convolution in ACmix's place, about the same parameter count",
}
# What a menu of networks shows for each ablation (translated where shown: ablation_label).
ABLATION_LABELS = {
    "learned": N_("learned mix (rate1 and rate2 learned)"),
    "attention_only": N_("attention only (rate2 = 0)"),
    "conv_only": N_("convolution only (rate1 = 0)"),
    "plain_conv": N_("plain 3×3 convolution"),
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


def ablation_label(name: str) -> str:
    """The ablation's network in a few words, in the visitor's language."""
    return _(ABLATION_LABELS[name])


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
        out = integer_problems(self, LIMITS)
        lo, hi = LR_LIMITS
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not lo <= self.lr <= hi:
            out.append(Problem("lr", _("lr must be a number from {low:g} to {high:g}, not {value}.", low=lo,
                                       high=hi, value=repr(self.lr))))
        if not isinstance(self.stem_bn, bool):
            out.append(Problem("stem_bn", _("stem_bn must be True or False, not {value}.",
                                            value=repr(self.stem_bn))))
        if self.ablation not in ABLATIONS:
            out.append(Problem("ablation", _("ablation must be one of {choices}, not {value}.",
                                             choices=join_items(ABLATIONS), value=repr(self.ablation))))
        if self.variant not in VARIANTS:
            out.append(Problem("variant", _("variant must be one of {choices}, not {value}.",
                                            choices=join_items(VARIANTS), value=repr(self.variant))))
        if out:
            return out
        for problem in module_problems(
            self.width, self.width, self.kernel_att, self.head, KERNEL_CONV, self.stride, 1, self.variant
        ):
            if problem.constraint == "head_divides_out_planes":  # in this network's terms: its width
                problem = Problem(
                    problem.constraint,
                    _("head ({head}) must divide width ({width}): each head gets width / head channels.",
                      head=self.head, width=self.width),
                    problem.line, problem.fix, ("head", "width"), problem.changes)
            out.append(problem)
        if self.variant == "official" and SIZE % self.stride:
            fits = join_or(s for s in range(1, LIMITS["stride"][1] + 1) if SIZE % s == 0)
            out.append(Problem(
                "official_size_divisible_by_stride",
                _("The digits are {size}x{size}, which stride {stride} does not divide; the authors' module "
                  "expects h_out = H // stride but its unfold gives ceil(H / stride) ({quirk}).", size=SIZE,
                  stride=self.stride, quirk=cite("Q3")),
                fix=_("Use stride {strides}, or the fixed variant.", strides=fits),
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
            raise ConfigError([Problem("config_keys", _("a training configuration has the keys {keys}, not {found}.",
                                                        keys=sorted(names), found=got))])
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
                    notes.append(_("URL parameter {name}={value} is not one of {choices}; using {fallback}.",
                                   name=key, value=_show(text), choices=join_items(choices[f.name]),
                                   fallback=str(fallback).lower() if f.name == "stem_bn" else fallback))
                continue
            shown = dict(name=key, value=_show(text), fallback=fallback)
            if f.name == "lr":
                lo, hi = LR_LIMITS
                try:
                    number: float | int | None = float(text) if len(text) <= 20 else None
                except ValueError:
                    number = None
                if number is None:
                    notes.append(_("URL parameter {name}={value} is not a number; using {fallback}.", **shown))
                elif not lo <= number <= hi:  # also refuses nan
                    notes.append(_("URL parameter {name}={value} is outside {low:g} to {high:g}; using "
                                   "{fallback}.", low=lo, high=hi, **shown))
                else:
                    values[f.name] = number
                continue
            lo, hi = LIMITS[f.name]
            number = _parse_int(text)
            if number is None:
                notes.append(_("URL parameter {name}={value} is not a whole number; using {fallback}.", **shown))
            elif not lo <= number <= hi:
                notes.append(_("URL parameter {name}={value} is outside {low} to {high:,}; using {fallback}.",
                               low=lo, high=hi, **shown))
            else:
                values[f.name] = number
        return cls(**values), notes

    def steps_per_epoch(self, train_size: int) -> int:
        return -(-train_size // self.batch)

    @property
    def eval_chunk(self) -> int:
        lo, hi = EVAL_CHUNK_RANGE
        return min(hi, max(lo, self.batch))
