"""Every constraint ACmix places on its hyperparameters and input, as readable sentences.

The authors' code crashes with a raw shape error for many settings (ACMIX.md, quirks Q2-Q7). Both the
module (at construction / forward) and the configuration (for the sidebar and the URL) ask the
same functions here, so a problem is described once and in the same words everywhere: in the
visitor's language (convmix.i18n), translated when the problem is found, with the authors' lines
left as code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .format import join_and, join_items, join_or
from .i18n import _

VARIANTS = ("official", "fixed")

# The authors' statements that break, quoted so a message can point at them.
LINE_VIEW_UNFOLD = (
    "unfold_k = self.unfold(self.pad_att(k_att)).view(b * self.head, self.head_dim, "
    "self.kernel_att * self.kernel_att, h_out, w_out)"
)
LINE_FINAL_SUM = "return self.rate1 * out_att + self.rate2 * out_conv"
LINE_HEAD_VIEW = "q_att = q.view(b * self.head, self.head_dim, h, w) * scaling"
LINE_DEP_CONV = (
    "self.dep_conv = nn.Conv2d(self.kernel_conv * self.kernel_conv * self.head_dim, out_planes, "
    "kernel_size=self.kernel_conv, bias=True, groups=self.head_dim, padding=1, stride=stride)"
)
LINE_PAD = "self.pad_att(k_att)  # nn.ReflectionPad2d(self.padding_att)"

# Sizes a visitor may choose (convmix.config.LIMITS repeats these for the URL); a suggestion
# stays inside them.
MAX_SIDE = 1024
MAX_KERNEL_ATT = 31
MAX_KERNEL_CONV = 15


@dataclass(frozen=True)
class Problem:
    """One violated constraint: a short name, a sentence, the authors' line, and a fix.

    `message` and `fix` are in the language that was active when the problem was found; `constraint`,
    `fields` and `changes` are data, the same in every language.

    `fields` names the hyperparameters the constraint involves; `changes` lists the suggested
    fixes as alternatives, each a set of new values that the fix's sentence names (a fix never
    leaves a problem on a value it changes).
    """

    constraint: str
    message: str
    line: str = ""
    fix: str = ""
    fields: tuple[str, ...] = ()
    changes: tuple[dict, ...] = ()

    def sentence(self) -> str:
        parts = [self.message]
        if self.fix:
            parts.append(self.fix)
        return " ".join(parts)


class ConfigError(ValueError):
    """A configuration ACmix cannot run. `problems` lists every violated constraint."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        text = " ".join(p.sentence() for p in self.problems)
        lines = [p.line for p in self.problems if p.line]
        if lines:
            text += " " + _("(the authors' code breaks at: `{lines}`)", lines=" | ".join(dict.fromkeys(lines)))
        super().__init__(text)

    @property
    def constraints(self) -> list[str]:
        return [p.constraint for p in self.problems]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _head_fix(out_planes: int, head: int) -> tuple[str, list[int]]:
    """Every head count that divides out_planes, or a few near `head` when there are many."""
    divisors = _divisors(out_planes)
    if len(divisors) <= 8:
        return _("Heads that divide {out_planes}: {heads}.", out_planes=out_planes,
                 heads=_listing(divisors)), divisors
    near = sorted(sorted(divisors, key=lambda d: (abs(d - head), d))[:4])
    return _("Heads that divide {out_planes} include {heads}.", out_planes=out_planes,
             heads=_listing(near)), near


def _listing(values: list[int]) -> str:
    return join_and(f"{v:,}" for v in values)


def round_size(size: int, multiple: int = 1, minimum: int = 1, maximum: int = MAX_SIDE,
               keep: bool = True) -> int:
    """A size near `size` that is a multiple of `multiple` and within [minimum, maximum], as round
    as a nearby choice allows: a multiple of 2^j·multiple for the largest j that stays within a
    twelfth of `size` (or one `multiple`). With `keep`, `size` itself when it already qualifies."""
    if keep and size % multiple == 0 and minimum <= size <= maximum:
        return size
    lo = -(-max(minimum, 1) // multiple) * multiple
    hi = maximum // multiple * multiple
    if lo > hi:
        raise ValueError(f"no multiple of {multiple} lies within {minimum} to {maximum}")
    reach = max(multiple, size // 12)
    for power in range(10, -1, -1):
        step = math.lcm(multiple, 2**power)
        below, above = size // step * step, -(-size // step) * step
        near = [c for c in (below, above, -(-lo // step) * step) if lo <= c <= hi and abs(c - size) <= reach]
        if near:
            return min(near, key=lambda c: (abs(c - size), -c))
    return min(max(size, lo), hi)  # unreachable for multiple >= 1: power 0 always has a candidate


def attention_padding(kernel_att: int, dilation: int) -> int:
    """Reflection padding of the attention windows, as the authors compute it."""
    return (dilation * (kernel_att - 1) + 1) // 2


def largest_window(height: int, width: int, dilation: int) -> int:
    """The largest odd kernel_att whose reflection padding a height x width input allows."""
    best = 1
    for ka in range(1, MAX_KERNEL_ATT + 1, 2):
        if attention_padding(ka, dilation) < min(height, width):
            best = ka
    return best


def module_problems(
    in_planes: int,
    out_planes: int,
    kernel_att: int,
    head: int,
    kernel_conv: int,
    stride: int,
    dilation: int,
    variant: str,
    input_size: tuple[int, int] | None = None,
) -> list[Problem]:
    """Constraints that can be checked when the module is built (no input needed).

    `input_size` (height, width), when known, keeps a suggested window within what it allows.
    """
    out: list[Problem] = []
    if variant not in VARIANTS:
        out.append(Problem("variant", _("variant must be one of {choices}, not {value}.",
                                        choices=join_items(VARIANTS), value=repr(variant)),
                           fields=("variant",)))
        variant = "fixed"  # check the rest against the more permissive variant
    positive = {
        "in_planes": in_planes,
        "out_planes": out_planes,
        "kernel_att": kernel_att,
        "head": head,
        "kernel_conv": kernel_conv,
        "stride": stride,
        "dilation": dilation,
    }
    bad = [name for name, value in positive.items() if not isinstance(value, int) or value < 1]
    for name in bad:
        out.append(Problem(name, _("{name} must be a positive integer, not {value}.", name=name,
                                   value=repr(positive[name])), fields=(name,)))
    if bad:
        return out
    if out_planes % head != 0:
        out.append(_head_problem(out_planes, head))
    if kernel_att % 2 == 0:
        tries = [k for k in (kernel_att - 1, kernel_att + 1) if k <= MAX_KERNEL_ATT]
        if input_size is not None:
            tries = [k for k in tries if attention_padding(k, dilation) < min(input_size)]
            tries = tries or [largest_window(*input_size, dilation)]
        fix = _("Try kernel_att = {values}.", values=join_or(tries))
        out.append(
            Problem(
                "kernel_att_odd",
                _("kernel_att ({kernel_att}) must be odd: an even window has no centre, the padded map "
                  "unfolds to one position too many and the view fails.", kernel_att=kernel_att),
                LINE_VIEW_UNFOLD,
                fix,
                fields=("kernel_att",),
                changes=tuple({"kernel_att": k} for k in tries),
            )
        )
    if kernel_conv % 2 == 0:
        odd = [k for k in (kernel_conv - 1, kernel_conv + 1) if k <= MAX_KERNEL_CONV]
        if variant == "official":
            fix = _("Use kernel_conv = 3, or the fixed variant with kernel_conv = {values}.",
                    values=join_or(odd))
            changes = ({"kernel_conv": 3},) + tuple({"kernel_conv": k, "variant": "fixed"} for k in odd)
        else:
            fix = _("Try kernel_conv = {values}.", values=join_or(odd))
            changes = tuple({"kernel_conv": k} for k in odd)
        out.append(
            Problem(
                "kernel_conv_odd",
                _("kernel_conv ({kernel_conv}) must be odd so that dep_conv keeps the map size.",
                  kernel_conv=kernel_conv),
                LINE_FINAL_SUM,
                fix,
                fields=("kernel_conv", "variant") if variant == "official" else ("kernel_conv",),
                changes=changes,
            )
        )
    elif variant == "official" and kernel_conv != 3:
        out.append(
            Problem(
                "official_kernel_conv_3",
                _("The authors' dep_conv pads by 1 whatever kernel_conv is, so kernel_conv = {kernel_conv} "
                  "changes the conv path's output size and the final sum fails.", kernel_conv=kernel_conv),
                LINE_FINAL_SUM,
                _("Use kernel_conv = 3, or the fixed variant (padding = kernel_conv // 2)."),
                fields=("kernel_conv", "variant"),
                changes=({"kernel_conv": 3}, {"variant": "fixed"}),
            )
        )
    if variant == "official" and dilation != 1:
        undilated = {"dilation": 1}
        fix = _("Use dilation = 1, or the fixed variant (dilated attention windows).")
        if input_size is not None and attention_padding(kernel_att, 1) >= min(input_size):
            undilated["kernel_att"] = largest_window(*input_size, 1)  # too small even undilated
            fix = _("Use dilation = 1 with kernel_att = {kernel_att} for this input, or the fixed variant "
                    "(dilated attention windows).", kernel_att=undilated["kernel_att"])
        out.append(
            Problem(
                "official_dilation_1",
                _("The authors pad for dilation {dilation} but their nn.Unfold has no dilation, so the "
                  "unfolded map has the wrong size.", dilation=dilation),
                LINE_VIEW_UNFOLD,
                fix,
                fields=("dilation", "variant"),
                changes=(undilated, {"variant": "fixed"}),
            )
        )
    return out


def _head_problem(out_planes: int, head: int) -> Problem:
    """head does not divide out_planes; the authors' code breaks where head_dim says."""
    head_dim = out_planes // head
    if head_dim == 0:
        message = _("head ({head}) must divide out_planes ({out_planes}): each head gets out_planes / head "
                    "channels. With more heads than channels head_dim = {out_planes} // {head} = 0, and the "
                    "authors' dep_conv cannot even be built (groups = 0).", head=head, out_planes=out_planes)
        line = LINE_DEP_CONV
    elif out_planes % head_dim:
        message = _("head ({head}) must divide out_planes ({out_planes}): each head gets out_planes / head "
                    "channels. The authors' dep_conv cannot even be built: its groups = head_dim = "
                    "{out_planes} // {head} = {head_dim} does not divide out_planes.", head=head,
                    out_planes=out_planes, head_dim=head_dim)
        line = LINE_DEP_CONV
    else:
        message = _("head ({head}) must divide out_planes ({out_planes}): each head gets out_planes / head "
                    "channels. The authors' module builds, but splitting q into {head} heads of {head_dim} "
                    "channels ({total} in all) fails in the forward.", head=head, out_planes=out_planes,
                    head_dim=head_dim, total=head * head_dim)
        line = LINE_HEAD_VIEW
    fix, heads = _head_fix(out_planes, head)
    return Problem(
        "head_divides_out_planes",
        message,
        line,
        fix,
        fields=("head", "out_planes"),
        changes=tuple({"head": h} for h in heads),
    )


def output_size(size: int, stride: int, variant: str) -> int:
    """Output height (or width) for an input of `size`: H // s (authors) or ceil(H / s) (fixed)."""
    return size // stride if variant == "official" else -(-size // stride)


def input_problems(
    height: int, width: int, kernel_att: int, stride: int, dilation: int, variant: str
) -> list[Problem]:
    """Constraints on the input size (checked at forward).

    Both size constraints suggest the same input: the nearest round size that satisfies them all.
    """
    out: list[Problem] = []
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value < 1:
            out.append(Problem(name, _("{name} must be a positive integer, not {value}.", name=name,
                                       value=repr(value)), fields=(name,)))
    if out:
        return out
    pad = attention_padding(kernel_att, dilation)
    multiple = stride if variant == "official" else 1
    size = (round_size(height, multiple, pad + 1), round_size(width, multiple, pad + 1))
    suggested = f"{size[0]}×{size[1]}"
    size_change = {"height": size[0], "width": size[1]}
    if pad >= height or pad >= width:
        window = largest_window(height, width, dilation)
        out.append(
            Problem(
                "input_too_small",
                _("The input ({height}×{width}) is too small for kernel_att = {kernel_att} with dilation "
                  "{dilation}: reflection padding by {pad} needs height and width of at least {least}.",
                  height=height, width=width, kernel_att=kernel_att, dilation=dilation, pad=pad,
                  least=pad + 1),
                LINE_PAD,
                _("Use an input of {size}, or kernel_att = {kernel_att}.", size=suggested, kernel_att=window),
                fields=("height", "width", "kernel_att", "dilation"),
                changes=(size_change, {"kernel_att": window}),
            )
        )
    if variant == "official" and stride > 1 and (height % stride or width % stride):
        out.append(
            Problem(
                "official_size_divisible_by_stride",
                _("With stride {stride} the authors' code expects h_out = H // stride, but unfold and "
                  "dep_conv give ceil(H / stride); {height}×{width} is not divisible by {stride}, so the "
                  "view fails.", stride=stride, height=height, width=width),
                LINE_VIEW_UNFOLD,
                _("Use {size}, or the fixed variant (h_out = ceil(H / stride)).", size=suggested),
                fields=("height", "width", "stride", "variant"),
                changes=(size_change, {"variant": "fixed"}),
            )
        )
    return out
