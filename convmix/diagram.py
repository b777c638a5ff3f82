"""ACmix's structure as a Graphviz DOT string: two paths sharing Stage I, labelled with live shapes."""

from __future__ import annotations

from .config import ACmixConfig


class _Symbols:
    """Stand-ins for the sizes of a configuration that cannot run: the diagram shows names."""

    batch, in_planes, out_planes, head, head_dim = "B", "Cin", "C", "h", "d"
    height, width, out_height, out_width = "H", "W", "Ho", "Wo"
    kernel_att, kernel_conv = "ka", "kc"


def acmix_dot(config: ACmixConfig | None) -> str:
    """The diagram with `config`'s live sizes, or with symbols when `config` is None."""
    c = config if config is not None else _Symbols()
    b, d, h = c.batch, c.head_dim, c.head
    hw = f"{c.height}×{c.width}"
    ohw = f"{c.out_height}×{c.out_width}"
    if config is None:
        kk, kc2, three_h = "ka²", "kc²", "3h"
    else:
        kk, kc2, three_h = c.kernel_att**2, c.kernel_conv**2, 3 * c.head
    nodes = {
        "x": f"input x\\n{b}×{c.in_planes}×{hw}",
        "stage1": f"Stage I: conv1, conv2, conv3\\n1×1 convs → q, k, v\\n3 × {b}×{c.out_planes}×{hw}",
        "heads": f"split into {h} heads × {d} channels\\nscale q by {d}^-1/2",
        "pe": f"conv_p(coordinate grid)\\n2 → {d} channels",
        "win": f"pad_att + unfold\\n{c.kernel_att}×{c.kernel_att} = {kk} window positions",
        "soft": f"logits q·(k + pe_q − pe_k)\\nsoftmax over {kk}",
        "att": f"weighted sum of v\\nout_att {b}×{c.out_planes}×{ohw}",
        "fc": f"fc: 1×1 conv {three_h} → {kc2} groups\\n(q, k, v × head → kernel offsets)",
        "dep": f"dep_conv: {c.kernel_conv}×{c.kernel_conv} grouped conv\\n(groups = {d}, shift-kernel init)"
        f"\\nout_conv {b}×{c.out_planes}×{ohw}",
        "mix": f"out = rate1 · out_att + rate2 · out_conv\\n{b}×{c.out_planes}×{ohw}",
    }
    edges = [
        ("x", "stage1"), ("stage1", "heads"), ("heads", "win"), ("pe", "soft"), ("win", "soft"),
        ("soft", "att"), ("stage1", "fc"), ("fc", "dep"), ("att", "mix"), ("dep", "mix"),
    ]
    lines = [
        "digraph ACmix {",
        '  rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
    ]
    fill = {"x": "#eeeeee", "stage1": "#ffe8a8", "mix": "#d7f0d2", "fc": "#cfe3ff", "dep": "#cfe3ff"}
    for key, label in nodes.items():
        lines.append(f'  {key} [label="{label}", fillcolor="{fill.get(key, "#f8d3e0")}"];')
    lines.append('  subgraph cluster_att { label="attention path (Stage II)"; color="#c2185b"; '
                 "heads; pe; win; soft; att; }")
    lines.append('  subgraph cluster_conv { label="convolution path (Stage II)"; color="#1565c0"; '
                 "fc; dep; }")
    lines += [f"  {a} -> {z};" for a, z in edges]
    lines.append("}")
    return "\n".join(lines)
