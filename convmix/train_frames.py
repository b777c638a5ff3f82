"""Long DataFrames of a training run's history, ready for Altair charts (pandas only, no Streamlit)."""

from __future__ import annotations

import pandas as pd
import torch

from .train import AttentionSnapshot


def curves_frame(history: list[dict]) -> pd.DataFrame:
    """step, epoch, split ("training" / "held-out"), metric ("loss" / "accuracy"), value.

    Training values are the mean over the minibatches since the previous record (absent at step 0);
    held-out values are the whole held-out set at that step."""
    rows = []
    for r in history:
        for split, prefix in (("training", "train"), ("held-out", "held_out")):
            for metric in ("loss", "accuracy"):
                value = r[f"{prefix}_{metric}"]
                if value is not None:
                    rows.append((r["step"], r["epoch"], split, metric, value))
    return pd.DataFrame(rows, columns=["step", "epoch", "split", "metric", "value"])


def rates_frame(history: list[dict]) -> pd.DataFrame:
    """step, epoch, layer, rate ("rate1" weighs attention, "rate2" convolution), value."""
    rows = [(r["step"], r["epoch"], layer, rate, value)
            for r in history for rate in ("rate1", "rate2") for layer, value in r[rate].items()]
    return pd.DataFrame(rows, columns=["step", "epoch", "layer", "rate", "value"])


def bias_frame(history: list[dict]) -> pd.DataFrame:
    """step, epoch, channel, parameter ("stem bias", "BatchNorm bias"), value."""
    rows = []
    for r in history:
        for parameter, key in (("stem bias", "stem_bias"), ("BatchNorm bias", "bn_bias")):
            for channel, value in enumerate(r[key] or ()):
                rows.append((r["step"], r["epoch"], channel, parameter, value))
    return pd.DataFrame(rows, columns=["step", "epoch", "channel", "parameter", "value"])


def attention_frame(snapshot: AttentionSnapshot, layer: str, row: int, col: int) -> pd.DataFrame:
    """The window weights of query (row, col) of `layer`, for every head: head, dy, dx, weight.

    (dy, dx) is the position inside the kernel_att x kernel_att window (0, 0 at the top left); the
    weights of one head sum to 1 (a softmax over the window)."""
    att = snapshot.attention[layer]  # (head, K, Ho, Wo)
    heads, window, height, width = att.shape
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"the query must lie in the {height}x{width} output, not at ({row}, {col})")
    ka = round(window**0.5)
    weights = att[:, :, row, col]
    head, j = torch.meshgrid(torch.arange(heads), torch.arange(window), indexing="ij")
    return pd.DataFrame({"head": head.flatten().numpy(), "dy": (j // ka).flatten().numpy(),
                         "dx": (j % ka).flatten().numpy(), "weight": weights.flatten().numpy()})
