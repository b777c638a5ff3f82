"""A memory budget: refuse, before allocating, any forward, trace or sweep that would not fit.

A hosted demo has about 1 GiB. Every configuration's cost is estimated from shapes
(`ACmixConfig.estimate_peak_bytes`, `trace.estimate_trace_bytes`); one over budget is refused with the
estimate, the budget, and a nearby configuration that fits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from .config import DTYPE_BYTES, ACmixConfig
from .constraints import round_size
from .format import human_bytes

DEFAULT_BUDGET = 1 << 30  # 1 GiB
BUDGET_ENV = "CONVMIX_MEMORY_BUDGET"
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 10**3, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6,
          "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30}


def parse_bytes(text: str | int) -> int:
    """'1GiB', '512 MiB', '2e9', 1073741824 -> bytes; raises ValueError for anything else."""
    if isinstance(text, int):
        value = text
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"not a memory size: {text!r} (use e.g. 1GiB or 512MiB)")
        value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise ValueError(f"a memory budget must be positive, not {text!r}")
    return value


def memory_budget(secret: str | int | None = None) -> int:
    """The budget: $CONVMIX_MEMORY_BUDGET, else the given secret, else 1 GiB."""
    for source in (os.environ.get(BUDGET_ENV), secret):
        if source not in (None, ""):
            return parse_bytes(source)
    return DEFAULT_BUDGET


def module_bytes(config: ACmixConfig, dtype: str = "float32") -> int:
    """The module's weights: what building it allocates."""
    return DTYPE_BYTES[dtype] * sum(config.param_counts().values())


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


@dataclass(frozen=True)
class Refusal:
    what: str
    estimate: int
    budget: int
    nearby: ACmixConfig | None
    nearby_estimate: int = 0
    change: str = ""

    def message(self) -> str:
        text = (
            f"{self.what} would need about {human_bytes(self.estimate)}, over this server's memory "
            f"budget of {human_bytes(self.budget)}, so it was not run."
        )
        if self.nearby is not None:
            text += f" A nearby configuration that fits: {self.change} (about {human_bytes(self.nearby_estimate)})."
        else:
            text += " Reduce the batch, the input size, the window or the channels."
        return text


def check(
    config: ACmixConfig,
    budget: int,
    cost: Callable[[ACmixConfig], int] = forward_bytes,
    what: str = "This forward pass",
) -> Refusal | None:
    """None when `cost(config)` fits in `budget`; otherwise a Refusal with a nearby fit."""
    estimate = cost(config)
    if estimate <= budget:
        return None
    for change, candidate in _smaller_configs(config):
        if candidate.problems():
            continue
        need = cost(candidate)
        if need <= budget:
            return Refusal(what, estimate, budget, candidate, need, change)
    return Refusal(what, estimate, budget, None)


def _smaller_configs(c: ACmixConfig):
    """Configurations close to `c` and cheaper, one knob at a time, the gentlest changes first."""
    batch = c.batch
    while batch > 1:
        batch //= 2
        yield f"batch {batch}", c.with_(batch=batch)
    step = c.stride if c.variant == "official" else 1

    def shrink(n: int) -> int:  # about 3/4, a round size the stride divides (constraints.round_size)
        return n if n <= 8 else round_size(max(8, n * 3 // 4), step, maximum=n - 1, keep=False)

    h, w = c.height, c.width
    while h > 8 or w > 8:
        h, w = shrink(h), shrink(w)
        yield f"batch {batch}, input {h}×{w}", c.with_(batch=batch, height=h, width=w)
    ka = c.kernel_att
    while ka > 1:
        ka -= 2
        yield f"batch {batch}, input {h}×{w}, kernel_att {ka}", c.with_(
            batch=batch, height=h, width=w, kernel_att=ka)
