"""Peak memory of a forward, measured where the allocator cannot tell us (the CPU).

On CUDA the caching allocator keeps exact statistics. On the CPU it keeps none, and tracemalloc
does not see torch's allocations, so `LiveBytes` watches every tensor that torch's dispatcher
creates while it is active: it adds a new storage's size when the tensor appears and subtracts it
when the last Python tensor on that storage (views included) is gone. The maximum of that running
sum is the peak of memory allocated by the forward on top of its inputs and parameters (the same
quantity as max_memory_allocated() - memory_allocated() before the forward on CUDA).
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Running total and peak of bytes held by tensors created inside the `with` block."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._owned: dict[int, int] = {}  # storage data_ptr -> bytes
        self._refs: dict[int, int] = {}  # storage data_ptr -> live tensors (views included) on it

    def _release(self, ptr: int) -> None:
        self._refs[ptr] -= 1
        if self._refs[ptr] == 0:  # the last tensor on this storage is gone
            del self._refs[ptr]
            self.live -= self._owned.pop(ptr)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0:
                continue  # an empty tensor
            if ptr in self._owned:
                # A view (or in-place result) of storage allocated here keeps it alive after the
                # tensor that first held it is gone.
                self._refs[ptr] += 1
                weakref.finalize(t, self._release, ptr)
                continue
            if ptr in inputs:
                continue  # a view or in-place result of a tensor allocated elsewhere
            self._owned[ptr] = storage.nbytes()
            self._refs[ptr] = 1
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._release, ptr)
        return out


def measure_peak_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Peak bytes allocated by one no-grad forward of `module` on `x`, beyond x and the weights."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        with torch.no_grad():
            out = module(x)
        torch.cuda.synchronize(x.device)
        peak = torch.cuda.max_memory_allocated(x.device) - base
        del out
        return int(peak)
    counter = LiveBytes()
    with torch.no_grad(), counter:
        out = module(x)
    del out
    return int(counter.peak)
