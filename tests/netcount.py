"""Counting what a whole network's forward executes, attributed to its modules (for test_paper.py).

Extends tests/opcount.py's OpCounter (which costs ACmix's ops from the tensors it sees) with the
ops the rest of a ResNet runs, costed the same way from their actual arguments. Attribution comes
from the forward itself: hooks on every leaf module outside ACmix, ACmix's own step recorder
inside it, and whatever runs between two hooks inside a bottleneck (the residual add) goes to
that bottleneck. Nothing here reads convmix.paper's formulas.
"""

from __future__ import annotations

import torch
from opcount import OpCounter
from torch import nn

from convmix.acmix import ACmix
from convmix.counting import STAGE_OF_STEP

aten = torch.ops.aten
ACMIX_KIND = {"Stage I": "ACmix Stage I", "attention": "ACmix attention",
              "convolution": "ACmix conv path", "mix": "ACmix mix"}


class NetCounter(OpCounter):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (aten.native_batch_norm.default, aten._native_batch_norm_legit_no_training.default):
            out = func(*args, **kwargs)
            self.flops += 2 * out[0].numel()  # inference: x * scale + shift per element
            return out
        if func is aten.add_.Tensor:  # the residual sum, in place
            out = func(*args, **kwargs)
            self.flops += out.numel()
            return out
        if func in (aten.relu_.default, aten.relu.default):
            out = func(*args, **kwargs)
            self.flops += out.numel()
            return out
        if func is aten.max_pool2d_with_indices.default:
            out = func(*args, **kwargs)
            k = args[1]
            area = k[0] * (k[1] if len(k) > 1 else k[0])
            self.flops += out[0].numel() * (area - 1)
            return out
        if func is aten.mean.dim:
            out = func(*args, **kwargs)
            self.flops += args[0].numel()  # n - 1 adds and one divide per mean of n values
            return out
        if func is aten.addmm.default:
            out = func(*args, **kwargs)
            rows, inner = args[1].shape
            macs = rows * inner * args[2].shape[1]
            self.macs += macs
            self.flops += 2 * macs + out.numel()
            return out
        return super().__torch_dispatch__(func, types, args, kwargs)


def _kind(name: str, module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        if name == "conv1":
            return "stem conv"
        return "downsample conv" if name.endswith("downsample.0") else "bottleneck 1×1 conv"
    kinds = {nn.BatchNorm2d: "BatchNorm", nn.ReLU: "ReLU", nn.MaxPool2d: "max-pool",
             nn.AdaptiveAvgPool2d: "avg-pool", nn.Linear: "fc"}
    return kinds[type(module)]


def count_network(model: nn.Module, x: torch.Tensor) -> dict[tuple[str, str], tuple[int, int]]:
    """{(module name, kind): (multiply-adds, FLOPs)} of one no-grad forward of `model` on `x`."""
    counter = NetCounter()
    found: dict[tuple[str, str], tuple[int, int]] = {}

    def book(key, cost):
        macs, flops = found.get(key, (0, 0))
        found[key] = (macs + cost[0], flops + cost[1])

    def glue(name):
        block = ".".join(name.split(".")[:2])  # "layer1.0" for "layer1.0.relu"
        book((block, "residual add"), counter.take())

    hooks = []
    inside_acmix = set()
    for name, module in model.named_modules():
        if isinstance(module, ACmix):
            inside_acmix.update(f"{name}.{child}" for child, _ in module.named_modules() if child)

            def record(step, tensor, line, name=name):
                # steps outside STAGE_OF_STEP only move data; any cost there shows up as its own key
                stage = STAGE_OF_STEP.get(step)
                book((name, ACMIX_KIND[stage] if stage else f"step {step}"), counter.take())

            module._recorder = record
            hooks.append(module.register_forward_pre_hook(lambda m, a, name=name: glue(name)))
        elif not list(module.children()) and name not in inside_acmix:
            kind = _kind(name, module)
            hooks.append(module.register_forward_pre_hook(lambda m, a, name=name: glue(name)))
            hooks.append(module.register_forward_hook(
                lambda m, a, o, name=name, kind=kind: book((name, kind), counter.take())))
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        for _, module in model.named_modules():
            if isinstance(module, ACmix):
                module._recorder = None
    assert not counter.unknown, f"ops this counter does not cost: {counter.unknown}"
    return {k: v for k, v in found.items() if v != (0, 0)}
