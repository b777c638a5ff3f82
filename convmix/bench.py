"""Latency, peak memory and the roofline floor of ACmix and its baselines, measured where torch runs.

Protocol (../shared/design/GUIDE.md, "Measuring"):
  * Device: CUDA when torch sees it, else the CPU. float32 everywhere; float16 and bfloat16 on CUDA
    only (ACmix's reference formulation in half precision on a CPU measures a slow fallback, not
    the module).
  * Every callable is warmed up (cuDNN autotunes per shape, allocator caches fill; ACmix and local
    attention by the forward that measures the peak memory, the baseline convolution by a call of
    its own), then timed in rounds; a result is the median with the 25th and 75th percentiles of its
    samples.
  * When to stop (`Budget`): never before `min_rounds`; then as soon as every callable's median is
    settled, i.e. its CONFIDENCE (90 %) interval from order statistics lies within ±`precision`
    (5 %) of it, which needs 5 samples at least; otherwise once `seconds` of rounds have passed, or
    at `max_rounds` (and `max_seconds` caps a slow configuration after FLOOR_ROUNDS). Stable timings
    thus end early; noisy ones get the rounds they always got.
  * The callables of one configuration (ACmix and the two baselines) are timed in alternation,
    round by round, in alternating order, so background load and clock drift hit them all alike
    and their ratios stay fair. On CUDA each call is
    bracketed by a pair of CUDA events; on the CPU by `time.perf_counter`, with calls grouped
    into blocks of at least `Budget.block_seconds` so that the clock's own cost is negligible for
    fast calls. (torch.utils.benchmark.Timer times one statement at a time, which would let drift
    between statements show up as a difference between them.)
  * Threads: the calling thread's `torch.get_num_threads()`, set by convmix.runtime (1 in the app,
    the usable CPUs on the command line, or $CONVMIX_THREADS; a command-line sweep's measurements
    use convmix.sweep.sweep_threads) and recorded with every result; nothing here changes it.
  * One process-wide lock, `MEASURE_LOCK`: two visitors never time at once.
  * Load: every row records how busy the machine was while its callables were timed: the share of
    all CPUs' time that other processes used (from /proc/stat, Linux) and the 1-minute load
    average, so that a noisy result can be told from a slow one (convmix.sweep.flag_noise marks
    latencies whose interquartile range is too wide).

ACmix's parts (Stage I, the attention path, the conv path) are timed inside ACmix's own forward,
in the same calls as its total (`PartClock`: a stamp where each part begins and ends), so a round
runs the attention path twice (ACmix, local attention) rather than three times, and the parts and
the total come from the same forwards. What the three leave out (the grid and conv_p, head
reshapes, the concatenation, the permute copy and the final mix) is the rest of the total.
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .acmix import ATTENTION_IMPLS, CONV_PATH_IMPLS, ACmix
from .config import DTYPE_BYTES, ACmixConfig
from .i18n import _
from .load import cpu_snapshot, load_average, others_cpu_share
from .memory import measure_peak_bytes

MEASURE_LOCK = threading.Lock()
LOCK_LOG_ENV = "CONVMIX_LOCK_LOG"
LOCK_POLL_SECONDS = 0.25  # how often a waiting measurement asks whether it is still wanted


class MeasureError(ValueError):
    """A measurement that cannot be made as asked (device, dtype, configuration, memory or time)."""


class Abandoned(MeasureError):
    """Work dropped before it ran because nobody waits for it any more (the visitor left)."""


@contextmanager
def measuring(still_wanted: Callable[[], bool] | None = None):
    """Hold MEASURE_LOCK. When $CONVMIX_LOCK_LOG names a file, append the held interval to it, so
    that a load test can check afterwards that no two measurements overlapped.

    While it waits for the lock, and once more when it has it, `still_wanted()` is asked whether
    the work is still wanted; when it says no (a visitor closed the tab while queued), the work is
    dropped with Abandoned instead of run for nobody.
    """
    while not MEASURE_LOCK.acquire(timeout=LOCK_POLL_SECONDS):
        if still_wanted is not None and not still_wanted():
            raise Abandoned(_("Dropped: nobody waits for this measurement any more."))
    start = time.time()
    try:
        if still_wanted is not None and not still_wanted():
            raise Abandoned(_("Dropped: nobody waits for this measurement any more."))
        yield
    finally:
        end = time.time()
        MEASURE_LOCK.release()
        log = os.environ.get(LOCK_LOG_ENV)
        if log:
            with open(log, "a") as fh:
                fh.write(f"{start:.6f} {end:.6f} {os.getpid()} {threading.get_ident()}\n")

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# What each timed callable is called in result rows (column prefix) and on charts.
PARTS = {"stage1": "Stage I (conv1-3)", "attention_path": "attention path", "conv_path": "conv path (fc + dep_conv)"}
BASELINES = {"conv2d": "Conv2d kc×kc", "local_attention": "local self-attention"}
TIMED = {"acmix": "ACmix", **PARTS, **BASELINES}


# -- device and environment ------------------------------------------------------------------------
def available_impls() -> list[str]:
    """Attention formulations registered in ATTENTION_IMPLS (convmix.fast registers "fast" on import)."""
    import importlib.util

    if importlib.util.find_spec("convmix.fast") is not None:
        importlib.import_module("convmix.fast")
    return list(ATTENTION_IMPLS)


def pick_device(requested: str | None = "auto") -> torch.device:
    """"auto": CUDA when torch sees it, else the CPU. "cpu" / "cuda" / "cuda:N" as asked, if present."""
    name = (requested or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise MeasureError(_("Unknown device {device}: use auto, cpu or cuda.", device=repr(requested))) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MeasureError(_("CUDA was asked for, but torch sees no CUDA device here; use cpu or auto."))
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MeasureError(_("There is no {device}: torch sees {count} CUDA device(s).", device=str(device),
                                 count=torch.cuda.device_count()))
    elif device.type != "cpu":
        raise MeasureError(_("Device {device} is not supported: use auto, cpu or cuda.", device=repr(requested)))
    return device


def supported_dtypes(device: torch.device) -> list[str]:
    return ["float32", "float16", "bfloat16"] if device.type == "cuda" else ["float32"]


def check_dtype(device: torch.device, dtype: str) -> torch.dtype:
    if dtype not in supported_dtypes(device):
        raise MeasureError(_("dtype {dtype} is not measured on {device}: use {choices}.", dtype=dtype,
                             device=device.type, choices=" / ".join(supported_dtypes(device))))
    return TORCH_DTYPES[dtype]


@lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


@dataclass(frozen=True)
class Environment:
    """Where and how a result was measured; recorded with every row."""

    device: str
    device_name: str
    dtype: str
    threads: int
    torch_version: str
    tf32_matmul: bool
    tf32_cudnn: bool


def environment(device: torch.device, dtype: str) -> Environment:
    return Environment(
        device=device.type,
        device_name=device_name(device),
        dtype=dtype,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
        tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
    )


# -- timing ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """How long to measure one configuration (all its callables together)."""

    warmup: int = 2  # untimed calls of each callable (at least 1: it also sizes the CPU blocks)
    min_rounds: int = 5  # timed rounds, at least (even when they take longer than `seconds`)
    max_rounds: int = 60
    seconds: float = 1.0  # stop after this much timed wall time, once min_rounds are done
    block_seconds: float = 2e-4  # CPU: a sample lasts at least this long (calls are grouped)
    # A slow configuration stops here even before min_rounds (but after FLOOR_ROUNDS), so that
    # one visitor cannot hold the lock for minutes; the row records how many rounds it got.
    max_seconds: float = 30.0
    # The stopping rule: once min_rounds are done, stop as soon as every callable's median is known
    # within ±precision (its CONFIDENCE interval, `settled`), else go on until `seconds` have passed.
    # None: no early stop (every measurement then takes `seconds`, however stable its timings).
    precision: float | None = None


FLOOR_ROUNDS = 3  # never fewer timed rounds than this: a median and quartiles need a few samples
CONFIDENCE = 0.9  # of the median's interval in the stopping rule
PRECISION = 0.05  # the stopping rule's bound on that interval, relative to the median
BUDGETS: dict[str, Budget] = {
    "quick": Budget(warmup=1, min_rounds=3, max_rounds=10, seconds=0.05, max_seconds=5.0, precision=PRECISION),
    "standard": Budget(warmup=1, min_rounds=5, max_rounds=60, seconds=0.5, max_seconds=20.0, precision=PRECISION),
    "thorough": Budget(warmup=3, min_rounds=25, max_rounds=500, seconds=5.0, max_seconds=120.0,
                       precision=PRECISION),
}


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """A distribution-free confidence interval of the median from order statistics: the j-th smallest
    and the j-th largest value, with the largest j whose coverage 1 − 2·P(Binomial(n, ½) < j) is at
    least `confidence`; None when even (min, max) falls short (fewer than 5 values at 90 %)."""
    xs = sorted(values)
    n = len(xs)
    below = 0.0  # P(Binomial(n, ½) < j)
    j = 0
    while j < n // 2:
        below_next = below + math.comb(n, j) / 2.0**n
        if 1 - 2 * below_next < confidence:
            break
        below, j = below_next, j + 1
    if j == 0:
        return None
    return xs[j - 1], xs[n - j]


def settled(values: Sequence[float], precision: float, confidence: float = CONFIDENCE) -> bool:
    """Whether the median of `values` is known within ±precision of itself: its `confidence`
    interval (median_interval) lies inside median × (1 ± precision)."""
    interval = median_interval(values, confidence)
    if interval is None:
        return False
    median = float(np.median(values))
    low, high = interval
    return median > 0 and low >= median * (1 - precision) and high <= median * (1 + precision)


@dataclass(frozen=True)
class Timing:
    """Median and quartiles of the per-call time, in milliseconds, over `samples` samples."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    samples: int
    calls_per_sample: int

    @classmethod
    def from_samples(cls, seconds_per_call: list[float], calls_per_sample: int = 1) -> Timing:
        if not seconds_per_call:
            raise ValueError("no samples to summarise")
        ms = np.asarray(seconds_per_call, dtype=float) * 1e3
        p25, median, p75 = np.percentile(ms, [25, 50, 75])
        return cls(float(median), float(p25), float(p75), len(ms), calls_per_sample)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_alternated(
    fns: Mapping[str, Callable[[], object]],
    device: torch.device,
    budget: Budget = BUDGETS["standard"],
    warmed: Collection[str] = (),
    clocks: Mapping[str, PartClock] | None = None,
) -> dict[str, Timing]:
    """Time every callable in `fns`, one sample of each per round, alternating their order, until the
    budget's rule stops (module docstring: at least min_rounds; then settled medians, or `seconds`).

    Callables named in `warmed` have just run on the same tensors (the forward that measured the
    peak memory ran ACmix and every piece of the baselines but the convolution), so they get one
    warm-up call fewer. On the CPU one left with none is sized by its first timed call: that call is
    its first sample when it fills a block alone, and its warm-up otherwise (the round then times
    its first block).

    `clocks` maps a callable to the PartClock inside it: each of its samples also gives one sample
    of each of the clock's parts, from the same calls, and the stopping rule waits for them too.
    """
    clocks = clocks or {}
    names = list(fns)
    host_of = {part: host for host, clock in clocks.items() for part in clock.names}
    cpu = device.type != "cuda"
    number: dict[str, int] = {}  # calls per sample (CPU: grouped so that a sample lasts block_seconds)
    for warm in range(max(1, budget.warmup)):
        for name in names:
            if warm == 0 and name in warmed:
                continue
            start = time.perf_counter()
            fns[name]()
            number[name] = _calls_per_block(time.perf_counter() - start, budget) if cpu else 1
    _synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in [*names, *host_of]}

    def sampled(name: str, seconds: float, calls: int) -> None:
        samples[name].append(seconds / calls)
        if name in clocks:
            for part, spent in clocks[name].spent().items():
                samples[part].append(spent / calls)

    rounds = 0
    started = time.perf_counter()
    while rounds < budget.max_rounds:
        order = names if rounds % 2 == 0 else names[::-1]
        if not cpu:
            events = []
            for name in order:
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                if name in clocks:
                    clocks[name].reset()
                begin.record()
                fns[name]()
                end.record()
                events.append((name, begin, end))
            torch.cuda.synchronize(device)
            for name, begin, end in events:
                sampled(name, begin.elapsed_time(end) / 1e3, 1)
        else:
            for name in order:
                fn = fns[name]
                if name in clocks:
                    clocks[name].reset()
                if name not in number:  # warmed: its first call sizes its blocks
                    start = time.perf_counter()
                    fn()
                    once = time.perf_counter() - start
                    number[name] = _calls_per_block(once, budget)
                    if number[name] == 1:
                        sampled(name, once, 1)
                        continue
                    if name in clocks:
                        clocks[name].reset()
                n = number[name]
                start = time.perf_counter()
                for _call in range(n):
                    fn()
                sampled(name, time.perf_counter() - start, n)
        rounds += 1
        elapsed = time.perf_counter() - started
        if rounds >= budget.min_rounds and (elapsed >= budget.seconds or (
                budget.precision is not None and all(settled(v, budget.precision) for v in samples.values()))):
            break
        if rounds >= min(FLOOR_ROUNDS, budget.min_rounds) and elapsed >= budget.max_seconds:
            break
    return {name: Timing.from_samples(values, number.get(host_of.get(name, name), 1))
            for name, values in samples.items()}


def _calls_per_block(once: float, budget: Budget) -> int:
    return max(1, min(1000, math.ceil(budget.block_seconds / max(once, 1e-7))))


# -- what is timed ------------------------------------------------------------------------------------
class LocalSelfAttention:
    """Baseline: local self-attention alone, i.e. ACmix's q/k/v projections, conv_p and attention path.

    It runs the pieces of an ACmix module (sharing its weights) without the conv path and the mix,
    so its output equals ACmix's recorded `out_att` (tested).
    """

    def __init__(self, core: ACmix, impl: str | None = None):
        self.core = core
        self.impl = impl or core.impl

    @property
    def parameter_count(self) -> int:
        core = self.core
        return sum(p.numel() for m in (core.conv1, core.conv2, core.conv3, core.conv_p) for p in m.parameters())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        core = self.core
        b, _, h, w = x.shape
        g = core.geometry(b, h, w)
        q, k, v = core.conv1(x), core.conv2(x), core.conv3(x)
        out = ATTENTION_IMPLS[self.impl](core, *core.attention_inputs(x, q, k, v), g)
        return out.reshape(b, core.out_planes, g.out_height, g.out_width)


def plain_conv(config: ACmixConfig) -> nn.Conv2d:
    """Baseline: a kernel_conv × kernel_conv Conv2d(in_planes, out_planes) with the same stride."""
    return nn.Conv2d(
        config.in_planes, config.out_planes, config.kernel_conv,
        stride=config.stride, padding=config.kernel_conv // 2,
    )


class PartClock:
    """Times ACmix's three parts inside its own forward, from stamps taken where each begins and ends.

    The stamps come from the forward's own names (`ACmix._rec` tells a stamper each intermediate's
    name right after it is computed) and from a pre-hook on conv1, the forward's first computation:
    Stage I runs from conv1's start to `v`; the attention path from `q_pe` (its last input) to
    `out_att`; the authors' conv path is fc (`qkv_groups` to `f_all`) plus dep_conv (`f_conv` to
    `out_conv`), and a CONV_PATH_IMPLS formulation everything from `out_att` to `out_conv`. What lies between the spans
    (the grid and conv_p, head reshapes, the concatenation, the permute copy and the final mix) is
    the rest of the total, as when the parts were timed apart. On the CPU a stamp is
    time.perf_counter(); on CUDA an event recorded on the current stream, read after a synchronize.

    Within `attached()`, calling the clock runs one forward of `module` on `x` with the stamps on;
    `spent()` gives each part's seconds summed over the calls since `reset()`. The stamps add 5 to
    15 µs to a forward on the 2-core test machine: 2 % of an 8×8 forward at 16 channels, under 1 %
    at 28×28 and 64 channels or more (medians of 600 calls, clocked against plain, alternately).
    """

    names = tuple(PARTS)

    def __init__(self, module: ACmix, x: torch.Tensor):
        self.module, self.x = module, x
        self.cuda = x.device.type == "cuda"
        conv = (("out_att", "out_conv"),) if module.impl in CONV_PATH_IMPLS else (
            ("qkv_groups", "f_all"), ("f_conv", "out_conv"))
        spans = {"stage1": (("start", "v"),), "attention_path": (("q_pe", "out_att"),), "conv_path": conv}
        # name -> the (part, begin) span it ends, or None when it only begins one
        self._marks: dict[str, tuple[str, str] | None] = {
            begin: None for pairs in spans.values() for begin, _end in pairs}
        self._marks.update({end: (part, begin) for part, pairs in spans.items() for begin, end in pairs})
        self._stamps: dict[str, object] = {}
        self._spent = dict.fromkeys(self.names, 0.0)
        self._pending: list[tuple[str, torch.cuda.Event, torch.cuda.Event]] = []
        self._on = False  # conv1 also runs in the local-attention baseline: stamp only ACmix's own call

    def _stamp(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _mark(self, name: str) -> None:
        if name not in self._marks:
            return
        now = self._stamp()
        ends = self._marks[name]
        if ends is not None:
            part, begin = ends
            if self.cuda:
                self._pending.append((part, self._stamps[begin], now))
            else:
                self._spent[part] += now - self._stamps[begin]
        self._stamps[name] = now

    def _start(self, module: nn.Module, args: tuple) -> None:
        if self._on:
            self._mark("start")

    @contextmanager
    def attached(self):
        """Listen for conv1's start while the clock is in use (a pre-hook registered once: one per
        call would cost a forward of a small configuration a few percent)."""
        hook = self.module.conv1.register_forward_pre_hook(self._start)
        try:
            yield self
        finally:
            hook.remove()

    def __call__(self) -> torch.Tensor:
        module = self.module
        # Straight into __dict__: nn.Module.__setattr__ costs a microsecond, twice a call.
        module.__dict__["_stamper"], self._on = self._mark, True
        try:
            return module(self.x)
        finally:
            module.__dict__["_stamper"], self._on = None, False

    def reset(self) -> None:
        self._spent = dict.fromkeys(self.names, 0.0)
        self._pending.clear()

    def spent(self) -> dict[str, float]:
        """Seconds of each part over the calls since reset() (CUDA: once the device has synchronized)."""
        spent = dict(self._spent)
        for part, begin, end in self._pending:
            spent[part] += begin.elapsed_time(end) / 1e3
        return spent


# The callables that the forward measuring the peak memory has just run on the same tensors: ACmix,
# and local attention (pieces of the same module); not the baseline convolution (a module of its own).
WARMED_BY_PEAK_FORWARD = ("acmix", "local_attention")


@contextmanager
def timed_callables(module: ACmix, x: torch.Tensor, config: ACmixConfig, impl: str):
    """While open: ACmix (its parts clocked inside its forward) and the two baselines, ready to call,
    and the clock keyed by the callable it runs in (time_alternated's `clocks`)."""
    conv = plain_conv(config).to(device=x.device, dtype=x.dtype)
    local = LocalSelfAttention(module, impl)
    with PartClock(module, x).attached() as clock:
        yield {"acmix": clock, "conv2d": lambda: conv(x), "local_attention": lambda: local(x)}, {"acmix": clock}


# -- roofline --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Peaks:
    """Throughput measured on the spot: a large matmul (FLOP/s) and a large copy (bytes/s)."""

    flops_per_s: float
    bytes_per_s: float
    matmul_size: int
    copy_bytes: int


def measure_peaks(device: torch.device, dtype: str, matmul_size: int | None = None,
                  copy_elements: int | None = None, repeats: int = 5) -> Peaks:
    """Best of `repeats` runs of an n×n matmul (2n³ FLOPs) and of a copy (reads + writes 2·nbytes)."""
    tdtype = TORCH_DTYPES[dtype]
    cuda = device.type == "cuda"
    n = matmul_size or (8192 if cuda else 1024)
    elements = copy_elements or ((1 << 26) if cuda else (1 << 24))
    with torch.no_grad():
        matmul = _matmul_seconds(n, device, tdtype, repeats)
        copy, nbytes = _copy_seconds(elements, device, tdtype, repeats)
    return Peaks(2 * n**3 / matmul, 2 * nbytes / copy, n, 2 * nbytes)


def _matmul_seconds(n: int, device: torch.device, dtype: torch.dtype, repeats: int) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return _best_seconds(lambda: a @ b, device, repeats)


def _copy_seconds(elements: int, device: torch.device, dtype: torch.dtype, repeats: int) -> tuple[float, int]:
    src = torch.randn(elements, device=device).to(dtype)
    dst = torch.empty_like(src)
    return _best_seconds(lambda: dst.copy_(src), device, repeats), src.numel() * src.element_size()


def _best_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()
    _synchronize(device)
    best = math.inf
    for _repeat in range(repeats):
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            best = min(best, begin.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


_PEAKS: dict[tuple[str, str], Peaks] = {}


def _cached_peaks(device: torch.device, dtype: str) -> Peaks:
    key = (str(device), dtype)
    if key not in _PEAKS:
        _PEAKS[key] = measure_peaks(device, dtype)
    return _PEAKS[key]


def compulsory_bytes(config: ACmixConfig, dtype: str = "float32") -> int:
    """Bytes any implementation must move: read the input and every weight once, write the output once.

    Intermediates are left out on purpose: a perfectly fused kernel keeps them in registers or
    cache, so this is a lower bound on memory traffic (the reference code moves far more, e.g. the
    kernel_att² unfolded copies of k and v).
    """
    params = sum(config.param_counts().values())
    return DTYPE_BYTES[dtype] * (math.prod(config.input_shape) + params + math.prod(config.output_shape))


@dataclass(frozen=True)
class Floor:
    seconds: float
    compute_seconds: float
    memory_seconds: float

    @property
    def bound(self) -> str:
        return "compute" if self.compute_seconds >= self.memory_seconds else "memory"


def roofline_floor(flops: int, nbytes: int, peaks: Peaks) -> Floor:
    """floor = max(FLOPs / peak FLOP/s, bytes / peak bytes/s): an estimate of the fastest a
    forward could run, not a hard bound. The peaks are rates measured here (a large matmul and a
    large copy, which other kernels may beat or miss), and the FLOPs follow convmix.counting's
    convention; a forward measured below its floor is possible and says so."""
    compute = flops / peaks.flops_per_s
    memory = nbytes / peaks.bytes_per_s
    return Floor(max(compute, memory), compute, memory)


# -- one configuration ---------------------------------------------------------------------------------
def measure_config(
    config: ACmixConfig,
    *,
    device: str | torch.device | None = "auto",
    dtype: str = "float32",
    impl: str = "reference",
    budget: Budget = BUDGETS["standard"],
    memory_limit: int | None = None,
    time_limit: float | None = None,
    still_wanted: Callable[[], bool] | None = None,
) -> dict:
    """Latency (ACmix, parts, baselines), peak memory and roofline floor of one configuration.

    Returns a flat dict of result columns (see RESULT_FIELDS). Raises MeasureError when the device,
    dtype, implementation or configuration cannot be measured; when the measurement's estimated
    memory (`measurement_bytes`) does not fit beside what the process holds within `memory_limit`
    bytes (convmix.budget: a limit on the whole process); or, on the CPU, when its estimated
    duration (`measurement_seconds`) exceeds `time_limit` seconds, in which case the timing also
    stops in time. Holds MEASURE_LOCK while it runs; while waiting for it, drops the work
    (Abandoned) once `still_wanted()` says nobody waits for it.
    """
    from . import budget as membudget

    dev = device if isinstance(device, torch.device) else pick_device(device)
    tdtype = check_dtype(dev, dtype)
    if impl not in ATTENTION_IMPLS:
        raise MeasureError(_("impl must be one of {choices}, not {impl}.", choices=", ".join(ATTENTION_IMPLS),
                             impl=repr(impl)))
    problems = config.problems()
    if problems:
        raise MeasureError(" ".join(p.sentence() for p in problems))
    if memory_limit is not None:  # what could never fit is refused before any lock or probe
        refusal = membudget.check(config, memory_limit, lambda c: measurement_bytes(c, dtype, impl, dev),
                                  what="Measuring this configuration", held=0)
        if refusal is not None:
            raise MeasureError(refusal.message())
    with measuring(still_wanted):
        if memory_limit is None:
            budget = _within_time(config, impl, budget, time_limit, dev)
            return _measure_unlocked(config, dev, tdtype, dtype, impl, budget)
        try:
            with membudget.admitted(config, memory_limit, lambda c: measurement_bytes(c, dtype, impl, dev),
                                    what="Measuring this configuration"):
                # The time estimate's probes are small pieces of this measurement: they run inside
                # its reservation.
                budget = _within_time(config, impl, budget, time_limit, dev)
                return _measure_unlocked(config, dev, tdtype, dtype, impl, budget)
        except membudget.OverBudget as err:
            raise MeasureError(str(err)) from None


def _within_time(config: ACmixConfig, impl: str, budget: Budget, time_limit: float | None,
                 dev: torch.device) -> Budget:
    """Refuse (MeasureError) a CPU measurement estimated over `time_limit` seconds; else the timing
    budget with max_seconds cut so that the whole measurement stays within the limit."""
    from .budget import check_time
    from .speed import remeasure

    if time_limit is None or dev.type != "cpu":
        return budget
    refusal = check_time(config, time_limit, lambda c: measurement_seconds(c, impl, budget),
                         what="Measuring this configuration", second_opinion=remeasure)
    if refusal is not None:
        raise MeasureError(refusal.message())
    spare = time_limit - measurement_seconds(config, impl, budget)
    return replace(budget, max_seconds=max(0.0, min(budget.max_seconds, spare)))


def baseline_conv_bytes(config: ACmixConfig, dtype: str = "float32") -> int:
    """The plain Conv2d baseline's weights and bias: in_planes·out_planes·kernel_conv² + out_planes.

    For a wide layer with a large kernel_conv this is the largest single allocation of a
    measurement (2048 channels and kernel_conv 15: 3.8 GB).
    """
    c = config
    return DTYPE_BYTES[dtype] * (c.in_planes * c.out_planes * c.kernel_conv**2 + c.out_planes)


def measurement_bytes(config: ACmixConfig, dtype: str = "float32", impl: str = "reference",
                      device: torch.device | None = None) -> int:
    """Memory a measurement needs, every module it builds counted with its weights.

    ACmix's weights and input; the baseline Conv2d's weights; and, one callable at a time, the
    largest of: a forward's peak and output (ACmix, or the local-attention baseline, which runs
    Stage I and the attention path of the same module), and the baseline convolution's output plus a reordered copy of its weights (oneDNN's workspace on the
    CPU); building ACmix replaces dep_conv's first weight while it is alive (budget.build_bytes). The
    first measurement of a process also times a matmul and a large copy (the roofline's peaks).
    """
    from .budget import weights_and_input_bytes

    out = DTYPE_BYTES[dtype] * math.prod(config.output_shape)
    conv = baseline_conv_bytes(config, dtype)
    rebuilt = DTYPE_BYTES[dtype] * config.out_planes * config.kernel_conv**4  # see budget.build_bytes
    callables = max(config.estimate_peak_bytes(dtype, impl) + out, out + conv, rebuilt)
    peaks = _peaks_bytes(device or torch.device("cpu"), dtype)
    return weights_and_input_bytes(config, dtype) + conv + callables + peaks


def _peaks_bytes(device: torch.device, dtype: str) -> int:
    """What measure_peaks allocates, unless this process has measured the peaks already."""
    if (str(device), dtype) in _PEAKS:
        return 0
    cuda = device.type == "cuda"
    n, elements = (8192, 1 << 26) if cuda else (1024, 1 << 24)
    return DTYPE_BYTES[dtype] * (3 * n * n + 2 * elements)


def _round_seconds(config: ACmixConfig, impl: str):
    """(building the modules, one forward, one timed round of the three callables, one call of the
    baseline convolution), estimated. ACmix's parts are timed inside its forward: they add no calls."""
    from .speed import baseline_conv_seconds, fill_seconds, forward_seconds

    f = forward_seconds(config, impl)
    conv = baseline_conv_seconds(config)
    local = f.stage1 + f.attention
    build = f.build + fill_seconds(baseline_conv_bytes(config) // 4)
    return build, f.total, f.total + conv + local, conv


def _warmup_seconds(budget: Budget, round_: float, conv: float) -> float:
    """The warm-up calls: the baseline convolution once per warm-up pass; ACmix and local attention
    (warm from the forward that measured the peak memory, WARMED_BY_PEAK_FORWARD) one pass fewer."""
    passes = max(1, budget.warmup)
    return (passes - 1) * round_ + conv


def measurement_seconds(config: ACmixConfig, impl: str = "reference", budget: Budget = BUDGETS["standard"]) -> float:
    """Estimated seconds of the shortest measurement `measure_config` makes on the CPU.

    Building ACmix and the baseline; one forward for the peak memory; then the warm-up calls and at
    least min(FLOOR_ROUNDS, budget.min_rounds) rounds, each calling ACmix (its parts clocked inside)
    and the two baselines once (convmix.speed estimates each).
    """
    build, forward, round_, conv = _round_seconds(config, impl)
    rounds = min(FLOOR_ROUNDS, budget.min_rounds)
    return build + forward + _warmup_seconds(budget, round_, conv) + rounds * round_


def expected_seconds(config: ACmixConfig, impl: str = "reference", budget: Budget = BUDGETS["standard"]) -> float:
    """Estimated seconds of a whole measurement on the CPU, as `time_alternated` runs it at most: the
    warm-up, then rounds until both `budget.min_rounds` and `budget.seconds` are reached (or
    `budget.max_seconds`, after FLOOR_ROUNDS). The stopping rule (`budget.precision`) ends stable
    timings sooner, after min_rounds; a plan made with this estimate never counts on it. For
    planning how many configurations one click measures."""
    build, forward, round_, conv = _round_seconds(config, impl)
    timed = max(budget.min_rounds * round_, budget.seconds)
    timed = min(timed, max(budget.max_seconds, min(FLOOR_ROUNDS, budget.min_rounds) * round_))
    return build + forward + _warmup_seconds(budget, round_, conv) + timed


def _measure_unlocked(config, dev, tdtype, dtype, impl, budget) -> dict:
    from .counting import total_cost

    module = config.build(impl=impl).to(device=dev, dtype=tdtype).eval()
    x = config.make_input(dtype=tdtype, device=dev)
    peak_bytes = measure_peak_bytes(module, x)
    with torch.no_grad():
        with timed_callables(module, x, config, impl) as (fns, clocks):
            before = cpu_snapshot()
            timings = time_alternated(fns, dev, budget, warmed=WARMED_BY_PEAK_FORWARD, clocks=clocks)
            after = cpu_snapshot()
    peaks = _cached_peaks(dev, dtype)
    flops = total_cost(config.step_costs()).flops
    nbytes = compulsory_bytes(config, dtype)
    floor = roofline_floor(flops, nbytes, peaks)
    total = timings["acmix"]
    row: dict = {
        "impl": impl,
        "latency_ms": total.median_ms,
        "latency_ms_p25": total.p25_ms,
        "latency_ms_p75": total.p75_ms,
        "timed_samples": total.samples,
    }
    for name in (*PARTS, *BASELINES):
        t = timings[name]
        row[f"{name}_ms"], row[f"{name}_ms_p25"], row[f"{name}_ms_p75"] = t.median_ms, t.p25_ms, t.p75_ms
    row.update(
        peak_bytes=int(peak_bytes),
        estimated_peak_bytes=int(config.estimate_peak_bytes(dtype, impl)),
        compulsory_bytes=nbytes,
        floor_ms=floor.seconds * 1e3,
        floor_bound=floor.bound,
        floor_ratio=total.median_ms / (floor.seconds * 1e3),
        peak_flops_per_s=peaks.flops_per_s,
        peak_bytes_per_s=peaks.bytes_per_s,
        others_cpu_share=others_cpu_share(before, after),
        load_avg_1m=load_average(),
        cpus=after.cpus if after else (os.cpu_count() or 1),
    )
    row.update(asdict(environment(dev, dtype)))
    return row


RESULT_FIELDS = (
    "impl", "latency_ms", "latency_ms_p25", "latency_ms_p75", "timed_samples",
    *(f"{n}_ms{s}" for n in (*PARTS, *BASELINES) for s in ("", "_p25", "_p75")),
    "peak_bytes", "estimated_peak_bytes", "compulsory_bytes", "floor_ms", "floor_bound", "floor_ratio",
    "peak_flops_per_s", "peak_bytes_per_s", "others_cpu_share", "load_avg_1m", "cpus",
    "device", "device_name", "dtype", "threads", "torch_version", "tf32_matmul", "tf32_cudnn",
)
