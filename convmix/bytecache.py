"""A cache bounded by bytes as well as entries, for what is costly to build and large to keep.

Streamlit's caches bound the number of entries only, and one built ACmix ResNet-50 holds about
70 MiB of weights while a ResNet-26 holds 40 MiB: a count says little about memory. This cache
keeps the most recently used entries whose measured sizes add up to at most `max_bytes`; an entry
larger than that is returned to its caller but never kept. It is thread-safe (every Streamlit
session runs in a thread of its own). Two sessions asking at once for the same missing key may
both build it; one copy is kept.

Sizes are measured, not declared: `object_bytes` adds up the storage behind every tensor reachable
from the value (a module's parameters and buffers, a state dict, a dataclass of tensors), each
storage counted once, plus the length of any bytes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")


def object_bytes(value: Any) -> int:
    """Bytes of the tensor storages (each counted once) and byte strings reachable from `value`."""
    seen: set[tuple[int, int]] = set()
    visited: set[int] = set()
    total = 0

    def visit(obj: Any) -> None:
        nonlocal total
        if isinstance(obj, torch.Tensor):
            if obj.device.type == "meta":
                return
            storage = obj.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
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


class ByteBoundedCache:
    """Least-recently-used cache whose entries' measured sizes add up to at most `max_bytes`."""

    def __init__(self, max_bytes: int, max_entries: int = 64, size_of: Callable[[Any], int] = object_bytes):
        if max_bytes < 0 or max_entries < 1:
            raise ValueError("max_bytes must be >= 0 and max_entries >= 1")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._size_of = size_of
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: Hashable, value: T) -> T:
        """Keep `value` under `key` if it fits at all, evicting the least recently used as needed."""
        size = self._size_of(value)
        with self._lock:
            self._entries.pop(key, None)
            if size > self.max_bytes:
                return value
            self._entries[key] = (value, size)
            used = sum(s for _, s in self._entries.values())
            while used > self.max_bytes or len(self._entries) > self.max_entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                used -= evicted
        return value

    def get_or_build(self, key: Hashable, build: Callable[[], T]) -> T:
        """The cached value for `key`, else `build()` (outside the lock), kept if it fits."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        return self.put(key, build())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
