"""The authors' ACmix ResNet: state-dict keys and shapes, parameter totals, init, layout, input checks.

tests/data/resnet26_acmix_state_dict.json holds the authors' ResNet-26 state dict (keys and shapes,
its "source" says where it comes from). The 38 and 50 key lists are derived here from the
documented layout by a generator that is first checked against that file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from convmix import ConfigError
from convmix.acmix import ACmix
from convmix.models import (
    RELEASED_PARAMS,
    acmix_resnet,
    block_layout,
    min_input_size,
    network_problems,
    state_dict_shapes,
)

DATA = Path(__file__).parent / "data" / "resnet26_acmix_state_dict.json"
LAYERS = {26: [1, 2, 4, 1], 38: [2, 3, 5, 2], 50: [3, 4, 6, 3]}


def authors_resnet26() -> dict[str, tuple[int, ...]]:
    data = json.loads(DATA.read_text())
    assert "LeapLabTHU/ACmix" in data["source"]
    return {k: tuple(v) for k, v in data["state_dict"].items()}


def documented_keys(layers: list[int], classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """The state dict RESNET_ACMIX.md describes: torchvision's bottleneck ResNet, conv2 = ACmix."""
    keys: dict[str, tuple[int, ...]] = {}

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{name}"] = (c,)
        keys[f"{prefix}.num_batches_tracked"] = ()

    keys["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    cin = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True), start=1):
        for i in range(count):
            p, w = f"layer{stage}.{i}", planes
            keys[f"{p}.conv1.weight"] = (w, cin, 1, 1)
            bn(f"{p}.bn1", w)
            a = f"{p}.conv2"
            keys[f"{a}.rate1"] = keys[f"{a}.rate2"] = (1,)
            for conv in ("conv1", "conv2", "conv3"):
                keys[f"{a}.{conv}.weight"] = (w, w, 1, 1)
                keys[f"{a}.{conv}.bias"] = (w,)
            keys[f"{a}.conv_p.weight"] = (w // 4, 2, 1, 1)
            keys[f"{a}.conv_p.bias"] = (w // 4,)
            keys[f"{a}.fc.weight"] = (9, 12, 1, 1)
            keys[f"{a}.dep_conv.weight"] = (w, 9, 3, 3)
            bn(f"{p}.bn2", w)
            keys[f"{p}.conv3.weight"] = (4 * w, w, 1, 1)
            bn(f"{p}.bn3", 4 * w)
            if i == 0:
                keys[f"{p}.downsample.0.weight"] = (4 * w, cin, 1, 1)
                bn(f"{p}.downsample.1", 4 * w)
            cin = 4 * w
    keys["fc.weight"] = (classes, 2048)
    keys["fc.bias"] = (classes,)
    return keys


def test_the_documented_layout_generates_the_authors_resnet26():
    assert list(documented_keys(LAYERS[26]).items()) == list(authors_resnet26().items())


def test_resnet26_state_dict_equals_the_authors():
    model = acmix_resnet(26, device="meta")
    assert list(state_dict_shapes(model).items()) == list(authors_resnet26().items())


@pytest.mark.parametrize("depth", [38, 50])
def test_deeper_state_dicts_follow_the_layout(depth):
    model = acmix_resnet(depth, device="meta")
    assert list(state_dict_shapes(model).items()) == list(documented_keys(LAYERS[depth]).items())


@pytest.mark.parametrize("depth", [26, 38, 50])
def test_parameter_totals(depth):
    model = acmix_resnet(depth, device="meta")
    total = sum(p.numel() for p in model.parameters())
    assert total == RELEASED_PARAMS[depth] == {26: 10_487_816, 38: 14_410_896, 50: 18_333_976}[depth]
    shapes = documented_keys(LAYERS[depth])
    trainable = sum(
        torch.Size(s).numel() for k, s in shapes.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert trainable == total


def test_num_classes():
    model = acmix_resnet(26, num_classes=10, device="meta")
    assert model.fc.weight.shape == (10, 2048)
    with pytest.raises(ValueError, match="num_classes"):
        acmix_resnet(26, num_classes=0, device="meta")


def test_unknown_depth_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="26, 38, 50"):
        acmix_resnet(34)


def test_an_authors_checkpoint_loads_strictly_and_runs():
    """Tensors of the authors' shapes load with strict=True and drive the forward."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for k, shape in authors_resnet26().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[k] = torch.randn(shape, generator=gen) * 0.05
    model = acmix_resnet(26, seed=1)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.layer3[2].conv2.dep_conv.weight,
                       state["layer3.2.conv2.dep_conv.weight"])
    with torch.no_grad():
        y = model(torch.randn(1, 3, 64, 64, generator=gen))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_initialisation():
    model = acmix_resnet(50, seed=0)
    acmix = [m for m in model.modules() if isinstance(m, ACmix)]
    assert len(acmix) == 16
    kc = 3
    shift = torch.zeros(kc * kc, kc, kc)
    for i in range(kc * kc):
        shift[i, i // kc, i % kc] = 1
    for m in acmix:
        assert m.rate1.item() == 0.5 and m.rate2.item() == 0.5
        # Q11: the network's Kaiming init overwrote the shift kernels
        assert not torch.allclose(m.dep_conv.weight, shift.expand_as(m.dep_conv.weight))
        assert m.dep_conv.bias is None
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (out_channels * kernel area))
    dep = model.layer4[0].conv2.dep_conv.weight
    assert dep.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.03)
    w = model.layer3[0].conv1.weight
    assert w.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.03)
    assert abs(w.mean().item()) < 0.01
    bn = model.layer2[0].bn3
    assert torch.equal(bn.weight, torch.ones(512)) and torch.equal(bn.bias, torch.zeros(512))
    # ACmix's projection biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    b = model.layer4[1].conv2.conv1.bias
    assert b.abs().max().item() <= 1 / 512**0.5
    assert b.std().item() == pytest.approx((1 / 512) ** 0.5 / 3**0.5, rel=0.15)


def test_seed_is_reproducible_and_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    a, b, c = acmix_resnet(26, seed=5), acmix_resnet(26, seed=5), acmix_resnet(26, seed=6)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layer1.0.conv2.conv1.weight"], sc["layer1.0.conv2.conv1.weight"])


def test_layout_shapes_are_those_the_forward_gives_each_acmix():
    model = acmix_resnet(50, device="meta")
    seen = {}
    for name, m in model.acmix_modules():
        m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, tuple(args[0].shape)))
    with torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    expected = {s.acmix_name: (1, s.width, *s.in_size) for s in block_layout(50)}
    assert seen == expected
    assert seen["layer1.0.conv2"] == (1, 64, 56, 56)
    assert seen["layer2.0.conv2"] == (1, 128, 56, 56) and seen["layer2.1.conv2"] == (1, 128, 28, 28)
    assert seen["layer4.0.conv2"] == (1, 512, 14, 14) and seen["layer4.2.conv2"] == (1, 512, 7, 7)


def test_input_sizes_the_network_cannot_take_are_explained():
    assert min_input_size(26) == 64 and min_input_size(38) == 128 and min_input_size(50) == 128
    assert network_problems(50, 224) == [] and network_problems(26, 64) == []
    problems = network_problems(50, 96)  # layer4's later blocks see 1×1 < the padding of 3
    assert problems and "layer4.1.conv2" in problems[0].message
    odd = network_problems(26, 100)  # 25×25 reaches layer2's stride-2 ACmix
    assert odd and "layer2.0.conv2" in odd[0].message and "25×25" in odd[0].message
    with pytest.raises(ConfigError, match="layer4"):
        acmix_resnet(50, device="meta")(torch.empty(1, 3, 96, 96, device="meta"))
    with pytest.raises(ConfigError, match=r"\(batch, 3, height, width\)"):
        acmix_resnet(26, device="meta")(torch.empty(1, 4, 64, 64, device="meta"))
