"""Cached modules and traces, keyed by the (hashable, frozen) configuration."""

from __future__ import annotations

import streamlit as st

from convmix.config import ACmixConfig
from convmix.trace import Trace, trace_forward


@st.cache_resource(max_entries=16, show_spinner=False)
def get_module(config: ACmixConfig, impl: str = "reference"):
    """The ACmix module for `config` (shared, read-only: pages never change its weights)."""
    return config.build(impl=impl)


# Each trace may be as large as the memory budget (pages check it first), so keep only two.
@st.cache_resource(max_entries=2, show_spinner="Running the forward pass…")
def get_trace(config: ACmixConfig) -> Trace:
    """One traced forward of the configuration's module on its seeded input."""
    module = get_module(config)
    return trace_forward(module, config.make_input())
