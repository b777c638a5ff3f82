"""The home page's diagram: live sizes that agree with the module, symbols when nothing can run, labels
in the visitor's language, and a narrow layout that a phone shows at a legible size."""

import itertools
import re

import pytest

from convmix import diagram
from convmix.config import LIMITS, ACmixConfig
from convmix.diagram import FONT_SIZE, LAYOUTS, acmix_dot, node_lines, node_width_pt, text_width_em
from convmix.i18n import language
from convmix.trace import trace_forward


def labels(dot: str) -> dict[str, list[str]]:
    return {key: label.split("\\n") for key, label in re.findall(r'^\s*(\w+) \[label="([^"]*)"', dot, re.M)}


def edges(dot: str) -> list[tuple[str, str]]:
    return re.findall(r"^\s*(\w+) -> (\w+)", dot, re.M)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_diagram_sizes_are_the_traced_shapes(layout):
    cfg = ACmixConfig(in_planes=8, out_planes=12, head=3, kernel_att=5, stride=2, height=10, width=14)
    trace = trace_forward(cfg.build(), cfg.make_input())
    dot = acmix_dot(cfg, layout)
    b, c, h, w = trace["q"].shape
    assert f"3 × {b}×{c}×{h}×{w}" in dot
    b, c, ho, wo = trace["out"].shape
    assert f"out_att {b}×{c}×{ho}×{wo}" in dot and f"out_conv {b}×{c}×{ho}×{wo}" in dot
    kk = trace["att"].shape[1]
    assert f"softmax over {kk}" in dot
    assert f"fc: 1×1 conv {cfg.build().fc.in_channels} → {trace['f_all'].shape[1]} groups" in dot
    heads_times_batch, head_dim = trace["q_att"].shape[:2]  # (B·heads, channels per head, H, W)
    assert f"{heads_times_batch // b} × {head_dim}" in labels(dot)["heads"]


def test_unrunnable_configuration_gets_symbols_not_numbers():
    dot = acmix_dot(None)
    assert "B×Cin×H×W" in dot and "h × d" in dot and "ka×ka = ka² window positions" in dot
    text = " ".join(line for lines in labels(dot).values() for line in lines)
    assert not re.search(r"\d+×\d+", text.replace("1×1 conv", ""))


def test_plural_forms_follow_the_numbers():
    one = labels(acmix_dot(ACmixConfig(kernel_att=1, kernel_conv=1, out_planes=4, head=4, variant="fixed")))
    assert "1×1 = 1 window position" in one["win"] and "2 → 1 channel" in one["pe"]
    assert one["fc"][0].endswith("→ 1 group")
    many = labels(acmix_dot(ACmixConfig()))
    assert "7×7 = 49 window positions" in many["win"] and "2 → 16 channels" in many["pe"]


def test_labels_are_translated_and_keep_the_numbers():
    cfg = ACmixConfig()
    english, chinese = labels(acmix_dot(cfg)), labels(_chinese(cfg))
    assert english.keys() == chinese.keys()
    for key in english:
        numbers = [re.findall(r"\d+", line) for line in english[key]]
        assert numbers == [re.findall(r"\d+", line) for line in chinese[key]], key
    assert any("\u4e00" <= ch <= "\u9fff" for line in chinese["heads"] for ch in line)
    assert "注意力路径（阶段 II）" in _chinese(cfg)


def _chinese(cfg, layout="wide"):
    with language("zh"):
        return acmix_dot(cfg, layout)


def one_path_through_all(dot: str) -> list[str] | None:
    """The path through every node along edges (visible or not), if the graph has one: then it is
    its only topological order, and Graphviz gives each node a rank of its own."""
    nodes, linked = list(labels(dot)), set(edges(dot))
    incoming = {node: sum(1 for a, z in linked if z == node) for node in nodes}
    order = []
    while ready := [node for node in nodes if incoming[node] == 0 and node not in order]:
        if len(ready) > 1:
            return None  # two nodes could share a rank
        order.append(ready[0])
        for a, z in linked:
            if a == ready[0]:
                incoming[z] -= 1
    if len(order) != len(nodes) or not all(pair in linked for pair in itertools.pairwise(order)):
        return None
    return order


def test_narrow_layout_is_one_column():
    path = one_path_through_all(acmix_dot(ACmixConfig(), "narrow"))
    assert path is not None and path[0] == "x" and path[-1] == "mix"
    # the wide layout keeps the two paths side by side
    assert one_path_through_all(acmix_dot(ACmixConfig(), "wide")) is None


# A phone 390 px wide shows the diagram in a box 358 px wide (16 px of padding each side).
PHONE_BOX_PX, LEGIBLE_PX = 358, 11
# Around the widest box, the narrow layout needs room for the clusters' frames and the two edges that
# skip ahead beside the column: 67-73 pt in Chromium (tests/browser/test_home_in_browser.py measures
# the labels on screen); counted here with some to spare.
NARROW_SIDE_ROOM_PT = 90
EXTREMES = [
    ACmixConfig(),
    ACmixConfig(**{name: hi for name, (lo, hi) in LIMITS.items() if name not in ("kernel_att", "kernel_conv", "head")},
                kernel_att=31, kernel_conv=15, head=1, variant="fixed"),
    ACmixConfig(in_planes=2048, out_planes=2048, head=2048, batch=64, height=1000, width=1000),
    None,
]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("config", EXTREMES, ids=["default", "largest", "many heads", "symbols"])
def test_narrow_layout_is_legible_on_a_phone(lang, config):
    """The narrow layout scaled into a phone's box draws its labels at 11 px or more, for any
    configuration the sidebar accepts, in every language; the wide one would not."""
    def on_screen_px(layout: str) -> float:
        with language(lang):
            lines = node_lines(config, layout)
        widest = max(node_width_pt(label, layout) for label in lines.values())
        drawing = widest + NARROW_SIDE_ROOM_PT  # pt, the drawing's width
        return FONT_SIZE[layout] * min(1.0, PHONE_BOX_PX / drawing)

    assert on_screen_px("narrow") >= LEGIBLE_PX
    assert FONT_SIZE["wide"] * PHONE_BOX_PX / 496 < LEGIBLE_PX  # the wide drawing is ≥ 496 pt (measured)


def test_boxes_are_as_wide_as_their_chinese_lines():
    """Graphviz would size a box for Chinese text at about half its width; each box is given the
    width its lines need, a Chinese character counted as one em."""
    assert text_width_em("注意力") == 3 * diagram.CHAR_EM["wide"] == 3.0
    assert text_width_em("ab 12") == 2 * diagram.CHAR_EM["other"] + diagram.CHAR_EM["space"] + 2 * diagram.CHAR_EM["digit"]
    for layout in LAYOUTS:
        dot = _chinese(ACmixConfig(), layout)
        widths = dict(re.findall(r'^\s*(\w+) \[label="[^"]*", width=([\d.]+)', dot, re.M))
        assert widths.keys() == labels(dot).keys()
        for key, lines in labels(dot).items():
            cjk = max(sum(1 for ch in line if "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef")
                      for line in lines)
            assert float(widths[key]) * 72 >= cjk * FONT_SIZE[layout], (layout, key, lines)
