"""convmix.presets: the ResNet's layer shapes against the network itself, the presets' grids, and the
command line written for a sweep (parsed back by the CLI: the same configurations)."""

from __future__ import annotations

import shlex

import pytest
import torch

from convmix import presets, sweep
from convmix.__main__ import build_parser, grid_axes
from convmix.acmix import ACmix
from convmix.config import ACmixConfig
from convmix.models import acmix_resnet


def shapes_seen_by_the_network(depth: int) -> set[tuple[int, int, int, int]]:
    """(channels, input height, input width, stride) of every ACmix of a real forward (hooks)."""
    model = acmix_resnet(depth, seed=0)
    seen = set()
    for module in model.modules():
        if isinstance(module, ACmix):
            module.register_forward_hook(
                lambda m, inputs, _out: seen.add((m.in_planes, inputs[0].shape[2], inputs[0].shape[3], m.stride)))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    return seen


@pytest.mark.parametrize("depth", [26, 50])
def test_layer_shapes_are_what_the_network_runs(depth):
    expected = shapes_seen_by_the_network(depth)
    got = {(s.channels, s.height, s.width, s.stride) for s in presets.resnet_layer_shapes(depth)}
    assert got == expected


def test_the_seven_shapes_of_the_issue():
    """56²×64, 28²×128, 14²×256, 7²×512 and the stride-2 entries of stages 2 to 4."""
    shapes = {k: (s.channels, s.height, s.stride) for k, s in presets.RESNET_LAYERS.items()}
    assert shapes == {"layer1.0": (64, 56, 1), "layer2.0": (128, 56, 2), "layer2.1": (128, 28, 1),
                      "layer3.0": (256, 28, 2), "layer3.1": (256, 14, 1), "layer4.0": (512, 14, 2),
                      "layer4.1": (512, 7, 1)}
    assert presets.RESNET_LAYERS["layer3.1"].blocks == ("layer3.1", "layer3.2", "layer3.3", "layer3.4", "layer3.5")
    assert presets.RESNET_LAYERS["layer2.0"].label == "layer2.0 · C=128 · 56×56 → 28×28 · s=2"
    assert presets.layer_of(ACmixConfig(256, 256, height=14, width=14).__dict__) == "layer3.1"
    assert presets.layer_of(ACmixConfig(256, 256, height=14, width=14, stride=2).__dict__) == ""


def test_resnet_preset_grid():
    preset = presets.PRESETS["resnet-stages"]
    grid = sweep.expand_grid(ACmixConfig(), preset.axes_dict())
    assert len(grid.configs) == 7 * 4 * 4 and not grid.skipped
    assert {(c.in_planes, c.out_planes, c.height, c.stride) for c in grid.configs} == {
        (s.channels, s.channels, s.height, s.stride) for s in presets.RESNET_LAYERS.values()}
    assert {c.kernel_att for c in grid.configs} == {3, 5, 7, 9} and {c.head for c in grid.configs} == {1, 2, 4, 8}
    assert (preset.x, preset.facet) == ("kernel_att", "layer")


def test_kernel_head_stride_preset_is_the_issues_grid():
    grid = sweep.expand_grid(ACmixConfig(), presets.PRESETS["kernel-head-stride"].axes_dict())
    assert len(grid.configs) == 32  # kernel_att {3,5,7,9} × head {1,2,4,8} × stride {1,2}
    assert sweep.DEFAULT_VARIED == ("layer", "kernel_att", "head")


def parsed_configs(command: str) -> set:
    """The configurations the CLI would sweep for `command` (parsed by the CLI's own parser)."""
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "convmix", "sweep"]
    args = build_parser().parse_args(words[3:])
    sizes, axes = grid_axes(args)
    out = set()
    for h, w in sizes:
        out |= set(sweep.expand_grid(ACmixConfig(height=h, width=w, variant=args.variant), axes).configs)
    return out


@pytest.mark.parametrize("base, axes", [
    (ACmixConfig(), presets.PRESETS["resnet-stages"].axes_dict()),
    (ACmixConfig(height=8, width=12), {"kernel_att": [3, 5], "head": [1, 2], "stride": [1, 2]}),
    (ACmixConfig(in_planes=16, out_planes=32, variant="fixed", kernel_conv=5, batch=2), {"head": [1, 4]}),
    (ACmixConfig(), {"channels": [8, 16], "resolution": [8, 16], "batch": [1, 2]}),
    (ACmixConfig(dilation=2, variant="fixed"), {"layer": ["layer3.1", "layer4.0"], "kernel_att": [3]}),
])
def test_the_command_line_for_a_sweep_measures_the_same_configurations(base, axes):
    command = presets.cli_command(base, axes, dtype="float32", impl="reference", budget="quick")
    assert set(sweep.expand_grid(base, axes).configs) == parsed_configs(command)
    assert "--budget quick" in command and "--out results.csv" in command
