"""The visitor's session: is anyone still waiting for this run, and dropping uploads it will not use.

Both need Streamlit's runtime, which has no public API for them in 1.67: the session's id comes from
the script-run context (`get_script_run_ctx`), whether it is connected from `Runtime.is_active_session`
(the websocket session manager drops a session from its active set when the tab closes), and
uploaded files live in the context's `uploaded_file_mgr` (what `st.chat_input` uses to delete its
own files). Every use is guarded: where the runtime is absent (AppTest, a script run bare) or has
changed, a session counts as connected and uploads are left to Streamlit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

_log = logging.getLogger(__name__)


def _context():
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        return get_script_run_ctx(suppress_warning=True)
    except Exception:  # a Streamlit without this private module: behave as if unknown
        return None


def connection_check() -> Callable[[], bool]:
    """A function that tells, from any thread, whether this run's visitor is still connected.

    Ask it while waiting (for the measurement lock, say): when the tab is closed the work can be
    dropped instead of run for nobody. True whenever it cannot be told.
    """
    ctx = _context()
    session_id = getattr(ctx, "session_id", None)
    if session_id is None:
        return lambda: True

    def connected() -> bool:
        try:
            from streamlit.runtime import Runtime

            if not Runtime.exists():
                return True
            return bool(Runtime.instance().is_active_session(session_id))
        except Exception:  # noqa: BLE001 - an unexpected runtime must not stop the work
            return True

    return connected


def discard_uploads(files: Iterable) -> int:
    """Free the server's copy of uploaded files this page will not read; how many were dropped.

    Streamlit keeps every uploaded file in memory for the session (and for minutes after its tab
    closes), so files beyond a page's limit are removed at once.
    """
    ctx = _context()
    manager = getattr(ctx, "uploaded_file_mgr", None)
    session_id = getattr(ctx, "session_id", None)
    if manager is None or session_id is None or not hasattr(manager, "remove_file"):
        return 0
    dropped = 0
    for f in files:
        file_id = getattr(f, "file_id", None)
        if file_id is None:
            continue
        try:
            manager.remove_file(session_id, file_id)
            dropped += 1
        except Exception as err:  # noqa: BLE001 - best effort: the session's end frees them anyway
            _log.warning("could not drop an uploaded file: %s", err)
    return dropped


MAX_SESSION_FILES = 16  # the explorer reads 8 result files at once, the bias page one image
MAX_SESSION_BYTES = 100 << 20  # a ResNet-50 checkpoint (73 MB) fits; see .streamlit/config.toml


def limit_uploads(max_files: int = MAX_SESSION_FILES, max_bytes: int = MAX_SESSION_BYTES) -> bool:
    """Cap what one session may keep uploaded on the server; True when the cap is in place.

    Streamlit 1.67 has no such setting: its upload route stores every file a browser sends
    (`uploaded_file_mgr.add_file`) before any script sees it, so 150 files of 1.9 MB took the server
    past 1 GB. This wraps that method on the runtime's manager, once per process: a file beyond
    `max_files` files or `max_bytes` bytes for its session is answered with HTTP 413 (the uploader
    shows it as failed) and never stored. Where the manager is not the in-memory one this was
    written against, nothing is changed.
    """
    ctx = _context()
    manager = getattr(ctx, "uploaded_file_mgr", None)
    if manager is None:
        return False
    if getattr(manager, "_convmix_limited", False):
        return True
    storage = getattr(manager, "file_storage", None)
    original = getattr(manager, "add_file", None)
    if not isinstance(storage, dict) or original is None:
        return False
    try:
        from starlette.exceptions import HTTPException as refuse
    except ImportError:  # another server underneath: a plain error (the upload fails all the same)
        def refuse(status_code: int, detail: str):
            return ValueError(detail)

    def add_file(session_id, file, *args, **kwargs):
        held = storage.get(session_id) or {}
        if getattr(file, "file_id", None) not in held:
            count = len(held) + 1
            size = sum(len(f.data) for f in held.values()) + len(getattr(file, "data", b""))
            if count > max_files or size > max_bytes:
                raise refuse(status_code=413, detail=(
                    f"This session already holds {len(held)} uploaded files; remove some first "
                    f"(at most {max_files} files and {max_bytes >> 20} MB)."))
        return original(session_id, file, *args, **kwargs)

    manager.add_file = add_file
    manager._convmix_limited = True
    return True
