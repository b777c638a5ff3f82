"""glibc's heap thresholds (convmix.allocator): repeated forwards reuse their pages instead of
faulting them in afresh, every process that configures torch gets this once, and an operator's own
MALLOC_*_ settings win. Checked in fresh processes: the thresholds are process-wide and one-way."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from convmix import allocator

ROOT = Path(__file__).resolve().parents[1]
linux_glibc = pytest.mark.skipif(allocator._glibc() is None, reason="needs glibc (Linux)")

# Minor page faults per no-grad forward of the default configuration's fast path on one thread,
# after warm-up: the C allocator's thresholds are set (or not) by what `setup` runs first.
FAULTS = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, {root!r})
    import torch
    from convmix import allocator, runtime
    from convmix.config import ACmixConfig
    set_here = {setup}
    torch.set_num_threads(1)
    config = ACmixConfig()
    module, x = config.build("fast").eval(), config.make_input()
    with torch.no_grad():
        for _ in range(5):
            module(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(40):
            module(x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    print(json.dumps({{"set": set_here, "faults": (after - before) / 40}}))
""")


def faults_per_forward(setup: str, env: dict | None = None) -> dict:
    import os

    code = FAULTS.format(root=str(ROOT), setup=setup)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


@linux_glibc
def test_configured_processes_reuse_the_pages_of_the_previous_forward():
    """Without the thresholds each forward faults pages in afresh (90 to 390 here at the default
    configuration, with glibc's own thresholds wherever its history left them); with them, almost
    none (0 to 8 alone, up to about 20 beside a busy test run). The server's and the command line's setup, configure_torch, sets them."""
    plain = faults_per_forward("False")
    kept = faults_per_forward("runtime.configure_torch(runtime.SERVER) and allocator.keep_freed_pages()")
    assert kept["set"] is True
    assert plain["faults"] > 40, plain  # the problem is there to be fixed (else this test proves nothing)
    assert kept["faults"] < 40, kept
    assert kept["faults"] < plain["faults"] / 3, (plain, kept)


@linux_glibc
def test_an_operators_own_malloc_settings_are_kept():
    """glibc reads MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ itself; convmix then sets nothing."""
    result = faults_per_forward("allocator.keep_freed_pages()", env={"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert result["set"] is False


def test_without_glibc_nothing_is_set(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    allocator.keep_freed_pages.cache_clear()
    try:
        assert allocator.keep_freed_pages() is False
        assert allocator.malloc_trim() is False
    finally:
        allocator.keep_freed_pages.cache_clear()


def test_the_pinned_thresholds_are_glibcs_own_largest():
    """64-bit glibc caps its dynamic mmap threshold at 32 MiB and keeps twice it as free top."""
    assert allocator.MMAP_THRESHOLD == 32 * 2**20
    assert allocator.TRIM_THRESHOLD == 2 * allocator.MMAP_THRESHOLD
