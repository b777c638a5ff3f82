"""A cache bounded by bytes as well as entries, for what is costly to build and large to keep.

Streamlit's caches bound the number of entries only, and one built ACmix ResNet-50 holds about
70 MiB of weights while a ResNet-26 holds 40 MiB: a count says little about memory. `ByteCache`
keeps the most recently used entries whose measured sizes add up to at most `max_bytes()`; an
entry larger than that is returned to its caller but never kept. The bound is a number, or a
function read at every insertion (a share of the memory budget, which a setting may change). It is
thread-safe (every Streamlit session runs in a thread of its own), and concurrent requests for the
same missing key build it once: the others wait for the first. `evict_one` gives memory back when
new work does not fit the budget (convmix.budget's `make_room`).

Sizes are measured, not declared: `object_bytes` adds up the storage behind every tensor and NumPy
array reachable from the value (a module's parameters and buffers, a state dict, a dataclass of
tensors), each storage counted once, plus the length of any bytes. No Streamlit here: the app's
caches (convmix.ui.cache) and the shared network cache (convmix.ui.walkthrough_source) are
instances of this one class.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn

T = TypeVar("T")


def object_bytes(value: Any) -> int:
    """Bytes of the tensor storages and array buffers (each counted once) and byte strings reachable
    from `value`."""
    seen: set[tuple] = set()
    visited: set[int] = set()
    total = 0

    def visit(obj: Any) -> None:
        nonlocal total
        if isinstance(obj, torch.Tensor):
            if obj.device.type == "meta":
                return
            storage = obj.untyped_storage()
            key = ("tensor", storage.data_ptr(), storage.nbytes())
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
            return
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):  # a view: count the array that owns the buffer
                base = base.base
            if ("array", id(base)) not in seen:
                seen.add(("array", id(base)))
                total += base.nbytes
            return
        if isinstance(obj, (bytes, bytearray, memoryview)):
            total += len(obj)
            return
        if isinstance(obj, (str, int, float, bool, type(None))):
            return
        if id(obj) in visited:
            return
        visited.add(id(obj))
        if isinstance(obj, nn.Module):
            for t in obj.state_dict(keep_vars=True).values():
                visit(t)
        elif isinstance(obj, Mapping):
            for v in obj.values():
                visit(v)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for v in obj:
                visit(v)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                visit(getattr(obj, f.name))

    visit(value)
    return total


class ByteCache(Generic[T]):
    """Least-recently-used cache whose entries' measured sizes add up to at most `max_bytes()`, with
    at most `max_entries` entries.

    `max_bytes` is a number of bytes or a function returning it (read at every insertion);
    `size_of` measures a value (default `object_bytes`; `get_or_build` may pass its own).
    """

    def __init__(self, max_bytes: int | Callable[[], int], max_entries: int = 64,
                 size_of: Callable[[Any], int] = object_bytes):
        if (not callable(max_bytes) and max_bytes < 0) or max_entries < 1:
            raise ValueError("max_bytes must be >= 0 and max_entries >= 1")
        self._bound = max_bytes
        self.max_entries = max_entries
        self._size_of = size_of
        self._items: OrderedDict[Hashable, tuple[T, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def max_bytes(self) -> int:
        """The bound on the entries' total size, now."""
        return self._bound() if callable(self._bound) else self._bound

    @property
    def nbytes(self) -> int:
        """The measured size of the entries kept."""
        with self._lock:
            return sum(size for _value, size in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._items)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key: Hashable, value: T, size_of: Callable[[T], int] | None = None) -> T:
        """Keep `value` under `key` if it fits at all, evicting the least recently used as needed;
        returns `value` (kept or not)."""
        size = (size_of or self._size_of)(value)
        limit = self.max_bytes()
        with self._lock:
            self._items.pop(key, None)
            if size > limit:
                return value  # larger than the whole bound: used once, not kept
            self._items[key] = (value, size)
            used = sum(size for _value, size in self._items.values())
            while used > limit or len(self._items) > self.max_entries:
                _key, (_value, evicted) = self._items.popitem(last=False)
                used -= evicted
        return value

    def get_or_build(self, key: Hashable, build: Callable[[], T], size_of: Callable[[T], int] | None = None) -> T:
        """The cached value for `key`, else `build()` (outside the cache's lock, once however many
        requests ask at the same time), kept if it fits."""
        found = self.get(key, _MISSING)
        if found is not _MISSING:
            return found
        with self._lock:
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            found = self.get(key, _MISSING)  # built by another request while this one waited
            if found is not _MISSING:
                return found
            try:
                return self.put(key, build(), size_of)
            finally:
                with self._lock:
                    self._building.pop(key, None)

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


_MISSING = object()
