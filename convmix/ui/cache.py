"""Cached modules and traces: keyed by what determines them, bounded by bytes as well as entries.

A module's weights depend on its hyperparameters, variant and seed, not on the input's size or
batch, so one module serves every input size. The walkthrough's trace depends on its whole source
(convmix.sources: the module and the input it receives), and is kept with them (`get_walk`). Each
cache holds at most `max_entries` entries and a share of the memory budget in bytes (modules a
quarter, traces half); what would not fit is evicted, least recently used first, and an object
larger than the whole share is returned without being kept.

Building anything is admitted by convmix.budget, which counts what the process holds (the
budget is a limit on the process); when it does not fit, cached entries are evicted one at a time
(traces first) until it does or nothing is left, and then OverBudget is raised with a message.

Pages cache their own costly results with `bounded_cache`, which bounds them the same way. Every
cache here is a convmix.bytecache.ByteCache (`budget_cache`).
The caches live inside `st.cache_resource` holders, so clearing Streamlit's caches (as the tests
do) clears them too.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os

import streamlit as st

from convmix import budget
from convmix.bytecache import ByteCache, object_bytes
from convmix.config import ACmixConfig
from convmix.i18n import _

_log = logging.getLogger(__name__)

MODULE_SHARE, TRACE_SHARE = 4, 2  # modules may hold 1/4 of the budget, traces 1/2
MAX_MODULES, MAX_TRACES = 16, 2


def budget_cache(max_entries: int, share: int) -> ByteCache:
    """A convmix.bytecache.ByteCache of at most `max_entries` entries and 1/`share` of the memory
    budget in bytes (read at every insertion, so that it follows the budget's setting)."""
    return ByteCache(lambda: budget.memory_budget() // share, max_entries)


@st.cache_resource(show_spinner=False)
def _page_caches() -> dict[str, ByteCache]:
    return {}


def bounded_cache(share: int, max_entries: int):
    """Like `st.cache_resource`, bounded by bytes (1/`share` of the memory budget) as well as entries.

    The key is the function's arguments whose names do not start with an underscore (as Streamlit
    does); they must be hashable. Results are measured with `object_bytes`.
    """

    def decorate(fn):
        signature = inspect.signature(fn)
        name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def cached(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            key = tuple((k, v) for k, v in bound.arguments.items() if not k.startswith("_"))
            caches = _page_caches()
            store = caches.setdefault(name, budget_cache(max_entries, share))
            return store.get_or_build(key, lambda: fn(*args, **kwargs), object_bytes)

        return cached

    return decorate


@st.cache_resource(show_spinner=False)
def _module_cache() -> ByteCache:
    return budget_cache(MAX_MODULES, MODULE_SHARE)


@st.cache_resource(show_spinner=False)
def _trace_cache() -> ByteCache:
    return budget_cache(MAX_TRACES, TRACE_SHARE)


def make_room() -> bool:
    """Evict one cached entry, traces first, then modules, then the pages' results; False when all
    caches are empty."""
    return (_trace_cache().evict_one() or _module_cache().evict_one()
            or any(store.evict_one() for store in list(_page_caches().values())))


def module_key(config: ACmixConfig, impl: str = "reference") -> tuple:
    """What a module's weights depend on: its hyperparameters, variant and seed (not the input)."""
    return (tuple(sorted(config.module_kwargs().items())), config.seed, impl)


def _tensor_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def get_module(config: ACmixConfig, impl: str = "reference"):
    """The ACmix module for `config` (shared, read-only: pages never change its weights).

    Raises convmix.budget.OverBudget when building it would not fit the memory budget.
    """

    def build():
        with budget.admitted(config, budget.memory_budget(), budget.build_bytes, _("Building this module"),
                             make_room=make_room):
            return config.build(impl=impl)

    return _module_cache().get_or_build(module_key(config, impl), build, _tensor_bytes)


# -- the walkthrough: one trace per source ------------------------------------------------------------


def get_walk(source):
    """The module of `source` (convmix.sources), the input it receives and the trace of its own
    forward on it: built once per source and kept in the trace cache (bounded by bytes).

    Every step is admitted by the memory budget before it allocates, and once only:
    convmix.sources.materialize admits its own steps (building a network, the forward up to the
    layer, the module, its input and the seed's stem), so nothing here reserves them again; the trace
    is admitted here. Raises convmix.budget.OverBudget (the sidebar's module's trace: with a nearby
    configuration that fits) or convmix.sources.SourceError (anything else that cannot be built or
    does not fit, worded with what would).
    """
    from convmix import sources
    from convmix.ui import walkthrough_source as ws
    from convmix.walkthrough import Walk, walk

    # The module and its input exist when the trace is admitted: it adds the forward's peak and
    # every intermediate.
    cost = lambda c: budget.trace_bytes(c) - budget.weights_and_input_bytes(c)  # noqa: E731

    def build():
        if isinstance(source, sources.RandomInit | sources.RandomInitPicture):
            # Built for this trace alone: the trace cache keeps it (and frees it) with the trace.
            m = sources.materialize(source, ws.resolver(), budget.memory_budget())
            admission = budget.admitted(m.config, budget.memory_budget(), cost,
                                        _("The traced forward, which keeps every intermediate tensor,"),
                                        make_room=make_room)
        else:
            m = ws.materialized(source)
            admission = sources.admitted_work(cost(m.config), budget.memory_budget(), "trace", make_room,
                                              layer=source.layer)
        with admission, st.spinner(_("Running the forward pass…")):
            return walk(source, m.module, m.x, m.config, m.facts)

    return _trace_cache().get_or_build(source, build, Walk.nbytes)


@st.cache_data(max_entries=8, show_spinner=False)
def steps_table(source):
    """The walkthrough's table of steps (convmix.walkthrough.steps_frame), one per source: data only,
    the page words it.

    Defined here, not in the page: Streamlit keeps a cached function, and a function keeps the
    globals of the script that defined it (a page's globals hold its trace).
    """
    from convmix.walkthrough import steps_frame

    return steps_frame(get_walk(source).trace)


@st.cache_data(max_entries=8, show_spinner=False)
def conv_p_gradients(source):
    """conv_p's gradients on a copy of the source's module, on its own input
    (convmix.walkthrough.conv_p_gradients), one per source; admitted by the budget first (raises
    OverBudget); defined here for the reason steps_table is."""
    from convmix.walkthrough import conv_p_gradients as gradients

    shown = get_walk(source)
    with budget.admitted(shown.config, budget.memory_budget(), lambda c: 2 * budget.trace_bytes(c),
                         _("The gradient check (a float64 forward and backward of this module)"),
                         make_room=make_room):
        return gradients(shown.module, shown.x)


def module_within_budget(config: ACmixConfig):
    """The cached module, or None after a warning when building it does not fit the budget."""
    try:
        return get_module(config)
    except budget.OverBudget as err:
        st.warning(str(err), icon=":material/memory:")
        return None


def adopt_secret_budget() -> None:
    """Use `memory_budget` and `time_limit` from Streamlit secrets where $CONVMIX_MEMORY_BUDGET and
    $CONVMIX_TIME_LIMIT are not set.

    Setting the variables once makes every convmix.budget call, in pages and in the library, see the
    same limits.
    """
    for env, secret_name, parse in ((budget.BUDGET_ENV, "memory_budget", budget.parse_bytes),
                                    (budget.TIME_LIMIT_ENV, "time_limit", budget.parse_seconds)):
        if os.environ.get(env):
            continue
        try:
            secret = st.secrets.get(secret_name)
        except Exception:  # no secrets file at all: nothing to adopt
            return
        if secret in (None, ""):
            continue
        try:
            os.environ[env] = str(parse(secret))
        except ValueError as err:
            _log.warning("ignoring secrets.%s: %s", secret_name, err)
