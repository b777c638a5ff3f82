"""The ACmix walkthrough's computations: everything the page shows, read from one traced forward.

Nothing here runs a second forward. Every function takes the `Trace` of the module's own forward
(convmix.trace) or the live module's parameters, and returns numbers, arrays or DataFrames that a
page draws. No Streamlit.

Indexing conventions (ACMIX.md): output channel `c` of the attention path is channel `c % d` of
head `c // d`; the head-split tensors merge batch and head into one axis, row `b * h + n`; window
position `j = dy * kernel_att + dx` (row-major); conv offset `i = a * kernel_conv + e`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from . import budget as memory
from .charts_bias import pool_for_display
from .config import ACmixConfig
from .constraints import Problem, attention_padding
from .format import human_bytes
from .i18n import N_, _
from .quirks import cite
from .trace import Step, Trace, trace_forward

# Largest side of a drawn map; bigger maps are shown as block means (Vega stays fast).
MAX_MAP_SIDE = 64

# The trace's stages (convmix.trace.StepInfo.stage) and their titles; translate where shown.
GROUPS: tuple[tuple[str, str], ...] = (
    ("Stage I", N_("Stage I")),
    ("attention", N_("Attention path")),
    ("convolution", N_("Convolution path")),
    ("mix", N_("Mix")),
)
GROUP_INTRO = {
    "Stage I": N_("Three 1×1 convolutions project the input to q, k and v. Both paths read all three."),
    "attention": N_("Local self-attention: q, k, v split into heads; every query attends to the "
                    "kernel_att × kernel_att window of keys around it, with a relative positional term from "
                    "conv_p; the softmax weights average the window's values."),
    "convolution": N_("The same q, k, v, mixed by fc into kernel_conv² groups, reshaped, and summed as shifted "
                      "copies by the grouped convolution dep_conv."),
    "mix": N_("The two paths' outputs, weighed by two learnable scalars."),
}
# Short names of the stages for the overview table's narrow first column.
STAGE_SHORT = {"Stage I": N_("Stage I"), "attention": N_("attention"), "convolution": N_("convolution"),
               "mix": N_("mix")}

# ---------------------------------------------------------------------------------------------
# Sections: a language-neutral id (the URL's `section=`) and a title to translate where shown
# ---------------------------------------------------------------------------------------------

SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", N_("Overview")),
    ("stage_i", N_("Stage I")),
    ("attention_path", N_("Attention path")),
    ("convolution_path", N_("Convolution path")),
    ("mix", N_("Mix")),
    ("attention_inspector", N_("Attention inspector")),
    ("conv_p", "conv_p"),
    ("fc", "fc"),
    ("dep_conv", "dep_conv"),
    ("channel_grouping", N_("Channel grouping")),
    ("quirks", N_("Authors' quirks")),
)
SECTION_IDS = tuple(key for key, _title in SECTIONS)
DEFAULT_SECTION = "overview"
# The English tab titles the URL carried before it carried ids (`?section=Attention%20inspector`).
OLD_SECTION_NAMES = {
    "Overview": "overview", "Stage I": "stage_i", "Attention path": "attention_path",
    "Convolution path": "convolution_path", "Mix": "mix", "Attention inspector": "attention_inspector",
    "conv_p": "conv_p", "fc": "fc", "dep_conv": "dep_conv", "Channel grouping": "channel_grouping",
    "Authors' quirks": "quirks",
}


def section_title(section: str) -> str:
    """The section's title in the visitor's language."""
    return _(dict(SECTIONS)[section])


def section_from_url(raw: object) -> tuple[str, str | None]:
    """(section id, None) for a URL value that names a section (its id, or its old English title,
    in any case); else (the default, the value as shown text, cut and cleaned, for a note)."""
    text = raw[-1] if isinstance(raw, list | tuple) and raw else raw
    if not isinstance(text, str):
        return DEFAULT_SECTION, None
    key = text.strip()
    lowered = {k.lower(): v for k, v in OLD_SECTION_NAMES.items()} | {k: k for k in SECTION_IDS}
    found = lowered.get(key.lower())
    if found is not None:
        return found, None
    shown = "".join(ch for ch in key[:40] if ch.isalnum() or ch in "-_. '")
    return DEFAULT_SECTION, shown


# ---------------------------------------------------------------------------------------------
# What the page shows: one module, the input it received, the trace of its own forward
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walk:
    """A source's module (convmix.sources), the input it received and the trace of the module's own
    forward on that input. Everything the walkthrough draws is read from here."""

    source: object  # the convmix.sources.Source it came from
    config: ACmixConfig  # the module's hyperparameters and the input's shape
    module: torch.nn.Module
    x: torch.Tensor
    trace: Trace
    facts: tuple = ()  # (name, value) pairs: a digit's label, the network's prediction

    def fact(self, name: str, default=None):
        return dict(self.facts).get(name, default)

    def nbytes(self) -> int:
        """What keeping it holds: the trace's tensors, the output, the input and the weights."""
        weights = sum(t.numel() * t.element_size() for t in self.module.state_dict().values())
        output = self.trace.output
        return (self.trace.tensor_bytes() + output.numel() * output.element_size()
                + self.x.numel() * self.x.element_size() + weights)


def walk(source, module: torch.nn.Module, x: torch.Tensor, config: ACmixConfig, facts: tuple = ()) -> Walk:
    """Trace the module's own forward on `x` (convmix.trace.trace_forward: one forward, recorded)."""
    return Walk(source, config, module, x, trace_forward(module, x), tuple(facts))


def weights_are_shift(module) -> bool:
    """Whether dep_conv still holds its shift kernels (true at ACmix's own initialisation; not after
    training, nor in the authors' ResNet, whose init loop overwrites them)."""
    return dep_conv_is_shift(module)


# ---------------------------------------------------------------------------------------------
# Which configuration the page can show
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the walkthrough shows for the sidebar's configuration, and why."""

    requested: ACmixConfig
    shown: ACmixConfig | None  # None: nothing can run, or nothing fits
    problems: list[Problem] = field(default_factory=list)  # of the requested configuration
    fallback: bool = False  # showing the fixed variant because the official one cannot run
    refusal: memory.Refusal | None = None  # the trace would not fit the memory budget


def plan_walkthrough(config: ACmixConfig, limit: int | None = None) -> Plan:
    """Decide what to show: the configuration, the fixed variant instead, or nothing (and why).

    A trace keeps every intermediate tensor alive, so its estimated size (convmix.budget.trace_bytes)
    must fit `limit` (default: the server's memory budget) before anything is allocated. This is
    the static question, whether the trace could fit at all; building it (convmix.ui.cache)
    also counts what the process holds at that moment (the budget is a limit on the process).
    """
    problems = config.problems()
    candidate, fallback = config, False
    if problems:
        fixed = config.with_(variant="fixed")
        if config.variant == "official" and not fixed.problems():
            candidate, fallback = fixed, True
        else:
            return Plan(config, None, problems)
    refusal = memory.check(
        candidate, memory.memory_budget() if limit is None else limit, cost=memory.trace_bytes,
        what=_("The traced forward, which keeps every intermediate tensor,"), held=0,
    )
    if refusal is not None:
        return Plan(config, None, problems, fallback, refusal)
    return Plan(config, candidate, problems, fallback)


def section_extra_bytes(config: ACmixConfig, section: str, shift: bool = True) -> int:
    """Memory a walkthrough section (an id of SECTIONS) allocates beyond the trace it reads (float64
    copies of whole tensors, frames for charts), estimated from shapes.

    Every section also builds the overview's step table once (its statistics convert STATS_CHUNK
    elements to float64 at a time). `shift=False`: dep_conv no longer holds the shift kernels, and
    its section measures their distance from them instead (`shift_distance`).
    """
    c = config
    n_out = c.batch * c.out_planes * c.out_height * c.out_width
    area, d = c.height * c.width, c.head_dim
    table = 8 * STATS_CHUNK + 4096 * 32
    maps = 3 * 8 * 4 * max(c.padded_area, area)  # the heatmaps' 2-D slices in float64 and frames
    extra = {
        "mix": 6 * 8 * n_out,  # both paths and the re-mix in float64, per-channel norms
        "conv_p": 5 * 8 * d * area,  # the grid, pe, the plane and their difference in float64
        "dep_conv": check_shift_bytes(c) if shift else shift_distance_bytes(c),
        "channel_grouping": 4 * 8 * n_out + 512 * c.out_planes,  # out_conv in float64 and differences
        "attention_inspector": 8 * (c.out_height * c.out_width + 8 * d * c.kernel_att**2),
    }.get(section, 0)
    return table + maps + extra


def section_refusal(config: ACmixConfig, section: str, limit: int | None = None,
                    held: int | None = None, shift: bool = True) -> memory.Refusal | None:
    """None when the section's extra work fits beside what the process holds (its trace included);
    else why not, with a nearby configuration."""
    return memory.check(
        config, memory.memory_budget() if limit is None else limit,
        cost=lambda c: section_extra_bytes(c, section, shift),
        what=_("The section “{section}” of this walkthrough", section=section_title(section)), held=held,
    )


# ---------------------------------------------------------------------------------------------
# Steps: grouping, explanations, formulas, statistics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepText:
    explanation: str  # markdown, marked for translation; {names} are filled in with the configuration's numbers
    formula: str  # LaTeX


STEP_TEXT: dict[str, StepText] = {
    "q": StepText(
        N_("`conv1` is a 1×1 convolution with bias: at every pixel it multiplies the {cin} input "
           "values by a {c}×{cin} matrix and adds one bias per output channel. Its output is the "
           "queries. Stage I (conv1, conv2, conv3) is shared: all three projections feed *both* "
           "paths, the attention path as q, k, v and the convolution path as fc's input groups."),
        r"q_{b,c,y,x} = \sum_{i=0}^{C_{in}-1} W^{(1)}_{c,i}\, x_{b,i,y,x} + b^{(1)}_c",
    ),
    "k": StepText(
        N_("`conv2`, the same kind of 1×1 convolution with its own weights: the keys. Like q and "
           "v it also feeds the convolution path (it is not reserved for attention, and conv3 is not "
           "a separate 'fusion' layer)."),
        r"k_{b,c,y,x} = \sum_{i} W^{(2)}_{c,i}\, x_{b,i,y,x} + b^{(2)}_c",
    ),
    "v": StepText(
        N_("`conv3`: the values, again a 1×1 convolution with bias. The attention path averages "
           "them over each window; the convolution path uses v's {h} head groups as {h} of fc's "
           "{h3} input groups, as it does q's and k's."),
        r"v_{b,c,y,x} = \sum_{i} W^{(3)}_{c,i}\, x_{b,i,y,x} + b^{(3)}_c",
    ),
    "grid": StepText(
        N_("Not a submodule: a 2-channel map of pixel coordinates built during the forward, one "
           "for the whole batch. Channel 0 is x, running from −1 (left) to 1 (right) and the same "
           "in every row; channel 1 is y, from −1 (top) to 1 (bottom). Neighbouring pixels differ "
           "by {step_x} in x and {step_y} in y. (The authors always build it in float32, which "
           "breaks other dtypes: {q8}; here it takes the input's dtype.)"),
        r"\mathrm{grid}_{0,y,x} = -1 + \tfrac{2x}{W-1},\qquad "
        r"\mathrm{grid}_{1,y,x} = -1 + \tfrac{2y}{H-1}",
    ),
    "pe": StepText(
        N_("`conv_p`, a 1×1 convolution from the 2 coordinate channels to head_dim = {d} "
           "channels, with bias: the positional encoding, one map shared by all {h} heads. (It does "
           "not convert feature maps to the number of heads.) Each channel is a plane "
           "w_x·x + w_y·y + b over the image. Only differences pe(query) − pe(key) reach the "
           "logits, so conv_p's bias cancels and has no effect on the output."),
        r"pe_{c,y,x} = w_{c,0}\,\mathrm{grid}_{0,y,x} + w_{c,1}\,\mathrm{grid}_{1,y,x} + b_c",
    ),
    "q_att": StepText(
        N_("q split into {h} heads of {d} channels: channel c goes to head c // {d}, position "
           "c % {d} in it, and batch and head merge into one axis of B·h = {bh}. q is multiplied "
           "by d^(−1/2) = {scaling:.4f} once here, instead of scaling every logit (the scaled dot "
           "product)."),
        r"q^{att}_{bh+n,\,c,\,y,\,x} = d^{-1/2}\; q_{b,\,nd+c,\,y,\,x}",
    ),
    "k_att": StepText(
        N_("The same split of k into heads, without scaling. A reshape of a contiguous tensor: a "
           "view that shares k's memory."),
        r"k^{att}_{bh+n,\,c,\,y,\,x} = k_{b,\,nd+c,\,y,\,x}",
    ),
    "v_att": StepText(
        N_("The same split of v into heads, a view of v's memory."),
        r"v^{att}_{bh+n,\,c,\,y,\,x} = v_{b,\,nd+c,\,y,\,x}",
    ),
    "q_strided": StepText(
        N_("With stride {s} only every {s}-th row and column is a query: a strided slice (a view). "
           "Keys and values keep their full resolution; unfold (stride {s}) takes the window around "
           "each of these queries."),
        r"q^{att}_{\cdot,c,i,l} \leftarrow q^{att}_{\cdot,\,c,\,s i,\,s l}",
    ),
    "q_pe": StepText(
        N_("The positional encoding at the query positions: pe itself when the stride is 1 (the "
           "same tensor), else every s-th row and column of it."),
        r"pe^{q}_{c,i,l} = pe_{c,\,s i,\,s l}",
    ),
    "k_pad": StepText(
        N_("`pad_att`, a ReflectionPad2d({p}), pads the head-split keys by p = {p} on each side so "
           "that queries at the border get a full {ka}×{ka} window ({hh}×{ww} → {ph}×{pw}). "
           "Reflection mirrors the map without repeating its edge: padded row −1 holds row 1, row "
           "−2 holds row 2. It has no parameters."),
        r"\tilde k_{\cdot,c,y,x} = k^{att}_{\cdot,\,c,\,\rho_H(y),\,\rho_W(x)},\quad "
        r"\rho_H(t) = \begin{cases} -t & t<0\\ t & 0\le t<H\\ 2(H-1)-t & t\ge H\end{cases}",
    ),
    "unfold_k": StepText(
        N_("`unfold` (nn.Unfold, kernel {ka}, stride {s}) cuts the {ka}×{ka} window of every query "
           "out of the padded keys and stores them side by side: K = {K} copies of the keys, "
           "{bytes_unfold} here. This K-fold copy is why the authors' implementation is memory-"
           "hungry ({q9}). Window position j = dy·{ka} + dx holds the key {dil_text}at offset "
           "(dy·δ − p, dx·δ − p) from the query, with δ the window dilation."),
        r"U^{k}_{\cdot,c,j,i,l} = \tilde k_{\cdot,\,c,\; s i + \delta\,dy,\; s l + \delta\,dx},"
        r"\qquad j = dy\,k_a + dx",
    ),
    "pe_pad": StepText(
        N_("`pad_att` on the positional encoding: the same reflection, so a mirrored key cell also "
           "gets the positional code of the cell it mirrors."),
        r"\tilde{pe}_{c,y,x} = pe_{c,\,\rho_H(y),\,\rho_W(x)}",
    ),
    "unfold_rpe": StepText(
        N_("The positional encoding of every key of every window, (1, d, K, Ho, Wo): shared by the "
           "batch and the heads."),
        r"U^{pe}_{c,j,i,l} = \tilde{pe}_{c,\; s i + \delta\,dy,\; s l + \delta\,dx}",
    ),
    "logits": StepText(
        N_("For each query and each of its K = {K} keys: Σ_c q[c]·(k[c] + pe_q[c] − pe_key[c]). "
           "The first part is the content score q·k, the second a relative-position score: because "
           "conv_p is affine, pe_q − pe_key depends only on the offset between query and key (it is "
           "exactly 0 at the window centre), except where the key is a reflection-padding copy. q "
           "already carries the d^(−1/2) scale."),
        r"a_{j} = \sum_{c=0}^{d-1} q^{att}_{c}\,\big(U^{k}_{c,j} + pe^{q}_{c} - U^{pe}_{c,j}\big)",
    ),
    "att": StepText(
        N_("`softmax` over dim 1, the K window positions, separately for every query and head: K "
           "non-negative weights that sum to 1. No parameters."),
        r"w_{j} = \frac{e^{a_j}}{\sum_{j'=0}^{K-1} e^{a_{j'}}}",
    ),
    "v_pad": StepText(
        N_("Reflection padding of the values, as for the keys."),
        r"\tilde v_{\cdot,c,y,x} = v^{att}_{\cdot,\,c,\,\rho_H(y),\,\rho_W(x)}",
    ),
    "unfold_v": StepText(
        N_("K = {K} copies of the values, one per window position (the authors bind this tensor to "
           "the name out_att before the weighted sum)."),
        r"U^{v}_{\cdot,c,j,i,l} = \tilde v_{\cdot,\,c,\; s i + \delta\,dy,\; s l + \delta\,dx}",
    ),
    "out_att": StepText(
        N_("Each query's output is the softmax-weighted sum of the values in its window, channel by "
           "channel. The heads are then merged back: channel c of head n becomes output channel "
           "n·{d} + c."),
        r"o^{att}_{b,\,nd+c,\,i,\,l} = \sum_{j=0}^{K-1} w_{bh+n,\,j,\,i,\,l}\;"
        r"U^{v}_{bh+n,\,c,\,j,\,i,\,l}",
    ),
    "qkv_groups": StepText(
        N_("The convolution path starts from the same q, k, v. Each is viewed as (B, h, d, H·W) and "
           "the three are concatenated along dim 1: 3·h = {h3} groups (q heads 0…{hm1}, then k's, "
           "then v's), each with d = {d} channels at H·W = {n} positions. This is fc's input: the "
           "projected features, not unfolded windows."),
        r"G_{b,g,c,t} = \begin{cases} q_{b,\,nd+c,\,t} & g = n\\ k_{b,\,nd+c,\,t} & g = h+n\\ "
        r"v_{b,\,nd+c,\,t} & g = 2h+n \end{cases}",
    ),
    "f_all": StepText(
        N_("`fc`, a 1×1 convolution without bias over the group axis: for every within-head channel "
           "c and position it mixes the {h3} values q_n[c], k_n[c], v_n[c] into kernel_conv² = {kc2} "
           "values, one per kernel offset. The same {h3}×{kc2} weights serve every channel and "
           "position, hence {fc_params} parameters."),
        r"F_{b,i,c,t} = \sum_{g=0}^{3h-1} W^{fc}_{i,g}\; G_{b,g,c,t}",
    ),
    "f_conv": StepText(
        N_("permute and reshape back to a feature map with d·kc² = {dkc2} channels: channel "
           "c·{kc2} + i holds fc output i of within-head channel c. (The memory column says "
           "whether the reshape had to copy.)"),
        r"\Phi_{b,\;c k_c^2 + i,\;y,\;x} = F_{b,\,i,\,c,\,yW + x}",
    ),
    "out_conv": StepText(
        N_("`dep_conv`, a {kc}×{kc} convolution with groups = d = {d} (a grouped convolution, not a "
           "depthwise-separable one). Group g reads the {kc2} channels of within-head channel g and "
           "writes output channels g·{h} … g·{h} + {hm1}. At initialisation its weights are shift "
           "kernels (weight[o, i, a, e] = 1 exactly when i = a·kc + e, with a the kernel row and e "
           "the kernel column), so the output is the sum of "
           "the {kc2} fc outputs, each shifted by its kernel offset: a convolution written as "
           "shifts. The weights stay learnable. Its bias is gone: {q1}."),
        r"o^{conv}_{b,o,i,l} = \sum_{r=0}^{k_c^2-1}\sum_{a,e} W^{dep}_{o,r,a,e}\;"
        r"\Phi_{b,\;g k_c^2 + r,\; s i + a - p_c,\; s l + e - p_c},\quad g = \lfloor o/h \rfloor",
    ),
    "out": StepText(
        N_("The mix: two learnable scalars, both 0.5 at initialisation (α and β in the paper), "
           "weigh the attention output against the convolution output. They do not re-weight "
           "attention inside its path."),
        r"\mathrm{out} = \mathrm{rate1}\cdot o^{att} + \mathrm{rate2}\cdot o^{conv}",
    ),
}


def window_dilation(config: ACmixConfig) -> int:
    """The dilation the attention window applies: the authors' Unfold has none (quirk Q4)."""
    return config.dilation if config.variant == "fixed" else 1


def explanation(name: str, config: ACmixConfig) -> str:
    """The step's explanation in the visitor's language, with the configuration's numbers filled in."""
    c = config
    d, h, kc = c.head_dim, c.head, c.kernel_conv
    p = attention_padding(c.kernel_att, c.dilation)
    dil = window_dilation(c)
    window_bytes = 4 * c.batch * c.out_planes * c.kernel_att**2 * c.out_height * c.out_width
    values = dict(
        cin=c.in_planes, c=c.out_planes, d=d, h=h, hm1=h - 1, h3=3 * h, bh=c.batch * h,
        scaling=d**-0.5, s=c.stride, p=p, ka=c.kernel_att, K=c.kernel_att**2,
        hh=c.height, ww=c.width, ph=c.height + 2 * p, pw=c.width + 2 * p,
        kc=kc, kc2=kc * kc, dkc2=d * kc * kc, fc_params=f"{3 * h * kc * kc:,}",
        n=f"{c.height * c.width:,}", bytes_unfold=human_bytes(window_bytes),
        step_x=_grid_step(c.width), step_y=_grid_step(c.height),
        dil_text=f"(δ = {dil}) " if dil > 1 else "",
        q1=cite("Q1"), q8=cite("Q8"), q9=cite("Q9"),
    )
    return _(STEP_TEXT[name].explanation, **values)


def step_summary(name: str) -> str:
    """The step's one-sentence summary (convmix.trace.STEP_INFO) in the visitor's language."""
    from .trace import STEP_INFO

    return _(STEP_INFO[name].summary)


def _grid_step(n: int) -> str:
    return f"2/{n - 1} = {2 / (n - 1):.4f}" if n > 1 else "0"


def group_steps(trace: Trace) -> dict[str, list[Step]]:
    """The trace's steps in forward order, by group (Stage I, attention, convolution, mix)."""
    groups: dict[str, list[Step]] = {key: [] for key, _ in GROUPS}
    for step in trace.steps:
        groups[step.info.stage].append(step)
    return groups


STATS_CHUNK = 1 << 20  # elements converted to float64 at a time


def _chunks(t: torch.Tensor, most: int = STATS_CHUNK):
    """Pieces of `t` of at most `most` elements (views where possible), covering it once."""
    if t.numel() <= most or t.dim() == 0:
        yield t
    elif t.is_contiguous():
        yield from t.view(-1).split(most)
    else:
        rows = max(1, most // max(1, t[0].numel()))
        for part in t.split(rows, dim=0):
            if part.shape[0] == 1 and part.numel() > most:
                yield from _chunks(part[0], most)
            else:
                yield part


def tensor_stats(t: torch.Tensor) -> dict[str, float]:
    """Mean (accumulated in float64), standard deviation, min and max of a tensor.

    No float64 copy of the tensor is made (the largest traced tensors are hundreds of MiB, and
    `mean(dtype=torch.float64)` would copy them whole): the sum runs over pieces of STATS_CHUNK
    elements.
    """
    x = t.detach()
    total = sum(float(part.double().sum()) for part in _chunks(x))
    return {
        "mean": total / max(1, x.numel()),
        "std": float(x.std()) if x.numel() > 1 else 0.0,
        "min": float(x.min()),
        "max": float(x.max()),
    }


def storage_notes(trace: Trace) -> dict[str, str | None]:
    """For each step: None when it owns new memory, else the earlier step whose memory it shares (a
    view), from live storages."""
    owner: dict[int, str] = {}
    notes: dict[str, str | None] = {}
    for step in trace.steps:
        ptr = step.tensor.untyped_storage().data_ptr()
        if ptr in owner:
            notes[step.name] = owner[ptr]
        else:
            owner[ptr] = step.name
            notes[step.name] = None
    return notes


def memory_text(row) -> str:
    """The overview's memory cell: the bytes a step allocated, or which step's memory it views."""
    if row["view_of"]:
        return _("view of {step}", step=row["view_of"])
    return human_bytes(row["bytes"])


def steps_frame(trace: Trace) -> pd.DataFrame:
    """One row per step (data; `display_steps` words it): stage, name, shape, statistics, the bytes it
    allocated or the step it views, owner, parameters, MACs, FLOPs."""
    notes = storage_notes(trace)
    rows = []
    for step in trace.steps:
        stats = tensor_stats(step.tensor)
        rows.append({
            "stage": step.info.stage,
            "step": step.name,
            "shape": " × ".join(map(str, step.shape)),
            "mean": stats["mean"],
            "std": stats["std"],
            "min": stats["min"],
            "max": stats["max"],
            "bytes": step.tensor.numel() * step.tensor.element_size(),
            "view_of": notes[step.name] or "",
            "owner": step.info.owner,
            "parameters": step.params,
            "multiply-adds": step.cost.macs,
            "FLOPs": step.cost.flops,
        })
    return pd.DataFrame(rows)


# The overview table's columns, in order, with their headers (translated where shown).
STEPS_COLUMNS = (
    ("stage", N_("stage")), ("step", N_("step")), ("shape", N_("shape")), ("mean", N_("mean")),
    ("std", N_("std")), ("min", N_("min")), ("max", N_("max")), ("memory", N_("memory")),
    ("owner", N_("submodule")), ("parameters", N_("params")), ("multiply-adds", N_("multiply-adds")),
    ("FLOPs", "FLOPs"),
)


def display_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """The overview table in the visitor's language: stage names, memory cells and headers."""
    shown = frame.assign(
        stage=frame["stage"].map(lambda s: _(STAGE_SHORT.get(s, s))),
        memory=frame.apply(memory_text, axis=1),
        owner=frame["owner"].map(lambda o: o or "—"),
    )
    return shown[[key for key, _title in STEPS_COLUMNS]].rename(
        columns={key: _(title) for key, title in STEPS_COLUMNS})


# ---------------------------------------------------------------------------------------------
# 2-D slices of a step's tensor for heatmaps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which slice of each tensor the heatmaps show."""

    batch: int = 0
    head: int = 0
    channel: int = 0  # within the head, 0 .. d-1
    window: int = 0  # window position j = dy * kernel_att + dx
    offset: int = 0  # conv kernel offset i = a * kernel_conv + e


@dataclass(frozen=True)
class MapSlice:
    title: str
    index: str  # the tensor index that gives it, e.g. "q[0, 17, :, :]"
    values: np.ndarray  # 2-D


# Layout of each step's tensor (see the module docstring for the index conventions).
_LAYOUT = {
    "q": "bchw", "k": "bchw", "v": "bchw", "out_att": "bchw", "out_conv": "bchw", "out": "bchw",
    "grid": "grid", "pe": "pe", "q_pe": "pe", "pe_pad": "pe",
    "q_att": "heads", "k_att": "heads", "v_att": "heads", "q_strided": "heads",
    "k_pad": "heads", "v_pad": "heads",
    "unfold_k": "heads_window", "unfold_v": "heads_window", "unfold_rpe": "pe_window",
    "logits": "window", "att": "window",
    "qkv_groups": "groups", "f_all": "offsets", "f_conv": "fconv",
}


def window_label(j: int, kernel_att: int, padding: int, dilation: int = 1) -> str:
    dy, dx = divmod(j, kernel_att)
    return _("j={j} (offset {dy:+d}, {dx:+d})", j=j, dy=dy * dilation - padding, dx=dx * dilation - padding)


def offset_label(i: int, kernel_conv: int, padding: int) -> str:
    """Conv offset i = a·kernel_conv + e: kernel row a, kernel column e, and the shift it reads."""
    a, e = divmod(i, kernel_conv)
    return _("i={i}: kernel row {a}, column {e} (shift {dy:+d}, {dx:+d})", i=i, a=a, e=e, dy=a - padding,
             dx=e - padding)


def step_maps(step: Step, sel: Selection, config: ACmixConfig) -> list[MapSlice]:
    """The 2-D maps of `step` at the selection: one, or two/three for grid and qkv_groups."""
    t = step.tensor
    name = step.name
    layout = _LAYOUT[name]
    d, h = config.head_dim, config.head
    b, n, c, j, i = sel.batch, sel.head, sel.channel, sel.window, sel.offset
    kc2 = config.kernel_conv**2
    row = b * h + n
    out_channel = n * d + c

    def arr(x: torch.Tensor) -> np.ndarray:
        return x.detach().double().cpu().numpy()

    if layout == "bchw":
        return [MapSlice(_("{name}, channel {channel}", name=name, channel=out_channel),
                         f"{name}[{b}, {out_channel}, :, :]", arr(t[b, out_channel]))]
    if layout == "grid":
        return [MapSlice(_("grid channel 0 (x)"), "grid[0, 0, :, :]", arr(t[0, 0])),
                MapSlice(_("grid channel 1 (y)"), "grid[0, 1, :, :]", arr(t[0, 1]))]
    if layout == "pe":
        return [MapSlice(_("{name}, channel {channel}", name=name, channel=c), f"{name}[0, {c}, :, :]",
                         arr(t[0, c]))]
    if layout == "heads":
        return [MapSlice(_("{name}, head {head}, channel {channel}", name=name, head=n, channel=c),
                         f"{name}[{row}, {c}, :, :]", arr(t[row, c]))]
    if layout == "heads_window":
        return [MapSlice(_("{name}, head {head}, channel {channel}, window position {j}", name=name, head=n,
                           channel=c, j=j), f"{name}[{row}, {c}, {j}, :, :]", arr(t[row, c, j]))]
    if layout == "pe_window":
        return [MapSlice(_("{name}, channel {channel}, window position {j}", name=name, channel=c, j=j),
                         f"{name}[0, {c}, {j}, :, :]", arr(t[0, c, j]))]
    if layout == "window":
        return [MapSlice(_("{name}, head {head}, window position {j}", name=name, head=n, j=j),
                         f"{name}[{row}, {j}, :, :]", arr(t[row, j]))]
    hw = (config.height, config.width)
    if layout == "groups":
        return [
            MapSlice(_("group {group}: {letter} of head {head}, channel {channel}", group=kind * h + n,
                       letter=letter, head=n, channel=c),
                     f"qkv_groups[{b}, {kind * h + n}, {c}, :].view(H, W)",
                     arr(t[b, kind * h + n, c].reshape(hw)))
            for kind, letter in enumerate("qkv")
        ]
    if layout == "offsets":
        return [MapSlice(_("f_all, offset {offset}, channel {channel}", offset=i, channel=c),
                         f"f_all[{b}, {i}, {c}, :].view(H, W)", arr(t[b, i, c].reshape(hw)))]
    if layout == "fconv":
        return [MapSlice(_("f_conv, channel {index} (channel {channel}, offset {offset})", index=c * kc2 + i,
                           channel=c, offset=i), f"f_conv[{b}, {c * kc2 + i}, :, :]", arr(t[b, c * kc2 + i]))]
    raise KeyError(name)


def map_frame(values: np.ndarray, max_side: int = MAX_MAP_SIDE) -> tuple[pd.DataFrame, int]:
    """Heatmap-ready long form (row, col, value) of a 2-D map, block-averaged to max_side.

    Returns the frame and the block size (1 when drawn cell by cell); row and col are in the
    map's own units (a block's top-left cell).
    """
    pooled, block = pool_for_display(values, max_side)
    rows, cols = np.indices(pooled.shape)
    df = pd.DataFrame({
        "row": (rows * block).ravel(),
        "col": (cols * block).ravel(),
        "value": pooled.ravel(),
    })
    df["block"] = block
    return df, block


# ---------------------------------------------------------------------------------------------
# Attention inspector
# ---------------------------------------------------------------------------------------------


def reflect_index(t: int, size: int) -> int:
    """Source index of padded-map index t (input coordinates) under reflection padding."""
    if t < 0:
        return -t
    if t >= size:
        return 2 * (size - 1) - t
    return t


@dataclass(frozen=True)
class QueryInspection:
    """One query of one head, from the trace's recorded tensors."""

    batch: int
    head: int
    row: int  # output coordinates
    col: int
    in_row: int  # the query's position in the input
    in_col: int
    kernel_att: int
    padding: int
    dilation: int
    cells: pd.DataFrame  # one row per window position j
    pe_diff: np.ndarray  # (d, K): q_pe - unfold_rpe at this query
    output: pd.DataFrame  # per channel of the head: weighted sum vs out_att entry


def inspect_query(trace: Trace, config: ACmixConfig, batch: int, head: int, row: int,
                  col: int) -> QueryInspection:
    """Logits, softmax weights and output of query (row, col) of `head`, from recorded tensors.

    The content term q·k_j and the positional term q·(q_pe − rpe_j) are computed from the
    recorded q_att, unfold_k, q_pe and unfold_rpe; the logits and weights shown are the recorded
    ones, and the weighted sum of the recorded unfold_v is set beside the recorded out_att entry.
    """
    d, h, ka = config.head_dim, config.head, config.kernel_att
    s = config.stride
    dil = window_dilation(config)
    p = attention_padding(ka, config.dilation)
    r = batch * h + head
    q_name = "q_strided" if "q_strided" in trace else "q_att"

    def vec(name: str, *index) -> np.ndarray:
        return trace[name].tensor[index].detach().double().cpu().numpy()

    q = vec(q_name, r, slice(None), row, col)  # (d,)
    keys = vec("unfold_k", r, slice(None), slice(None), row, col)  # (d, K)
    rpe = vec("unfold_rpe", 0, slice(None), slice(None), row, col)  # (d, K)
    q_pe = vec("q_pe", 0, slice(None), row, col)  # (d,)
    values = vec("unfold_v", r, slice(None), slice(None), row, col)  # (d, K)
    logits = vec("logits", r, slice(None), row, col)  # (K,)
    weights = vec("att", r, slice(None), row, col)  # (K,)
    out_entry = vec("out_att", batch, slice(head * d, (head + 1) * d), row, col)  # (d,)

    pe_diff = q_pe[:, None] - rpe
    content = q @ keys
    positional = q @ pe_diff
    in_row, in_col = row * s, col * s
    dy, dx = np.divmod(np.arange(ka * ka), ka)
    pad_row = in_row + dy * dil - p  # in input coordinates (negative or >= H: padding)
    pad_col = in_col + dx * dil - p
    key_row = np.array([reflect_index(int(t), config.height) for t in pad_row])
    key_col = np.array([reflect_index(int(t), config.width) for t in pad_col])
    cells = pd.DataFrame({
        "j": np.arange(ka * ka),
        "dy": dy,
        "dx": dx,
        "offset_y": dy * dil - p,
        "offset_x": dx * dil - p,
        "padded_row": pad_row,
        "padded_col": pad_col,
        "key_row": key_row,
        "key_col": key_col,
        "reflected": (key_row != pad_row) | (key_col != pad_col),
        "content": content,
        "positional": positional,
        "logit": logits,
        "weight": weights,
    })
    weighted = values @ weights
    output = pd.DataFrame({
        "channel in head": np.arange(d),
        "output channel": head * d + np.arange(d),
        "Σ_j w_j · v_j": weighted,
        "out_att entry": out_entry,
        "difference": weighted - out_entry,
    })
    return QueryInspection(batch, head, row, col, in_row, in_col, ka, p, dil, cells, pe_diff,
                           output)


def key_window_frame(trace: Trace, config: ACmixConfig, insp: QueryInspection, channel: int,
                     margin: int = 2) -> pd.DataFrame:
    """The padded key map k_pad of the inspected head/channel around the query's window.

    Rows and columns are in input coordinates (padding cells are < 0 or >= H, W); each cell
    says whether it is reflection padding, which input cell it copies, and whether the window
    reads it.
    """
    h = config.head
    k_pad = trace["k_pad"].tensor[insp.batch * h + insp.head, channel].detach().double().numpy()
    p = insp.padding
    top = max(-p, insp.in_row - p - margin)
    bottom = min(config.height + p - 1, insp.in_row + p + margin)
    left = max(-p, insp.in_col - p - margin)
    right = min(config.width + p - 1, insp.in_col + p + margin)
    rows, cols = np.mgrid[top:bottom + 1, left:right + 1]
    rows, cols = rows.ravel(), cols.ravel()
    window = set(zip(insp.cells["padded_row"].tolist(), insp.cells["padded_col"].tolist(),
                     strict=True))
    src_r = np.array([reflect_index(int(t), config.height) for t in rows])
    src_c = np.array([reflect_index(int(t), config.width) for t in cols])
    return pd.DataFrame({
        "row": rows,
        "col": cols,
        "value": k_pad[rows + p, cols + p],
        "padding": (rows < 0) | (rows >= config.height) | (cols < 0) | (cols >= config.width),
        "source": [f"({a}, {b})" for a, b in zip(src_r, src_c, strict=True)],
        "in_window": [(int(a), int(b)) in window for a, b in zip(rows, cols, strict=True)],
    })


WINDOW_PANELS = (
    ("positional code", N_("q_pe − unfold_rpe (channel {channel})")),
    ("content", N_("content q·k")),
    ("positional", N_("position q·(pe_q − pe_key)")),
    ("logit", N_("logit (recorded)")),
    ("weight", N_("softmax weight (recorded)")),
)


def window_panels_frame(insp: QueryInspection, channel: int) -> pd.DataFrame:
    """The inspector's ka×ka panels stacked: one row per (panel, window position).

    Panels, in order: the positional code q_pe − unfold_rpe of one channel, then per window
    position the content score, the positional score, the recorded logit and softmax weight.
    """
    frames = []
    for order, (column, title) in enumerate(WINDOW_PANELS):
        df = window_grid(insp, "logit")
        df["value"] = insp.pe_diff[channel] if column == "positional code" \
            else insp.cells[column].to_numpy()
        df["panel"] = _(title, channel=channel)
        df["order"] = order
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def window_grid(insp: QueryInspection, column: str) -> pd.DataFrame:
    """A ka×ka heatmap frame of one per-window-position column (logit, weight, ...)."""
    df = insp.cells[["j", "dy", "dx", "offset_y", "offset_x", "key_row", "key_col",
                     "reflected"]].copy()
    df["value"] = insp.cells[column].to_numpy()
    df["row"], df["col"] = df["dy"], df["dx"]
    return df


# ---------------------------------------------------------------------------------------------
# conv_p, fc, dep_conv
# ---------------------------------------------------------------------------------------------


def conv_p_frame(module) -> pd.DataFrame:
    """conv_p's weights: one row per output channel (w_x, w_y, bias)."""
    w = module.conv_p.weight.detach().double()[:, :, 0, 0].numpy()
    b = module.conv_p.bias.detach().double().numpy()
    return pd.DataFrame({"channel": np.arange(len(b)), "w_x": w[:, 0], "w_y": w[:, 1], "bias": b})


def conv_p_plane_error(trace: Trace, module) -> float:
    """Largest |pe − (w_x·grid_x + w_y·grid_y + b)|: pe is a plane per channel."""
    grid = trace["grid"].tensor[0].double()
    w = module.conv_p.weight.detach().double()[:, :, 0, 0]
    b = module.conv_p.bias.detach().double()
    plane = torch.einsum("ck,kyx->cyx", w, grid) + b[:, None, None]
    return float((trace["pe"].tensor[0].double() - plane).abs().max())


@dataclass(frozen=True)
class ConvPGradients:
    """Norms of ∂L/∂conv_p.bias and ∂L/∂conv_p.weight for L = Σ out · R (R fixed random)."""

    bias64: float
    weight64: float
    bias32: float
    weight32: float


def conv_p_gradients_refusal(config: ACmixConfig, limit: int | None = None) -> memory.Refusal | None:
    """None when conv_p_gradients fits the memory budget. Its float64 autograd pass keeps every
    intermediate for the backward: measured at 1.4 to 1.5 times a float32 trace's estimate
    (default and one strided, batched configuration), so twice that estimate is asked for."""
    return memory.check(
        config, memory.memory_budget() if limit is None else limit,
        cost=lambda c: 2 * memory.trace_bytes(c),
        what=_("The gradient check (a float64 forward and backward of this module)"),
    )


def conv_p_gradients(module, x: torch.Tensor, seed: int = 0) -> ConvPGradients:
    """conv_p's gradients from autograd through the module's own forward, in float64 and float32.

    conv_p's bias adds the same vector to the query's and to every key's positional code, so it
    cancels in q · (pe_q − pe_key): in exact arithmetic its gradient is exactly zero (a dead
    parameter), and what autograd returns is rounding, about the dtype's epsilon times the weight
    gradient. Runs on a copy: the (shared) module keeps its weights and gradients untouched.
    """
    import copy

    norms = []
    for dtype in (torch.float64, torch.float32):
        twin = copy.deepcopy(module).to(dtype).requires_grad_(True)  # frozen copies too (trained layers)
        twin.zero_grad(set_to_none=True)
        with torch.enable_grad():
            out = twin(x.to(dtype))
            weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed),
                                  dtype=torch.float64).to(dtype)
            (out * weights).sum().backward()
        norms += [float(twin.conv_p.bias.grad.norm()), float(twin.conv_p.weight.grad.norm())]
    return ConvPGradients(*norms)


def fc_matrix_frame(module, max_heads: int | None = None) -> pd.DataFrame:
    """fc's weight as a 3·head × kernel_conv² matrix: one row per input group (q/k/v × head).

    `max_heads` keeps the rows of the first heads of q, k and v only (for drawing).
    """
    h, kc = module.head, module.kernel_conv
    w = module.fc.weight.detach().double()[:, :, 0, 0].numpy()  # (kc², 3h)
    pad = kc // 2
    shown = h if max_heads is None else min(h, max_heads)
    rows = []
    for g in (kind * h + n for kind in range(3) for n in range(shown)):
        for i in range(kc * kc):
            a, e = divmod(i, kc)
            rows.append({
                "group": g,
                "input": _("{kind} · head {head}", kind="qkv"[g // h], head=g % h),
                "offset": i,
                "offset label": f"{i}: ({a - pad:+d}, {e - pad:+d})",
                "value": w[i, g],
            })
    return pd.DataFrame(rows)


def shift_kernels(kernel_conv: int) -> torch.Tensor:
    """The shift-kernel pattern (kc², kc, kc) that dep_conv starts from, built here as a check."""
    eye = torch.eye(kernel_conv * kernel_conv)
    return eye.reshape(kernel_conv * kernel_conv, kernel_conv, kernel_conv)


def dep_conv_is_shift(module) -> bool:
    """Whether every output channel of dep_conv holds exactly the shift kernels."""
    w = module.dep_conv.weight.detach()
    # torch.equal on an expanded view compares without allocating a mask of the weight's size.
    return torch.equal(w, shift_kernels(module.kernel_conv).to(w).expand_as(w))


def shift_distance(module) -> float:
    """‖dep_conv.weight − shift kernels‖ / ‖shift kernels‖ (Frobenius, whole weight): 0 at ACmix's
    initialisation; how far training (or another initialisation) moved the conv path from shifts."""
    w = module.dep_conv.weight.detach().double()
    pattern = shift_kernels(module.kernel_conv).to(w).expand_as(w)
    return float((w - pattern).norm() / pattern.norm())


def shift_distance_bytes(config: ACmixConfig) -> int:
    """What shift_distance allocates: dep_conv's weight in float64 and the difference (twice)."""
    return 3 * 8 * config.out_planes * config.kernel_conv**4


def shift_kernel_frame(module, out_channel: int) -> pd.DataFrame:
    """dep_conv.weight[out_channel] as a long frame: input channel i of the group, a, e, value."""
    w = module.dep_conv.weight.detach()[out_channel].double().numpy()  # (kc², kc, kc)
    i, a, e = np.indices(w.shape)
    return pd.DataFrame({"i": i.ravel(), "a": a.ravel(), "e": e.ravel(), "value": w.ravel()})


def shift_sum(f_all: torch.Tensor, height: int, width: int, kernel_conv: int, padding: int,
              stride: int, head: int, out_height: int, out_width: int) -> torch.Tensor:
    """The conv path at initialisation written as shifts: Σ_i fc output i shifted by its offset.

    f_all (B, kc², d, H·W) is zero-padded by `padding`; offset i = (a, e) reads rows
    a, a + s, ... of the padded map. Output channel o copies group o // head. (B, C, Ho, Wo).
    Each offset adds only the rows and columns that fall inside the input (the padding is zeros),
    so no padded copy of f_all is made: for kernel_conv 15 on an 8×8 map that copy would be 7
    times f_all's size, in float64.
    """
    b, kc2, d, _ = f_all.shape
    f = f_all.reshape(b, kc2, d, height, width)
    out = torch.zeros(b, d, out_height, out_width, dtype=torch.float64)
    for i in range(kc2):
        a, e = divmod(i, kernel_conv)
        rows = _inside(a - padding, stride, out_height, height)
        cols = _inside(e - padding, stride, out_width, width)
        if rows is None or cols is None:
            continue
        (r0, r1, y0), (c0, c1, x0) = rows, cols
        out[:, :, r0:r1, c0:c1] += f[:, i, :, y0:y0 + stride * (r1 - r0 - 1) + 1:stride,
                                     x0:x0 + stride * (c1 - c0 - 1) + 1:stride].double()
    return out.repeat_interleave(head, dim=1)


def _inside(shift: int, stride: int, out_size: int, size: int) -> tuple[int, int, int] | None:
    """Output positions r0 <= r < r1 whose input position shift + stride·r lies in [0, size), and
    the first of those input positions; None when there is none."""
    r0 = 0
    while r0 < out_size and shift + stride * r0 < 0:
        r0 += 1
    r1 = out_size
    while r1 > r0 and shift + stride * (r1 - 1) >= size:
        r1 -= 1
    if r0 >= r1:
        return None
    return r0, r1, shift + stride * r0


@dataclass(frozen=True)
class ShiftCheck:
    max_difference: float  # largest |out_conv − shift sum|
    max_magnitude: float  # largest |out_conv|, for scale
    weights_are_shift: bool


def check_shift(trace: Trace, module) -> ShiftCheck:
    """Compare the traced out_conv with the shift sum of the traced f_all, one batch item at a time
    (float64 memory of one item: see `check_shift_bytes`)."""
    out_conv, f_all = trace["out_conv"].tensor, trace["f_all"].tensor
    b, c, ho, wo = out_conv.shape
    _, _, h, w = trace["f_conv"].tensor.shape
    heads = module.head
    worst = magnitude = 0.0
    for item in range(b):
        expected = shift_sum(f_all[item:item + 1], h, w, module.kernel_conv, module.dep_conv.padding[0],
                             module.stride, 1, ho, wo)  # (1, d, Ho, Wo): one map per group
        got = out_conv[item].double().reshape(c // heads, heads, ho, wo)
        worst = max(worst, float((got - expected[0].unsqueeze(1)).abs().max()))
        magnitude = max(magnitude, float(got.abs().max()))
    return ShiftCheck(worst, magnitude, dep_conv_is_shift(module))


def check_shift_bytes(config: ACmixConfig) -> int:
    """What check_shift allocates beyond the trace: for one batch item, out_conv in float64, the
    difference and its absolute value, the shift sum (twice: summed, then per output channel), one
    offset's slice of f_all in float64; and the shift-kernel pattern (kernel_conv⁴ values, twice)."""
    c, d = config.out_planes, config.head_dim
    no, n = config.out_height * config.out_width, config.height * config.width
    return 8 * (3 * c * no + 2 * d * no + d * n) + 8 * config.kernel_conv**4


@dataclass(frozen=True)
class DepConvBias:
    declared: bool  # the constructor asks for a bias
    present: bool  # the module has one
    params_without: int
    params_with: int


def dep_conv_bias(module) -> DepConvBias:
    w = module.dep_conv.weight
    return DepConvBias(
        declared=True,  # nn.Conv2d(..., bias=True) in both the authors' code and convmix.acmix
        present=module.dep_conv.bias is not None,
        params_without=w.numel(),
        params_with=w.numel() + module.out_planes,
    )


# ---------------------------------------------------------------------------------------------
# Mix
# ---------------------------------------------------------------------------------------------


def remix(out_att: torch.Tensor, out_conv: torch.Tensor, rate1: float, rate2: float) -> torch.Tensor:
    """rate1 · out_att + rate2 · out_conv with the recorded path outputs."""
    return rate1 * out_att.double() + rate2 * out_conv.double()


@dataclass(frozen=True)
class Shares:
    attention: float  # |rate1|·‖out_att‖ / (|rate1|·‖out_att‖ + |rate2|·‖out_conv‖)
    convolution: float
    norm_att: float  # ‖out_att‖ (Frobenius, whole tensor)
    norm_conv: float


def path_shares(out_att: torch.Tensor, out_conv: torch.Tensor, rate1: float, rate2: float) -> Shares:
    """Each path's share of the output, measured by the L2 norm of its weighted contribution."""
    na = float(out_att.double().norm())
    nc = float(out_conv.double().norm())
    a, c = abs(rate1) * na, abs(rate2) * nc
    total = a + c
    if total == 0:
        return Shares(0.0, 0.0, na, nc)
    return Shares(a / total, c / total, na, nc)


def channel_shares(out_att: torch.Tensor, out_conv: torch.Tensor, rate1: float,
                   rate2: float) -> pd.DataFrame:
    """The attention path's share per output channel (same measure as path_shares)."""
    na = out_att.double().pow(2).sum(dim=(0, 2, 3)).sqrt() * abs(rate1)
    nc = out_conv.double().pow(2).sum(dim=(0, 2, 3)).sqrt() * abs(rate2)
    total = na + nc
    share = torch.where(total > 0, na / total.clamp_min(1e-300), torch.zeros_like(total))
    return pd.DataFrame({"channel": np.arange(len(share)), "attention share": share.numpy()})


# ---------------------------------------------------------------------------------------------
# Channel grouping
# ---------------------------------------------------------------------------------------------


def channel_grouping_frame(config: ACmixConfig) -> pd.DataFrame:
    """Which head (attention path) and which group (conv path) each output channel belongs to.

    Attention: output channel o is channel o % d of head o // d; it reads v channel o, and its
    weights come from q and k channels of that head. Convolution: output channel o belongs to
    dep_conv group g = o // h, which reads f_conv channels g·kc² … g·kc² + kc² − 1, i.e. fc's
    outputs for within-head channel g, mixed from channel g of every head of q, k and v.
    """
    c, d, h, kc2 = config.out_planes, config.head_dim, config.head, config.kernel_conv**2
    rows = []
    for o in range(c):
        g = o // h
        rows.append({
            "output channel": o,
            "attention head": o // d,
            "channel in head": o % d,
            "conv group": g,
            "f_conv channels": _span(g * kc2, kc2),
            "q/k/v channels (conv)": _spaced(g, d, h),
        })
    return pd.DataFrame(rows)


def _span(start: int, count: int) -> str:
    return str(start) if count == 1 else f"{start}–{start + count - 1}"


def _spaced(start: int, step: int, count: int) -> str:
    items = [start + k * step for k in range(count)]
    if count <= 4:
        return ", ".join(map(str, items))
    return _("{first}, {second}, …, {last} (step {step})", first=items[0], second=items[1], last=items[-1],
             step=step)


def group_spread(trace: Trace, config: ACmixConfig) -> tuple[float, float]:
    """(largest difference between out_conv channels of one conv group, between groups).

    At initialisation each group's h output channels share the same shift kernels, so the first
    is 0 while the second is not: live evidence for the grouping o // h.
    """
    out = trace["out_conv"].tensor.double()
    b, c, ho, wo = out.shape
    h, d = config.head, config.head_dim
    grouped = out.reshape(b, d, h, ho, wo)
    within = float((grouped - grouped[:, :, :1]).abs().max())
    across = float((grouped[:, 1:] - grouped[:, :1]).abs().max()) if d > 1 else 0.0
    return within, across
