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

Pages cache their own costly results with `bounded_cache`, which bounds them the same way.
The caches live inside `st.cache_resource` holders, so clearing Streamlit's caches (as the tests
do) clears them too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np
import streamlit as st
import torch

from convmix import budget
from convmix.config import ACmixConfig

_log = logging.getLogger(__name__)
T = TypeVar("T")

MODULE_SHARE, TRACE_SHARE = 4, 2  # modules may hold 1/4 of the budget, traces 1/2
MAX_MODULES, MAX_TRACES = 16, 2


class ByteCache(Generic[T]):
    """A thread-safe LRU cache bounded by entries and by bytes (`share` of the memory budget).

    Concurrent requests for the same missing key build it once: the others wait for the first.
    """

    def __init__(self, max_entries: int, share: int):
        self.max_entries, self.share = max_entries, share
        self._items: OrderedDict[Hashable, tuple[T, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def max_bytes(self) -> int:
        return budget.memory_budget() // self.share

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def evict_one(self) -> bool:
        """Drop the least recently used entry; False when there was none."""
        with self._lock:
            if not self._items:
                return False
            self._items.popitem(last=False)
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _put(self, key: Hashable, value: T, size: int) -> None:
        limit = self.max_bytes()
        with self._lock:
            if size > limit:
                return  # larger than the whole share: used once, not kept
            self._items[key] = (value, size)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries or sum(s for _, s in self._items.values()) > limit:
                self._items.popitem(last=False)

    def get_or_build(self, key: Hashable, build: Callable[[], T], size_of: Callable[[T], int]) -> T:
        found = self.get(key)
        if found is not None:
            return found
        with self._lock:
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            found = self.get(key)  # built by another request while this one waited
            if found is not None:
                return found
            try:
                value = build()
                self._put(key, value, size_of(value))
            finally:
                with self._lock:
                    self._building.pop(key, None)
            return value


def object_bytes(obj, _seen: set | None = None) -> int:
    """Bytes of the tensors and arrays inside `obj` (dataclasses, tuples, lists, dicts), shared
    storage counted once: what a cached result holds."""
    seen = set() if _seen is None else _seen
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        key = ("t", storage._cdata)
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(obj, np.ndarray):
        base = obj if obj.base is None else obj.base
        if ("a", id(base)) in seen:
            return 0
        seen.add(("a", id(base)))
        return int(getattr(base, "nbytes", obj.nbytes))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(object_bytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if isinstance(obj, (tuple, list)):
        return sum(object_bytes(item, seen) for item in obj)
    if isinstance(obj, dict):
        return sum(object_bytes(item, seen) for item in obj.values())
    return 0


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
            store = caches.setdefault(name, ByteCache(max_entries, share))
            return store.get_or_build(key, lambda: fn(*args, **kwargs), object_bytes)

        return cached

    return decorate


@st.cache_resource(show_spinner=False)
def _module_cache() -> ByteCache:
    return ByteCache(MAX_MODULES, MODULE_SHARE)


@st.cache_resource(show_spinner=False)
def _trace_cache() -> ByteCache:
    return ByteCache(MAX_TRACES, TRACE_SHARE)


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
        with budget.admitted(config, budget.memory_budget(), budget.build_bytes, "Building this module",
                             make_room=make_room):
            return config.build(impl=impl)

    return _module_cache().get_or_build(module_key(config, impl), build, _tensor_bytes)


# -- the walkthrough: one trace per source ------------------------------------------------------------


def _refused_as_source_error(err: budget.OverBudget, what: str, layer: str = ""):
    """A refusal of work whose size no nearby configuration changes (a network's layer), as a
    SourceError the page words: what, the estimate, what the server holds, the budget."""
    from convmix import sources

    r = err.refusal
    return sources.SourceError("budget", str(err), need=int(r.estimate), budget=int(r.budget), what=what,
                               layer=layer, held=int(r.held))


@contextlib.contextmanager
def _admitted_fixed(config: ACmixConfig, need: int, what: str, layer: str = ""):
    """Reserve `need` bytes of the process budget for work on a network's layer; refusals become
    SourceError("budget", ...)."""
    try:
        with budget.admitted(config, budget.memory_budget(), lambda c: need, what, make_room=make_room):
            yield
    except budget.OverBudget as err:
        raise _refused_as_source_error(err, what, layer) from None


def get_walk(source):
    """The module of `source` (convmix.sources), the input it receives and the trace of its own
    forward on it: built once per source and kept in the trace cache (bounded by bytes).

    Every step is admitted by the memory budget before it allocates: building a network, the forward
    up to the layer (or the module, its input and the seed's stem), then the trace. Raises
    convmix.budget.OverBudget (the sidebar's module: with a nearby configuration that fits) or
    convmix.sources.SourceError (a network's layer, or anything that cannot be built).
    """
    from convmix import sources
    from convmix.i18n import _
    from convmix.ui import walkthrough_source as ws
    from convmix.walkthrough import Walk, walk

    sidebar = isinstance(source, sources.RandomInit | sources.RandomInitPicture)

    def build():
        resolver = ws.resolver()
        layer = getattr(source, "layer", "")
        if isinstance(source, sources.NetworkLayer):
            need = sources.network_build_bytes(source.network, resolver)
            with _admitted_fixed(ACmixConfig(), need, "network", layer):
                resolver.network(source.network)
        if sidebar:  # built for this trace alone: the trace cache keeps it (and frees it) with the trace
            with budget.admitted(source.config, budget.memory_budget(),
                                 lambda c: sources.materialize_bytes(dataclasses.replace(source, config=c), resolver),
                                 _("Building the module and its input"), make_room=make_room):
                m = sources.materialize(source, resolver, budget.memory_budget())
        else:
            need = sources.materialize_bytes(source, resolver)
            with _admitted_fixed(ACmixConfig(), need, "forward" if isinstance(source, sources.NetworkLayer)
                                 else "layer", layer):
                m = ws.materialized(source)
        # The module and its input exist now; the trace adds the forward's peak and every intermediate.
        cost = lambda c: budget.trace_bytes(c) - budget.weights_and_input_bytes(c)  # noqa: E731
        what = _("The traced forward, which keeps every intermediate tensor,")
        if sidebar:
            with budget.admitted(m.config, budget.memory_budget(), cost, what, make_room=make_room), \
                    st.spinner(_("Running the forward pass…")):
                return walk(source, m.module, m.x, m.config, m.facts)
        with _admitted_fixed(m.config, cost(m.config), "trace", layer), st.spinner(_("Running the forward pass…")):
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
    from convmix.i18n import _
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
