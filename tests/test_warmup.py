"""convmix.ui.warmup: every page rendered once before the server serves (issue 16, item 3), and what
a visitor is shown does not change with what was cached before (item 5)."""

from __future__ import annotations

import json

import pytest
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from convmix.ui import charts as ui_charts
from convmix.ui import warmup
from convmix.ui.navigation import PAGE_SPECS
from tests.conftest import APP
from tests.i18n_text import _element_texts, _walk

PAGES = [spec.path for spec in PAGE_SPECS]


def shown(at) -> list:
    """What the visitor is shown, element by element: texts (numbers included), every chart's spec
    and data, every table's values."""
    out = []
    for node in _walk(at._tree):
        kind = getattr(node, "type", "")
        if kind in ("vega_lite_chart", "arrow_vega_lite_chart"):
            out.append((kind, json.loads(node.proto.spec), [(d.name, d.data.data) for d in node.proto.datasets]))
        elif kind in ("arrow_data_frame", "dataframe", "table"):
            out.append((kind, node.value.to_csv()))
        else:
            texts = [t for t in _element_texts(node) if t and t.strip()]
            if texts:
                out.append((kind, texts))
    return out


def visit(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"lang": "en", **VIEWS.get(page, {})})
    if page != PAGES[0]:
        at.switch_page(page)
    return at.run()


def test_every_page_warms_and_the_server_is_left_as_a_visitor_would_leave_it():
    original = PagesManager.__init__
    done = warmup.warm_pages()
    assert [w.page for w in done] == PAGES + ["pages/network.py?network_view=weights"] + [
        f"pages/bias.py?bias_view={view}" for view in ("shift", "batchnorm", "learning", "acmix", "article")]
    assert all(w.problem is None for w in done), [w for w in done if w.problem]
    assert PagesManager.__init__ is original  # AppTest's workaround undone
    assert PagesManager.uses_pages_directory is False  # navigation mode, as after any st.navigation run
    assert Runtime._instance is None  # no stand-in runtime left for the real server to trip on
    assert len(ui_charts._specs()) > 10  # the charts are ready


@pytest.mark.parametrize("page", PAGES)
def test_a_page_shows_the_same_whether_the_process_was_warmed_or_not(page):
    cold = visit(page)
    assert not cold.exception
    before = shown(cold)
    st.cache_data.clear()
    st.cache_resource.clear()
    warmup.warm_pages()
    warm = visit(page)
    assert not warm.exception
    assert shown(warm) == before


def _widget(at, kind: str, key: str):
    return next(w for w in getattr(at, kind) if w.key == key or (w.key or "").startswith(key + "_"))


VIEWS = {"pages/network.py": {"network_view": "weights"}}  # the tab CHANGES' widget is drawn in
CHANGES = {  # page -> a widget and two values: the first is the page's default
    "pages/bias.py": ("number_input", "bias_channel", 0, 5),
    "pages/explorer.py": ("selectbox", "explorer_x", "kernel_att", "head"),
    "pages/network.py": ("selectbox", "net_layer", "layer1.0.conv2", "layer2.0.conv2"),
}


@pytest.mark.parametrize("page", list(CHANGES))
def test_a_view_shows_the_same_when_it_comes_back_from_the_caches(page):
    """Back and forth between two values of a widget: the second time each view is drawn from the
    caches (charts, counts, modules) and must show what it showed when it was built."""
    kind, key, first, second = CHANGES[page]
    at = visit(page)
    seen = {first: [shown(at)], second: []}
    for value in (second, first, second):
        _widget(at, kind, key).set_value(value)
        at.run()
        assert not at.exception
        seen[value].append(shown(at))
    assert seen[first][0] == seen[first][1]
    assert seen[second][0] == seen[second][1]
    assert seen[first][0] != seen[second][0]


def test_after_the_warm_up_a_new_visitor_builds_no_chart(monkeypatch):
    """Every chart of every page's first view is ready: a new session draws them all from the cache
    (its frames come out of st.cache_data as copies laid out anew; their keys must still match)."""
    warmup.warm_pages()
    built = []
    convert = ui_charts.convert
    monkeypatch.setattr(ui_charts, "convert", lambda chart: built.append(chart) or convert(chart))
    for page in PAGES:
        assert not visit(page).exception
    assert built == []


def test_components_are_scanned_once_per_process():
    """tests/conftest.py applies the warm-up's scan_components_once: the scan is cached, and applying
    it again changes and undoes nothing."""
    from streamlit.components.v2 import manifest_scanner

    cached = manifest_scanner.scan_component_manifests
    assert hasattr(cached, "cache_info")
    warmup.scan_components_once()()
    assert manifest_scanner.scan_component_manifests is cached
    first, again = cached(), cached()
    assert first is again and cached.cache_info().hits >= 1


@pytest.fixture
def compiled(monkeypatch) -> list:
    """The paths of the scripts compiled from here on (Streamlit's script cache compiles them)."""
    from streamlit.runtime.scriptrunner import script_cache

    paths: list = []
    monkeypatch.setattr(script_cache, "compile", lambda *a, **k: paths.append(a[1]) or compile(*a, **k),
                        raising=False)
    return paths


def test_one_compilation_of_each_script_serves_every_apptest_and_the_server(compiled):
    """tests/conftest.py shares the compiled scripts as scripts/serve.py does: AppTest's runs and a
    server's Runtime read one cache, so a page compiled once is not compiled again by a new session."""
    from streamlit.runtime import runtime
    from streamlit.testing.v1 import app_test, local_script_runner

    cache = app_test.ScriptCache()
    assert local_script_runner.ScriptCache() is cache and runtime.ScriptCache() is cache
    assert warmup.share_compiled_scripts()() is None and app_test.ScriptCache() is cache  # sharing again: a no-op
    visit("pages/explorer.py")
    compiled.clear()  # what compiling the first visit needed, if this process had not yet
    assert not visit("pages/explorer.py").exception  # a new session: new AppTest, new stand-in runtime
    assert compiled == []


def test_settling_before_serving_leaves_the_collector_only_what_comes_later(monkeypatch):
    """What is alive when the server starts is exempt from Streamlit's collection after every run;
    a reference cycle made afterwards (a visitor's) is still collected."""
    import gc
    import sys
    import weakref

    class Node:
        pass

    monkeypatch.setattr(warmup, "_settled", False)
    try:
        warmup.settle_before_serving()
        assert gc.get_freeze_count() > 10_000
        assert all(name in sys.modules for name in warmup.FIRST_SESSION_MODULES)
        node = Node()
        node.itself = node
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_a_plain_server_freezes_once_after_its_first_run_and_apptest_never(monkeypatch):
    """`streamlit run` without the warm-up: the router freezes the process's objects after the first
    run of a real server, once; an AppTest run (the tests' own process) is never frozen."""
    import gc

    monkeypatch.setattr(warmup, "_settled", False)
    assert not visit(PAGES[0]).exception  # the router's last step ran, under AppTest's stand-in runtime
    assert gc.get_freeze_count() == 0 and warmup._settled is False
    monkeypatch.setattr(warmup, "_real_server", lambda: True)
    try:
        warmup.settle_after_first_run()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        later = [[i] for i in range(1000)]  # a later run's objects stay with the collector
        warmup.settle_after_first_run()
        assert gc.get_freeze_count() == frozen and later
    finally:
        gc.unfreeze()


def test_a_warm_server_keeps_its_compiled_pages_when_the_last_visitor_leaves(compiled):
    """Streamlit clears the server's script cache when its last session disconnects; after
    keep_compiled_scripts (scripts/serve.py) the next visitor compiles nothing."""
    from streamlit.runtime import runtime

    cache = runtime.ScriptCache()
    visit(PAGES[0])
    compiled.clear()
    try:
        warmup.keep_compiled_scripts()
        cache.clear()  # what Streamlit does when the last session disconnects
        assert not visit(PAGES[0]).exception
        assert compiled == []
    finally:
        del cache.clear  # the tests' shared cache clears again
    cache.clear()
    assert not visit(PAGES[0]).exception
    assert compiled  # without it, the page is compiled again
