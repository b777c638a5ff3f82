"""Inputs for the walkthrough that show a picture's structure instead of noise.

Two sources, both checked against the memory budget before anything runs:

* `stem_features`: a photograph through the seed's stem, `Conv2d(3, 64, 7, 2, 3, bias=True)`
  (convmix.bias.seed_layer: random weights drawn from a seed) -> BatchNorm -> ReLU ->
  MaxPool(3, 2, 1), as in ResNet: a 64-channel map at a quarter of the picture's size.
  BatchNorm uses the picture's own statistics (per channel, over its positions), with weight 1 and
  bias 0. With random weights there are no learned statistics: a fresh BatchNorm's running
  statistics (mean 0, variance 1) make it the identity in eval mode, so ReLU would cut every
  channel at 0 in units set only by the random draw, and a channel whose bias outweighs its
  response would be almost all on or all off. Normalising by the picture's statistics (what
  BatchNorm computes in training) centres and scales every channel, so ReLU keeps the
  above-average part of each filter's response and the map has the scale a trained BatchNorm
  gives. Each picture of a batch is normalised on its own, so pictures never change each other.
  For in_planes other than 64 the stem keeps the seed's filters in order: fewer channels are the
  first in_planes of the seed's 64; more channels append further filters drawn from the same
  default distribution (a second generator), so channel c is the same map for every width > c.

* `layer_input`: an image through a network's own forward (e.g. the authors' ACmix ResNet with a
  checkpoint's weights), stopped by a forward pre-hook at a chosen ACmix layer, which returns the
  activation that really reaches it and the module itself.

Descriptions and refusals are in the visitor's language (convmix.i18n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .acmix import ACmix
from .bias import BN_EPS, IMAGENET_MEAN, IMAGENET_STD, SEED, seed_layer
from .budget import memory_budget
from .config import ACmixConfig
from .format import human_bytes, join_items
from .i18n import _, ngettext
from .models import ACmixResNet, block_layout, network_problems

ELEMENT = 4  # float32
STEM_CHANNELS = 64


class BudgetError(ValueError):
    """A forward whose estimated memory exceeds the budget; the message says what would fit."""


# ---------------------------------------------------------------------------------------------
# The seed's stem
# ---------------------------------------------------------------------------------------------


def stem_conv(out_channels: int = STEM_CHANNELS, seed: int = SEED) -> nn.Conv2d:
    """Conv2d(3, out_channels, 7, 2, 3, bias=True) whose first 64 filters are the seed's layer."""
    if out_channels < 1:
        raise ValueError(_("The stem needs at least one output channel, not {channels}.", channels=out_channels))
    seed_conv = seed_layer(seed=seed)
    if out_channels == STEM_CHANNELS:
        return seed_conv
    conv = nn.Conv2d(3, out_channels, 7, 2, 3, bias=True, device="meta").to_empty(device="cpu")
    keep = min(out_channels, STEM_CHANNELS)
    with torch.no_grad():
        conv.weight[:keep].copy_(seed_conv.weight[:keep])
        conv.bias[:keep].copy_(seed_conv.bias[:keep])
        if out_channels > STEM_CHANNELS:
            gen = torch.Generator().manual_seed(seed + 1)
            bound = 1.0 / math.sqrt(3 * 7 * 7)  # PyTorch's default for this fan-in, as seed_layer
            conv.weight[keep:].uniform_(-bound, bound, generator=gen)
            conv.bias[keep:].uniform_(-bound, bound, generator=gen)
    return conv


def stem_description(out_channels: int) -> str:
    """The stem as a phrase (the visitor's language)."""
    if out_channels == STEM_CHANNELS:
        return _("the seed's stem Conv2d(3, 64, 7, 2, 3, bias=True) → BatchNorm (the picture's statistics) → "
                 "ReLU → MaxPool(3, 2, 1)")
    if out_channels < STEM_CHANNELS:
        return _("the seed's stem Conv2d(3, 64, 7, 2, 3, bias=True) → BatchNorm (the picture's statistics) → "
                 "ReLU → MaxPool(3, 2, 1), channels 0–{last} of its 64", last=out_channels - 1)
    return _("the seed's stem Conv2d(3, 64, 7, 2, 3, bias=True) → BatchNorm (the picture's statistics) → "
             "ReLU → MaxPool(3, 2, 1), widened to {channels} filters (the seed's 64, then {more} more of the "
             "same distribution)", channels=out_channels, more=out_channels - STEM_CHANNELS)


def stem_bytes(batch: int, height: int, width: int, channels: int) -> int:
    """Peak of the stem for an output of height x width: the pictures and their normalisation's
    temporaries, the conv's output, one picture's BatchNorm output, the pool's output."""
    picture = batch * 3 * 16 * height * width
    full = channels * 4 * height * width  # per picture: conv and BatchNorm at half the picture's size
    pooled = batch * channels * height * width
    weights = channels * (3 * 49 + 1)
    return ELEMENT * (3 * picture + (batch + 1) * full + pooled + weights) + 8 * pooled  # + pool indices


def to_network_input(rgb: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 arrays -> (B, 3, H, W) float32, ImageNet-normalised (as convmix.bias.to_input)."""
    arrays = [rgb] if isinstance(rgb, np.ndarray) and rgb.ndim == 3 else list(rgb)
    x = torch.from_numpy(np.stack([np.asarray(a, dtype=np.uint8) for a in arrays])).permute(0, 3, 1, 2)
    x = x.float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass(frozen=True)
class StemFeatures:
    features: torch.Tensor  # (B, channels, H, W): what ACmix receives
    pictures: torch.Tensor  # (B, 3, 4H, 4W): the normalised pictures that went in
    description: str


def stem_features(
    rgb: np.ndarray | list[np.ndarray], channels: int = STEM_CHANNELS, seed: int = SEED,
    budget: int | None = None,
) -> StemFeatures:
    """Pictures of 4H x 4W through the stem: (B, channels, H, W) features.

    Prepare the pictures at four times the size ACmix should see (convmix.images.picture_rgb):
    the stride-2 convolution halves it, the stride-2 max-pool halves it again.
    """
    x = to_network_input(rgb)
    b, ph, pw = x.shape[0], x.shape[2], x.shape[3]
    if ph % 4 or pw % 4:
        raise ValueError(_("Pictures for the stem must be a multiple of 4 on each side, not {height}×{width}.",
                           height=ph, width=pw))
    h, w = ph // 4, pw // 4
    need = stem_bytes(b, h, w, channels)
    budget = memory_budget() if budget is None else budget
    if need > budget:
        side = _largest_fitting(lambda s: stem_bytes(b, s, s, channels), budget, step=1)
        text = ngettext(
            "The stem on {count} picture of {height}×{width} would need about {need}, over this server's "
            "memory budget of {budget}, so it was not run.",
            "The stem on {count} pictures of {height}×{width} would need about {need}, over this server's "
            "memory budget of {budget}, so it was not run.", b, count=b, height=ph, width=pw,
            need=human_bytes(need), budget=human_bytes(budget))
        advice = _("Feature maps up to {side}×{side} fit.", side=side) if side else _("Use fewer channels.")
        raise BudgetError(f"{text} {advice}")
    conv = stem_conv(channels, seed)
    with torch.no_grad():
        y = conv(x)
        for i in range(b):  # BatchNorm with each picture's own statistics, weight 1, bias 0
            y[i:i + 1] = F.batch_norm(y[i:i + 1], None, None, training=True, eps=BN_EPS)
        y = F.max_pool2d(F.relu_(y), kernel_size=3, stride=2, padding=1)
    return StemFeatures(y, x, stem_description(channels))


# ---------------------------------------------------------------------------------------------
# The input that really reaches an ACmix layer of a network
# ---------------------------------------------------------------------------------------------


class _Reached(Exception):
    """Raised by the pre-hook once the chosen layer's input is captured: the rest need not run."""


@dataclass(frozen=True)
class LayerInput:
    name: str  # e.g. "layer3.0.conv2"
    module: ACmix  # the network's own module, with its weights
    x: torch.Tensor  # (B, in_planes, H, W): what reached it
    estimate_bytes: int  # the estimate that was checked against the budget


def acmix_layer_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, ACmix)]


def forward_bytes_until(depth: int, layer: str | None, batch: int, height: int, width: int,
                        weights: int) -> int:
    """Peak bytes of the authors' network's no-grad forward up to `layer`'s input (not running it);
    `layer=None`: the whole forward.

    Weights and input; the stem's outputs; then, for every block before the layer, the block's
    input, conv1's and bn1's outputs, ACmix's own peak (convmix.config's estimate) and the outputs
    after it (bn2, conv3, bn3, the downsample's conv and BN), all counted as alive at once (an upper
    bound: the forward frees some earlier); for the layer's own block, what runs before its ACmix.
    """
    b = batch
    h1, w1 = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    peak = b * STEM_CHANNELS * h1 * w1 * 2  # conv1's and bn1's outputs (the max-pool's is smaller)
    for s in block_layout(depth, height, width):
        (h, w), (ho, wo) = s.in_size, s.out_size
        x_in, wide = b * s.in_channels * h * w, b * s.out_channels * ho * wo
        before_acmix = x_in + 2 * b * s.width * h * w  # the block's input, conv1's and bn1's outputs
        if s.acmix_name == layer:
            return ELEMENT * (weights + b * 3 * height * width + max(peak, before_acmix))
        acmix_peak = ACmixConfig(
            in_planes=s.width, out_planes=s.width, kernel_att=7, head=4, kernel_conv=3, stride=s.stride,
            height=h, width=w, batch=b,
        ).estimate_peak_bytes() // ELEMENT
        after = 2 * b * s.width * ho * wo + 4 * wide  # ACmix, bn2, conv3, bn3, downsample conv and BN
        peak = max(peak, before_acmix + acmix_peak + after)
    if layer is not None:
        raise ValueError(_("{layer} is not an ACmix layer of ResNet-{depth}.", layer=repr(layer), depth=depth))
    return ELEMENT * (weights + b * 3 * height * width + peak)


def _largest_fitting(cost, budget: int, step: int) -> int:
    side = 0
    s = step
    while s <= 8192 and cost(s) <= budget:
        side = s
        s += step
    return side


def _check_network_forward(model: ACmixResNet, x: torch.Tensor, layer: str | None, budget: int | None) -> int:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(_("Images must have shape (batch, 3, height, width), not {shape}.", shape=tuple(x.shape)))
    b, h, w = x.shape[0], x.shape[2], x.shape[3]
    problems = network_problems(model.depth, h, w)  # the network's forward checks every layer
    if problems:
        raise ValueError(" ".join(p.sentence() for p in problems))
    weights = sum(t.numel() for t in model.state_dict().values())
    need = forward_bytes_until(model.depth, layer, b, h, w, weights)
    budget = memory_budget() if budget is None else budget
    if need > budget:
        side = _largest_fitting(
            lambda s: forward_bytes_until(model.depth, layer, b, s, s, weights), budget, step=32)
        hint = _("Images up to {side}×{side} fit.", side=side) if side else _("The network's weights alone do not fit.")
        figures = dict(count=b, depth=model.depth, layer=layer, height=h, width=w, need=human_bytes(need),
                       budget=human_bytes(budget))
        if layer:
            text = ngettext(
                "Running ResNet-{depth} up to {layer} on {count} image of {height}×{width} would need about "
                "{need}, over this server's memory budget of {budget}, so it was not run.",
                "Running ResNet-{depth} up to {layer} on {count} images of {height}×{width} would need about "
                "{need}, over this server's memory budget of {budget}, so it was not run.", b, **figures)
        else:
            text = ngettext(
                "Running {count} image of {height}×{width} through ResNet-{depth} would need about {need}, "
                "over this server's memory budget of {budget}, so it was not run.",
                "Running {count} images of {height}×{width} through ResNet-{depth} would need about {need}, "
                "over this server's memory budget of {budget}, so it was not run.", b, **figures)
        raise BudgetError(f"{text} {hint}")
    return need


def forward_network(model: ACmixResNet, x: torch.Tensor, budget: int | None = None) -> torch.Tensor:
    """The whole network's no-grad forward in eval mode (logits), checked against the budget first."""
    _check_network_forward(model, x, None, budget)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)


def layer_input(
    model: ACmixResNet, x: torch.Tensor, layer: str, budget: int | None = None
) -> LayerInput:
    """Run `model`'s own forward on images `x` (B, 3, H, W) until `layer`; return what reaches it.

    The forward runs in eval mode without gradients; a forward pre-hook on the layer captures its
    input and stops the forward there, so later layers never run. The memory that needs is
    estimated first and refused with a clear message if it exceeds the budget.
    """
    names = acmix_layer_names(model)
    if layer not in names:
        raise ValueError(_("{layer} is not an ACmix layer of this network; its layers are {layers}.",
                           layer=repr(layer), layers=join_items(names)))
    need = _check_network_forward(model, x, layer, budget)
    module = model.get_submodule(layer)
    captured: list[torch.Tensor] = []

    def capture(mod, args):
        captured.append(args[0])
        raise _Reached

    handle = module.register_forward_pre_hook(capture)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
        model.train(was_training)
    return LayerInput(layer, module, captured[0], need)

