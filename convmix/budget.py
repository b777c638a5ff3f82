"""The memory budget and the time limit: refuse, before allocating, work that would not fit.

**The memory budget is a limit on the whole process.** A hosted demo has about 1 GiB for
everything: the interpreter, torch, Streamlit, the caches and every visitor's request. So a
request is admitted only when

    what the process holds now + what is reserved by requests still running + the request's estimate
        <= the budget

"What the process holds" is its resident memory (RSS) from /proc/self/statm, read after asking the
C allocator to return freed pages (malloc_trim), so that memory freed by an earlier request does
not count. Where /proc is missing (macOS) the process's peak RSS stands in for it (an over-count:
refusals come earlier, never later); where neither exists (Windows) only the estimates count.
Estimates come from shapes (`ACmixConfig.estimate_peak_bytes`, `trace.estimate_trace_bytes`, the
measurement's own modules and baselines in `convmix.bench`); a request over the budget is refused
with its estimate, what the process holds, the budget, and a nearby configuration that fits.
Work estimated below `ALWAYS_ADMITTED` bytes is never refused: it is smaller than what a Streamlit
rerun allocates unasked. Work that has no ACmix configuration (reading a checkpoint, building a
network) is admitted the same way by `check_bytes` and `reserved`, with advice of its own.

Refusals are worded in the visitor's language (convmix.i18n) when `Refusal.message()` is called;
settings that cannot be read are logged in English (the log is the operator's).

The budget is 1 GiB unless $CONVMIX_MEMORY_BUDGET (e.g. `768MiB`) or the Streamlit secret
`memory_budget` says otherwise. The library applies it only where a caller asks (`memory_limit=`
in convmix.bench and convmix.compare, `limit` here), so a notebook or the command line is never
limited by surprise; the app and the CLI ask.

**The time limit** caps one request's work in seconds ($CONVMIX_TIME_LIMIT or the secret
`time_limit`, default 30 s): measurements are estimated from counted work and rates measured on
this machine (`convmix.speed`) and refused when they would take longer.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .allocator import malloc_trim
from .config import DTYPE_BYTES, ACmixConfig
from .constraints import round_size
from .format import human_bytes, join_items
from .i18n import N_, _, language

DEFAULT_BUDGET = 1 << 30  # 1 GiB for the whole process
BUDGET_ENV = "CONVMIX_MEMORY_BUDGET"
DEFAULT_TIME_LIMIT = 30.0  # seconds of work per request
TIME_LIMIT_ENV = "CONVMIX_TIME_LIMIT"
MAX_BUDGET = 1 << 50  # 1 PiB: anything larger is a typo, not a machine
MAX_TIME_LIMIT = 7 * 24 * 3600.0
ALWAYS_ADMITTED = 1 << 20  # work below 1 MiB is never refused
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 10**3, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6,
          "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tb": 10**12,
          "tib": 1 << 40}


def parse_bytes(text: str | int) -> int:
    """'1GiB', '512 MiB', '2e9', 1073741824 -> bytes; raises ValueError for anything else.

    Values must be positive and at most 1 PiB ('1e999' is refused, not overflowed).
    """
    if isinstance(text, bool):
        raise ValueError(_("not a memory size: {value} (use e.g. 1GiB or 512MiB)", value=repr(text)))
    if isinstance(text, int):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", str(text)[:64])
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(_("not a memory size: {value} (use e.g. 1GiB or 512MiB)", value=repr(str(text)[:40])))
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value > MAX_BUDGET:
        raise ValueError(_("a memory budget must be at most 1 PiB, not {value}", value=repr(str(text)[:40])))
    if value < 1:
        raise ValueError(_("a memory budget must be positive, not {value}", value=repr(str(text)[:40])))
    return int(value)


def parse_seconds(text: str | float) -> float:
    """'30', '2.5', '90s', '2min' -> seconds; positive and finite, at most a week."""
    if isinstance(text, bool):
        raise ValueError(_("not a duration: {value} (use e.g. 30 or 90s)", value=repr(text)))
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*(s|sec|min|h)?\s*", str(text)[:64])
        if not match:
            raise ValueError(_("not a duration: {value} (use e.g. 30 or 90s)", value=repr(str(text)[:40])))
        value = float(match.group(1)) * {None: 1, "s": 1, "sec": 1, "min": 60, "h": 3600}[match.group(2)]
    if not math.isfinite(value) or not 0 < value <= MAX_TIME_LIMIT:
        raise ValueError(_("a time limit must be more than 0 and at most a week, not {value}",
                           value=repr(str(text)[:40])))
    return value


def configured_budget(secret: str | int | None = None) -> tuple[int, str | None]:
    """The process budget and, when a setting could not be read, a sentence saying so.

    $CONVMIX_MEMORY_BUDGET first, then the given secret, then 1 GiB. An unreadable value is skipped
    (a typo in a setting must not take the app down) and named in the sentence.
    """
    return _configured(((BUDGET_ENV, os.environ.get(BUDGET_ENV)), ("memory_budget", secret)),
                       parse_bytes, DEFAULT_BUDGET)


def configured_time_limit(secret: str | float | None = None) -> tuple[float, str | None]:
    """Seconds one request may work ($CONVMIX_TIME_LIMIT, the secret, else 30), and a sentence on
    any setting that could not be read."""
    return _configured(((TIME_LIMIT_ENV, os.environ.get(TIME_LIMIT_ENV)), ("time_limit", secret)),
                       parse_seconds, DEFAULT_TIME_LIMIT)


def _configured(sources, parse, default):
    notes = []
    for name, value in sources:
        if value in (None, ""):
            continue
        try:
            chosen = parse(value)
        except ValueError as err:
            notes.append(_("the setting {name} cannot be used: {reason}", name=name, reason=err))
            continue
        return chosen, "; ".join(notes) or None
    return default, "; ".join(notes) or None


_warned: set[str] = set()


def _warn_once(note: str | None) -> None:
    if note and note not in _warned:
        _warned.add(note)
        logging.getLogger(__name__).warning(note)


def memory_budget(secret: str | int | None = None) -> int:
    """The budget for the whole process: $CONVMIX_MEMORY_BUDGET, else the given secret, else 1 GiB.

    A setting that cannot be read is logged once (in English) and skipped.
    """
    with language("en"):
        value, note = configured_budget(secret)
    _warn_once(note)
    return value


def time_limit(secret: str | float | None = None) -> float:
    """Seconds one request may work: $CONVMIX_TIME_LIMIT, else the given secret, else 30."""
    with language("en"):
        value, note = configured_time_limit(secret)
    _warn_once(note)
    return value


# -- what the process holds ------------------------------------------------------------------------
def resident_bytes() -> int:
    """This process's resident memory now (the peak where only that is known; 0 where neither is)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


_last_trimmed = 0  # resident bytes right after the last malloc_trim


def held_bytes() -> int:
    """What the process holds: resident memory after freed heap pages went back to the system."""
    global _last_trimmed
    malloc_trim()
    _last_trimmed = resident_bytes()
    return _last_trimmed


def release_freed_memory(growth: int = 32 << 20) -> None:
    """Hand freed heap pages back to the system when the process has grown by `growth` bytes since
    the last time: a page's large temporaries are freed when it ends, but the C allocator keeps
    them, and a container's memory limit counts them until then. Cheap when nothing grew (one read
    of /proc/self/statm); called after every script run."""
    if resident_bytes() > _last_trimmed + growth:
        held_bytes()


_reserved = 0  # bytes admitted to requests that are still running
_admit_lock = threading.Lock()


def reserved_bytes() -> int:
    return _reserved


def in_use() -> int:
    """Held now plus reserved by running requests: what a new request must fit beside."""
    return held_bytes() + _reserved


# -- estimates ----------------------------------------------------------------------------------------
def module_bytes(config: ACmixConfig, dtype: str = "float32") -> int:
    """The module's weights: what building it allocates."""
    return DTYPE_BYTES[dtype] * sum(config.param_counts().values())


def build_bytes(config: ACmixConfig, dtype: str = "float32") -> int:
    """What building the module needs at its peak: its weights, and dep_conv's weight twice, since
    reset_parameters replaces PyTorch's initial weight (out_planes·kernel_conv⁴ values) by the shift
    kernels while the first is still alive."""
    return module_bytes(config, dtype) + DTYPE_BYTES[dtype] * config.out_planes * config.kernel_conv**4


def weights_and_input_bytes(config: ACmixConfig, dtype: str = "float32") -> int:
    elt = DTYPE_BYTES[dtype]
    params = sum(config.param_counts().values())
    b, c, h, w = config.input_shape
    return elt * (params + b * c * h * w)


def forward_bytes(config: ACmixConfig, dtype: str = "float32", impl: str = "reference") -> int:
    """Weights, input and the forward's peak: what one forward needs."""
    return weights_and_input_bytes(config, dtype) + config.estimate_peak_bytes(dtype, impl)


def trace_bytes(config: ACmixConfig) -> int:
    """A traced forward keeps every named intermediate alive, on top of the forward's own peak."""
    from .trace import estimate_trace_bytes

    return forward_bytes(config) + estimate_trace_bytes(config)


# -- refusals --------------------------------------------------------------------------------------------
def _seconds(value: float) -> str:
    return f"{value:,.0f} s" if value >= 10 else f"{value:,.1f} s"


@dataclass(frozen=True)
class Refusal:
    """Why something was not run, with a nearby configuration that fits (when one was found).

    `what` is the work, the subject of the sentence: a phrase in the visitor's language, or an
    English phrase marked with N_() that `message()` translates. `held` is what the process held
    (plus reservations) when memory was checked; `unit` is "bytes" for the memory budget and
    "seconds" for the time limit; `change` names the nearby configuration's changes (in the
    language active when it was found). `advice` says what would work when there is no nearby
    configuration (None: change the configuration's batch, size, window or channels).
    """

    what: str
    estimate: float
    budget: float
    nearby: ACmixConfig | None
    nearby_estimate: float = 0
    change: str = ""
    held: int = 0
    unit: str = "bytes"
    advice: str | None = None

    def message(self) -> str:
        """The refusal in the visitor's language, with its figures."""
        what = _(self.what)
        if self.unit == "seconds":
            text = _("{what} would take about {estimate} on this server, over its limit of {limit} per "
                     "request, so it was not run.", what=what, estimate=_seconds(self.estimate),
                     limit=_seconds(self.budget))
            fits = _seconds(self.nearby_estimate)
        elif self.held:
            text = _("{what} would need about {need} on top of the {held} this server holds now, over this "
                     "server's memory budget of {budget}, so it was not run.", what=what,
                     need=human_bytes(self.estimate), held=human_bytes(self.held),
                     budget=human_bytes(self.budget))
            fits = human_bytes(self.nearby_estimate)
        else:
            text = _("{what} would need about {need}, over this server's memory budget of {budget}, so it "
                     "was not run.", what=what, need=human_bytes(self.estimate),
                     budget=human_bytes(self.budget))
            fits = human_bytes(self.nearby_estimate)
        if self.nearby is not None:
            advice = _("A nearby configuration that fits: {change} (about {fits}).", change=self.change,
                       fits=fits)
        elif self.advice is None:
            advice = _("Reduce the batch, the input size, the window or the channels.")
        else:
            advice = self.advice
        return f"{text} {advice}" if advice else text


class OverBudget(ValueError):
    """Work refused by the memory budget or the time limit; `refusal` says why and what fits."""

    def __init__(self, refusal: Refusal):
        self.refusal = refusal
        super().__init__(refusal.message())


def check(
    config: ACmixConfig,
    budget: int,
    cost: Callable[[ACmixConfig], int] = forward_bytes,
    what: str = N_("This forward pass"),
    held: int | None = None,
) -> Refusal | None:
    """None when `held + cost(config)` fits in `budget`; otherwise a Refusal with a nearby fit.

    `held` defaults to what the process holds now plus running reservations (`in_use()`); pass 0
    to ask whether the work could fit at all.
    """
    estimate = cost(config)
    if estimate < ALWAYS_ADMITTED:
        return None
    held = in_use() if held is None else held
    if held + estimate <= budget:
        return None
    for change, candidate in _smaller_configs(config):
        if candidate.problems():
            continue
        need = cost(candidate)
        if held + need <= budget:
            return Refusal(what, estimate, budget, candidate, need, change, held)
    return Refusal(what, estimate, budget, None, held=held)


def check_bytes(need: int, budget: int, what: str, held: int | None = None, advice: str = "") -> Refusal | None:
    """`check` for work that has no ACmix configuration (reading a checkpoint, building a network):
    None when `held + need` fits in `budget` (or `need` is below ALWAYS_ADMITTED); otherwise a
    Refusal that gives `advice` (a sentence in the visitor's language) instead of a nearby fit."""
    if need < ALWAYS_ADMITTED:
        return None
    held = in_use() if held is None else held
    if held + need <= budget:
        return None
    return Refusal(what, need, budget, None, held=held, advice=advice)


def check_time(
    config: ACmixConfig,
    limit: float,
    cost: Callable[[ACmixConfig], float],
    what: str,
    second_opinion: Callable[[], None] | None = None,
    candidates: int = 12,
) -> Refusal | None:
    """None when the estimated seconds `cost(config)` fit `limit`; otherwise a Refusal in seconds.

    Before refusing, `second_opinion()` (e.g. convmix.speed.remeasure) may ask for a fresh estimate
    and the work is refused only if that one is over the limit too. At most `candidates` nearby
    configurations are estimated (each estimate may measure).
    """
    estimate = cost(config)
    if estimate <= limit:
        return None
    if second_opinion is not None:
        second_opinion()
        estimate = min(estimate, cost(config))
        if estimate <= limit:
            return None
    tried = 0
    for change, candidate in _smaller_configs(config):
        if candidate.problems():
            continue
        tried += 1
        if tried > candidates:
            break
        need = cost(candidate)
        if need <= limit:
            return Refusal(what, estimate, limit, candidate, need, change, unit="seconds")
    return Refusal(what, estimate, limit, None, unit="seconds")


@contextmanager
def admitted(
    config: ACmixConfig,
    budget: int,
    cost: Callable[[ACmixConfig], int] = forward_bytes,
    what: str = N_("This forward pass"),
    make_room: Callable[[], bool] | None = None,
) -> Iterator[int]:
    """Reserve `cost(config)` bytes of the process budget while the block runs; yields the estimate.

    Raises OverBudget when it does not fit beside what the process holds and what running requests
    reserved. `make_room` (e.g. evicting a cache entry) is called while it does not fit, until it
    returns False. The check and the reservation happen under one lock, so two requests never
    both take the last free bytes.
    """
    with _reservation(cost(config), lambda: check(config, budget, cost, what), make_room) as estimate:
        yield estimate


@contextmanager
def reserved(
    need: int, budget: int, what: str, make_room: Callable[[], bool] | None = None, advice: str = "",
) -> Iterator[int]:
    """`admitted` for work that has no ACmix configuration: reserve `need` bytes while the block
    runs, or raise OverBudget with `advice` (see check_bytes)."""
    with _reservation(need, lambda: check_bytes(need, budget, what, advice=advice), make_room) as estimate:
        yield estimate


@contextmanager
def _reservation(estimate: int, refuse: Callable[[], Refusal | None],
                 make_room: Callable[[], bool] | None) -> Iterator[int]:
    """Reserve `estimate` bytes unless `refuse()` says why not, after `make_room()` while it helps."""
    global _reserved
    with _admit_lock:
        refusal = refuse()
        while refusal is not None and make_room is not None and make_room():
            refusal = refuse()
        if refusal is not None:
            raise OverBudget(refusal)
        _reserved += estimate
    try:
        yield estimate
    finally:
        with _admit_lock:
            _reserved -= estimate


def _smaller_configs(c: ACmixConfig):
    """Configurations close to `c` and cheaper, one knob at a time, the gentlest changes first; each
    with the changes that make it, in words (the visitor's language)."""
    for candidate in _cheaper(c):
        yield _changes(c, candidate), candidate


def _changes(before: ACmixConfig, after: ACmixConfig) -> str:
    parts = []
    if after.batch != before.batch:
        parts.append(_("batch {batch}", batch=after.batch))
    if (after.height, after.width) != (before.height, before.width):
        parts.append(_("input {height}×{width}", height=after.height, width=after.width))
    for name in ("kernel_att", "kernel_conv", "in_planes", "out_planes"):
        if getattr(after, name) != getattr(before, name):
            parts.append(f"{name} {getattr(after, name)}")  # the parameter's own name: code
    return join_items(parts)


def _cheaper(c: ACmixConfig):
    batch = c.batch
    while batch > 1:
        batch //= 2
        yield c.with_(batch=batch)
    step = c.stride if c.variant == "official" else 1

    def shrink(n: int) -> int:  # about 3/4, a round size the stride divides (constraints.round_size)
        return n if n <= 8 else round_size(max(8, n * 3 // 4), step, maximum=n - 1, keep=False)

    h, w = c.height, c.width
    while h > 8 or w > 8:
        h, w = shrink(h), shrink(w)
        yield c.with_(batch=batch, height=h, width=w)
    ka = c.kernel_att
    while ka > 1:
        ka -= 2
        yield c.with_(batch=batch, height=h, width=w, kernel_att=ka)
    kc = c.kernel_conv
    while c.variant == "fixed" and kc > 1:
        kc -= 2
        yield c.with_(batch=batch, height=h, width=w, kernel_att=ka, kernel_conv=kc)
    cin, cout = c.in_planes, c.out_planes
    while cout % 2 == 0 and (cout // 2) % c.head == 0:
        cin, cout = max(1, cin // 2), cout // 2
        yield c.with_(batch=batch, height=h, width=w, kernel_att=ka, kernel_conv=kc, in_planes=cin,
                      out_planes=cout)
