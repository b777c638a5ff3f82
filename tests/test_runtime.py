"""torch's thread count: the CPUs the container really grants for a lone measurement (item 13 of
issue 11), one per forward in the app, in every thread Streamlit runs a rerun in (issue 16)."""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading

import pytest
import torch
import torch.nn.functional as F

from convmix import runtime
from convmix.__main__ import main as cli


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
    server = runtime.thread_count({runtime.THREADS_ENV: value}, root, role=runtime.SERVER)
    assert server == (expected if expected is not None else 1)


# -- the role decides the default; an unusable value is named, never a traceback -----------------------
def test_the_server_defaults_to_one_thread_and_a_measurement_to_the_usable_cpus(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": "300000 100000"})
    assert runtime.thread_setting(runtime.SERVER, {}, root) == (1, None)
    assert runtime.thread_setting(runtime.MEASUREMENT, {}, root) == (runtime.usable_cpus(root), None)
    assert runtime.thread_setting(runtime.SERVER, {runtime.THREADS_ENV: " 4 "}, root) == (4, None)
    with pytest.raises(ValueError, match="unknown role"):
        runtime.thread_setting("desktop", {}, root)


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5", "99999", "٣"])
def test_an_unusable_value_is_named_with_what_would_work(tmp_path, value):
    root = cgroup(tmp_path, {"cpu.max": "300000 100000"})
    threads, note = runtime.thread_setting(runtime.SERVER, {runtime.THREADS_ENV: value}, root)
    assert threads == 1
    assert f"CONVMIX_THREADS={value!r} cannot be used" in note
    assert "whole number of threads from 1 to 1,024" in note and "CONVMIX_THREADS=1" in note


def test_the_command_line_stops_on_an_unusable_value(capsys, monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "many")
    assert cli(["sweep", "--counts-only"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: the setting CONVMIX_THREADS='many' cannot be used")
    assert "Traceback" not in captured.err


def test_the_command_line_measures_with_the_usable_cpus_and_says_so(capsys, monkeypatch, restore_threads):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    # A quiet machine (convmix.sweep.sweep_threads counts the CPUs others leave idle: all of them)
    monkeypatch.setattr("convmix.sweep.idle_cpus", lambda **kwargs: float(runtime.usable_cpus()))
    assert cli(["sweep", "--kernel-att", "3", "--head", "1", "--in-planes", "8", "--size", "8",
                "--budget", "quick"]) == 0
    expected = runtime.usable_cpus()
    assert torch.get_num_threads() == expected
    err = capsys.readouterr().err
    assert f", {expected} threads)" in err.splitlines()[0]


# -- the count reaches the threads that compute ------------------------------------------------------
_TORCH_CPU = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")


def thread_state(ask_torch: bool = True) -> dict[str, int]:
    """This thread's OpenMP team size and MKL thread count, read from the libraries themselves
    (before anything asks torch, which would initialise the thread), then torch's own answer."""
    lib = ctypes.CDLL(_TORCH_CPU)
    state = {"openmp": lib.omp_get_max_threads(), "mkl": lib.mkl_get_max_threads()}
    if ask_torch:
        state["torch"] = torch.get_num_threads()
    return state


def other_threads_busy(op, calls: int = 6) -> int:
    """How many other threads of this process used the CPU while this thread ran `op` (Linux):
    an OpenMP or MKL team of more than one thread shows up here."""
    me = str(threading.get_native_id())

    def ticks() -> dict[str, int]:
        out = {}
        for task in os.listdir("/proc/self/task"):
            try:
                fields = open(f"/proc/self/task/{task}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[task] = int(fields[11]) + int(fields[12])
        return out

    before = ticks()
    for _ in range(calls):
        op()
    after = ticks()
    return sum(1 for t, v in after.items() if t != me and v > before.get(t, 0))


def in_fresh_thread(fn):
    out = {}
    worker = threading.Thread(target=lambda: out.update(value=fn()))
    worker.start()
    worker.join()
    return out["value"]


needs_libs = pytest.mark.skipif(not os.path.exists(_TORCH_CPU) or not hasattr(os, "sched_getaffinity"),
                                reason="reads OpenMP/MKL of a Linux torch wheel and /proc")
needs_two_cpus = pytest.mark.skipif(runtime.usable_cpus() < 2, reason="a team of one thread cannot be told apart")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


_X, _W, _A = torch.randn(4, 64, 96, 96), torch.randn(64, 64, 3, 3), torch.randn(768, 768)


def convolution_and_product():
    F.conv2d(_X, _W, padding=1)
    _A @ _A


@needs_libs
@needs_two_cpus
def test_a_fresh_thread_ignores_the_count_unless_configured(restore_threads):
    """Why configure_torch runs in every thread: torch.set_num_threads(1) in one thread leaves a thread
    that starts later with OpenMP's and MKL's process default for its convolutions and products."""
    runtime.configure_torch(runtime.SERVER)

    def unconfigured():  # a convolution and a product first: nothing initialises the thread
        return thread_state(ask_torch=False), other_threads_busy(convolution_and_product)

    def configured():
        runtime.configure_torch(runtime.SERVER)
        return thread_state(), other_threads_busy(convolution_and_product)

    fresh, busy_fresh = in_fresh_thread(unconfigured)
    assert fresh == {"openmp": runtime.usable_cpus(), "mkl": runtime.usable_cpus()}
    assert busy_fresh >= 1  # the probe sees a team of several threads
    state, busy = in_fresh_thread(configured)
    assert state == {"openmp": 1, "mkl": 1, "torch": 1}
    assert busy == 0


@needs_libs
def test_every_rerun_of_the_app_computes_with_one_thread(app, monkeypatch, restore_threads):
    """The router gives each rerun's thread (a new one every time) one thread, whatever the process
    had: here the test's own threads are set to 2 first."""
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    torch.set_num_threads(2)
    seen = []
    shown = runtime.device_description

    def spy():  # the home page asks for the device's words in its own thread
        seen.append((threading.current_thread(), thread_state()))
        return shown()

    monkeypatch.setattr(runtime, "device_description", spy)
    at = app()
    at.run()
    assert not at.exception
    assert len(seen) == 2 and seen[0][0] is not seen[1][0]  # two runs, two threads
    assert threading.main_thread() not in (seen[0][0], seen[1][0])
    assert all(state == {"openmp": 1, "mkl": 1, "torch": 1} for _thread, state in seen)
    assert any("torch sees: **CPU only, 1 thread (torch" in md.value for md in at.markdown)


@pytest.mark.parametrize("value, shown", [("2", "2 threads"), ("a lot", "1 thread")])
def test_the_variable_sets_the_app_and_a_bad_one_is_logged_not_raised(app, monkeypatch, caplog, restore_threads,
                                                                       value, shown):
    monkeypatch.setenv(runtime.THREADS_ENV, value)
    runtime._warned.clear()
    with caplog.at_level(logging.WARNING, logger="convmix.runtime"):
        at = app()
    assert not at.exception
    assert any(f"torch sees: **CPU only, {shown} (torch" in md.value for md in at.markdown)
    warned = [r.getMessage() for r in caplog.records if r.name == "convmix.runtime"]
    if value == "2":
        assert not warned
    else:
        assert warned == ["the setting CONVMIX_THREADS='a lot' cannot be used: it must be a whole number of threads "
                          "from 1 to 1,024 (e.g. CONVMIX_THREADS=1), or unset for the default, 1 (one per forward "
                          "in the app); using the default"]
