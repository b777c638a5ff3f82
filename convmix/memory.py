"""Peak memory of a forward: what the allocator really holds, measured and estimated.

**The figure.** Everything here means one quantity: the peak, during one no-grad forward, of the
bytes the allocator has handed out and not yet taken back, counted from just before the forward
(so the input and the weights are not in it; the output is). That includes what the kernels
allocate for themselves and free before returning: oneDNN's reorders of a convolution's input and
output into blocked layouts and its scratchpad, the im2col columns of PyTorch's own
`_slow_conv2d_forward` (float64, and float32 when oneDNN is not used), the per-group copies of a
grouped convolution on that path, and the storage that `im2col` first sizes like its input.

**Measured.** On CUDA the caching allocator keeps the statistic itself
(`max_memory_allocated() - memory_allocated()` before the forward). On the CPU no allocator keeps
one, so `measure_peak_bytes` records the CPU allocator's events with `torch.profiler`
(`profile_memory=True`): every allocation and free of the calling thread, in order, whose running
sum's maximum is the peak. `LiveBytes` counts something smaller and is kept for what it is good
at: the bytes held by *tensors* that the dispatcher creates (it cannot see a kernel's private
buffers), which makes a formulation's tensor-level footprint testable op by op.

**Estimated.** `estimate_peak_bytes(config, dtype, impl)` replays the forward's allocations from
shapes alone, before anything is allocated: every tensor the forward creates, in order, freed when
the code drops it, plus at each convolution and unfold the kernel's own workspace while it runs.
Tensors are modelled exactly. Workspaces follow PyTorch's choice of convolution backend
(`ConvParams::use_mkldnn`, which depends on the dtype, the batch, the kernel and the number of
threads): PyTorch's slow path is modelled buffer by buffer; for oneDNN, whose buffers depend on
the CPU and the kernel it picks, the workspace is bounded by both the input and the output
reordered into 16-channel blocks plus a full im2col of the input, plus 64 KiB of scratchpad
(measured on an AVX-512 CPU: at most 0.9 of that bound, never above it). So the estimate is an
upper bound of the measured CPU peak, close to it where tensors dominate (tests/test_memory.py
checks both against the profiler over random configurations, float32 and float64, both impls, 1
and 2 threads). On CUDA, cuDNN may choose larger workspaces; the estimate does not model them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MKLDNN_SCRATCH_BYTES = 64 << 10  # oneDNN's small per-call scratchpad (measured: at most ~37 KiB)


# -- measuring ------------------------------------------------------------------------------------


class LiveBytes(TorchDispatchMode):
    """Running total and peak of bytes held by tensors created inside the `with` block.

    It adds a new storage's size when the tensor appears and subtracts it when the last Python
    tensor on that storage (views included) is gone. Buffers a kernel allocates and frees inside
    one op are invisible to it: this is the tensors' footprint, not the allocator's peak.
    """

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


def cpu_allocator_peak(run: Callable[[], object]) -> int:
    """Peak of the CPU allocator's running total while `run()` executes, from profiler events.

    The profiler records every allocation and free of this thread with its size and time; their
    running sum from 0 is what the allocator holds beyond what existed before, and its maximum is
    the peak. What `run` returns is dropped inside the measurement, after the peak.
    """
    from torch._C._profiler import _EventType
    from torch.autograd.profiler import profile

    # The autograd profiler records the same events as torch.profiler.profile, which wraps it: the
    # wrapper's first use imports torch._inductor (1 to 4 s on a 2-core machine) for a CUDA-graph
    # setting that a CPU measurement never reads.
    with profile(use_cpu=True, profile_memory=True) as prof:
        result = run()
        del result
    events = []
    stack = list(prof.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            events.append((event.start_time_ns, event.id, event.extra_fields.alloc_size))
    live = peak = 0
    for _, _, nbytes in sorted(events):
        live += nbytes
        peak = max(peak, live)
    return peak


def measure_peak_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Peak bytes the allocator holds during one no-grad forward of `module` on `x`, beyond what
    was allocated before it (x and the weights): CUDA's own statistic, or the CPU allocator's
    events (`cpu_allocator_peak`)."""
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

    def forward():
        with torch.no_grad():
            return module(x)

    return cpu_allocator_peak(forward)


# -- estimating -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv:
    """One nn.Conv2d call: its input (batch, channels, height, width), output and settings."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    out_height: int
    out_width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    channels_last: bool = False  # the input's memory format

    @property
    def output_elements(self) -> int:
        return self.batch * self.out_channels * self.out_height * self.out_width

    @property
    def input_elements(self) -> int:
        return self.batch * self.in_channels * self.height * self.width


def uses_mkldnn(conv: Conv, dtype: str, threads: int) -> bool:
    """PyTorch's choice of oneDNN for a CPU convolution (ConvParams::use_mkldnn, torch 2.x)."""
    if dtype in ("bfloat16", "float16"):
        return True  # on CPUs with native support; the bound below covers either path
    if dtype != "float32" or not torch.backends.mkldnn.is_available():
        return False
    one_by_one = conv.kernel == 1
    return (conv.stride > 1 or conv.batch >= 16 or not one_by_one or threads > 1) and (
        conv.groups > 1 or conv.kernel > 3 or conv.batch > 1 or conv.input_elements > 20480
    )


def conv_workspace_bytes(conv: Conv, dtype_bytes: int, mkldnn: bool, threads: int = 1) -> int:
    """Bytes a convolution holds beyond its output while it runs (freed before it returns)."""
    b, cin, cout, g, k = conv.batch, conv.in_channels, conv.out_channels, conv.groups, conv.kernel
    no = conv.out_height * conv.out_width
    cin_g = cin // g
    if mkldnn:
        # oneDNN picks its kernel by CPU and shape, so this bounds what it may hold: the weight
        # reordered into blocks of 16 output and 16 input channels per group; for a
        # channels-first input also the input and the output reordered into 16-channel blocks
        # and, for its gemm kernels, one image's im2col columns per thread; for a channels-last
        # input a channels-last copy of the weight; and oneDNN's scratchpad.
        weight = g * _round16(cout // g) * _round16(cin_g) * k * k
        if conv.channels_last:
            layout, columns = cout * cin_g * k * k, 0
        else:
            layout = b * (_round16(cin) * conv.height * conv.width + _round16(cout) * no)
            gemm = not (k == 1 and conv.stride == 1)
            columns = cin_g * k * k * no * min(threads, b * g) if gemm else 0
        return dtype_bytes * (weight + max(layout, columns)) + MKLDNN_SCRATCH_BYTES
    # PyTorch's slow path (_slow_conv2d_forward): im2col columns of the whole batch unless the
    # kernel is 1x1 with stride 1 and no padding; a channels-last input also makes it copy the
    # weight (per group when grouped).
    needs_columns = k != 1 or conv.stride != 1 or conv.padding != 0
    columns = b * cin_g * k * k * no if needs_columns else 0  # one group, whole batch
    weight_copy = cout * cin_g * k * k if conv.channels_last else 0
    if g == 1:
        return dtype_bytes * (columns + weight_copy)
    # Grouped: one group at a time on a contiguous copy of its input slice (a copy unless the
    # slice already is contiguous: batch 1 and channels first), its columns and its output; the
    # group outputs are then concatenated into the result (so it is briefly there twice); the
    # weight's copy lives throughout.
    slice_copy = b * cin_g * conv.height * conv.width if (b > 1 or conv.channels_last) else 0
    return dtype_bytes * (weight_copy + max(slice_copy + columns, conv.output_elements))


def _round16(channels: int) -> int:
    return -(-channels // 16) * 16


class _Replay:
    """A running total of bytes with its peak: the forward's allocations replayed in order."""

    def __init__(self, dtype_bytes: int, dtype: str, threads: int) -> None:
        self.elt, self.dtype, self.threads = dtype_bytes, dtype, threads
        self.live = self.peak = 0

    def alloc(self, elements: int) -> None:
        self.live += self.elt * elements
        self.peak = max(self.peak, self.live)

    def free(self, elements: int) -> None:
        self.live -= self.elt * elements

    def transient(self, nbytes: int) -> None:
        """Bytes held only inside the current op, on top of what is live."""
        self.peak = max(self.peak, self.live + nbytes)

    def conv(self, conv: Conv) -> None:
        """A convolution: its output stays, its workspace comes and goes while it runs."""
        self.alloc(conv.output_elements)
        mkldnn = uses_mkldnn(conv, self.dtype, self.threads)
        self.transient(conv_workspace_bytes(conv, self.elt, mkldnn, self.threads))

    def unfold(self, channels: int, padded: int, unfolded: int) -> int:
        """nn.Unfold (im2col) of `channels` maps of `padded` cells into `unfolded` per channel.

        im2col first allocates its output like its input and then resizes it: a larger size
        moves it to new storage (both are briefly held), a smaller one keeps the first storage.
        Returns the elements the result's storage holds.
        """
        first = channels * padded
        self.alloc(first)
        if unfolded > padded:
            self.alloc(channels * unfolded)
            self.free(first)
            return channels * unfolded
        return first


def estimate_forward_peak(config, dtype: str = "float32", impl: str = "reference",
                          threads: int | None = None) -> int:
    """Peak bytes of one no-grad CPU forward beyond its input and weights, from shapes (see the
    module docstring): ACmix's forward replayed allocation by allocation."""
    from .config import DTYPE_BYTES

    c = config
    elt = DTYPE_BYTES[dtype]
    run = _Replay(elt, dtype, torch.get_num_threads() if threads is None else threads)
    b, ch, h, d = c.batch, c.out_planes, c.head, c.head_dim
    height, width = c.height, c.width
    n, no = height * width, c.out_height * c.out_width
    kk, kc, kc2 = c.kernel_att**2, c.kernel_conv, c.kernel_conv**2
    padded = c.padded_area
    bcn, bcno = b * ch * n, b * ch * no

    # Stage I: q, k, v, three 1x1 convolutions with bias.
    projection = Conv(b, c.in_planes, ch, height, width, height, width, kernel=1)
    for _ in range(3):
        run.conv(projection)
    # The coordinate grid: two linspaces, their repeats along the other axis, and the cat of
    # both (its float32 linspaces, cast for other dtypes, are smaller than what follows).
    run.alloc(width + height + 2 * n)
    run.alloc(2 * n)
    run.free(width + height + 2 * n)
    run.conv(Conv(1, 2, d, height, width, height, width, kernel=1))  # pe = conv_p(grid)
    run.free(2 * n)  # the grid is not kept
    run.alloc(bcn)  # q_att = q * d^-1/2 (k_att, v_att, the strided q and pe are views)

    if impl == "fast":
        from .fast import fast_attention_peak_elements

        run.transient(elt * fast_attention_peak_elements(c))  # everything but its output is freed
        run.alloc(bcno)  # out_att
    else:
        window = kk * no
        # unfold_k: k padded, unfolded; the padded map is dropped once unfolded
        run.alloc(b * ch * padded)
        unfold_k = run.unfold(b * ch, padded, window)
        run.free(b * ch * padded)
        run.alloc(d * padded)  # unfold_rpe from the padded pe
        unfold_rpe = run.unfold(d, padded, window)
        run.free(d * padded)
        products = b * ch * window
        run.alloc(products)  # unfold_k + q_pe
        run.alloc(products)  # ... - unfold_rpe
        run.free(products)
        run.alloc(products)  # q_att * (...)
        run.free(products)
        logits = b * h * window
        run.alloc(logits)  # .sum(1)
        run.free(products)
        run.alloc(logits)  # softmax
        run.free(logits)
        run.alloc(b * ch * padded)  # v padded, unfolded
        unfold_v = run.unfold(b * ch, padded, window)
        run.free(b * ch * padded)
        run.alloc(products)  # att * unfold_v
        run.alloc(bcno)  # .sum(2): out_att
        run.free(products)
        run.free(unfold_k + unfold_rpe + logits + unfold_v)

    # Convolution path: the q/k/v groups concatenated, fc, f_conv, dep_conv.
    f_all = b * kc2 * d * n
    run.alloc(3 * bcn)
    if impl == "fast":
        run.alloc(f_all)  # one bmm
        run.free(3 * bcn)
        f_conv = f_all if kc2 > 1 or d > 1 else 0  # channels-last copy unless a view
    else:
        run.conv(Conv(b, 3 * h, kc2, d, n, d, n, kernel=1))  # fc on (B, 3h, d, H*W)
        run.free(3 * bcn)
        f_conv = f_all if kc2 > 1 and d > 1 else 0  # the reshape copies unless a view
    run.alloc(f_conv)
    dep_padding = 1 if c.variant == "official" else kc // 2
    run.conv(Conv(b, d * kc2, ch, height, width, c.out_height, c.out_width, kernel=kc,
                  stride=c.stride, padding=dep_padding, groups=d, channels_last=impl == "fast"))
    if impl == "fast":
        run.free(f_all + f_conv)  # fast_conv_path's locals end with it
    # out = rate1 * out_att + rate2 * out_conv: two products and their sum.
    run.alloc(2 * bcno)
    run.alloc(bcno)
    return run.peak
