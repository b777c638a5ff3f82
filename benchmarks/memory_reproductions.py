"""Issue 11's memory reproductions against a real server: the server's peak RSS beside its budget.

Starts `streamlit run streamlit_app.py` on a free localhost port (budget $CONVMIX_MEMORY_BUDGET, 1 GiB
unless --budget says otherwise), then replays each reproduction in a fresh Chromium session and reads
the server process's peak resident memory (VmHWM from /proc/<pid>/status, reset before each
reproduction through /proc/<pid>/clear_refs). Goal: peak <= budget for every one. The command-line
reproduction runs `python -m convmix sweep` as a child process and reads its peak from getrusage.

    python benchmarks/memory_reproductions.py [--budget 1GiB] [--only 2a 4b]

Prints one row per reproduction: peak RSS, the budget, whether it fits, seconds, and what the page
said. Exit status 0 when every peak is within the budget. Linux only (reads /proc); needs Chromium
(see README) and Playwright. The machine's other load does not change the peaks, only the seconds.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convmix.budget import parse_bytes  # noqa: E402
from convmix.format import human_bytes  # noqa: E402
from tests.browser.server import CHROMIUM_ARGS, IDLE, chromium_path, free_port  # noqa: E402

TIMEOUT_MS = 300_000
UPLOAD = "[data-testid='stFileUploaderDropzoneInput']"


# -- the server ---------------------------------------------------------------------------------------
@dataclass
class Server:
    base: str
    pid: int

    def reset_peak(self) -> None:
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")

    def status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} for process {self.pid}")

    def settle(self, quiet_seconds: float = 2.0, most: float = 60.0) -> None:
        """Wait until the server's CPU time stops growing (an earlier session's run has finished)."""
        def cpu() -> int:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        deadline, last, quiet = time.monotonic() + most, cpu(), 0.0
        while quiet < quiet_seconds and time.monotonic() < deadline:
            time.sleep(0.5)
            now = cpu()
            quiet = quiet + 0.5 if now - last <= 2 else 0.0
            last = now

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/_stcore/health", timeout=10) as resp:
                return resp.read().strip() == b"ok"
        except OSError:
            return False


@contextmanager
def server(budget: str, log: Path):
    port = free_port()
    env = {**os.environ, "CONVMIX_MEMORY_BUDGET": budget}
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
           "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false", "--server.port", str(port),
           "--server.address", "127.0.0.1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            srv = Server(f"http://127.0.0.1:{port}", proc.pid)
            deadline = time.monotonic() + 120
            while not srv.alive():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start (see {log})")
                time.sleep(0.3)
            yield srv
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_idle(page, timeout_ms: float = TIMEOUT_MS) -> None:
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    stable = 0
    while stable < 4:
        page.wait_for_timeout(250)
        stable = stable + 1 if page.locator(IDLE).count() else 0
        if not stable:
            page.wait_for_selector(IDLE, timeout=timeout_ms)


def said(page) -> str:
    """What the page said about the request: its first error or warning, shortened."""
    for selector in ("[data-testid='stException']", "[data-testid='stAlertContentError']",
                     "[data-testid='stAlertContentWarning']", "[data-testid='stAlertContentSuccess']"):
        boxes = page.locator(f"[data-testid='stMain'] {selector}")
        if boxes.count():
            text = " ".join(boxes.first.inner_text().split())
            return ("EXCEPTION: " if "Exception" in selector else "") + text[:150]
    return "(no message)"


# -- the reproductions ------------------------------------------------------------------------------------
def url(base: str, path: str, **params) -> str:
    return f"{base}/{path}?" + "&".join(f"{k}={v}" for k, v in params.items())


ITEM1 = dict(in_planes=2048, out_planes=2048, kernel_conv=15, variant="fixed", kernel_att=1, height=8, width=8)
ITEM4 = dict(in_planes=8, out_planes=128, kernel_att=1, head=2, kernel_conv=15, height=8, width=8, batch=64,
             variant="fixed")
ITEM7A = dict(in_planes=8, out_planes=64, kernel_att=1, head=32, kernel_conv=15, height=48, width=48, batch=64,
              variant="fixed")
ITEM7B = dict(in_planes=64, out_planes=2048, head=1, kernel_conv=15, height=16, width=16, variant="fixed")


def explorer_measure(config: dict, clear_vary: bool) -> Callable:
    def run(page, base):
        page.goto(url(base, "explorer", **config))
        wait_idle(page)
        if clear_vary:  # remove both "vary" chips: the sidebar's one configuration is measured
            box = page.locator("[data-testid='stMultiSelect']").first
            box.click()
            for _ in range(2):
                page.keyboard.press("Backspace")
                wait_idle(page)
            page.keyboard.press("Escape")
        page.get_by_role("tab", name="Latency and memory").click()
        wait_idle(page)
        button = page.locator("button:has-text('Measure')").first
        if button.count() and button.is_enabled():
            button.click()
            wait_idle(page)
            page.get_by_role("tab", name="Latency and memory").click()
            wait_idle(page)
        return said(page)

    return run


def bias_upload(data: bytes, name: str) -> Callable:
    def run(page, base):
        page.goto(url(base, "bias", bias_size=448))
        wait_idle(page)
        page.get_by_text("Your image", exact=True).click()
        wait_idle(page)
        page.locator(UPLOAD).set_input_files([{"name": name, "mimeType": "image/png", "buffer": data}])
        wait_idle(page)
        return said(page) if page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']").count() \
            else "accepted: " + " ".join(page.get_by_text("Your image (").first.inner_text().split())[:100]

    return run


def walkthrough(config: dict, section: str) -> Callable:
    def run(page, base):
        page.goto(url(base, "walkthrough", **config, section=section))
        wait_idle(page)
        return said(page)

    return run


def home_modules(configs: list[dict]) -> Callable:
    def run(page, base):
        for config in configs:
            page.goto(url(base, "", **config))
            wait_idle(page)
        return said(page)

    return run


def home_compare(config: dict) -> Callable:
    def run(page, base):
        page.goto(url(base, "", **config))
        wait_idle(page)
        page.get_by_role("button", name="Measure reference vs fast").click()
        wait_idle(page)
        return said(page)

    return run


def many_uploads(count: int, size: int) -> Callable:
    def run(page, base):
        page.goto(f"{base}/explorer")
        wait_idle(page)
        page.get_by_role("tab", name="Latency and memory").click()
        wait_idle(page)
        folder = Path(tempfile.mkdtemp(prefix="convmix_uploads_"))
        filler = b"in_planes\n" + b"1\n" * (size // 2)
        files = []
        for i in range(count):
            path = folder / f"r{i}.csv"
            path.write_bytes(filler)
            files.append(str(path))
        page.locator(UPLOAD).set_input_files(files)
        page.wait_for_timeout(2000)
        wait_idle(page)
        main = page.locator("[data-testid='stMain']")
        read = main.locator("[data-testid='stAlertContentError'], [data-testid='stAlertContentSuccess']").count()
        refused = main.get_by_text("status code 413").count()
        failed = main.get_by_text("Request failed").count()
        return (f"{read} files read by the page; {refused} uploads refused by the per-session cap (HTTP 413), "
                f"{failed - refused} failed otherwise")

    return run


def thin_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4096, 1), (9, 99, 199)).save(buf, "PNG")
    return buf.getvalue()


def rotated_jpeg() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (1, 4096), (9, 99, 199)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def reproductions() -> list[tuple[str, str, Callable]]:
    big = dict(in_planes=2048, out_planes=2048, kernel_conv=15, variant="fixed")  # a 444 MiB module
    return [
        ("1a", "explorer: 2048 channels, kc 15, vary chips removed, measure", explorer_measure(ITEM1, True)),
        ("2a", "bias: 97-byte 4096×1 PNG at size 448", bias_upload(thin_png(), "thin.png")),
        ("2b", "bias: 1×4096 JPEG with EXIF rotation at 448", bias_upload(rotated_jpeg(), "rotated.jpg")),
        ("3", "home: a 444 MiB module at 4 seeds and sizes",
         home_modules([dict(big, seed=s, height=8 + s, width=8) for s in range(4)])),
        ("4a", "walkthrough: batch 64, kc 15, section=Overview", walkthrough(ITEM4, "Overview")),
        ("4b", "walkthrough: batch 64, kc 15, section=dep_conv", walkthrough(ITEM4, "dep_conv")),
        ("7a", "explorer: 8→64, head 32, kc 15, 48×48, batch 64, measure", explorer_measure(ITEM7A, True)),
        ("7b", "home: reference vs fast, ACmix(64, 2048, head=1, kc=15) 16×16", home_compare(ITEM7B)),
        ("12", "explorer: 150 uploads of 1.9 MB", many_uploads(150, 1_900_000)),
    ]


def cli_reproduction(budget: str) -> tuple[int, float, str]:
    """Item 1's command line: the sweep's own peak RSS (a child process, read from getrusage)."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [sys.executable, "-m", "convmix", "sweep", "--in-planes", "2048", "--kernel-conv", "15", "--variant",
         "fixed", "--kernel-att", "1", "--size", "8", "--budget", "quick"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "CONVMIX_MEMORY_BUDGET": budget}, timeout=600)
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
    lines = [line for line in result.stderr.splitlines() if "skipped" in line or "error" in line]
    return peak, time.perf_counter() - start, (lines[0].split(": ", 1)[-1] if lines else "measured")[:150]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default=os.environ.get("CONVMIX_MEMORY_BUDGET") or "1GiB")
    parser.add_argument("--only", nargs="*", default=None, help="reproduction ids to run (default: all)")
    args = parser.parse_args()
    limit = parse_bytes(args.budget)
    from playwright.sync_api import sync_playwright

    rows = []
    if not args.only or "1cli" in args.only:
        peak, seconds, message = cli_reproduction(args.budget)
        rows.append(("1cli", "CLI: sweep --in-planes 2048 --kernel-conv 15 ... (own process)", peak, seconds,
                     message))
    log = Path(tempfile.gettempdir()) / "convmix_memory_reproductions.log"
    with server(args.budget, log) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        idle = srv.status("VmRSS")
        print(f"server pid {srv.pid} at {srv.base}; budget {human_bytes(limit)}; resident after start "
              f"{human_bytes(idle)}; machine shared with other work (seconds are noisy)", flush=True)
        for key, what, run in reproductions():
            if args.only and key not in args.only:
                continue
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            srv.settle()  # the previous session's work, if any, is not this one's
            srv.reset_peak()
            start = time.perf_counter()
            try:
                message = run(page, srv.base)
            except Exception as err:  # noqa: BLE001 - a reproduction that breaks is reported, not fatal
                message = f"FAILED: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
            seconds = time.perf_counter() - start
            context.close()
            rows.append((key, what, srv.status("VmHWM"), seconds, message))
            print(f"  {key}: done in {seconds:.0f} s", flush=True)
            if not srv.alive():
                rows[-1] = (*rows[-1][:4], rows[-1][4] + " (SERVER DOWN)")
                break
        browser.close()

    print(f"\n{'id':<5} {'peak RSS':>11} {'budget':>10}  {'fits':<4} {'s':>5}  reproduction / what the page said")
    ok = True
    for key, what, peak, seconds, message in rows:
        fits = peak <= limit
        ok &= fits and not message.startswith(("FAILED", "EXCEPTION"))
        print(f"{key:<5} {human_bytes(peak):>11} {human_bytes(limit):>10}  {'yes' if fits else 'NO':<4} "
              f"{seconds:5.0f}  {what}\n{'':<40}-> {message}")
    print("\nall peaks within the budget" if ok else "\nSOME PEAK EXCEEDED THE BUDGET OR A REPRODUCTION FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
