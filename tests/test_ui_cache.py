"""convmix.ui.cache and convmix.ui.session: what is cached, how much, and the visitor's session.

Item 3 of issue 11: the module cache keyed on the whole configuration, so height, width, batch and
seed built the same weights again, and 16 entries of 445 MB would have held 7 GB; more than two
traces stayed alive across four seeds. Item 8: queued work for a closed tab. Item 12: uploads
beyond a page's limit.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time

import pytest

from convmix import budget
from convmix.config import ACmixConfig
from convmix.trace import Trace
from convmix.ui import cache, session


def test_one_module_serves_every_input_size_and_batch():
    config = ACmixConfig()
    module = cache.get_module(config)
    for other in (config.with_(height=8, width=12), config.with_(batch=64), config.with_(height=200)):
        assert cache.get_module(other) is module
    assert cache.get_module(config.with_(seed=1)) is not module  # other weights
    assert cache.get_module(config.with_(head=8)) is not module  # another module
    assert len(cache._module_cache()) == 3


def test_the_module_cache_is_bounded_by_bytes(monkeypatch):
    big = ACmixConfig(in_planes=256, out_planes=512, head=8)
    size = budget.module_bytes(big)
    store = cache._module_cache()
    monkeypatch.setattr(store, "max_bytes", lambda: 2 * size + size // 2)  # room for two, not three
    for seed in range(4):
        cache.get_module(big.with_(seed=seed))
    assert len(store) == 2 and store.nbytes <= 2 * size + size // 2
    assert cache.module_key(big.with_(seed=3)) in store and cache.module_key(big.with_(seed=0)) not in store
    assert store.max_entries == cache.MAX_MODULES
    # The share follows the budget: a quarter of it.
    assert cache.budget_cache(1, cache.MODULE_SHARE).max_bytes() == budget.memory_budget() // 4


def test_an_object_larger_than_the_whole_share_is_used_but_not_kept(monkeypatch):
    store = cache.budget_cache(max_entries=4, share=1)
    monkeypatch.setattr(store, "max_bytes", lambda: 100)
    assert store.get_or_build("big", lambda: "x" * 1000, len) == "x" * 1000
    assert len(store) == 0
    store.get_or_build("small", lambda: "y" * 60, len)
    store.get_or_build("other", lambda: "z" * 60, len)  # together over 100 bytes: the first goes
    assert "small" not in store and "other" in store


def test_concurrent_requests_build_once():
    store = cache.budget_cache(max_entries=4, share=1)
    builds = []

    def build():
        builds.append(1)
        time.sleep(0.3)
        return "value"

    results = []
    threads = [threading.Thread(target=lambda: results.append(store.get_or_build("k", build, len)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * 4 and len(builds) == 1


def test_at_most_two_traces_stay_alive_across_four_seeds(app):
    at = app("pages/walkthrough.py")
    for seed in range(4):
        at.sidebar.number_input(key="seed").set_value(seed).run()
        for section in ("mix", "attention_inspector"):
            at.session_state["wt_section"] = section
            at.run()
        assert not at.exception
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, Trace)]
    assert len(alive) <= cache.MAX_TRACES
    assert cache._trace_cache().nbytes <= cache._trace_cache().max_bytes()


def test_a_trace_that_does_not_fit_beside_what_is_held_is_refused_after_evicting(headroom):
    from convmix import sources

    small = sources.RandomInit(ACmixConfig(height=16, width=16))
    cache.get_walk(small)
    assert len(cache._trace_cache()) == 1
    config = ACmixConfig(batch=4, height=96, width=96)
    need = budget.trace_bytes(config) - budget.weights_and_input_bytes(config)
    headroom(need // 2)
    with pytest.raises(budget.OverBudget) as err:
        cache.get_walk(sources.RandomInit(config))
    assert "this server holds now" in str(err.value)
    assert len(cache._trace_cache()) == 0  # it made room first


def _reservations(monkeypatch) -> list[tuple[int, int]]:
    """Every reservation made from now on: (its estimate, what was reserved already when it began)."""
    seen = []
    original = budget._reservation

    @contextlib.contextmanager
    def spy(estimate, refuse, make_room):
        seen.append((estimate, budget.reserved_bytes()))
        with original(estimate, refuse, make_room) as reserved:
            yield reserved

    monkeypatch.setattr(budget, "_reservation", spy)
    return seen


def test_the_walkthrough_admits_each_step_once(monkeypatch):
    """convmix.sources.materialize admits its own steps; get_walk reserves only the trace, never the
    same work again around them (nothing is reserved while another reservation of its is held)."""
    from convmix import sources

    seen = _reservations(monkeypatch)
    cache.get_walk(sources.RandomInitPicture(ACmixConfig(height=16, width=16), sources.BuiltinPicture("chelsea")))
    assert len(seen) == 3  # the stem, the module, the trace
    cache.get_walk(sources.NetworkLayer(sources.ResNetRef(26, 3), "layer2.0.conv2",
                                        sources.BuiltinPicture("chelsea"), 64))
    assert len(seen) == 3 + 3  # the network, the forward up to the layer, the trace
    assert [outer for _, outer in seen] == [0] * 6


def test_a_layer_whose_steps_each_fit_beside_the_server_is_not_refused(headroom):
    """Each step fits beside what the server holds (the network is built, its weights held): the walk is
    shown. Admitting the forward twice, or counting the held weights again, would have refused it."""
    import torch

    from convmix import sources
    from convmix.ui import walkthrough_source as ws

    chelsea = sources.BuiltinPicture("chelsea")
    source = sources.NetworkLayer(sources.ResNetRef(26, 4), "layer3.0.conv2", chelsea, 224)
    weights = sources.resnet_weight_bytes(26)
    headroom(4 * weights + (512 << 20))  # one budget throughout: the shared network cache follows it
    cache.get_walk(sources.NetworkLayer(source.network, "layer1.0.conv2", chelsea, 64))  # builds the network
    model = ws.resolver().network(source.network)
    held = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    copied = sum(t.numel() * t.element_size() for t in model.get_submodule(source.layer).state_dict().values())
    # The forward up to the layer and the layer's copy; the network's weights are held, not new.
    forward = sources.network_kind(model).forward_bytes(model, source.layer, 224) - held + copied
    config = sources.resnet_layer_config(26, source.layer, 224)
    trace = budget.trace_bytes(config)  # the trace's reservation, with the module and its input
    margin = 24 << 20
    assert trace + margin < forward + margin < min(2 * forward, forward + weights)
    # What the server holds takes all but the forward's need and the margin.
    gc.collect()
    ballast = torch.ones((budget.memory_budget() - budget.in_use() - forward - margin) // 4)
    shown = cache.get_walk(source)
    assert shown.config.input_shape == config.input_shape and ballast.numel() > 0


def test_connection_check_asks_the_runtime_and_defaults_to_connected(monkeypatch):
    from streamlit import runtime

    assert session.connection_check()() is True  # no script run here: nothing to ask

    class Ctx:
        session_id = "visitor-1"

    class FakeRuntime:
        active = {"visitor-1"}

        def is_active_session(self, session_id):
            return session_id in self.active

    fake = FakeRuntime()
    monkeypatch.setattr(session, "_context", lambda: Ctx())
    monkeypatch.setattr(runtime.Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(runtime.Runtime, "instance", classmethod(lambda cls: fake))
    check = session.connection_check()
    assert check() is True
    fake.active.clear()  # the tab closes
    assert check() is False
    monkeypatch.setattr(runtime.Runtime, "instance", classmethod(lambda cls: 1 / 0))
    assert check() is True  # a runtime that cannot answer never stops the work


def test_discard_uploads_removes_the_servers_copies(monkeypatch):
    removed = []

    class Manager:
        def remove_file(self, session_id, file_id):
            removed.append((session_id, file_id))

    class Ctx:
        session_id = "visitor-1"
        uploaded_file_mgr = Manager()

    class File:
        def __init__(self, file_id):
            self.file_id = file_id

    monkeypatch.setattr(session, "_context", lambda: Ctx())
    assert session.discard_uploads([File("a"), File("b")]) == 2
    assert removed == [("visitor-1", "a"), ("visitor-1", "b")]
    monkeypatch.setattr(session, "_context", lambda: None)
    assert session.discard_uploads([File("c")]) == 0


def test_object_bytes_counts_each_storage_once():
    import numpy as np
    import torch

    from convmix import bias as cb

    x = torch.zeros(1, 3, 32, 32)
    run = cb.run_seed_layer(cb.seed_layer(), x)
    expected = 4 * (x.numel() + run.y.numel() + run.y_no_bias.numel() + run.bias.numel())
    assert cache.object_bytes(run) == expected
    arr = np.zeros((10, 10))
    assert cache.object_bytes((arr, arr[2:], {"a": arr}, [x, x[0]])) == arr.nbytes + 4 * x.numel()


def test_pages_cache_their_results_bounded_by_bytes(monkeypatch):
    """Item 3: every cache bounded by bytes, the pages' own too (the bias page's forwards at 448×448
    take about 80 MB each)."""
    import torch

    calls = []

    @cache.bounded_cache(share=1, max_entries=8)
    def result(key: str, size: int, _data=None):
        calls.append((key, size))
        return torch.zeros(size)

    store_name = f"{result.__module__}.{result.__qualname__}"
    assert result("a", 1000) is result("a", 1000, _data=object())  # underscored arguments are no key
    assert calls == [("a", 1000)]
    store = cache._page_caches()[store_name]
    monkeypatch.setattr(store, "max_bytes", lambda: 4 * 2500)
    result("b", 1000)
    result("c", 1000)  # 3 × 4,000 bytes > 10,000: the least recently used goes
    assert len(store) == 2 and (("key", "a"), ("size", 1000)) not in store
    assert cache.make_room() and len(store) == 1  # and pages' results give way to new requests


def test_a_session_cannot_pile_up_uploads_on_the_server(monkeypatch):
    """Item 12: the upload route stores every file a browser sends before a script sees it."""
    from starlette.exceptions import HTTPException
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    manager = MemoryUploadedFileManager("/upload")

    class Ctx:
        session_id = "visitor-1"
        uploaded_file_mgr = manager

    monkeypatch.setattr(session, "_context", lambda: Ctx())
    assert session.limit_uploads(max_files=3, max_bytes=1000) and session.limit_uploads()  # once

    def rec(i, size=100):
        return UploadedFileRec(file_id=f"f{i}", name=f"r{i}.csv", type="text/csv", data=b"x" * size)

    for i in range(3):
        manager.add_file("visitor-1", rec(i))
    with pytest.raises(HTTPException) as err:
        manager.add_file("visitor-1", rec(3))
    assert err.value.status_code == 413 and "already holds 3 uploaded files" in err.value.detail
    manager.add_file("visitor-1", rec(1, 200))  # replacing a file is not a new one
    manager.add_file("visitor-2", rec(9))  # other sessions have their own room
    manager.remove_file("visitor-1", "f0")
    manager.add_file("visitor-1", rec(4))  # room again
    with pytest.raises(HTTPException):
        manager.add_file("visitor-2", rec(10, 950))  # bytes count too
    assert len(manager.file_storage["visitor-1"]) == 3
