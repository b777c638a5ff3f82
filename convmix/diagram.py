"""ACmix's structure as a Graphviz DOT string: two paths sharing Stage I, labelled with live shapes.

Two layouts of the same graph: "wide" draws the attention and convolution paths side by side (a
desktop column), "narrow" stacks every node in one column with shorter lines and a larger font, so
that a phone shows it at a legible size (the home page picks one by the width it has). Labels are
translated; shapes, code names and formulas are the same in every language.
"""

from __future__ import annotations

import itertools

from .config import ACmixConfig
from .i18n import _

LAYOUTS = ("wide", "narrow")
FONT_SIZE = {"wide": 11, "narrow": 14}  # points, before the browser scales the drawing to its box
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
    return {
        "x": [_("input x"), _shape(b, c.in_planes, c.height, c.width)],
        "stage1": [_("Stage I: conv1, conv2, conv3"), _("1×1 convs → q, k, v"),
                   "3 × " + _shape(b, cout, c.height, c.width)],
        "heads": [_("split into {heads} heads × {dim} channels", heads=h, dim=d),
                  _("scale q by {dim}^-1/2", dim=d)],
        "pe": [_("conv_p(coordinate grid)"), _("2 → {dim} channels", dim=d)],
        "win": ["pad_att + unfold", _("{ka}×{ka} = {positions} window positions", ka=ka, positions=kk)],
        "soft": [_("logits q·(k + pe_q − pe_k)"), _("softmax over {positions}", positions=kk)],
        "att": [_("weighted sum of v"), "out_att " + out_shape],
        "fc": [_("fc: 1×1 conv {inputs} → {groups} groups", inputs=three_h, groups=kc2),
               _("(q, k, v × head → kernel offsets)")],
        "dep": [_("dep_conv: {kc}×{kc} grouped conv", kc=kc),
                _("(groups = {dim}, shift-kernel init)", dim=d), "out_conv " + out_shape],
        "mix": [*mix, out_shape],
    }


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
        lines.append(f'  {key} [label="{text}", fillcolor="{_FILL.get(key, "#f8d3e0")}"];')
    attention, convolution = _("attention path (Stage II)"), _("convolution path (Stage II)")
    lines.append(f'  subgraph cluster_att {{ label="{_quoted(attention)}"; color="#c2185b"; '
                 "heads; pe; win; soft; att; }")
    lines.append(f'  subgraph cluster_conv {{ label="{_quoted(convolution)}"; color="#1565c0"; '
                 "fc; dep; }")
    lines += [f"  {a} -> {z};" for a, z in _EDGES]
    if narrow:
        # Invisible edges complete the one path through every node: one node per rank.
        lines += [f"  {a} -> {z} [style=invis];" for a, z in itertools.pairwise(_NARROW_CHAIN)
                  if (a, z) not in _EDGES]
    lines.append("}")
    return "\n".join(lines)
