"""Checkpoints of a trained DigitsNet, and the trained ACmix layer with the input it really sees.

A checkpoint is a dict of plain values and tensors, so `torch.load(path, weights_only=True)` reads
it: the format name, the TrainConfig as a dict, the network's state dict (the pixel
standardisation included), and what the run reached. `load_checkpoint` checks all of it and
rebuilds the network; anything malformed gets a CheckpointError that says what is wrong (in the
visitor's language, convmix.i18n).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .acmix import ACmix
from .config import ACmixConfig
from .constraints import ConfigError
from .digits import Digits, Split, default_split, load_digits
from .format import join_items
from .i18n import _
from .train import DigitsNet, TrainConfig, Trainer, build_network, layer_inputs

FORMAT = "convmix.digits-net/1"
MAX_CHECKPOINT_BYTES = 16 << 20  # the largest network the limits allow is about 1 MB


class CheckpointError(ValueError):
    """A file that is not a checkpoint this module wrote, or one that does not fit its network."""


def checkpoint_dict(trainer: Trainer) -> dict:
    """Everything needed to rebuild the trained network, as plain values and tensors."""
    last = trainer.history[-1]
    return {
        "format": FORMAT,
        "config": trainer.config.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in trainer.net.state_dict().items()},
        "step": trainer.step_count,
        "epoch": trainer.epoch,
        "held_out_accuracy": last["held_out_accuracy"],
        "held_out_loss": last["held_out_loss"],
        "torch_version": str(torch.__version__),
    }


def save_checkpoint(trainer: Trainer, path: str | os.PathLike) -> None:
    torch.save(checkpoint_dict(trainer), path)


def checkpoint_bytes(trainer: Trainer) -> bytes:
    """The checkpoint as bytes (a download)."""
    buffer = io.BytesIO()
    torch.save(checkpoint_dict(trainer), buffer)
    return buffer.getvalue()


@dataclass
class Checkpoint:
    net: DigitsNet  # in eval mode
    config: TrainConfig
    step: int
    epoch: float
    held_out_accuracy: float
    held_out_loss: float
    torch_version: str


def load_checkpoint(source: str | os.PathLike | bytes) -> Checkpoint:
    """Read a checkpoint (a path or its bytes) with weights_only=True and rebuild its network."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > MAX_CHECKPOINT_BYTES:
                raise CheckpointError(_("{name} is {size:,} bytes; a checkpoint of this network is at most "
                                        "{limit:,}.", name=path.name, size=size, limit=MAX_CHECKPOINT_BYTES))
            data = path.read_bytes()
        except OSError as err:
            raise CheckpointError(_("cannot read {path}: {reason}", path=path, reason=err.strerror)) from None
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(_("the file is {size:,} bytes; a checkpoint of this network is at most {limit:,}.",
                                size=len(data), limit=MAX_CHECKPOINT_BYTES))
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to parse an untrusted file gets the same answer
        raise CheckpointError(_("not a checkpoint: it does not load with torch.load(..., weights_only=True) "
                                "({reason}).", reason=_reason(err))) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(_("not a convmix digits checkpoint: expected format {expected}, found {found}.",
                                expected=repr(FORMAT), found=repr(found)))
    try:
        config = TrainConfig.from_dict(raw.get("config"))
    except (ConfigError, TypeError) as err:
        raise CheckpointError(_("the checkpoint's configuration is not valid: {reason}", reason=err)) from None
    state = raw.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(_("the checkpoint has no state dict of tensors."))
    net = build_network(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise CheckpointError(_("the weights do not fit the network of its configuration: {detail}",
                                detail=detail[:300])) from None
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CheckpointError(_("the checkpoint's weights contain NaN or infinite values."))
    net.eval()
    return Checkpoint(
        net=net, config=config, step=_number(raw, "step", int), epoch=_number(raw, "epoch", float),
        held_out_accuracy=_number(raw, "held_out_accuracy", float),
        held_out_loss=_number(raw, "held_out_loss", float), torch_version=str(raw.get("torch_version", "")),
    )


def _reason(err: Exception) -> str:
    """A short, plain reason from torch.load's error (which may span lines and hold escape codes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    first = text.strip().splitlines()[0].strip().split(". ")[0] if text.strip() else ""
    name = type(err).__name__
    return f"{name}: {first[:160]}" if first else name


def _number(raw: dict, key: str, kind: type):
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(_("the checkpoint's {key} is {value}, not a number.", key=repr(key), value=repr(value)))
    return kind(value)


@dataclass(frozen=True)
class LayerInput:
    """A trained ACmix layer and the activation that reaches it for one held-out digit."""

    name: str  # the layer's name in the network
    layer: ACmix
    activation: torch.Tensor  # (1, width, 8, 8): what the layer receives inside the network's forward
    pixels: torch.Tensor  # (1, 1, 8, 8) the digit, raw pixel values 0-16
    label: int
    prediction: int
    dataset_index: int  # row of the digits file

    @property
    def acmix_config(self) -> ACmixConfig:
        """The layer and its input in the walkthrough's terms (its weights are the trained ones,
        not the ones `build()` would draw)."""
        m = self.layer
        height, width = self.activation.shape[-2:]
        return ACmixConfig(in_planes=m.in_planes, out_planes=m.out_planes, kernel_att=m.kernel_att, head=m.head,
                           kernel_conv=m.kernel_conv, stride=m.stride, dilation=m.dilation, height=height,
                           width=width, batch=1, variant=m.variant)


def acmix_input(net: DigitsNet, held_out_position: int = 0, layer: str | None = None,
                data: Digits | None = None, split: Split | None = None) -> LayerInput:
    """The trained ACmix layer `layer` (default: the first) with the input it receives for held-out
    digit number `held_out_position`, captured by a forward hook during the network's own forward."""
    layers = net.acmix_layers()
    if not layers:
        raise ValueError(_("this network has no ACmix layer (the plain-convolution ablation)."))
    name = layer or next(iter(layers))
    if name not in layers:
        raise ValueError(_("no ACmix layer named {name}; the network has {layers}.", name=repr(name),
                           layers=join_items(layers)))
    data = data if data is not None else load_digits()
    split = split if split is not None else default_split()
    if not 0 <= held_out_position < len(split.held_out):
        raise ValueError(_("held_out_position must be from 0 to {last}, not {value}.", last=len(split.held_out) - 1,
                           value=held_out_position))
    index = int(split.held_out[held_out_position])
    pixels = data.images[index : index + 1]
    inputs, logits = layer_inputs(net, pixels)
    return LayerInput(name, layers[name], inputs[name], pixels, int(data.labels[index]),
                      int(logits.argmax(1)), index)
