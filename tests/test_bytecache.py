"""The byte-bounded cache: measured sizes, least-recently-used eviction by bytes and entries, a bound
that follows a function, eviction on request, and one build for concurrent requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from convmix.bytecache import ByteCache, object_bytes


def test_object_bytes_counts_each_storage_once():
    a = torch.zeros(100)  # 400 bytes
    view = a[10:20]  # the same storage
    b = torch.zeros(3, 5, dtype=torch.float64)  # 120 bytes
    assert object_bytes(a) == 400
    assert object_bytes([a, view, {"b": b, "again": a}]) == 400 + 120
    assert object_bytes(b"x" * 77) == 77
    assert object_bytes(torch.zeros(10, device="meta")) == 0
    arr = np.zeros((10, 10))  # 800 bytes; its views share the buffer
    assert object_bytes((arr, arr[2:], arr[2:][1:], {"a": arr}, "text")) == 800


def test_object_bytes_of_modules_and_dataclasses():
    lin = nn.Linear(10, 4)  # 44 parameters
    bn = nn.BatchNorm1d(4)  # weight, bias, running mean and var (float) + num_batches_tracked (int64)
    expected = 4 * (44 + 4 * 4) + 8

    @dataclass(frozen=True)
    class Pair:
        module: nn.Module
        x: torch.Tensor

    assert object_bytes(nn.Sequential(lin, bn)) == expected
    assert object_bytes(Pair(nn.Sequential(lin, bn), lin.weight)) == expected  # the weight is shared


def test_eviction_by_bytes_least_recently_used_first():
    cache = ByteCache(max_bytes=1000, size_of=len)
    cache.put("a", b"a" * 400)
    cache.put("b", b"b" * 400)
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", b"c" * 400)  # 1200 > 1000: the least recent ("b") goes
    assert cache.keys() == ["a", "c"] and cache.nbytes == 800
    too_big = b"z" * 1001
    assert cache.put("z", too_big) is too_big  # returned to the caller, never kept
    assert "z" not in cache and cache.keys() == ["a", "c"]


def test_eviction_by_entries():
    cache = ByteCache(max_bytes=10**6, max_entries=2, size_of=len)
    for key in "abc":
        cache.put(key, key.encode())
    assert cache.keys() == ["b", "c"]


def test_get_or_build_builds_once_and_rebuilds_after_eviction():
    calls = []

    def build():
        calls.append(1)
        return torch.zeros(50)  # 200 bytes

    cache = ByteCache(max_bytes=300)
    first = cache.get_or_build("k", build)
    assert cache.get_or_build("k", build) is first and len(calls) == 1
    cache.put("other", torch.zeros(50))  # 400 > 300: "k" goes
    assert "k" not in cache
    assert cache.get_or_build("k", build) is not first and len(calls) == 2


def test_bound_holds_under_concurrent_use():
    cache = ByteCache(max_bytes=5000, size_of=len)

    def worker(n):
        for i in range(200):
            cache.put((n, i % 17), b"x" * (100 + 37 * (i % 11)))
            cache.get((n, (i + 3) % 17))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < cache.nbytes <= 5000


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        ByteCache(max_bytes=-1)
    with pytest.raises(ValueError):
        ByteCache(max_bytes=10, max_entries=0)


def test_a_bound_given_as_a_function_is_read_at_every_insertion():
    bound = [1000]
    cache = ByteCache(lambda: bound[0], size_of=len)
    cache.put("a", b"a" * 600)
    assert cache.max_bytes() == 1000 and "a" in cache
    bound[0] = 500  # the setting changed: the next insertion keeps to the new bound
    cache.put("b", b"b" * 400)
    assert cache.keys() == ["b"] and cache.nbytes == 400


def test_evict_one_drops_the_least_recently_used():
    cache = ByteCache(10**6, size_of=len)
    for key in "abc":
        cache.put(key, key.encode())
    cache.get("a")
    assert cache.evict_one() and cache.keys() == ["c", "a"]
    assert cache.evict_one() and cache.evict_one() and not cache.evict_one()


def test_concurrent_requests_for_one_key_build_it_once():
    import time

    cache = ByteCache(10**6)
    builds = []

    def build():
        builds.append(1)
        time.sleep(0.2)
        return torch.zeros(4)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_build("k", build))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and all(r is results[0] for r in results)


def test_a_cached_none_is_a_value():
    cache = ByteCache(100)
    calls = []
    assert cache.get_or_build("k", lambda: calls.append(1)) is None
    assert cache.get_or_build("k", lambda: calls.append(1)) is None and calls == [1]
