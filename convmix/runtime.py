"""torch's intra-op thread count: one per forward in the server, the usable CPUs for a lone measurement.

Who runs decides the default:

* **The app** (`streamlit run streamlit_app.py`): **1 thread**. Every visitor's rerun is a thread of
  its own, and a hosted demo shares its cores with other visitors and other processes. With torch's
  usual choice (all cores), two forwards at once, or one beside any other busy process, make the
  cores' OpenMP teams wait on each other: measured on a 2-core machine with one core kept busy, the
  default configuration's forward took 465-588 ms (reference) and 61-634 ms (fast) with 2 threads,
  212-215 ms and 12 ms with 1 (issue 16; `python benchmarks/load.py` measures it again).
* **The command line and the benchmarks** (`python -m convmix sweep|train`, `benchmarks/*.py`): the
  CPUs this process may really use, as for any lone measurement. A container limited to two CPUs
  on a 64-core host gets 2 threads, not 64: the limit is the smallest of the CPUs the process may be
  scheduled on (sched_getaffinity), the cgroup's CPU quota (cgroup v2 `cpu.max`, cgroup v1
  `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up, and os.cpu_count().

`$CONVMIX_THREADS` (a whole number from 1 to 1024) overrides both. A value that cannot be used is
named in a sentence (`thread_setting`): the app logs it once and keeps its default, the command line
stops with it.

The setting is **per thread** in practice. `torch.set_num_threads` stores the count process-wide, but
OpenMP's team size and MKL's thread count belong to the calling thread: a thread that starts later
picks the stored count up only when an operation of its own goes through ATen's parallel loop first.
A convolution (oneDNN) or a matrix product (MKL) that comes first in a fresh thread runs with
OpenMP's process default (all cores), and keeps doing so. Streamlit runs every rerun, and every
fragment rerun, in a new thread, so `configure_torch` applies the count to the calling thread each
time it runs (once per thread; a cheap check afterwards): the router calls it on every rerun, and
fragments that compute call it first.

Inter-op threads (torch.jit.fork, the inter-op pool) are not used by convmix: nothing here sets them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path

import torch

from .allocator import keep_freed_pages
from .i18n import _, ngettext

THREADS_ENV = "CONVMIX_THREADS"
MAX_THREADS = 1024
SERVER = "server"  # the app: one thread per forward
MEASUREMENT = "measurement"  # the command line and the benchmarks: the usable CPUs
SERVER_THREADS = 1
_local = threading.local()
_warned: set[str] = set()


def cgroup_cpu_quota(root: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """CPUs granted by the cgroup's quota (e.g. 1.5), or None when unlimited or unknown."""
    base = Path(root)
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        quota, period = (base / "cpu.max").read_text().split()[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
        return None
    except (OSError, ValueError):
        pass
    for v1 in (base / "cpu", base / "cpu,cpuacct", base):  # cgroup v1
        try:
            quota = float((v1 / "cpu.cfs_quota_us").read_text())
            period = float((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def usable_cpus(root: str | os.PathLike = "/sys/fs/cgroup") -> int:
    """How many CPUs this process may keep busy: affinity, cgroup quota and core count, the least."""
    counts = [os.cpu_count() or 1]
    if hasattr(os, "sched_getaffinity"):
        try:
            counts.append(len(os.sched_getaffinity(0)))
        except OSError:
            pass
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        counts.append(math.ceil(quota))
    return max(1, min(counts))


def default_threads(role: str = MEASUREMENT, root: str | os.PathLike = "/sys/fs/cgroup") -> int:
    """The count without $CONVMIX_THREADS: 1 for the server, the usable CPUs for a measurement."""
    if role == SERVER:
        return SERVER_THREADS
    if role == MEASUREMENT:
        return usable_cpus(root)
    raise ValueError(f"unknown role {role!r}: use {SERVER!r} or {MEASUREMENT!r}")


def thread_setting(role: str = MEASUREMENT, environ: dict | None = None,
                   root: str | os.PathLike = "/sys/fs/cgroup") -> tuple[int, str | None]:
    """The intra-op thread count for this role and, when $CONVMIX_THREADS is set but cannot be used,
    a sentence that says why and what is used instead (None otherwise)."""
    text = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip()
    default = default_threads(role, root)
    if not text:
        return default, None
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_THREADS:
        return int(text), None
    why = "one per forward in the app" if role == SERVER else "the CPUs this process may use"
    return default, (f"the setting {THREADS_ENV}={text[:40]!r} cannot be used: it must be a whole number of "
                     f"threads from 1 to {MAX_THREADS:,} (e.g. {THREADS_ENV}=1), or unset for the default, "
                     f"{default} ({why})")


def thread_count(environ: dict | None = None, root: str | os.PathLike = "/sys/fs/cgroup",
                 role: str = MEASUREMENT) -> int:
    """$CONVMIX_THREADS when it is a whole number from 1 to 1024, else the role's default."""
    return thread_setting(role, environ, root)[0]


def configure_torch(role: str = MEASUREMENT) -> int:
    """Give the calling thread (and threads that start later) the role's intra-op thread count, and
    the process glibc's heap thresholds for reusing freed pages (`convmix.allocator`).

    Cheap after the first call in a thread. An unusable $CONVMIX_THREADS is logged once and the
    default used (a typo in a setting must not take the app down); the command line checks
    `thread_setting` first and stops with the sentence instead. Returns the count.
    """
    keep_freed_pages()  # once per process: repeated forwards reuse their pages (convmix.allocator)
    threads, note = thread_setting(role)
    if getattr(_local, "threads", None) != threads or torch.get_num_threads() != threads:
        if note and note not in _warned:
            _warned.add(note)
            logging.getLogger(__name__).warning("%s; using the default", note)
        torch.set_num_threads(threads)
        _local.threads = threads
    return threads


def device_description() -> str:
    """What torch sees, in words (in the current language)."""
    if torch.cuda.is_available():
        idx = torch.cuda.current_device()
        return _("CUDA: {name} (torch {version})", name=torch.cuda.get_device_name(idx),
                 version=torch.__version__)
    threads = torch.get_num_threads()
    return ngettext("CPU only, {threads} thread (torch {version})",
                    "CPU only, {threads} threads (torch {version})", threads,
                    threads=threads, version=torch.__version__)
