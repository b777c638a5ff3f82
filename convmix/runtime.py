"""Process-wide torch settings, applied once (every Streamlit rerun is a new thread)."""

from __future__ import annotations

import os

import torch

_configured = False


def configure_torch() -> None:
    global _configured
    if _configured:
        return
    threads = int(os.environ.get("CONVMIX_THREADS", "0")) or max(1, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    _configured = True


def device_description() -> str:
    """What torch sees, in words."""
    if torch.cuda.is_available():
        idx = torch.cuda.current_device()
        return f"CUDA: {torch.cuda.get_device_name(idx)} (torch {torch.__version__})"
    return f"CPU only, {torch.get_num_threads()} threads (torch {torch.__version__})"
