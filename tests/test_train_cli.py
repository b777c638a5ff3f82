"""`python -m convmix train`: one real run end to end (one epoch of a tiny network), and its errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convmix.__main__ import main
from convmix.train_checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TINY_FLAGS = ["--width", "8", "--head", "2", "--kernel-att", "3", "--batch", "64"]


def test_train_prints_epochs_and_the_held_out_accuracy_last_and_writes_a_checkpoint(tmp_path):
    out = tmp_path / "model.pt"
    result = subprocess.run(
        [sys.executable, "-m", "convmix", "train", "--seed", "0", "--epochs", "2", *TINY_FLAGS, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ, CONVMIX_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["epoch 1/2", "epoch 2/2"]
    assert "held-out accuracy 0." in lines[0] and "mixer rate1" in lines[0]
    match = re.fullmatch(r"held-out accuracy: (0\.\d{4}|1\.0000)", lines[-1])
    assert match, lines[-1]
    assert f"wrote {out}" in result.stderr
    raw = torch.load(out, weights_only=True)
    assert raw["config"]["seed"] == 0 and raw["config"]["epochs"] == 2 and raw["config"]["width"] == 8
    assert f"{raw['held_out_accuracy']:.4f}" == match.group(1)
    assert load_checkpoint(out).step == 2 * 23  # 1,438 training digits in batches of 64


@pytest.mark.parametrize("flags, words", [
    (["--epochs", "0"], "argument --epochs: 0 is outside 1 to 50"),
    (["--epochs", "two"], "argument --epochs: 'two' is not a whole number"),
    (["--lr", "nan"], "argument --lr: nan is outside 0.0001 to 1"),
    (["--ablation", "none"], "argument --ablation: invalid choice"),
    (["--time-limit", "-3"], "not a positive number of seconds"),
])
def test_bad_flags_get_usage_and_a_reason(flags, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "usage: python -m convmix train" in err


@pytest.mark.parametrize("flags, words", [
    (["--stride", "3"], "Use stride 1, 2, 4 or 8, or the fixed variant."),
    (["--head", "3"], "head (3) must divide width (16)"),
    (["--kernel-att", "4"], "kernel_att (4) must be odd"),
])
def test_configurations_that_cannot_run_are_refused_before_training(flags, words, capsys):
    assert main(["train", *flags]) == 2
    captured = capsys.readouterr()
    assert words in captured.err and captured.err.startswith("error: ")
    assert captured.out == ""


def test_an_unwritable_output_is_refused_before_training(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "missing" / "model.pt")]) == 2
    assert "is not a writable folder" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err


def test_a_time_cap_stops_the_run_early_and_says_so(tmp_path, capsys):
    out = tmp_path / "partial.pt"
    code = main(["train", *TINY_FLAGS, "--time-limit", "1e-9", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "stopped early: the time cap of 1e-09 s per run was reached after 0 of" in captured.err
    assert captured.out.strip().splitlines()[-1].startswith("held-out accuracy: ")
    assert load_checkpoint(out).step == 0
