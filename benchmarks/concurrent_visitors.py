"""Eight (or more) visitors at once: each opens the explorer in its own Chromium session and runs a
latency sweep against one server.

Checks and prints: every session finishes its sweep, no page shows an exception, the server keeps
answering its health check throughout (with the slowest answer), and the measurement lock held:
no two timed measurements overlapped (the server logs each locked interval to a file).

    python benchmarks/concurrent_visitors.py [--sessions 8] [--size 16]

Exit status 0 when every check passed. Needs Chromium (see README) and Playwright.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.server import CHROMIUM_ARGS, IDLE, chromium_path, running_app  # noqa: E402

MEASURE_BUTTON = "button:has-text('Measure')"
DONE_TEXT = "All shown configurations are measured"


class HealthProbe(threading.Thread):
    """Polls /_stcore/health every 0.5 s while the visitors work."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.ok, self.failed, self.slowest = base, 0, 0, 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(self.base + "/_stcore/health", timeout=10) as resp:
                    good = resp.read().strip() == b"ok"
            except OSError:
                good = False
            self.slowest = max(self.slowest, time.perf_counter() - start)
            self.ok, self.failed = self.ok + good, self.failed + (not good)
            self.stop.wait(0.5)


async def wait_idle(page, timeout_ms: float) -> None:
    await page.wait_for_selector(IDLE, timeout=timeout_ms)
    stable = 0
    while stable < 4:
        await page.wait_for_timeout(250)
        stable = stable + 1 if await page.locator(IDLE).count() else 0


async def visitor(browser, base: str, index: int, size: int, timeout_ms: float) -> dict:
    """One visitor: a sweep of its own (its seed differs), measured with the quick effort."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    start = time.perf_counter()
    try:
        await page.goto(f"{base}/explorer?seed={index}&height={size}&width={size}&in_planes=16&out_planes=16")
        await wait_idle(page, timeout_ms)
        await page.get_by_role("tab", name="Latency and memory").click()
        await page.get_by_text("quick", exact=True).click()
        await wait_idle(page, timeout_ms)
        await page.locator(MEASURE_BUTTON).first.click()
        await page.get_by_text(DONE_TEXT).first.wait_for(timeout=timeout_ms)
        await wait_idle(page, timeout_ms)
        exceptions = await page.locator("[data-testid='stException']").count()
        return {"index": index, "ok": exceptions == 0 and not errors, "seconds": time.perf_counter() - start,
                "exceptions": exceptions, "errors": errors}
    except Exception as exc:  # noqa: BLE001 - report every kind of failure per visitor
        return {"index": index, "ok": False, "seconds": time.perf_counter() - start, "exceptions": -1,
                "errors": errors + [f"{type(exc).__name__}: {exc}"]}
    finally:
        await context.close()


def overlaps(log: Path) -> tuple[int, int]:
    """(locked intervals, pairs of them that overlap in time)."""
    spans = sorted(tuple(map(float, line.split()[:2])) for line in log.read_text().splitlines() if line)
    bad = sum(1 for (_, end), (start, _) in zip(spans, spans[1:], strict=False) if start < end)
    return len(spans), bad


async def main_async(args) -> int:
    from playwright.async_api import async_playwright

    log = Path(tempfile.mkdtemp()) / "lock.log"
    log.touch()
    with running_app(env={"CONVMIX_LOCK_LOG": str(log)}) as base:
        probe = HealthProbe(base)
        probe.start()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            start = time.perf_counter()
            results = await asyncio.gather(
                *(visitor(browser, base, i, args.size, args.timeout * 1000) for i in range(args.sessions)))
            wall = time.perf_counter() - start
            await browser.close()
        probe.stop.set()
        probe.join()
    intervals, overlapping = overlaps(log)
    finished = sum(r["ok"] for r in results)
    print(f"visitors: {args.sessions}, finished without error: {finished}, wall {wall:.1f} s")
    for r in sorted(results, key=lambda r: r["index"]):
        status = "ok" if r["ok"] else f"FAILED {r['errors'][:2]} exceptions={r['exceptions']}"
        print(f"  visitor {r['index']}: {r['seconds']:.1f} s {status}")
    print(f"health checks: {probe.ok} ok, {probe.failed} failed, slowest answer {probe.slowest * 1000:.0f} ms")
    print(f"measurement lock: {intervals} locked intervals, {overlapping} overlapping")
    passed = finished == args.sessions and probe.failed == 0 and overlapping == 0 and intervals > 0
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--size", type=int, default=16, help="input height and width of each sweep")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a visitor may take")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
