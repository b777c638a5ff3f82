"""ACmixConfig: one frozen description of a module and its input, with validation and URL round trip.

The sidebar, the URL, the command line and the tests all speak this one object. `problems()` lists
every violated constraint as a sentence (the same sentences the module raises), `to_query_params`
and `from_query_params` round-trip through URL query parameters named exactly like the fields,
and `estimate_peak_bytes` predicts a forward's peak memory from shapes alone, before anything is
allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from .constraints import (
    MAX_KERNEL_ATT,
    MAX_KERNEL_CONV,
    MAX_SIDE,
    VARIANTS,
    Problem,
    attention_padding,
    input_problems,
    module_problems,
    output_size,
)
from .format import join_items
from .i18n import _

# Bounds on what a visitor can ask for; the module itself has no limits.
LIMITS: dict[str, tuple[int, int]] = {
    "in_planes": (1, 2048),
    "out_planes": (1, 2048),
    "kernel_att": (1, MAX_KERNEL_ATT),
    "head": (1, 2048),
    "kernel_conv": (1, MAX_KERNEL_CONV),
    "stride": (1, 8),
    "dilation": (1, 8),
    "height": (1, MAX_SIDE),
    "width": (1, MAX_SIDE),
    "batch": (1, 64),
    "seed": (0, 2**31 - 1),
}

DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}


def integer_problems(values, limits: Mapping[str, tuple[int, int]]) -> list[Problem]:
    """A sentence for each attribute of `values` named in `limits` that is not an integer in its range."""
    out = []
    for name, (lo, hi) in limits.items():
        value = getattr(values, name)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            out.append(Problem(name, _("{name} must be an integer from {low} to {high:,}, not {value}.",
                                       name=name, low=lo, high=hi, value=repr(value))))
    return out


@dataclass(frozen=True)
class ACmixConfig:
    """ACmix hyperparameters (authors' names) plus the input it is run on."""

    in_planes: int = 64
    out_planes: int = 64
    kernel_att: int = 7
    head: int = 4
    kernel_conv: int = 3
    stride: int = 1
    dilation: int = 1
    height: int = 56
    width: int = 56
    batch: int = 1
    seed: int = 0
    variant: str = "official"

    # -- validation ---------------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        """Every violated constraint (bounds, module, input), each a readable sentence."""
        out = integer_problems(self, LIMITS)
        if out:
            return out
        out += module_problems(
            self.in_planes,
            self.out_planes,
            self.kernel_att,
            self.head,
            self.kernel_conv,
            self.stride,
            self.dilation,
            self.variant,
            input_size=(self.height, self.width),
        )
        if self.variant in VARIANTS:
            out += input_problems(
                self.height, self.width, self.kernel_att, self.stride, self.dilation, self.variant
            )
        return out

    @property
    def is_valid(self) -> bool:
        return not self.problems()

    # -- derived sizes --------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.out_planes // self.head

    @property
    def out_height(self) -> int:
        return output_size(self.height, self.stride, self.variant)

    @property
    def out_width(self) -> int:
        return output_size(self.width, self.stride, self.variant)

    @property
    def padded_area(self) -> int:
        """Area of a reflection-padded map (H + 2p) x (W + 2p), p the attention padding."""
        pad = attention_padding(self.kernel_att, self.dilation)
        return (self.height + 2 * pad) * (self.width + 2 * pad)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.out_planes, self.out_height, self.out_width)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_planes, self.height, self.width)

    def module_kwargs(self) -> dict:
        return dict(
            in_planes=self.in_planes,
            out_planes=self.out_planes,
            kernel_att=self.kernel_att,
            head=self.head,
            kernel_conv=self.kernel_conv,
            stride=self.stride,
            dilation=self.dilation,
            variant=self.variant,
        )

    def with_(self, **changes) -> ACmixConfig:
        return replace(self, **changes)

    # -- building -------------------------------------------------------------------------------
    def build(self, impl: str = "reference"):
        """The ACmix module, its weights drawn from `seed` (raises ConfigError if invalid)."""
        import torch

        from .acmix import ACmix

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return ACmix(**self.module_kwargs(), impl=impl)

    def make_input(self, dtype=None, device=None):
        """A standard-normal input of input_shape, drawn from seed + 1 (independent of weights)."""
        import torch

        gen = torch.Generator().manual_seed(self.seed + 1)
        x = torch.randn(self.input_shape, generator=gen)
        return x.to(dtype=dtype or torch.float32, device=device or "cpu")

    # -- URL round trip -------------------------------------------------------------------------
    def to_query_params(self, only_changed: bool = False) -> dict[str, str]:
        default = ACmixConfig()
        return {
            k: str(v)
            for k, v in asdict(self).items()
            if not only_changed or getattr(default, k) != v
        }

    @classmethod
    def from_query_params(cls, params: Mapping[str, object]) -> tuple[ACmixConfig, list[str]]:
        """Parse URL parameters safely: unknown keys are ignored; unparsable or out-of-range values
        fall back to the default (as the sidebar's URL-bound widgets do).

        Returns the configuration and one message per value that was not taken as given.
        """
        values: dict[str, object] = {}
        notes: list[str] = []
        default = cls()
        for f in fields(cls):
            if f.name not in params:
                continue
            raw = params[f.name]
            fallback = getattr(default, f.name)
            if f.name == "variant":
                value, note = url_choice(f.name, raw, VARIANTS, fallback)
            else:
                value, note = url_int(f.name, raw, *LIMITS[f.name], fallback)
            if note:
                notes.append(note)
            else:
                values[f.name] = value
        return cls(**values), notes

    def step_costs(self):
        """Multiply-adds and FLOPs of each traced step (see convmix.counting for the convention)."""
        from .counting import step_costs

        return step_costs(
            self.in_planes, self.out_planes, self.kernel_att, self.head, self.kernel_conv,
            self.batch, self.height, self.width, self.out_height, self.out_width,
        )

    def param_counts(self) -> dict[str, int]:
        """Parameters per submodule, by formula."""
        from .counting import param_formula

        return param_formula(self.in_planes, self.out_planes, self.head, self.kernel_conv)

    # -- memory -----------------------------------------------------------------------------------
    def estimate_peak_bytes(self, dtype: str = "float32", impl: str = "reference",
                            threads: int | None = None) -> int:
        """Peak bytes the CPU allocator holds during one no-grad forward, beyond its input and
        weights, from shapes alone: every tensor of the forward plus the convolutions' and
        unfold's own workspaces (convmix.memory). An upper bound of `measure_peak_bytes` on the
        CPU, close to it; `threads` (default: torch's current setting) decides, as in PyTorch,
        whether 1x1 convolutions use oneDNN.
        """
        from .memory import estimate_forward_peak

        return estimate_forward_peak(self, dtype, impl, threads)

    def describe(self) -> str:
        return (
            f"ACmix({self.in_planes}, {self.out_planes}, kernel_att={self.kernel_att}, "
            f"head={self.head}, kernel_conv={self.kernel_conv}, stride={self.stride}, "
            f"dilation={self.dilation}, variant={self.variant!r}) on "
            f"{self.batch}x{self.in_planes}x{self.height}x{self.width}"
        )


def url_text(raw: object) -> str:
    """A URL value as text: the last of repeated values, stripped and cut to 40 characters."""
    if isinstance(raw, (list, tuple)):
        raw = raw[-1] if raw else ""
    return str(raw).strip()[:40]


def url_int(name: str, raw: object, lo: int, hi: int, fallback: int) -> tuple[int, str | None]:
    """An integer URL parameter: (value, None), or (fallback, the sentence that says why).

    Streamlit's bound widgets refuse such values and keep their default silently; the sentence
    says so, in the same terms everywhere, in the visitor's language.
    """
    text = url_text(raw)
    number = _parse_int(text)
    if number is None:
        return fallback, _("URL parameter {name}={value} is not a whole number; using {fallback}.",
                           name=name, value=_show(text), fallback=fallback)
    if not lo <= number <= hi:
        return fallback, _("URL parameter {name}={value} is outside {low} to {high:,}; using {fallback}.",
                           name=name, value=number, low=lo, high=hi, fallback=fallback)
    return number, None


def url_choice(name: str, raw: object, choices: tuple, fallback) -> tuple[object, str | None]:
    """A URL parameter that must be one of `choices`, written as Streamlit writes them (booleans
    as true and false): (value, None), or (fallback, the sentence that says why)."""
    text = url_text(raw)
    for choice in choices:
        if text == _url_form(choice):
            return choice, None
    return fallback, _("URL parameter {name}={value} is not one of {choices}; using {fallback}.", name=name,
                       value=_show(text), choices=join_items(_url_form(c) for c in choices),
                       fallback=_url_form(fallback))


def _url_form(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def misread_by_streamlit(raw: object) -> bool:
    """True for URL text that Streamlit's integer widgets crash on (infinite) or truncate (8.5)."""
    try:
        number = float(url_text(raw))
    except ValueError:
        return False
    return math.isinf(number) or (math.isfinite(number) and number != int(number))


def _parse_int(text: str) -> int | None:
    """An integer from URL text: digits with an optional sign (also '8.0'); anything else is None."""
    if not text or len(text) > 20:
        return None
    try:
        value = float(text) if any(ch in text for ch in ".eE") else int(text, 10)
    except ValueError:
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    return value


def _show(text: str) -> str:
    """A URL value quoted for a message, shortened and without markup characters or spaces (so that
    no words of a URL read as the message's own prose)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.+" else "?" for ch in text)
    return repr(safe[:20] + ("…" if len(text) > 20 else ""))
