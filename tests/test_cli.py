"""`python -m convmix sweep` end to end on tiny sizes: the CSV it writes, its notes and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convmix import sweep
from convmix.acmix import ATTENTION_IMPLS
from convmix.config import ACmixConfig

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convmix", "sweep", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_measured_sweep_writes_a_valid_result_file(tmp_path):
    out = tmp_path / "tiny.csv"
    result = run("--in-planes", "4", "--out-planes", "8", "--kernel-att", "3", "5", "--head", "1", "3", "4",
                 "--size", "6", "8x10", "--budget", "quick", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    # head 3 does not divide 8: skipped with a note; the other 2 × 2 × 2 run, with progress.
    assert "note: 4 configurations skipped" in result.stderr  # 2 sizes × 2 windows with head 3
    assert "head (3) must divide out_planes (8)" in result.stderr
    assert "[8/8]" in result.stderr and f"wrote 8 row(s) to {out}" in result.stderr
    df = sweep.read_results(out.read_bytes(), out.name)
    assert len(df) == 8
    assert set(df["head"]) == {1, 4} and set(df["kernel_att"]) == {3, 5}
    assert set(zip(df["height"], df["width"], strict=True)) == {(6, 6), (8, 10)}
    assert (df["device"] == "cpu").all() and (df["dtype"] == "float32").all()
    assert (df["torch_version"] == torch.__version__).all()
    assert (df["latency_ms_p25"] <= df["latency_ms"]).all() and (df["latency_ms"] <= df["latency_ms_p75"]).all()
    assert (df["peak_bytes"] > 0).all()
    for row in df.itertuples():
        module = ACmixConfig(in_planes=row.in_planes, out_planes=row.out_planes, kernel_att=row.kernel_att,
                             head=row.head, kernel_conv=row.kernel_conv).build()
        assert row.params == sum(p.numel() for p in module.parameters())


def test_counts_only_to_stdout_pairs_in_and_out_planes():
    result = run("--in-planes", "8", "16", "--kernel-att", "3", "--size", "8", "--counts-only")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(",".join(sweep.REQUIRED_COLUMNS))
    df = sweep.read_results(result.stdout.encode())
    assert list(zip(df["in_planes"], df["out_planes"], strict=True)) == [(8, 8), (16, 16)]
    assert df["latency_ms"].isna().all()
    for row in df.itertuples():
        module = ACmixConfig(in_planes=row.in_planes, out_planes=row.out_planes, kernel_att=3).build()
        assert row.params == sum(p.numel() for p in module.parameters())


def test_nothing_valid_is_an_error_without_traceback(tmp_path):
    out = tmp_path / "none.csv"
    result = run("--in-planes", "8", "--head", "3", "--kernel-conv", "5", "--counts-only", "--out", str(out))
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "error: no configuration in this sweep can run" in result.stderr
    assert "pads by 1 whatever kernel_conv is" in result.stderr and not out.exists()


def run_here(capsys, *args: str) -> tuple[int, str, str]:
    """The same entry point in this process (argument errors need no fresh interpreter)."""
    from convmix.__main__ import main

    try:
        code = main(["sweep", *args])
    except SystemExit as exit_:  # argparse exits on its own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--head", "four"], "argument --head: 'four' is not a whole number"),
        (["--kernel-att", "0"], "argument --kernel-att: 0 is outside 1 to 31"),
        (["--size", "8x8x8"], "is not a size"),
        (["--dtype", "float16", "--device", "cpu"], "float16 is not measured on cpu: use float32"),
        (["--impl", "imaginary"], "argument --impl: invalid choice"),
        (["--device", "tpu"], "use auto, cpu or cuda"),
        (["--memory-limit", "lots"], "not a memory size: 'lots'"),
        # Item 9: these raised OverflowError, even with --counts-only.
        (["--memory-limit", "1e999"], "a memory budget must be at most 1 PiB"),
        (["--memory-limit", "1e999", "--counts-only"], "a memory budget must be at most 1 PiB"),
        (["--time-limit", "1e999"], "a time limit must be more than 0"),
    ],
)
def test_bad_arguments_are_reported_clearly(capsys, args, message):
    code, _, err = run_here(capsys, *args, "--in-planes", "4", "--size", "6", "--out", "/nonexistent/x.csv")
    assert code == 2
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_reported(capsys):
    code, _, err = run_here(capsys, "--device", "cuda", "--in-planes", "4", "--size", "6")
    assert code == 2 and "torch sees no CUDA device" in err


def test_unwritable_output_is_reported(capsys):
    code, _, err = run_here(capsys, "--in-planes", "4", "--size", "6", "--counts-only", "--out", "/nonexistent/x.csv")
    assert code == 2 and "error: cannot write /nonexistent/x.csv" in err


def test_help_lists_the_registered_attention_implementations(capsys):
    code, out, _ = run_here(capsys, "--help")
    assert code == 0
    for impl in ATTENTION_IMPLS:
        assert impl in out


def test_an_unreadable_budget_variable_is_reported(capsys, monkeypatch):
    """Item 9: CONVMIX_MEMORY_BUDGET=1e999 raised OverflowError."""
    monkeypatch.setenv("CONVMIX_MEMORY_BUDGET", "1e999")
    code, _, err = run_here(capsys, "--in-planes", "4", "--size", "6", "--counts-only")
    assert code == 2 and "CONVMIX_MEMORY_BUDGET cannot be used" in err and "Traceback" not in err


def test_the_baseline_counts_in_the_cli_too(tmp_path, monkeypatch):
    """Item 1: this sweep peaked at 4,672 MiB under the default 1 GiB budget; now it is skipped with
    the estimate, before anything is built."""
    monkeypatch.setenv("CONVMIX_MEMORY_BUDGET", "")  # the CLI's own default
    out = tmp_path / "wide.csv"
    result = run("--in-planes", "2048", "--kernel-conv", "15", "--variant", "fixed", "--kernel-att", "1",
                 "--size", "8", "--budget", "quick", "--out", str(out), timeout=120)
    assert_no_traceback(result)
    assert result.returncode == 2 and not out.exists()
    assert "skipped: Measuring this configuration would need about" in result.stderr
    assert "over this server's memory budget of 1.0 GiB" in result.stderr


def test_time_limit_skips_what_would_take_longer(tmp_path):
    out = tmp_path / "slow.csv"
    result = run("--in-planes", "8", "--out-planes", "64", "--kernel-att", "1", "--head", "32",
                 "--kernel-conv", "15", "--variant", "fixed", "--size", "48", "--batch", "64", "4",
                 "--budget", "quick", "--time-limit", "30", "--memory-limit", "16GiB", "--out", str(out),
                 timeout=240)
    assert_no_traceback(result)
    refused = [line for line in result.stderr.splitlines() if "B=64" in line]
    assert refused and "skipped: Measuring this configuration would take about" in refused[0]
    assert "over its limit of 30 s per request" in result.stderr


# -- issue 15: presets ----------------------------------------------------------------------------------------
def test_the_resnet_preset_counts_every_layer_shape(capsys):
    code, out, err = run_here(capsys, "--preset", "resnet-stages", "--counts-only")
    assert code == 0, err
    df = sweep.read_results(out.encode())
    assert len(df) == 112
    shapes = set(zip(df["in_planes"], df["height"], df["stride"], strict=True))
    assert shapes == {(64, 56, 1), (128, 56, 2), (128, 28, 1), (256, 28, 2), (256, 14, 1), (512, 14, 2), (512, 7, 1)}
    assert set(df["kernel_att"]) == {3, 5, 7, 9} and set(df["head"]) == {1, 2, 4, 8}


def test_a_flag_beside_a_preset_replaces_that_axis(capsys):
    code, out, _ = run_here(capsys, "--preset", "resnet-stages", "--kernel-att", "7", "--head", "4", "--counts-only")
    assert code == 0
    df = sweep.read_results(out.encode())
    assert len(df) == 7 and set(df["kernel_att"]) == {7} and set(df["head"]) == {4}
    code, out, _ = run_here(capsys, "--preset", "kernel-head-stride", "--in-planes", "8", "--size", "8",
                            "--counts-only")
    df = sweep.read_results(out.encode())
    assert code == 0 and len(df) == 32 and set(df["in_planes"]) == {8} and set(df["stride"]) == {1, 2}


@pytest.mark.parametrize("extra", [["--size", "8"], ["--stride", "2"], ["--in-planes", "8"]])
def test_layers_set_their_own_shapes(capsys, extra):
    code, _, err = run_here(capsys, "--layer", "layer2.0", *extra, "--counts-only")
    assert code == 2 and "sets the channels, input size and stride of each layer" in err and "Traceback" not in err


def test_measured_preset_layers_on_tiny_budget(tmp_path):
    """--preset with --layer narrowed to the smallest shape, measured: a valid result file."""
    out = tmp_path / "layer.csv"
    result = run("--preset", "resnet-stages", "--layer", "layer4.1", "--kernel-att", "3", "--head", "8",
                 "--budget", "quick", "--out", str(out))
    assert result.returncode == 0, result.stderr
    df = sweep.read_results(out.read_bytes())
    assert len(df) == 1 and (df["in_planes"] == 512).all() and (df["height"] == 7).all()
    assert 0 <= df["others_cpu_share"].iloc[0] <= 1


# -- issue 16: the stopping rule and the threads of a sweep ---------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["--threads", "0"], "argument --threads: '0' is not auto or a whole number from 1 to 1,024"),
        (["--threads", "many"], "argument --threads: 'many' is not auto or a whole number"),
        (["--precision", "150"], "argument --precision: 150 is outside 0 to 100"),
        (["--precision", "tight"], "argument --precision: 'tight' is not a number"),
    ],
)
def test_bad_threads_and_precision_are_reported(capsys, args, message):
    code, _, err = run_here(capsys, *args, "--in-planes", "4", "--size", "6")
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, precision, threads",
    [([], 0.05, 3), (["--precision", "0"], None, 3), (["--precision", "7.5", "--threads", "2"], 0.075, 2)],
)
def test_the_stopping_rule_and_threads_reach_the_measurement(capsys, monkeypatch, args, precision, threads):
    from convmix import bench

    seen = []

    def measure(config, **kwargs):
        seen.append((kwargs["budget"], torch.get_num_threads()))
        raise bench.MeasureError("not measured here")

    monkeypatch.setattr(bench, "measure_config", measure)
    monkeypatch.setattr(sweep, "idle_cpus", lambda **kwargs: 3.0)  # the auto choice, fixed
    monkeypatch.setattr("convmix.runtime.usable_cpus", lambda root="/sys/fs/cgroup": 4)
    monkeypatch.delenv("CONVMIX_THREADS", raising=False)
    before = torch.get_num_threads()
    code, _, err = run_here(capsys, "--in-planes", "4", "--size", "6", *args)
    assert code == 2 and "no configuration could be measured" in err
    budget, used = seen[0]
    assert budget.precision == precision and budget.min_rounds == bench.BUDGETS["standard"].min_rounds
    assert used == threads
    after = torch.get_num_threads()
    torch.set_num_threads(before)
    assert after == 4  # the command line's own count (the usable CPUs), restored after the sweep


def test_a_measured_sweep_records_the_threads_it_used(tmp_path):
    out = tmp_path / "threads.csv"
    result = run("--in-planes", "4", "--out-planes", "8", "--kernel-att", "3", "--size", "6", "--budget", "quick",
                 "--threads", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "1 threads" in result.stderr and " rounds)" in result.stderr
    df = sweep.read_results(out.read_bytes())
    assert (df["threads"] == 1).all()
