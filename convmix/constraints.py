"""Every constraint ACmix places on its hyperparameters and input, as readable sentences.

The authors' code crashes with a raw shape error for many settings (ACMIX.md, Q2-Q7). Both the
module (at construction / forward) and the configuration (for the sidebar and the URL) ask the
same functions here, so a problem is described once and in the same words everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("official", "fixed")

# The authors' statements that break, quoted so a message can point at them.
LINE_VIEW_UNFOLD = (
    "unfold_k = self.unfold(self.pad_att(k_att)).view(b * self.head, self.head_dim, "
    "self.kernel_att * self.kernel_att, h_out, w_out)"
)
LINE_FINAL_SUM = "return self.rate1 * out_att + self.rate2 * out_conv"
LINE_HEAD_VIEW = "q_att = q.view(b * self.head, self.head_dim, h, w) * scaling"
LINE_PAD = "self.pad_att(k_att)  # nn.ReflectionPad2d(self.padding_att)"


@dataclass(frozen=True)
class Problem:
    """One violated constraint: a short name, a sentence, the authors' line, and a fix."""

    constraint: str
    message: str
    line: str = ""
    fix: str = ""

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
            text += " (the authors' code breaks at: " + " | ".join(dict.fromkeys(lines)) + ")"
        super().__init__(text)

    @property
    def constraints(self) -> list[str]:
        return [p.constraint for p in self.problems]


def _nearest_divisors(n: int, target: int, count: int = 3) -> list[int]:
    divs = [d for d in range(1, n + 1) if n % d == 0]
    return sorted(sorted(divs, key=lambda d: (abs(d - target), d))[:count])


def attention_padding(kernel_att: int, dilation: int) -> int:
    """Reflection padding of the attention windows, as the authors compute it."""
    return (dilation * (kernel_att - 1) + 1) // 2


def module_problems(
    in_planes: int,
    out_planes: int,
    kernel_att: int,
    head: int,
    kernel_conv: int,
    stride: int,
    dilation: int,
    variant: str,
) -> list[Problem]:
    """Constraints that can be checked when the module is built (no input needed)."""
    out: list[Problem] = []
    if variant not in VARIANTS:
        out.append(Problem("variant", f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}."))
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
        out.append(Problem(name, f"{name} must be a positive integer, not {positive[name]!r}."))
    if bad:
        return out
    if out_planes % head != 0 or head > out_planes:
        near = _nearest_divisors(out_planes, head)
        out.append(
            Problem(
                "head_divides_out_planes",
                f"head ({head}) must divide out_planes ({out_planes}): each head gets "
                f"out_planes / head channels.",
                LINE_HEAD_VIEW,
                f"Heads that divide {out_planes}: {', '.join(map(str, near))}.",
            )
        )
    if kernel_att % 2 == 0:
        out.append(
            Problem(
                "kernel_att_odd",
                f"kernel_att ({kernel_att}) must be odd: an even window has no centre, the "
                f"padded map unfolds to one position too many and the view fails.",
                LINE_VIEW_UNFOLD,
                f"Try kernel_att = {kernel_att - 1} or {kernel_att + 1}.",
            )
        )
    if kernel_conv % 2 == 0:
        out.append(
            Problem(
                "kernel_conv_odd",
                f"kernel_conv ({kernel_conv}) must be odd so that dep_conv keeps the map size.",
                LINE_FINAL_SUM,
                f"Try kernel_conv = {kernel_conv - 1} or {kernel_conv + 1}.",
            )
        )
    elif variant == "official" and kernel_conv != 3:
        out.append(
            Problem(
                "official_kernel_conv_3",
                f"The authors' dep_conv pads by 1 whatever kernel_conv is, so kernel_conv = "
                f"{kernel_conv} changes the conv path's output size and the final sum fails "
                f"(Q2).",
                LINE_FINAL_SUM,
                "Use kernel_conv = 3, or the fixed variant (padding = kernel_conv // 2).",
            )
        )
    if variant == "official" and dilation != 1:
        out.append(
            Problem(
                "official_dilation_1",
                f"The authors pad for dilation {dilation} but their nn.Unfold has no dilation, "
                f"so the unfolded map has the wrong size (Q4).",
                LINE_VIEW_UNFOLD,
                "Use dilation = 1, or the fixed variant (dilated attention windows).",
            )
        )
    return out


def output_size(size: int, stride: int, variant: str) -> int:
    """Output height (or width) for an input of `size`: H // s (authors) or ceil(H / s) (fixed)."""
    return size // stride if variant == "official" else -(-size // stride)


def input_problems(
    height: int, width: int, kernel_att: int, stride: int, dilation: int, variant: str
) -> list[Problem]:
    """Constraints on the input size (checked at forward)."""
    out: list[Problem] = []
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value < 1:
            out.append(Problem(name, f"{name} must be a positive integer, not {value!r}."))
    if out:
        return out
    pad = attention_padding(kernel_att, dilation)
    if pad >= height or pad >= width:
        out.append(
            Problem(
                "input_too_small",
                f"The input ({height}x{width}) is too small for kernel_att = {kernel_att} with "
                f"dilation {dilation}: reflection padding by {pad} needs height and width of at "
                f"least {pad + 1} (Q6).",
                LINE_PAD,
                f"Use an input of at least {pad + 1}x{pad + 1} or a smaller window.",
            )
        )
    if variant == "official" and stride > 1 and (height % stride or width % stride):
        even_h = height + (-height) % stride
        even_w = width + (-width) % stride
        out.append(
            Problem(
                "official_size_divisible_by_stride",
                f"With stride {stride} the authors' code expects h_out = H // stride, but unfold "
                f"and dep_conv give ceil(H / stride); {height}x{width} is not divisible by "
                f"{stride}, so the view fails (Q3).",
                LINE_VIEW_UNFOLD,
                f"Use {even_h}x{even_w}, or the fixed variant (h_out = ceil(H / stride)).",
            )
        )
    return out
