"""Start the app as a real Streamlit server on a free port, and find a Chromium for Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
IDLE = (
    "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
    "[data-test-script-state='notRunning']"
)


def chromium_path() -> str | None:
    """CONVMIX_CHROMIUM, else a system Chromium; None lets Playwright use its own download."""
    env = os.environ.get("CONVMIX_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict | None = None, timeout: float = 90, command: list[str] | None = None):
    """Yield the base URL of a fresh `streamlit run streamlit_app.py` server (or of `command`, which
    takes the same options, e.g. scripts/serve.py); stop it afterwards."""
    port = free_port()
    cmd = [
        *(command or [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py")]),
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--server.port", str(port),
        "--server.address", "127.0.0.1",
    ]
    log = open(ROOT / ".pytest_cache" / f"streamlit-{port}.log", "w") if (ROOT / ".pytest_cache").is_dir() \
        else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("streamlit did not answer its health check in time")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not subprocess.DEVNULL:
            log.close()


def wait_idle(page, timeout_ms: float = 120_000) -> None:
    """Wait until the script has run and stopped, and stays stopped while the page draws.

    The state is 'initial' until the server connects and 'notRunning' both before a rerun starts
    and after it ends, so it must be seen connected and idle on several polls in a row.
    """
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    stable = 0
    while stable < 4:
        page.wait_for_timeout(250)
        stable = stable + 1 if page.locator(IDLE).count() else 0
        if not stable:
            page.wait_for_selector(IDLE, timeout=timeout_ms)
