"""Independent computations and measurements shared by several test modules."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from convmix.models import block_layout


def by_hand_until(model, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The network's modules called one by one (not its forward), up to `layer`'s input."""
    with torch.no_grad():
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for spec in block_layout(model.depth, x.shape[2], x.shape[3]):
            block = model.get_submodule(spec.name)
            inner = block.relu(block.bn1(block.conv1(y)))
            if spec.acmix_name == layer:
                return inner
            out = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(inner)))))
            shortcut = y if block.downsample is None else block.downsample(y)
            y = block.relu(out + shortcut)
    raise AssertionError(layer)


def rss() -> int:
    """The process's resident memory in bytes (Linux: /proc/self/statm)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(work: Callable[[], Any], interval: float = 0.0005) -> tuple[Any, int]:
    """Run `work` and return (its result, the most resident memory it added at any moment),
    sampled every `interval` seconds from a clean start (garbage collected, freed heap returned)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = rss()
    peak, done = [base], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    return result, max(peak[0], rss()) - base
