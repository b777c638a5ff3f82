"""How busy the machine is: other processes' share of the CPUs between two moments, from /proc/stat.

Without torch, so that the command line can take its first snapshot before its imports.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuSnapshot:
    """Busy seconds of all CPUs (/proc/stat) and of this process, at one moment."""

    wall: float
    busy: float
    own: float
    cpus: int


def cpu_snapshot(stat_path: str = "/proc/stat") -> CpuSnapshot | None:
    """Now, or None where /proc/stat cannot be read (not Linux)."""
    try:
        with open(stat_path, encoding="ascii") as f:
            lines = f.read().splitlines()
        ticks = [int(v) for v in lines[0].split()[1:]]
        cpus = sum(1 for line in lines if re.match(r"cpu\d+ ", line))
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    # user, nice, system, idle, iowait, irq, softirq (steal and guest time are left out)
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    busy = (sum(ticks[:7]) - idle) / hz
    return CpuSnapshot(time.monotonic(), busy, time.process_time(), max(cpus, 1))


def others_cpu_share(before: CpuSnapshot | None, after: CpuSnapshot | None) -> float:
    """The share of all CPUs' time between the snapshots that other processes used (0 to 1), NaN if unknown."""
    if before is None or after is None or after.wall <= before.wall:
        return math.nan
    others = (after.busy - before.busy) - (after.own - before.own)
    return min(1.0, max(0.0, others / ((after.wall - before.wall) * after.cpus)))


def load_average() -> float:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return math.nan
