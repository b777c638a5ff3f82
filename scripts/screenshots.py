"""Save desktop and phone screenshots of every page (and walkthrough section) in every language.

    python scripts/screenshots.py [FOLDER] [--only home,bias,...] [--lang en,zh] [--size desktop,phone]

Starts the app on a free port (`streamlit run`, headless), opens each view in Chromium (found as
the browser tests find it: $CONVMIX_CHROMIUM, a system chromium, or Playwright's own) at 1400×1000
(desktop) and 390×844 (phone), and writes FOLDER/<size>/<lang>/<view>.png, the whole page:
Streamlit scrolls its main area, not the document, so the window is made as tall as that area's
content before the picture is taken. FOLDER defaults to artifacts/screenshots (ignored by git).
`--only` takes view names as listed by `--list` (home, bias, walkthrough-overview, …).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.app_pages import LANGS, settle, views  # noqa: E402
from tests.browser.server import CHROMIUM_ARGS, chromium_path, running_app  # noqa: E402

SIZES = {"desktop": (1400, 1000), "phone": (390, 844)}
MAX_HEIGHT = 30_000  # px: a page taller than this is cut (Chromium's own limit is near 32k)
CONTENT_HEIGHT = """() => {
    const main = document.querySelector("[data-testid='stMain']");
    const sidebar = document.querySelector("[data-testid='stSidebarContent']");
    return Math.max(main ? main.scrollHeight : 0, sidebar ? sidebar.scrollHeight : 0);
}"""


def shoot(browser, url: str, size: str, out: Path) -> str:
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone",
                                  device_scale_factor=1)
    page = context.new_page()
    try:
        page.goto(url)
        settle(page)
        tall = min(MAX_HEIGHT, max(height, int(page.evaluate(CONTENT_HEIGHT)) + 40))
        if tall > height:
            page.set_viewport_size({"width": width, "height": tall})
            settle(page)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        errors = page.locator("[data-testid='stException']").count()
        return f"{errors} exception(s)" if errors else "ok"
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=str(ROOT / "artifacts" / "screenshots"))
    parser.add_argument("--only", help="comma-separated view names (see --list)")
    parser.add_argument("--lang", default=",".join(LANGS), help="comma-separated: " + ", ".join(LANGS))
    parser.add_argument("--size", default=",".join(SIZES), help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--list", action="store_true", help="list the view names and stop")
    args = parser.parse_args(argv)

    chosen = views()
    if args.list:
        print("\n".join(view.name for view in chosen))
        return 0
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {view.name for view in chosen}
        if unknown:
            parser.error(f"unknown view(s): {', '.join(sorted(unknown))}; see --list")
        chosen = [view for view in chosen if view.name in wanted]
    langs = args.lang.split(",")
    sizes = args.size.split(",")
    for value, known, what in ((langs, LANGS, "language"), (sizes, SIZES, "size")):
        if bad := [v for v in value if v not in known]:
            parser.error(f"unknown {what}(s): {', '.join(bad)}")

    from playwright.sync_api import sync_playwright

    folder = Path(args.folder)
    failed = 0
    with running_app() as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            for view in chosen:
                for lang in langs:
                    for size in sizes:
                        out = folder / size / lang / f"{view.name}.png"
                        start = time.monotonic()
                        try:
                            result = shoot(browser, view.url(base, lang), size, out)
                        except Exception as exc:  # noqa: BLE001 - one view's failure is reported, the rest go on
                            result = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                        failed += result != "ok"
                        print(f"{out.relative_to(folder)}  {result}  ({time.monotonic() - start:.0f} s)",
                              flush=True)
        finally:
            browser.close()
    print(f"{folder}: {failed} view(s) with problems" if failed else f"saved in {folder}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
