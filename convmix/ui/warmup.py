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

    undo, unscan = _navigation_mode(), scan_components_once()
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
    return done
