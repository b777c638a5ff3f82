"""The words of the training page for what the training library returns as data or as English.

convmix.train, convmix.train_config and convmix.train_limits compute and check; this module says
what they found in the visitor's language (convmix.i18n): the networks of the ablation, URL values
that were not taken, settings that cannot run, the memory and time refusals, why a run stopped,
and the busy message. Every number comes from the library's own estimates and counts. No Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

from .constraints import VARIANTS
from .digits import SIZE
from .format import human_bytes
from .i18n import N_, _, ngettext, pgettext
from .train import ABLATIONS, LIMITS, LR_LIMITS, TrainConfig, Trainer
from .train_limits import (
    RunPlan,
    StepTiming,
    _smaller,
    estimate_run_bytes,
    estimate_run_seconds,
)
from .train_live import stopped_by_time_cap

URL_PREFIX = "train_"  # the page's URL parameters: train_width, train_lr ... (the sidebar owns width)

ABLATION_LABELS = {
    "learned": N_("learned mix (rate1 and rate2 learned)"),
    "attention_only": N_("attention only (rate2 = 0)"),
    "conv_only": N_("convolution only (rate1 = 0)"),
    "plain_conv": N_("plain 3×3 convolution"),
}

def ablation_label(name: str) -> str:
    return _(ABLATION_LABELS[name])


def join(items: list[str]) -> str:
    return pgettext("list separator", ", ").join(items)


def _shown(raw: object) -> str:
    """A URL value as it may appear in a message: short, letters, digits and . + - only."""
    text = str(raw[-1] if isinstance(raw, (list, tuple)) and raw else raw)
    safe = "".join(ch if ch.isalnum() or ch in "-_.+" else "?" for ch in text[:20])
    return safe + ("…" if len(text) > 20 else "")


# -- URL values -----------------------------------------------------------------------------------


def url_notes(params: Mapping[str, object], prefix: str = URL_PREFIX) -> list[str]:
    """A sentence for every `prefix + field` URL value that TrainConfig.from_query_params did not
    take (malformed or out of range): it says what the parameter accepts and what is used instead."""
    notes = []
    default = TrainConfig()
    for f in fields(TrainConfig):
        key = prefix + f.name
        if key not in params:
            continue
        _config, rejected = TrainConfig.from_query_params({key: params[key]}, prefix=prefix)
        if not rejected:
            continue
        value = "`" + key + "=" + _shown(params[key]) + "`"
        fallback = getattr(default, f.name)
        if f.name in ("ablation", "variant", "stem_bn"):
            options = {"ablation": list(ABLATIONS), "variant": list(VARIANTS), "stem_bn": ["true", "false"]}
            choices = join(["`" + c + "`" for c in options[f.name]])
            used = "`" + str(fallback).lower() + "`"
            notes.append(_("The URL's {value} is not one of {choices}; this page uses {fallback}.",
                           value=value, choices=choices, fallback=used))
        elif f.name == "lr":
            low, high = LR_LIMITS
            notes.append(_("The URL's {value} is not a number from {low:g} to {high:g}; this page uses "
                           "{fallback:g}.", value=value, low=low, high=high, fallback=fallback))
        else:
            low, high = LIMITS[f.name]
            notes.append(_("The URL's {value} is not a whole number from {low:,} to {high:,}; this page uses "
                           "{fallback:,}.", value=value, low=low, high=high, fallback=fallback))
    return notes


# -- settings that cannot run ---------------------------------------------------------------------


def _nearest_divisors(n: int, target: int, count: int = 3) -> list[int]:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return sorted(sorted(divisors, key=lambda d: (abs(d - target), d))[:count])


def problem_sentences(config: TrainConfig) -> list[str]:
    """Every constraint `config` breaks, in the visitor's language, each with what would work.

    The settings' own widgets keep every value inside its bounds, so the constraints left are those
    between values; a constraint this page has no words for is shown in the library's English."""
    out = []
    for problem in config.problems():
        if problem.constraint == "head_divides_out_planes":
            out.append(_("head ({head}) must divide width ({width}): each head gets `width / head` channels. "
                         "Heads that divide {width}: {near}.", head=config.head, width=config.width,
                         near=join([str(d) for d in _nearest_divisors(config.width, config.head)])))
        elif problem.constraint == "kernel_att_odd":
            out.append(_("kernel_att ({k}) must be odd: an attention window needs a centre. Try {lower} or "
                         "{higher}.", k=config.kernel_att, lower=config.kernel_att - 1,
                         higher=config.kernel_att + 1))
        elif problem.constraint == "official_size_divisible_by_stride":
            fits = [s for s in range(1, LIMITS["stride"][1] + 1) if SIZE % s == 0]
            out.append(_("The digits are {size}×{size} pixels, which stride {stride} does not divide, and the "
                         "authors' ACmix (variant official) cannot produce the odd output size (Q3). Use stride "
                         "{fits}, or variant fixed.", size=SIZE, stride=config.stride,
                         fits=join([str(s) for s in fits])))
        else:
            out.append(problem.sentence())
    return out


# -- refusals -------------------------------------------------------------------------------------


def _change(base: TrainConfig, other: TrainConfig) -> str:
    """The settings in which `other` differs from `base`, as `name value` pairs."""
    return join([f"{f.name} {getattr(other, f.name)}" for f in fields(TrainConfig)
                 if getattr(other, f.name) != getattr(base, f.name)])


def memory_refusal(config: TrainConfig, budget: int) -> str | None:
    """Why `config` may not start for lack of memory, and the gentlest change that fits; None when
    its estimate (convmix.train_limits.estimate_run_bytes) is within `budget`."""
    need = estimate_run_bytes(config)
    if need <= budget:
        return None
    text = _("Training this network would need about {need}, more than this server's memory budget of "
             "{budget}, so it was not started.", need=human_bytes(need), budget=human_bytes(budget))
    for _label, candidate in _smaller(config):
        fits = estimate_run_bytes(candidate)
        if fits <= budget:
            return text + " " + _("A nearby configuration that fits: {change} (about {fits}).",
                                  change=_change(config, candidate), fits=human_bytes(fits))
    return text + " " + _("Reduce batch, kernel_att or width.")


def time_refusal(plan: RunPlan, timing: StepTiming, log_every: int | None = None) -> str | None:
    """Why a run over the time cap may not start, and how many epochs would fit; None when the
    plan's measured estimate is within the cap."""
    config = plan.config
    if plan.seconds is None or plan.seconds <= plan.time_limit_s:
        return None
    per_epoch = estimate_run_seconds(config, timing, log_every, epochs=1)
    text = ngettext(
        "Training {epochs} epoch would take about {seconds:,.0f} s of computing ({per_epoch:,.1f} s per "
        "epoch, timed on this server just now), more than the cap of {cap:g} s per run, so it was not started.",
        "Training {epochs} epochs would take about {seconds:,.0f} s of computing ({per_epoch:,.1f} s per "
        "epoch, timed on this server just now), more than the cap of {cap:g} s per run, so it was not started.",
        config.epochs, epochs=config.epochs, seconds=plan.seconds, per_epoch=per_epoch, cap=plan.time_limit_s)
    fit = max((e for e in range(1, config.epochs)
               if estimate_run_seconds(config, timing, log_every, e) <= plan.time_limit_s), default=0)
    if fit:
        return text + " " + ngettext("{fit} epoch fits (about {seconds:,.0f} s).",
                                     "{fit} epochs fit (about {seconds:,.0f} s).", fit, fit=fit,
                                     seconds=estimate_run_seconds(config, timing, log_every, fit))
    return text + " " + _("Not even one epoch fits: use a smaller width or kernel_att, or a larger stride.")


def busy_message(capacity: int) -> str:
    return ngettext(
        "{count} training run is using this server's processor right now (at most {count} at a time, so that "
        "every visitor's pages stay responsive).",
        "{count} training runs are using this server's processor right now (at most {count} at a time, so "
        "that every visitor's pages stay responsive).", capacity, count=capacity)


def stop_message(trainer: Trainer) -> str | None:
    """Why a run stopped before its last step; None while it runs or when it finished."""
    if trainer.stop_reason is None or trainer.finished:
        return None
    if stopped_by_time_cap(trainer.stop_reason):
        return _("The run reached the cap of {cap:g} s of computing after {done:,} of {total:,} steps and "
                 "stopped there. Fewer epochs, a smaller width or kernel_att, or a larger stride fit in the "
                 "cap.",
                 cap=trainer.time_limit_s, done=trainer.step_count, total=trainer.total_steps)
    return _("The training loss stopped being a finite number at step {step:,}: the learning rate {lr:g} is "
             "too high for this network. Try {lower:.3g}.", step=trainer.step_count + 1, lr=trainer.config.lr,
             lower=trainer.config.lr / 3)
