"""glibc's C allocator, where torch's CPU tensors live: trimming freed pages and keeping them mapped.

torch allocates CPU tensors with the C allocator. glibc returns the free top of its heap to the
system once it exceeds a trim threshold, and serves blocks above an mmap threshold with mmaps of
their own. Both thresholds start small (128 KiB) and grow only when a large mmapped block is freed,
so a forward whose temporaries are a few MiB (the fast path at the default configuration) hands
its pages back at the end and page-faults them in again, zero-filled, in the next forward: 90 to
390 faults a forward on the 2-core test machine (410 forwards took 0.88× the time with the
thresholds pinned, measured as whole processes). `keep_freed_pages` pins both thresholds at the
largest value glibc's own adjustment would reach (32 MiB blocks from the heap, 64 MiB of free top
kept), so repeated forwards reuse their pages. What is kept stays bounded: the app trims after a
run that grew the process (convmix.budget.release_freed_memory), and the memory budget counts what
the process holds after `malloc_trim`, which ignores the thresholds.

glibc reads MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_ from the environment; an operator who
sets either keeps their own choice. Elsewhere (musl, macOS, Windows) both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import lru_cache

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic mmap threshold on 64-bit systems
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc keeps twice the mmap threshold when it adjusts itself
ENVIRONMENT = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - musl and others lack them: AttributeError
        return libc
    except (OSError, AttributeError):
        return None


def malloc_trim() -> bool:
    """Hand freed heap pages back to the system; False where there is no glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@lru_cache(maxsize=1)
def keep_freed_pages() -> bool:
    """Pin glibc's thresholds (module docstring) once per process; True when they were set."""
    libc = _glibc()
    if libc is None or any(os.environ.get(name) for name in ENVIRONMENT):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
