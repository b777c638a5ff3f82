"""benchmarks/gpu_reference.py: its grid and its result file on any machine; its CUDA paths (events,
float16 / bfloat16, the allocator's peak) where a GPU is present, skipped elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from convmix import bench, presets, sweep
from convmix.config import ACmixConfig

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_reference.py"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def gpu_reference():
    spec = importlib.util.spec_from_file_location("gpu_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_standard_grid_is_the_default_preset_at_two_batch_sizes(gpu_reference):
    configs = gpu_reference.reference_grid()
    assert len(configs) == 112 * 2
    assert {c.batch for c in configs} == {1, 32}
    per_batch = sweep.expand_grid(ACmixConfig(), presets.PRESETS[presets.DEFAULT_PRESET].axes_dict()).configs
    assert {c.with_(batch=1) for c in configs} == set(per_batch)


def test_measured_rows_make_a_result_file_the_explorer_reads(gpu_reference, monkeypatch, tmp_path):
    """The script's path from measurement to file, on the CPU with a tiny configuration."""
    cpu = torch.device("cpu")
    monkeypatch.setitem(bench._PEAKS, (str(cpu), "float32"),
                        bench.measure_peaks(cpu, "float32", matmul_size=64, copy_elements=1 << 12, repeats=2))
    config = ACmixConfig(in_planes=8, out_planes=8, kernel_att=3, head=2, height=8, width=8)
    seen = []
    df = gpu_reference.measure_grid([config], cpu, ["float32"], bench.BUDGETS["quick"], seen.append)
    assert len(df) == 1 and seen and "ms (IQR" in seen[0]
    (tmp_path / "ref.csv").write_bytes(sweep.to_csv(df))
    (path,) = sweep.reference_files(tmp_path)
    back = sweep.read_results(path.read_bytes(), path.name)
    assert back["device"].iloc[0] == "cpu" and back["latency_ms"].iloc[0] > 0


def test_without_cuda_it_refuses(gpu_reference, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_reference.main(["--layer", "layer4.1"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


@cuda
def test_cuda_reference_in_three_dtypes(gpu_reference, tmp_path, capsys):
    out = tmp_path / "gpu.csv"
    code = gpu_reference.main(["--layer", "layer4.1", "--kernel-att", "3", "7", "--head", "4", "--batch", "1",
                               "--budget", "quick", "--out", str(out)])
    assert code == 0
    df = sweep.read_results(out.read_bytes(), out.name)
    assert set(df["dtype"]) == {"float32", "float16", "bfloat16"} and len(df) == 6
    assert (df["device"] == "cuda").all()
    assert (df["device_name"] == torch.cuda.get_device_name()).all()
    assert (df["latency_ms_p25"] <= df["latency_ms"]).all() and (df["latency_ms"] <= df["latency_ms_p75"]).all()
    assert (df["peak_bytes"] > 0).all()  # the caching allocator's own peak
    # A half-precision forward allocates about half the bytes of a float32 one.
    peaks = df.groupby("dtype")["peak_bytes"].mean()
    assert peaks["float16"] < peaks["float32"] and peaks["bfloat16"] < peaks["float32"]
    assert "float16 / float32" in capsys.readouterr().out


@cuda
def test_cuda_timing_uses_events(monkeypatch):
    """Every timed call on CUDA is bracketed by a pair of CUDA events."""
    recorded = []
    real = torch.cuda.Event

    class Counting(real):
        def record(self, *args, **kwargs):
            recorded.append(self)
            return super().record(*args, **kwargs)

    monkeypatch.setattr(torch.cuda, "Event", Counting)
    device = torch.device("cuda")
    timings = bench.time_alternated({"a": lambda: torch.ones(64, device=device).sum()}, device,
                                    bench.Budget(warmup=1, min_rounds=3, max_rounds=3, seconds=0.0))
    assert timings["a"].samples == 3 and len(recorded) == 6


@cuda
def test_cuda_parts_are_clocked_by_events_inside_the_forward():
    """On CUDA the part clock stamps events on the stream: each part is positive, the parts fit in
    the total, and the output of a clocked call is the forward's."""
    device = torch.device("cuda")
    config = ACmixConfig(in_planes=32, out_planes=32, kernel_att=5, head=4, height=28, width=28)
    module, x = config.build().to(device).eval(), config.make_input(device=device)
    with torch.no_grad(), bench.PartClock(module, x).attached() as clock:
        plain = module(x)
        clock.reset()
        torch.testing.assert_close(clock(), plain, rtol=0, atol=0)
        torch.cuda.synchronize(device)
        spent = clock.spent()
    assert set(spent) == set(bench.PARTS) and all(v > 0 for v in spent.values())
    row = bench.measure_config(config, device="cuda", budget=bench.BUDGETS["quick"])
    parts = sum(row[f"{name}_ms"] for name in bench.PARTS)
    assert 0 < parts <= row["latency_ms_p75"] * 1.05
