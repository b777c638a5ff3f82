"""Warm a server process before it serves: every page rendered once, headless, in this process.

A fresh `streamlit run streamlit_app.py` imports torch, pandas and Altair, compiles the pages, builds
the default modules and traces, counts the explorer's default sweep and builds and converts every
chart only when its first visitor arrives, and that visitor waits for all of it (several seconds on
two cores). Streamlit runs no code of the app before a session starts, so `scripts/serve.py` calls
`warm_pages()` first and then starts the server in the same process: the imports, the module and
trace caches (convmix.ui.cache), the pages' cached results and the chart specs (convmix.ui.charts)
are all in place when the first visitor comes, as if someone had opened every page already.

The pages run under Streamlit's own headless runner (streamlit.testing.v1.AppTest), one session
that visits every page in the menu, as a visitor clicking through would. AppTest installs a
stand-in runtime only while a script runs and removes it afterwards; the caches it fills are the
process's own (st.cache_resource and st.cache_data keep them in the process, not in the runtime).
Afterwards the app is left in navigation mode, the mode any st.navigation run leaves a server in, so
that a visitor's first request for a page URL opens it directly. Nothing here runs under a real
server: a page that fails to render is reported, not raised, and the server starts all the same.
"""

from __future__ import annotations

import functools
import gc
import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"
# Views that a page draws only when they are open (lazy tabs), each opened by its URL once more.
LAZY_VIEWS = (
    ("pages/network.py", {"network_view": "weights"}),
    *(("pages/bias.py", {"bias_view": view}) for view in ("shift", "batchnorm", "learning", "acmix", "article")),
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Warmed:
    page: str
    seconds: float
    problem: str | None = None  # why the page did not render, if it did not


def _navigation_mode():
    """Keep Streamlit in navigation mode between AppTest's runs (AppTest resets the flag to 'unknown'
    before every run, and the folder pages/ would then switch on the legacy multipage mode, in which
    a run executes the page alone, without the router). Returns the undo."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init

    def undo() -> None:
        PagesManager.__init__ = original
        PagesManager.uses_pages_directory = False  # as after any st.navigation run

    return undo


def scan_components_once():
    """Scan the installed packages for Streamlit components once per process, not once per AppTest
    (each new AppTest reads every installed package's metadata: about 0.5 s on this machine; the
    packages do not change while a process runs). Returns the undo; nothing to undo when this
    Streamlit has no such scan."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:
        return lambda: None
    original = getattr(manifest_scanner, "scan_component_manifests", None)
    if original is None or hasattr(original, "cache_info"):
        return lambda: None
    manifest_scanner.scan_component_manifests = functools.cache(original)

    def undo() -> None:
        manifest_scanner.scan_component_manifests = original

    return undo


def share_compiled_scripts():
    """Compile each script once per process. AppTest gives every run a ScriptCache of its own, so
    that each run compiled its page again (with Streamlit's magic: 20-50 ms a page on two cores),
    and a server's Runtime makes one more, so that its first visitor of each page waited for the
    compilation the warm-up had already done. One shared cache serves AppTest's runs (the warm-up's,
    the tests', the benchmarks') and the Runtime that scripts/serve.py starts after the warm-up; the
    scripts do not change while a server runs (it watches no files). Returns the undo (nothing to
    undo when the cache is shared already or this Streamlit creates its caches elsewhere)."""
    from streamlit.runtime import runtime
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    owners = (app_test, local_script_runner, runtime)
    originals = [getattr(owner, "ScriptCache", None) for owner in owners]
    if any(original is not ScriptCache for original in originals):
        return lambda: None
    shared = ScriptCache()
    for owner in owners:
        owner.ScriptCache = lambda: shared

    def undo() -> None:
        for owner, original in zip(owners, originals, strict=True):
            owner.ScriptCache = original

    return undo


def keep_compiled_scripts() -> None:
    """Keep the shared compiled scripts (share_compiled_scripts) when the last session disconnects.

    Streamlit clears a server's script cache then, so that a server that watches no files picks up
    edited pages with its next visitor; every visitor of a demo that is often idle would compile
    its pages again. A warm server (scripts/serve.py) serves code that does not change while it
    runs: convmix's modules are imported once, so an edit takes a restart anyway."""
    from streamlit.runtime import runtime

    runtime.ScriptCache().clear = lambda: None  # the shared cache (a new, unused one if not shared)


# What a server does once, for its first session, that the warm-up (AppTest, no real session) does
# not: the modules it imports then (about 30 ms on two cores, while the first visitor waits).
FIRST_SESSION_MODULES = ("streamlit.web.skills",)


_settled = False  # whether this process has frozen its long-lived objects (settle_before_serving)


def settle_before_serving() -> None:
    """The last step before the server starts: the first session's one-time imports, then every
    object alive now (imports, caches, the warm-up's modules and charts: some 300,000) exempted
    from the cyclic garbage collector. Streamlit collects every generation after each script run
    (runner.postScriptGC); with those objects in it a collection took 0.1 s of CPU holding the
    GIL, so for 0.1-0.3 s after each run the server sent nothing, not even the page's code that the
    browser was asking for. They live as long as the process; a frozen object that is dropped is
    still freed by reference counting (only a reference cycle among frozen objects would stay)."""
    for name in FIRST_SESSION_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # another Streamlit: nothing to import ahead
            pass
    try:
        from streamlit.runtime.metrics_util import Installation

        Installation.instance()  # reads the machine's id once per process
    except (ImportError, AttributeError):
        pass
    _freeze()


def _freeze() -> None:
    global _settled
    _settled = True
    gc.collect()
    gc.freeze()


def _real_server() -> bool:
    """Whether a real Streamlit server runs this process (AppTest's stand-in runtime is a mock)."""
    from streamlit import runtime

    return runtime.exists() and type(runtime.get_instance()) is runtime.Runtime


def settle_after_first_run() -> None:
    """For a server started without the warm-up (plain `streamlit run`, Streamlit Community Cloud):
    after its first run, what is alive (the imports and the first page's caches, some 200,000
    objects) is frozen as settle_before_serving freezes it, so that Streamlit's collection after
    every later run skips it (70 ms a run on two cores, holding the GIL). Once per process, and
    only under a real server: an AppTest run shares its process with the tests. The router calls
    it at the end of every run; after settle_before_serving it does nothing."""
    if not _settled and _real_server():
        _freeze()


def _warm(page: str, at, path: str | None, fresh: bool = False) -> Warmed:
    """Render one view in the AppTest session `at` (switching to `path`, after the app's first run
    when the session is `fresh`); a view that fails is logged and reported, never raised."""
    start = time.perf_counter()
    try:
        if fresh:
            at.run()
        (at if path is None else at.switch_page(path)).run()
        problem = at.exception[0].value if at.exception else None
    except Exception as err:  # noqa: BLE001 - a page that cannot warm must not stop the server
        problem = f"{type(err).__name__}: {err}"
    if problem:
        _log.warning("warming %s failed: %s", page, problem)
    return Warmed(page, time.perf_counter() - start, problem)


def warm_pages(language: str = "en", timeout: float = 300) -> list[Warmed]:
    """Render every page of the menu once, in order, in one headless session, then each view of
    LAZY_VIEWS in a session of its own; return how long each took and what failed."""
    from streamlit.testing.v1 import AppTest

    from convmix.ui.navigation import PAGE_SPECS

    undo, unscan, unshare = _navigation_mode(), scan_components_once(), share_compiled_scripts()
    done: list[Warmed] = []
    try:
        at = AppTest.from_file(str(APP), default_timeout=timeout)
        at.query_params["lang"] = language
        for i, spec in enumerate(PAGE_SPECS):  # the first page is the app's own first run
            done.append(_warm(spec.path, at, None if i == 0 else spec.path))
        for path, params in LAZY_VIEWS:  # a fresh session each: a session opens the tab its URL names
            view = AppTest.from_file(str(APP), default_timeout=timeout)
            view.query_params.update({"lang": language, **params})
            done.append(_warm(f"{path}?{urlencode(params)}", view, path, fresh=True))
    finally:
        undo()
        unscan()
        unshare()
    return done
