"""torch's thread count follows the CPUs the container really grants (item 13 of issue 11)."""

from __future__ import annotations

import math
import os

import pytest

from convmix import runtime


def cgroup(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "files, quota",
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2: 2 CPUs
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),  # v2, unlimited
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "400000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 4.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, unlimited
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),  # no cgroup files at all (macOS, a bare VM)
    ],
)
def test_cgroup_quota(tmp_path, files, quota):
    assert runtime.cgroup_cpu_quota(cgroup(tmp_path, files)) == quota


def test_usable_cpus_is_the_least_of_quota_affinity_and_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert runtime.usable_cpus(cgroup(tmp_path, {"cpu.max": "150000 100000"})) == 2  # 1.5 CPUs -> 2
    assert runtime.usable_cpus(cgroup(tmp_path / "x", {"cpu.max": "max 100000"})) == 16  # affinity
    assert runtime.usable_cpus(cgroup(tmp_path / "y", {"cpu.max": "5000 100000"})) == 1  # never 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)
    assert runtime.usable_cpus(cgroup(tmp_path / "z", {})) == 3


def test_this_machine(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    expected = min(os.cpu_count() or 1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    quota = runtime.cgroup_cpu_quota()
    if quota is not None:
        expected = min(expected, math.ceil(quota))
    assert runtime.thread_count() == max(1, expected)


@pytest.mark.parametrize("value, expected", [("3", 3), ("1", 1), ("0", None), ("-2", None), ("1e400", None),
                                             ("many", None), ("99999", None), ("", None)])
def test_threads_variable_overrides_when_it_is_a_sane_count(tmp_path, value, expected):
    root = cgroup(tmp_path, {"cpu.max": "300000 100000"})
    got = runtime.thread_count({runtime.THREADS_ENV: value}, root)
    assert got == (expected if expected is not None else runtime.usable_cpus(root))
