"""Named sweeps for the explorer and the command line, and the ACmix ResNet's layer shapes they use.

A researcher's question is "which kernel_att, head and stride for my network", asked at the
shapes ACmix really has there. `RESNET_LAYERS` holds those shapes, read from the authors' network
layout (convmix.models.block_layout): every distinct (channels, input size, stride) an ACmix layer
of ResNet-50 sees at 224×224, named after the first block that has it. ResNet-38 has the same seven
shapes (fewer blocks repeat them); ResNet-26 has six of them (its stage 4 is a single block).

`PRESETS` are one-click sweeps: which axes vary over which values, and how the explorer draws them
(x axis and facet). `cli_command` writes the `python -m convmix sweep` line that measures a sweep
elsewhere (a GPU, a quiet machine), flag for flag.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .i18n import N_
from .models import block_layout

PAPER_IMAGE_SIZE = 224  # the ImageNet resolution of the paper's ResNet results


@dataclass(frozen=True)
class LayerShape:
    """The shape one group of ACmix layers of the ResNet sees: channels, input size, stride."""

    id: str  # the first block with this shape, e.g. "layer2.0" (a stride-2 entry) or "layer2.1"
    channels: int  # in_planes = out_planes (the bottleneck's width)
    height: int
    width: int
    stride: int
    blocks: tuple[str, ...]  # every block of ResNet-50 with this shape

    @property
    def label(self) -> str:
        """Language-neutral: the id, the channels and the input size; the stride when it is not 1."""
        out = f"{self.id} · C={self.channels} · {self.height}×{self.width}"
        if self.stride != 1:
            out += f" → {self.height // self.stride}×{self.width // self.stride} · s={self.stride}"
        return out

    def fields(self) -> dict[str, int]:
        return {"in_planes": self.channels, "out_planes": self.channels, "height": self.height,
                "width": self.width, "stride": self.stride}

    def matches(self, row: Mapping[str, object]) -> bool:
        return all(int(row[k]) == v for k, v in self.fields().items())  # type: ignore[call-overload]


def resnet_layer_shapes(depth: int = 50, size: int = PAPER_IMAGE_SIZE) -> tuple[LayerShape, ...]:
    """The distinct shapes of the ACmix layers of ResNet-`depth` for a size×size image, in forward order."""
    groups: dict[tuple, list] = {}
    for spec in block_layout(depth, size):
        groups.setdefault((spec.width, spec.in_size, spec.stride), []).append(spec.name)
    return tuple(
        LayerShape(names[0], width, h, w, stride, tuple(names))
        for (width, (h, w), stride), names in groups.items()
    )


RESNET_LAYERS: dict[str, LayerShape] = {s.id: s for s in resnet_layer_shapes()}


def layer_of(row: Mapping[str, object]) -> str:
    """The id of the ResNet layer shape a configuration (or result row) has, or '' if none."""
    for shape in RESNET_LAYERS.values():
        if shape.matches(row):
            return shape.id
    return ""


# -- presets ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    name: str  # the CLI's --preset value; language-neutral
    label: str  # N_(): translated where shown
    description: str  # N_()
    axes: tuple[tuple[str, tuple], ...]  # axis name -> values, in the order they vary
    x: str  # the charts' x axis
    facet: str | None  # one chart per value of this axis (None: one chart)

    def axes_dict(self) -> dict[str, list]:
        return {name: list(values) for name, values in self.axes}


KERNELS = (3, 5, 7, 9)
HEADS = (1, 2, 4, 8)
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "resnet-stages", N_("ACmix ResNet stages"),
            N_("Every shape an ACmix layer of the authors' ResNet sees at 224×224 (56×56 with 64 "
               "channels, 28×28 with 128, 14×14 with 256, 7×7 with 512, and the stride-2 entries of "
               "stages 2 to 4), each with kernel_att 3, 5, 7, 9 and head 1, 2, 4, 8."),
            (("layer", tuple(RESNET_LAYERS)), ("kernel_att", KERNELS), ("head", HEADS)),
            x="kernel_att", facet="layer",
        ),
        Preset(
            "kernel-head-stride", N_("Kernel, heads and stride"),
            N_("kernel_att 3, 5, 7, 9, head 1, 2, 4, 8 and stride 1, 2 at the sidebar's channels and "
               "input size."),
            (("kernel_att", KERNELS), ("head", HEADS), ("stride", (1, 2))),
            x="kernel_att", facet="stride",
        ),
        Preset(
            "channels", N_("Narrow and wide layers"),
            N_("in_planes = out_planes from 32 to 512 with kernel_att 3 and 7, at the sidebar's input "
               "size: where Stage I starts to dominate."),
            (("channels", (32, 64, 128, 256, 512)), ("kernel_att", (3, 7))),
            x="channels", facet=None,
        ),
    )
}
DEFAULT_PRESET = "resnet-stages"


# -- the command line for a sweep ------------------------------------------------------------------
# Axis or field -> the CLI flag that sets it.
_FLAGS = {
    "layer": "--layer", "kernel_att": "--kernel-att", "head": "--head", "stride": "--stride",
    "kernel_conv": "--kernel-conv", "channels": "--in-planes", "in_planes": "--in-planes",
    "out_planes": "--out-planes", "batch": "--batch", "dilation": "--dilation",
}


def cli_command(base, axes: Mapping[str, Sequence], *, dtype: str = "float32", impl: str = "reference",
                budget: str = "standard", out: str = "results.csv") -> str:
    """`python -m convmix sweep ...` with the flags that give exactly this sweep: every varied
    axis with its values, every other hyperparameter at `base`'s value (an ACmixConfig)."""
    values: dict[str, list[str]] = {}
    shape_set = "layer" in axes
    if "channels" in axes:
        values["--in-planes"] = [str(v) for v in axes["channels"]]
    elif not shape_set:
        values["--in-planes"] = [str(v) for v in axes.get("in_planes", [base.in_planes])]
        outs = axes.get("out_planes", [base.out_planes])
        if "in_planes" in axes or list(outs) != [base.in_planes]:
            values["--out-planes"] = [str(v) for v in outs]
    if "layer" in axes:
        values["--layer"] = [str(v) for v in axes["layer"]]
    for name in ("kernel_att", "head", "kernel_conv", "batch", "dilation"):
        values[_FLAGS[name]] = [str(v) for v in axes.get(name, [getattr(base, name)])]
    if not shape_set:
        values["--stride"] = [str(v) for v in axes.get("stride", [base.stride])]
        if "resolution" in axes:
            values["--size"] = [str(v) for v in axes["resolution"]]
        else:
            values["--size"] = [str(h) if h == w else f"{h}x{w}"
                                for h in axes.get("height", [base.height])
                                for w in axes.get("width", [base.width])]
    words = ["python", "-m", "convmix", "sweep"]
    for flag, vals in values.items():
        words += [flag, *vals]
    words += ["--variant", base.variant, "--dtype", dtype, "--impl", impl, "--budget", budget, "--out", out]
    return " ".join(shlex.quote(w) for w in words)
