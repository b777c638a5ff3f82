"""Process-wide torch settings, applied once (every Streamlit rerun is a new thread).

torch's thread count follows the CPUs this process may really use: a container limited to two
CPUs on a 64-core host gets 2 threads, not 64 (64 threads fighting over 2 CPUs run far slower than
2). The limit is the smallest of the CPUs the process may be scheduled on (sched_getaffinity), the
cgroup's CPU quota (cgroup v2 `cpu.max`, cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
rounded up, and os.cpu_count(). $CONVMIX_THREADS overrides it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from .i18n import _, ngettext

THREADS_ENV = "CONVMIX_THREADS"
MAX_THREADS = 1024
_configured = False


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


def thread_count(environ: dict | None = None, root: str | os.PathLike = "/sys/fs/cgroup") -> int:
    """$CONVMIX_THREADS when it is a whole number from 1 to 1024, else usable_cpus()."""
    text = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip()
    if text.isdigit() and 1 <= int(text) <= MAX_THREADS:
        return int(text)
    return usable_cpus(root)


def configure_torch() -> None:
    global _configured
    if _configured:
        return
    torch.set_num_threads(thread_count())
    _configured = True


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
