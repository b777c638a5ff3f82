"""Cached modules and traces, keyed by the (hashable, frozen) configuration."""

from __future__ import annotations

import logging
import os

import streamlit as st

from convmix import budget
from convmix.config import ACmixConfig
from convmix.trace import Trace, trace_forward

_log = logging.getLogger(__name__)


def adopt_secret_budget() -> None:
    """Use `memory_budget` from Streamlit secrets when $CONVMIX_MEMORY_BUDGET is not set.

    Setting the variable once makes every convmix.budget.memory_budget() call, in pages and in the
    library, see the same budget.
    """
    if os.environ.get(budget.BUDGET_ENV):
        return
    try:
        secret = st.secrets.get("memory_budget")
    except Exception:  # no secrets file at all: nothing to adopt
        return
    if secret in (None, ""):
        return
    try:
        os.environ[budget.BUDGET_ENV] = str(budget.parse_bytes(secret))
    except ValueError as err:
        _log.warning("ignoring secrets.memory_budget: %s", err)


def module_within_budget(config: ACmixConfig):
    """The cached module, or None after a warning when its weights alone exceed the budget."""
    refusal = budget.check(config, budget.memory_budget(), budget.module_bytes, "Building this module")
    if refusal is not None:
        st.warning(refusal.message(), icon=":material/memory:")
        return None
    return get_module(config)


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
