"""The authors' ACmix ResNet (26, 38, 50), built from ../shared/design/RESNET_ACMIX.md.

torchvision's bottleneck ResNet in which the 3x3 convolution `conv2` of every bottleneck is
`ACmix(width, width, kernel_att=7, head=4, kernel_conv=3, stride=s)` (variant "official"). Module
names, parameter shapes and buffers equal the authors' exactly, so `state_dict()` keys and shapes
match theirs and their checkpoints load with `strict=True` (tests/data holds their key list).

The layout is also available without building anything (`block_layout`: every bottleneck and the
shapes its ACmix sees), for the paper-check counts (convmix.paper), checkpoint reading
(convmix.checkpoint) and memory estimates (convmix.activations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .acmix import ACmix
from .constraints import ConfigError, Problem, input_problems

# Blocks per stage, from the authors' model file.
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
}
# Parameters of the released code with 1000 classes (RESNET_ACMIX.md).
RELEASED_PARAMS = {26: 10_487_816, 38: 14_410_896, 50: 18_333_976}

EXPANSION = 4
STEM_PLANES = 64
STAGE_PLANES = (64, 128, 256, 512)
# The authors' ACmix settings inside every bottleneck.
KERNEL_ATT, HEAD, KERNEL_CONV = 7, 4, 3


@dataclass(frozen=True)
class BlockSpec:
    """One bottleneck of the layout: where it sits and the shapes its ACmix sees."""

    name: str  # "layer2.0"
    stage: int  # 1..4
    index: int  # block index within the stage
    in_channels: int  # the block's input channels
    width: int  # planes: ACmix's in and out channels
    out_channels: int  # width * 4
    stride: int  # ACmix's stride (and the downsample's)
    has_downsample: bool
    in_size: tuple[int, int]  # the block's (and its ACmix's) input H, W
    out_size: tuple[int, int]  # the block's output H, W

    @property
    def acmix_name(self) -> str:
        return f"{self.name}.conv2"


def _check_depth(depth: int) -> tuple[int, int, int, int]:
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {', '.join(map(str, DEPTHS))} (the authors' ACmix ResNets), not {depth!r}.")
    return DEPTHS[depth]


def stem_output_size(size: int) -> int:
    """After conv1 (7x7, stride 2, padding 3) and the max-pool (3x3, stride 2, padding 1)."""
    conv = (size + 2 * 3 - 7) // 2 + 1
    return (conv + 2 * 1 - 3) // 2 + 1


def block_layout(depth: int, height: int = 224, width: int | None = None) -> list[BlockSpec]:
    """Every bottleneck of the network in forward order, with the spatial sizes of one input.

    Sizes follow the official ACmix (output = input // stride) and torchvision's downsample
    (a strided 1x1 convolution: ceil(input / stride)); the two agree for the even sizes the
    network accepts (see `network_problems`).
    """
    blocks = _check_depth(depth)
    width = height if width is None else width
    h, w = stem_output_size(height), stem_output_size(width)
    in_ch = STEM_PLANES
    out: list[BlockSpec] = []
    for stage, (planes, count) in enumerate(zip(STAGE_PLANES, blocks, strict=True), start=1):
        for index in range(count):
            stride = 2 if stage > 1 and index == 0 else 1
            out_ch = planes * EXPANSION
            ho, wo = h // stride, w // stride
            out.append(BlockSpec(
                name=f"layer{stage}.{index}", stage=stage, index=index, in_channels=in_ch,
                width=planes, out_channels=out_ch, stride=stride,
                has_downsample=stride != 1 or in_ch != out_ch, in_size=(h, w), out_size=(ho, wo),
            ))
            in_ch, h, w = out_ch, ho, wo
    return out


def network_problems(depth: int, height: int, width: int | None = None) -> list[Problem]:
    """Why an input of height x width cannot pass through the whole network (empty if it can).

    Every ACmix applies its own constraints (ACMIX.md Q3, Q6) to the size that reaches it.
    """
    width = height if width is None else width
    if height < 1 or width < 1:
        return [Problem("input_size", f"The input must be at least 1×1, not {height}×{width}.")]
    problems: list[Problem] = []
    for spec in block_layout(depth, height, width):
        h, w = spec.in_size
        for p in input_problems(h, w, KERNEL_ATT, spec.stride, 1, "official"):
            problems.append(Problem(
                p.constraint,
                f"At {spec.acmix_name} the input is {h}×{w}: {p.message}",
                p.line,
                f"Inputs whose side is a multiple of 32 and at least {min_input_size(depth)} work.",
            ))
    return problems


def min_input_size(depth: int) -> int:
    """The smallest square side, a multiple of 32, that every ACmix of the network accepts."""
    size = 32
    while any(
        input_problems(s.in_size[0], s.in_size[1], KERNEL_ATT, s.stride, 1, "official")
        for s in block_layout(depth, size)
    ):
        size += 32
    return size


class Bottleneck(nn.Module):
    """torchvision's bottleneck (expansion 4) with ACmix as its 3x3 convolution `conv2`."""

    expansion = EXPANSION

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = ACmix(width, width, kernel_att=KERNEL_ATT, head=HEAD, kernel_conv=KERNEL_CONV, stride=stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * EXPANSION, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != planes * EXPANSION:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes * EXPANSION, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * EXPANSION),
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's order: the shortcut is computed last and added in place
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ACmixResNet(nn.Module):
    """Stem (conv1, bn1, relu, maxpool), layer1..layer4, avgpool, fc: the authors' module names."""

    def __init__(self, depth: int, num_classes: int = 1000):
        super().__init__()
        blocks = _check_depth(depth)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, not {num_classes!r}.")
        self.depth = depth
        self.conv1 = nn.Conv2d(3, STEM_PLANES, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_PLANES)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = STEM_PLANES
        for stage, (planes, count) in enumerate(zip(STAGE_PLANES, blocks, strict=True), start=1):
            layers = []
            for index in range(count):
                layers.append(Bottleneck(in_channels, planes, 2 if stage > 1 and index == 0 else 1))
                in_channels = planes * EXPANSION
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ConfigError([Problem(
                "input_shape", f"The network expects images of shape (batch, 3, height, width), got {tuple(x.shape)}.")])
        problems = network_problems(self.depth, x.shape[2], x.shape[3])
        if problems:
            raise ConfigError(problems)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def acmix_modules(self) -> list[tuple[str, ACmix]]:
        """Every ACmix with its state-dict prefix (without the trailing dot), in forward order."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, ACmix)]


def init_network(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """The initialisation the authors' network ends up with, drawn from `generator`.

    PyTorch's constructors initialise every Conv2d and Linear (weight kaiming-uniform with
    a=sqrt(5), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))); ACmix sets rate1 = rate2 = 0.5 and
    dep_conv to shift kernels; then the network's loop draws every Conv2d weight again from
    Kaiming normal (fan_out, ReLU gain, as torchvision) and sets BatchNorm to weight 1, bias 0.
    That loop overwrites dep_conv's shift kernels too (ACMIX.md Q11); convolution biases (ACmix's
    conv1-3, conv_p) keep their default draw. Redoing it here with a private generator makes a
    seeded network reproducible without touching the global RNG.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                # The constructor's weight draw is overwritten below, so only the bias is drawn.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    bound = 1 / math.sqrt(m.weight[0].numel())
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, ACmix):
                m.rate1.fill_(0.5)
                m.rate2.fill_(0.5)


def acmix_resnet(
    depth: int, num_classes: int = 1000, *, seed: int | None = 0, device: str | torch.device = "cpu"
) -> ACmixResNet:
    """The authors' ACmix ResNet-`depth` (26, 38 or 50), in eval mode.

    `seed` draws the initialisation from a private generator (`init_network`); `seed=None` uses
    the global RNG. `device="meta"` builds shapes only, no memory: for counting and key lists.
    """
    with torch.device("meta"):
        model = ACmixResNet(depth, num_classes)
    if torch.device(device).type == "meta":
        return model.eval()
    model = model.to_empty(device=device)
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    init_network(model, generator)
    return model.eval()


def state_dict_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every state-dict key with its shape, in the module's order."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def depth_of_blocks(blocks: tuple[int, ...]) -> int | None:
    """The depth whose stages have these block counts, or None."""
    for depth, counts in DEPTHS.items():
        if tuple(blocks) == counts:
            return depth
    return None
