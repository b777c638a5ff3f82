"""Counting executed operations while a module runs (independent of convmix.counting's formulas).

Each aten op the dispatcher executes is costed from its actual input and output tensors:
convolutions by their weight and output shapes, elementwise arithmetic by output elements,
reductions by input elements, softmax by 5 per element; everything else moves data and costs 0.
A multiply whose product is then summed is a multiply-add (this is how the attention path's dot
products are written). Costs accumulate until the trace records a step, and are attributed to it.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
ELEMENTWISE = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor}
FREE = {
    aten.view.default, aten._unsafe_view.default, aten.unsqueeze.default, aten.permute.default,
    aten.clone.default, aten.cat.default, aten.slice.Tensor, aten.reflection_pad2d.default,
    aten.im2col.default, aten.linspace.default, aten.repeat.default, aten._to_copy.default,
    aten.detach.default, aten.expand.default, aten.reshape.default, aten.alias.default,
    aten.lift_fresh.default, aten.copy_.default, aten.empty.memory_format, aten.t.default,
    aten.squeeze.dim, aten.contiguous.default if hasattr(aten, "contiguous") else aten.clone.default,
}


class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.macs = 0
        self.flops = 0
        self.unknown: set[str] = set()
        self._products: list[torch.Tensor] = []  # outputs of mul, kept so their ids stay unique

    def take(self) -> tuple[int, int]:
        out = (self.macs, self.flops)
        self.macs = self.flops = 0
        return out

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if func is aten.convolution.default:
            w, bias = args[1], args[2]
            per_output = w.shape[1] * w[0, 0].numel()  # (Cin / groups) * kh * kw
            macs = out.numel() * per_output
            self.macs += macs
            self.flops += 2 * macs + (out.numel() if bias is not None else 0)
        elif func in ELEMENTWISE:
            self.flops += out.numel()
            if func is aten.mul.Tensor:
                self._products.append(out)
        elif func is aten.sum.dim_IntList:
            src = args[0]
            self.flops += src.numel()
            if any(src is p for p in self._products):
                self.macs += src.numel()
                # the multiplies were counted as flops already; a multiply-add is 2 flops
        elif packet is aten._softmax:
            self.flops += 5 * out.numel()
        elif func not in FREE:
            self.unknown.add(str(func))
        return out


def count_steps(module, x) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """Run the module's forward once; return {step: (macs, flops)} attributed per recorded step."""
    counter = OpCounter()
    per_step: dict[str, tuple[int, int]] = {}

    def record(name, tensor, line):
        macs, flops = counter.take()
        per_step[name] = (macs, flops)

    module._recorder = record
    try:
        with torch.no_grad(), counter:
            module(x)
    finally:
        module._recorder = None
    return per_step, counter.unknown
