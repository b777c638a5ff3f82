"""The home page's diagram: live sizes that agree with the module, symbols when nothing can run."""

import re

from convmix.config import ACmixConfig
from convmix.diagram import acmix_dot
from convmix.trace import trace_forward


def test_diagram_sizes_are_the_traced_shapes():
    cfg = ACmixConfig(in_planes=8, out_planes=12, head=3, kernel_att=5, stride=2, height=10, width=14)
    trace = trace_forward(cfg.build(), cfg.make_input())
    dot = acmix_dot(cfg)
    b, c, h, w = trace["q"].shape
    assert f"3 × {b}×{c}×{h}×{w}" in dot
    b, c, ho, wo = trace["out"].shape
    assert f"out_att {b}×{c}×{ho}×{wo}" in dot and f"out_conv {b}×{c}×{ho}×{wo}" in dot
    kk = trace["att"].shape[1]
    assert f"softmax over {kk}" in dot
    assert f"fc: 1×1 conv {cfg.build().fc.in_channels} → {trace['f_all'].shape[1]} groups" in dot


def test_unrunnable_configuration_gets_symbols_not_numbers():
    dot = acmix_dot(None)
    assert "B×Cin×H×W" in dot and "split into h heads × d channels" in dot
    labels = " ".join(re.findall(r'label="([^"]*)"', dot))
    assert not re.search(r"\d+×\d+", labels.replace("1×1 conv", ""))
