"""The digits network: stem convolution with a bias, ACmix (or a plain convolution), pooling, linear.

`DigitsNet`: a stem `Conv2d(1, width, 3, padding=1, bias=True)`, optionally BatchNorm after it,
ReLU, one `convmix.acmix.ACmix(width, width, kernel_att, head, stride=stride)`, ReLU, average
pooling to a 2x2 grid, and a linear classifier over the 4·width pooled values. Raw pixels (0-16)
go in: the network standardises them with the training split's mean and standard deviation, held
as buffers, so a checkpoint is self-contained.

In the ablations a fixed rate is a parameter with requires_grad off, left out of the optimizer: it
stays exactly 0. The plain-convolution network gets the output channels that bring its parameter
count closest to the ACmix network's.

Weights: PyTorch's default initialisation (ACmix's own for ACmix), every random number drawn from
a private generator seeded with `seed`; the global RNG is neither read nor advanced, so several
runs can be built at once in one process without disturbing each other or anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .acmix import ACmix
from .digits import CLASSES
from .trace import trace_forward
from .train_config import KERNEL_CONV, TrainConfig

POOL = 2  # the pooled grid is POOL x POOL


class DigitsNet(nn.Module):
    """stem conv (bias) -> [BatchNorm] -> ReLU -> ACmix (or a plain conv) -> ReLU -> pool -> linear."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        w = config.width
        self.stem = nn.Conv2d(1, w, 3, padding=1, bias=True)
        self.stem_bn = nn.BatchNorm2d(w) if config.stem_bn else None
        if config.ablation == "plain_conv":
            channels = plain_conv_channels(config)
            self.mixer: nn.Module = nn.Conv2d(w, channels, 3, stride=config.stride, padding=1, bias=True)
        else:
            channels = w
            self.mixer = ACmix(w, w, config.kernel_att, config.head, KERNEL_CONV, config.stride, variant=config.variant)
        self.pool = nn.AdaptiveAvgPool2d(POOL)
        self.classifier = nn.Linear(channels * POOL * POOL, CLASSES)
        self.register_buffer("pixel_mean", torch.zeros(()))
        self.register_buffer("pixel_std", torch.ones(()))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 1, 8, 8) raw pixel values 0-16 -> (B, 10) logits."""
        x = self.stem((pixels - self.pixel_mean) / self.pixel_std)
        if self.stem_bn is not None:
            x = self.stem_bn(x)
        x = torch.relu(self.mixer(torch.relu(x)))
        return self.classifier(self.pool(x).flatten(1))

    def acmix_layers(self) -> dict[str, ACmix]:
        """Every ACmix layer by its name in the state dict (none in the plain-convolution ablation)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, ACmix)}


def _param_count(config: TrainConfig, plain_channels: int | None = None) -> int:
    """Parameters of DigitsNet by formula (ACMIX.md for the ACmix layer)."""
    w = config.width
    total = 9 * w + w + (2 * w if config.stem_bn else 0)
    if plain_channels is None:
        d = w // config.head
        total += 3 * (w * w + w) + 3 * d + 3 * config.head * KERNEL_CONV**2 + w * KERNEL_CONV**4 + 2
        channels = w
    else:
        total += (9 * w + 1) * plain_channels
        channels = plain_channels
    return total + (channels * POOL * POOL + 1) * CLASSES


def plain_conv_channels(config: TrainConfig) -> int:
    """Output channels of the plain 3x3 convolution that bring the network closest in parameters to
    the same configuration with ACmix (ties: the smaller)."""
    target = _param_count(config)
    return min(range(1, 4 * config.width + 1), key=lambda c: (abs(_param_count(config, c) - target), c))


def parameter_count(config: TrainConfig) -> int:
    """Parameters of the network `config` builds (the formula; tests check it against the module)."""
    if config.ablation == "plain_conv":
        return _param_count(config, plain_conv_channels(config))
    return _param_count(config)


def active_parameter_count(config: TrainConfig) -> int:
    """Parameters that can change the output: without a path's rate, that path's own parameters
    (fc and dep_conv for the convolution, conv_p for the attention) and the fixed rate do not."""
    total = parameter_count(config)
    w, d = config.width, config.width // config.head
    if config.ablation == "attention_only":
        total -= 3 * config.head * KERNEL_CONV**2 + w * KERNEL_CONV**4 + 1
    elif config.ablation == "conv_only":
        total -= 3 * d + 1
    return total


# Functions that draw random numbers and accept a `generator`: PyTorch's initialisers and the
# Tensor methods they call.
_RANDOM_DRAWS = frozenset({
    "uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
    "trunc_normal_", "orthogonal_", "sparse_", "random_", "bernoulli_", "exponential_", "cauchy_",
    "log_normal_", "geometric_", "rand", "randn", "randint", "randperm",
})


class _PrivateGenerator(TorchFunctionMode):
    """While active (in this thread only: modes are thread-local), every random initialiser that is
    not given a generator draws from `gen` instead of the global RNG."""

    def __init__(self, gen: torch.Generator):
        super().__init__()
        self.gen = gen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if getattr(func, "__name__", "") in _RANDOM_DRAWS and kwargs.get("generator") is None:
            kwargs["generator"] = self.gen
        return func(*args, **kwargs)


def build_network(config: TrainConfig, pixel_mean: float = 0.0, pixel_std: float = 1.0) -> DigitsNet:
    """The network of `config` with PyTorch's default initialisation (ACmix's own for ACmix), every
    random number drawn from a generator seeded with `seed`: the global RNG is neither read nor
    advanced, so runs in other threads neither disturb this one nor are disturbed by it."""
    config.validate()
    with _PrivateGenerator(torch.Generator().manual_seed(config.seed)):
        net = DigitsNet(config)
    net.pixel_mean.fill_(pixel_mean)
    net.pixel_std.fill_(pixel_std)
    _fix_rates(net, config)
    return net


def _fix_rates(net: DigitsNet, config: TrainConfig) -> None:
    fixed = {"attention_only": "rate2", "conv_only": "rate1"}.get(config.ablation)
    if fixed is None:
        return
    for layer in net.acmix_layers().values():
        rate = getattr(layer, fixed)
        with torch.no_grad():
            rate.zero_()
        rate.requires_grad_(False)


# -- activations seen inside the network's own forward ---------------------------------------------


def layer_inputs(net: DigitsNet, pixels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The input that reaches every ACmix layer during `net(pixels)` (forward hooks, eval mode,
    no grad), and the network's logits."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        layer.register_forward_hook(lambda _m, args, _out, name=name: seen.__setitem__(name, args[0].detach()))
        for name, layer in net.acmix_layers().items()
    ]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = net(pixels)
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    return seen, logits


@dataclass(frozen=True)
class AttentionSnapshot:
    """The attention of one held-out digit at one step: per ACmix layer, the softmax weights of
    its own traced forward, shape (head, kernel_att², out_height, out_width)."""

    step: int
    epoch: float
    attention: dict[str, torch.Tensor]
    prediction: int
    confidence: float  # softmax probability of the true label


def attention_snapshot(net: DigitsNet, pixels: torch.Tensor, label: int, step: int, epoch: float) -> AttentionSnapshot:
    inputs, logits = layer_inputs(net, pixels)
    attention = {}
    for name, layer in net.acmix_layers().items():
        trace = trace_forward(layer, inputs[name])
        att = trace["att"].tensor  # (head, K, Ho, Wo) for one digit
        attention[name] = att.clone()
    probs = torch.softmax(logits[0], 0)
    return AttentionSnapshot(step, epoch, attention, int(probs.argmax()), float(probs[label]))
