"""Walkthrough inputs: the seed's stem on photographs, and the input that really reaches an ACmix
layer of a network, both bounded by the memory budget; every message in Chinese."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convmix.activations import (
    BudgetError,
    acmix_layer_names,
    forward_bytes_until,
    forward_network,
    layer_input,
    stem_bytes,
    stem_conv,
    stem_description,
    stem_features,
    to_network_input,
)
from convmix.bias import seed_layer, to_input
from convmix.images import picture_rgb
from convmix.memory import LiveBytes
from convmix.models import acmix_resnet
from tests.library_messages import assert_translated, in_both

BUDGET = 1 << 30


def naive_stem(rgb: np.ndarray, conv: torch.nn.Conv2d) -> torch.Tensor:
    """Conv, per-channel standardisation by hand, ReLU, and a 3x3/2 max by explicit windows."""
    with torch.no_grad():
        y = conv(to_input(rgb))[0]
        mean = y.mean(dim=(1, 2), keepdim=True)
        var = ((y - mean) ** 2).mean(dim=(1, 2), keepdim=True)  # biased, as BatchNorm normalises
        y = torch.clamp((y - mean) / torch.sqrt(var + 1e-5), min=0)
        c, h, w = y.shape
        padded = torch.full((c, h + 2, w + 2), -float("inf"))
        padded[:, 1:-1, 1:-1] = y
        ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        out = torch.empty(c, ho, wo)
        for i in range(ho):
            for j in range(wo):
                out[:, i, j] = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].amax(dim=(1, 2))
    return out


def test_stem_on_a_photograph_matches_a_naive_computation():
    rgb = picture_rgb("chelsea", 96)
    out = stem_features(rgb, budget=BUDGET)
    assert out.features.shape == (1, 64, 24, 24)
    assert torch.allclose(out.features[0], naive_stem(rgb, seed_layer()), atol=1e-5)
    assert "Conv2d(3, 64, 7, 2, 3, bias=True)" in out.description


def test_stem_maps_show_the_pictures_structure():
    """Neighbouring values of a photograph's maps are strongly correlated; of noise, much less."""
    def neighbour_correlation(f):
        return torch.corrcoef(torch.stack([f[..., :-1].flatten(), f[..., 1:].flatten()]))[0, 1].item()

    photo = stem_features(picture_rgb("coffee", 128), budget=BUDGET).features
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert neighbour_correlation(photo) > 0.7
    assert neighbour_correlation(stem_features(noise, budget=BUDGET).features) < 0.45


def test_each_picture_of_a_batch_is_normalised_on_its_own():
    a, b = picture_rgb("rocket", 64, 96), picture_rgb("astronaut", 64, 96)
    both = stem_features([a, b], budget=BUDGET).features
    assert both.shape == (2, 64, 16, 24)
    assert torch.equal(both[0], stem_features(a, budget=BUDGET).features[0])
    assert torch.equal(both[1], stem_features(b, budget=BUDGET).features[0])


def test_other_widths_keep_the_seeds_filters_in_order():
    rgb = picture_rgb("chelsea", 64)
    full = stem_features(rgb, budget=BUDGET)
    few = stem_features(rgb, channels=16, budget=BUDGET)
    many = stem_features(rgb, channels=96, budget=BUDGET)
    assert torch.equal(few.features, full.features[:, :16])
    assert torch.equal(many.features[:, :64], full.features)
    assert many.features.shape[1] == 96 and not torch.equal(many.features[:, 64:80], few.features)
    assert "channels 0–15" in few.description and "widened to 96" in many.description
    assert torch.equal(stem_conv(8, seed=3).weight, seed_layer(seed=3).weight[:8])


def test_seeded_and_leaves_the_global_rng_alone():
    rgb = picture_rgb("coffee", 64)
    state = torch.random.get_rng_state()
    one = stem_features(rgb, seed=1, budget=BUDGET).features
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(one, stem_features(rgb, seed=1, budget=BUDGET).features)
    assert not torch.equal(one, stem_features(rgb, seed=2, budget=BUDGET).features)


def test_stem_memory_estimate_bounds_the_measured_peak_and_refuses_over_budget():
    rgb = picture_rgb("astronaut", 192)
    counter = LiveBytes()
    with counter:
        stem_features(rgb, budget=BUDGET)
    estimate = stem_bytes(1, 48, 48, 64)
    assert counter.peak <= estimate <= 2 * counter.peak
    with pytest.raises(BudgetError, match="memory budget") as err:
        stem_features(rgb, budget=estimate // 2)
    assert "fit" in str(err.value)
    with pytest.raises(ValueError, match="multiple of 4"):
        stem_features(picture_rgb("astronaut", 66), budget=BUDGET)


# ---------------------------------------------------------------------------------------------
# A network's own activations
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet26():
    return acmix_resnet(26, seed=4)


def test_layer_input_is_what_the_network_feeds_that_layer(resnet26):
    x = to_network_input([picture_rgb("chelsea", 64), picture_rgb("coffee", 64)])
    m = resnet26
    with torch.no_grad():  # the blocks' own forwards, one after another
        after = {"stem": m.maxpool(m.relu(m.bn1(m.conv1(x))))}
        h = after["stem"]
        for stage in (1, 2, 3):
            h = getattr(m, f"layer{stage}")(h)
        block = m.layer4[0]
        expected = block.relu(block.bn1(block.conv1(h)))
    got = layer_input(m, x, "layer4.0.conv2", budget=BUDGET)
    assert got.module is m.layer4[0].conv2 and got.name == "layer4.0.conv2"
    assert got.x.shape == (2, 512, 4, 4)
    assert torch.allclose(got.x, expected, atol=1e-5)
    first = layer_input(m, x, "layer1.0.conv2", budget=BUDGET)
    with torch.no_grad():
        assert torch.allclose(first.x, m.layer1[0].relu(m.layer1[0].bn1(m.layer1[0].conv1(after["stem"]))), atol=1e-6)


def test_layers_after_the_chosen_one_never_run_and_hooks_are_removed(resnet26):
    ran = []
    handle = resnet26.layer3.register_forward_hook(lambda *a: ran.append(True))
    resnet26.train()
    try:
        layer_input(resnet26, torch.randn(1, 3, 64, 64), "layer2.1.conv2", budget=BUDGET)
    finally:
        handle.remove()
    assert not ran and resnet26.training
    resnet26.eval()
    assert not resnet26.layer2[1].conv2._forward_pre_hooks


def test_layer_input_memory_estimate_bounds_the_measured_peak(resnet26):
    x = torch.randn(1, 3, 128, 128)
    weights = 4 * sum(t.numel() for t in resnet26.state_dict().values()) + 4 * x.numel()
    for layer in ("layer1.0.conv2", "layer3.0.conv2", "layer4.0.conv2"):
        counter = LiveBytes()
        with counter:
            got = layer_input(resnet26, x, layer, budget=BUDGET)
        allocated = got.estimate_bytes - weights
        assert counter.peak <= allocated <= 1.5 * counter.peak, layer


def test_refusals_are_clear(resnet26):
    with pytest.raises(BudgetError, match=r"memory budget.*Images up to \d+×\d+ fit"):
        layer_input(resnet26, torch.empty(1, 3, 512, 512), "layer3.0.conv2", budget=200 << 20)
    with pytest.raises(ValueError, match="layer2.0.conv2"):
        layer_input(resnet26, torch.randn(1, 3, 100, 100), "layer1.0.conv2", budget=BUDGET)
    with pytest.raises(ValueError, match="its layers are layer1.0.conv2"):
        layer_input(resnet26, torch.randn(1, 3, 64, 64), "layer9.conv2", budget=BUDGET)
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        layer_input(resnet26, torch.randn(1, 64, 64), "layer1.0.conv2", budget=BUDGET)
    assert acmix_layer_names(resnet26)[0] == "layer1.0.conv2"


def test_forward_network_is_bounded(resnet26):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(forward_network(resnet26, x, budget=BUDGET), resnet26(x))
    with pytest.raises(BudgetError, match="through"):
        forward_network(resnet26, x, budget=10 << 20)


def test_to_network_input_normalises_like_the_bias_page():
    rgb = picture_rgb("rocket", 32)
    assert torch.equal(to_network_input(rgb), to_input(rgb))
    assert F.mse_loss(to_network_input([rgb, rgb])[1:], to_input(rgb)).item() == 0


# ---------------------------------------------------------------------------------------------
# Every message in Chinese
# ---------------------------------------------------------------------------------------------


def test_every_message_in_chinese(resnet26):
    small = picture_rgb("astronaut", 192)
    cases = [
        lambda: stem_conv(0),
        lambda: stem_description(64),
        lambda: stem_description(16),
        lambda: stem_description(96),
        lambda: stem_features(picture_rgb("astronaut", 66), budget=BUDGET),
        lambda: stem_features(small, budget=stem_bytes(1, 48, 48, 64) // 2),  # smaller maps fit
        lambda: stem_features([small, small], budget=1),  # nothing fits
        lambda: forward_bytes_until(26, "layer9.conv2", 1, 64, 64, 0),
        lambda: layer_input(resnet26, torch.randn(1, 64, 64), "layer1.0.conv2", budget=BUDGET),
        lambda: layer_input(resnet26, torch.randn(1, 3, 64, 64), "layer9.conv2", budget=BUDGET),
        lambda: layer_input(resnet26, torch.empty(1, 3, 512, 512), "layer3.0.conv2", budget=200 << 20),
        lambda: layer_input(resnet26, torch.empty(2, 3, 64, 64), "layer3.0.conv2", budget=1),
        lambda: forward_network(resnet26, torch.empty(1, 3, 64, 64), budget=10 << 20),
        lambda: forward_network(resnet26, torch.empty(3, 3, 64, 64), budget=1),
    ]
    texts = set()
    for make in cases:
        english, chinese = in_both(make)
        assert_translated(english, chinese)
        texts.add(english)
    assert len(texts) == len(cases)  # every case is a message of its own
