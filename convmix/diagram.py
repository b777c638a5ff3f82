"""ACmix's structure as a Graphviz DOT string: two paths sharing Stage I, labelled with live shapes.

Two layouts of the same graph: "wide" draws the attention and convolution paths side by side (a
desktop column), "narrow" stacks every node in one column with shorter lines and a larger font, so
that a phone shows it at a legible size (the home page picks one by the width it has). Labels are
translated; shapes, code names and formulas are the same in every language.
"""

from __future__ import annotations

import itertools

from .config import ACmixConfig
from .i18n import _, ngettext

LAYOUTS = ("wide", "narrow")
FONT_SIZE = {"wide": 11, "narrow": 14}  # points, before the browser scales the drawing to its box
NODE_MARGIN_PT = 8  # Graphviz's default horizontal margin of a box (0.11 inch), each side
# Graphviz sizes boxes from its own Latin font metrics, which take a Chinese character for half its
# width: each box is given at least the width its lines need in the app's font, at these widths in
# em (measured in Chromium: Source Sans draws digits at 0.5 em, letters at about 0.42, a space at
# 0.2; CJK characters are one em), with a little room to spare.
CHAR_EM = {"wide": 1.0, "space": 0.22, "digit": 0.52, "other": 0.47}
# The app's font stack (.streamlit/config.toml): Chinese labels are drawn with the shipped CJK font.
FONT_NAME = "Source Sans,convmix-cjk,sans-serif"
# The narrow layout, one node per rank: every node on one path (edges in `_EDGES` plus these).
_NARROW_CHAIN = ("x", "stage1", "heads", "win", "pe", "soft", "att", "fc", "dep", "mix")
_EDGES = (
    ("x", "stage1"), ("stage1", "heads"), ("heads", "win"), ("pe", "soft"), ("win", "soft"),
    ("soft", "att"), ("stage1", "fc"), ("fc", "dep"), ("att", "mix"), ("dep", "mix"),
)
_FILL = {"x": "#eeeeee", "stage1": "#ffe8a8", "mix": "#d7f0d2", "fc": "#cfe3ff", "dep": "#cfe3ff"}


class _Symbols:
    """Stand-ins for the sizes of a configuration that cannot run: the diagram shows names."""

    batch, in_planes, out_planes, head, head_dim = "B", "Cin", "C", "h", "d"
    height, width, out_height, out_width = "H", "W", "Ho", "Wo"
    kernel_att, kernel_conv = "ka", "kc"


def _shape(*sizes: object) -> str:
    return "×".join(str(s) for s in sizes)


def node_lines(config: ACmixConfig | None, layout: str = "wide") -> dict[str, list[str]]:
    """Each node's label, line by line, with `config`'s live sizes or symbols when it is None."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    c = config if config is not None else _Symbols()
    b, d, h, cout = c.batch, c.head_dim, c.head, c.out_planes
    ka, kc = c.kernel_att, c.kernel_conv
    if config is None:
        kk, kc2, three_h = "ka²", "kc²", "3h"
    else:
        kk, kc2, three_h = ka**2, kc**2, 3 * h
    out_shape = _shape(b, cout, c.out_height, c.out_width)
    mix = ["out = rate1 · out_att", "+ rate2 · out_conv"] if layout == "narrow" else \
        ["out = rate1 · out_att + rate2 · out_conv"]

    def count(value: object) -> int:  # the n of a plural form; a symbol reads as a plural
        return value if isinstance(value, int) else 2

    return {
        "x": [_("input x"), _shape(b, c.in_planes, c.height, c.width)],
        "stage1": [_("Stage I: conv1, conv2, conv3"), _("1×1 convs → q, k, v"),
                   "3 × " + _shape(b, cout, c.height, c.width)],
        "heads": [_("split into heads × channels"), f"{h} × {d}", _("scale q by {dim}^-1/2", dim=d)],
        "pe": [_("conv_p(coordinate grid)"),
               ngettext("2 → {dim} channel", "2 → {dim} channels", count(d), dim=d)],
        "win": ["pad_att + unfold", ngettext("{ka}×{ka} = {positions} window position",
                                             "{ka}×{ka} = {positions} window positions", count(kk),
                                             ka=ka, positions=kk)],
        "soft": [_("logits q·(k + pe_q − pe_k)"), _("softmax over {positions}", positions=kk)],
        "att": [_("weighted sum of v"), "out_att " + out_shape],
        "fc": [ngettext("fc: 1×1 conv {inputs} → {groups} group", "fc: 1×1 conv {inputs} → {groups} groups",
                        count(kc2), inputs=three_h, groups=kc2),
               _("(q, k, v × head → kernel offsets)")],
        "dep": [_("dep_conv: {kc}×{kc} grouped conv", kc=kc),
                _("(groups = {dim}, shift-kernel init)", dim=d), "out_conv " + out_shape],
        "mix": [*mix, out_shape],
    }


def is_wide_char(ch: str) -> bool:
    """A character drawn one em wide: CJK ideographs, kana, CJK and full-width punctuation."""
    code = ord(ch)
    return 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF


def char_em(ch: str) -> float:
    if is_wide_char(ch):
        return CHAR_EM["wide"]
    return CHAR_EM["space"] if ch == " " else CHAR_EM["digit"] if ch.isdigit() else CHAR_EM["other"]


def text_width_em(line: str) -> float:
    """How wide `line` is drawn, in em, a little more than it needs (see CHAR_EM)."""
    return sum(char_em(ch) for ch in line)


def node_width_pt(lines: list[str], layout: str) -> float:
    """The width a box needs for `lines` in `layout`'s font size, margins included."""
    return max(text_width_em(line) for line in lines) * FONT_SIZE[layout] + 2 * NODE_MARGIN_PT


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def acmix_dot(config: ACmixConfig | None, layout: str = "wide") -> str:
    """The diagram with `config`'s live sizes, or with symbols when `config` is None."""
    nodes = node_lines(config, layout)
    narrow = layout == "narrow"
    lines = [
        "digraph ACmix {",
        f'  rankdir=TB; {"nodesep=0.15; ranksep=0.25; " if narrow else ""}'
        f'node [shape=box, style="rounded,filled", fontname="{FONT_NAME}", '
        f"fontsize={FONT_SIZE[layout]}];",
        f'  graph [fontname="{FONT_NAME}", fontsize={FONT_SIZE[layout]}];',
    ]
    for key, label in nodes.items():
        text = "\\n".join(_quoted(line) for line in label)
        width = node_width_pt(label, layout) / 72  # inches; a minimum, Graphviz may make it wider
        group = ", group=column" if narrow else ""  # one group: stacked on one vertical line
        lines.append(f'  {key} [label="{text}", width={width:.2f}{group}, '
                     f'fillcolor="{_FILL.get(key, "#f8d3e0")}"];')
    attention, convolution = _("attention path (Stage II)"), _("convolution path (Stage II)")
    lines.append(f'  subgraph cluster_att {{ label="{_quoted(attention)}"; color="#c2185b"; '
                 "heads; pe; win; soft; att; }")
    lines.append(f'  subgraph cluster_conv {{ label="{_quoted(convolution)}"; color="#1565c0"; '
                 "fc; dep; }")
    chain = set(itertools.pairwise(_NARROW_CHAIN)) if narrow else set()
    # In the narrow layout only the column's own edges pull nodes into line; the edges that skip
    # ahead (Stage I to fc, the attention output to the mix) go round it.
    lines += [f"  {a} -> {z}{'' if not narrow or (a, z) in chain else ' [weight=0]'};" for a, z in _EDGES]
    if narrow:
        # Invisible edges complete the one path through every node: one node per rank.
        lines += [f"  {a} -> {z} [style=invis];" for a, z in itertools.pairwise(_NARROW_CHAIN)
                  if (a, z) not in _EDGES]
    lines.append("}")
    return "\n".join(lines)
