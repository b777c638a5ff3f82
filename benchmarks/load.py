"""Fast on a busy, shared machine (issue 16): every figure quiet and beside a busy core, side by side.

    python benchmarks/load.py [--rounds 5] [--only forward,pages,browser] [--pages home,bias,...]

Figures, each timed in alternation with the others, round by round, and each round once quiet and
once while a background process keeps one core busy (a bounded spin loop pinned to one CPU with
os.sched_setaffinity, stopped at the end of its block and in any case after --load-seconds):

* forward: the default configuration's forward (reference and fast attention) and its trace, on the
  app's thread count (convmix.runtime: 1) and on the count a sweep of the command line picks
  (convmix.sweep.sweep_threads: one per CPU that other processes leave idle, chosen afresh at the
  start of each quiet and each loaded block from what they keep busy over 0.5 s; the counts picked
  are printed). Goals: loaded/quiet at most 2x; fast at least 15x faster than reference in both
  conditions (on the app's thread count).
* pages: a warm rerun of every page under AppTest after one widget change (a representative widget of
  each page, switched between two values already shown once, so that what the page caches is warm):
  the seconds of `at.run()`, which is server time. A real server compiles each page's script once;
  AppTest compiles it on every run, so the runs here share one script cache, as a server does.
  Goals: at most 0.3 s, and loaded/quiet at most 2x.
* browser: the first render of every page in Chromium, each on a server started for it (quiet only):
  from the request until the script has finished, no element is still a loading skeleton (the
  browser fetches and starts each kind of element's code when it first appears, after the script
  has often finished) and every chart is drawn. Goal: at most 2 s.
  `--server streamlit` starts `streamlit run streamlit_app.py`, `--server warm` (the default)
  `python scripts/serve.py`, which warms imports and caches before it serves (see its docstring).

Prints each figure's median and range (min to max) per condition, the loaded/quiet ratio of the
medians, the CPU time this process used per second of wall time (about 1 for one thread that has a
core to itself; less when other processes take turns on it), the CPU time of one call loaded against
quiet (the work itself: near 1 when only the share of a core changed) and the fast/reference ratio. For a
first render it prints when the browser had loaded Streamlit's page, when the script had finished
and when every chart was drawn. Exit status 0 when every goal is met, 1 otherwise. The machine
this runs on may be shared: run it more than once, and compare ratios rather than seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from convmix.config import ACmixConfig  # noqa: E402
from convmix.runtime import MEASUREMENT, SERVER, configure_torch, thread_count  # noqa: E402
from convmix.trace import trace_forward  # noqa: E402

QUIET, LOADED = "quiet", "loaded"
GOAL_LOAD_RATIO, GOAL_FAST_RATIO, GOAL_RERUN_S, GOAL_FIRST_RENDER_S = 2.0, 15.0, 0.3, 2.0
SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


# -- the background load --------------------------------------------------------------------------------
class BusyCore:
    """One spinning process pinned to one CPU (the last this process may use) while the block runs."""

    def __init__(self, seconds: float):
        self.seconds, self.proc = seconds, None
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
        self.cpu = cpus[-1]

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=self.seconds)])
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self.proc.pid, {self.cpu})
        time.sleep(0.2)  # let it reach full speed
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


# -- figures ----------------------------------------------------------------------------------------------
@dataclass
class Figure:
    name: str
    run: Callable[[int], float]  # sample index -> seconds of one timed unit
    kind: str = "forward"
    samples: dict[str, list[float]] = field(default_factory=lambda: {QUIET: [], LOADED: []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {QUIET: [], LOADED: []})  # CPU s / wall s

    def median(self, condition: str) -> float:
        return statistics.median(self.samples[condition])

    def ratio(self) -> float:
        return self.median(LOADED) / self.median(QUIET)


def timed(fn: Callable[[], object], repeat: int = 1) -> Callable[[int], float]:
    def run(_i: int) -> float:
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        return (time.perf_counter() - start) / repeat

    run.repeat = repeat
    return run


class SweepThreads:
    """The thread count `python -m convmix sweep` would pick now, chosen at the start of each block.

    As convmix.sweep.sweep_threads picks it, from the CPUs that other processes keep busy over the
    next 0.5 s, without idle_cpus' floor of the 1-minute load average: this benchmark keeps a core
    busy itself, and the load average would count it as another process.
    """

    def __init__(self):
        self.count = thread_count(role=MEASUREMENT)
        self.chosen: dict[str, list[int]] = {QUIET: [], LOADED: []}

    def choose(self, condition: str) -> None:
        from convmix.sweep import idle_cpus, sweep_threads

        self.count = sweep_threads(idle=lambda: idle_cpus(0.5, load_average_floor=False))
        self.chosen[condition].append(self.count)

    def __call__(self) -> int:
        return self.count


def with_threads(threads: int | Callable[[], int], run: Callable[[int], float]) -> Callable[[int], float]:
    def wrapped(i: int) -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(threads() if callable(threads) else threads)
        try:
            return run(i)
        finally:
            torch.set_num_threads(before)

    wrapped.repeat = getattr(run, "repeat", 1)
    return wrapped


def forward_figures(sweep_threads: SweepThreads) -> list[Figure]:
    config = ACmixConfig()  # the default configuration, as the app builds it
    x = config.make_input()
    reference, fast = config.build("reference").eval(), config.build("fast").eval()
    with torch.no_grad():
        assert torch.allclose(reference(x), fast(x), atol=1e-4, rtol=1e-4)

    def forward(module):
        def call():
            with torch.no_grad():
                module(x)

        return call

    app, tag = thread_count(role=SERVER), f"{thread_count(role=SERVER)} thread (app)"
    return [
        Figure(f"forward reference, {tag}", with_threads(app, timed(forward(reference), 2))),
        Figure(f"forward fast, {tag}", with_threads(app, timed(forward(fast), 10))),
        Figure(f"trace (reference), {tag}", with_threads(app, timed(lambda: trace_forward(reference, x)))),
        Figure("forward reference, a sweep's threads", with_threads(sweep_threads, timed(forward(reference), 2))),
        Figure("forward fast, a sweep's threads", with_threads(sweep_threads, timed(forward(fast), 10))),
    ]


# -- warm reruns under AppTest ------------------------------------------------------------------------------
def navigation_mode() -> None:
    """As tests/conftest.py: keep the app in st.navigation mode between AppTest runs."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init


def _set_widget(at, kind: str, key: str, value) -> None:
    getattr(at, kind)(key=key).set_value(value)


def _lang_key(at, kind: str, key: str) -> str:
    """The widget's key as the page made it (some pages add the language or a range to it)."""
    for element in getattr(at, kind):
        if element.key == key or (element.key or "").startswith(key + "_"):
            return element.key
    raise KeyError(f"no {kind} {key!r} on the page")


# page -> (the change: what is set, how), the two values it switches between
PAGE_CHANGES: dict[str, tuple[str, Callable]] = {
    "home": ("sidebar kernel_att 7 <-> 5",
             lambda at, i: at.sidebar.number_input(key="kernel_att").set_value((7, 5)[i % 2])),
    "bias": ("output channel c 0 <-> 5",
             lambda at, i: _set_widget(at, "number_input", _lang_key(at, "number_input", "bias_channel"),
                                       (0, 5)[i % 2])),
    "walkthrough": ("section overview <-> attention path",
                    lambda at, i: at.session_state.__setitem__("wt_section", ("overview", "attention_path")[i % 2])),
    "explorer": ("x axis kernel_att <-> head",
                 lambda at, i: _set_widget(at, "selectbox", _lang_key(at, "selectbox", "explorer_x"),
                                           ("kernel_att", "head")[i % 2])),
    "network": ("ACmix layer layer1.0.conv2 <-> layer2.0.conv2",
                lambda at, i: _set_widget(at, "selectbox", "net_layer", ("layer1.0.conv2", "layer2.0.conv2")[i % 2])),
    "train": ("width 16 <-> 8",
              lambda at, i: _set_widget(at, "number_input", "train_width", (16, 8)[i % 2])),
}
# page -> the URL parameters that open the view the change is made in (a tab drawn only when open)
PAGE_VIEWS = {"network": {"network_view": "weights"}}
EXTRA_CHANGES: dict[str, tuple[str, Callable]] = {
    "walkthrough": ("sidebar kernel_att 7 <-> 5",
                    lambda at, i: at.sidebar.number_input(key="kernel_att").set_value((7, 5)[i % 2])),
}


def page_figure(page: str, what: str, change: Callable) -> Figure:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.query_params.update({"lang": "en", **PAGE_VIEWS.get(page, {})})
    at.run()
    if page != "home":
        at.switch_page(f"pages/{page}.py").run()
    for i in range(3):  # both values shown once (and back): what the page caches is warm
        change(at, i)
        at.run()
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].value}")
    state = {"i": 3}

    def run(_i: int) -> float:
        change(at, state["i"])
        state["i"] += 1
        start = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - start
        if at.exception:
            raise RuntimeError(f"{page}: {at.exception[0].value}")
        return seconds

    return Figure(f"{page}: {what}", run, kind="rerun")


def page_figures(pages: list[str]) -> list[Figure]:
    from convmix.ui.warmup import share_compiled_scripts

    navigation_mode()
    share_compiled_scripts()  # as a server keeps one compilation of each script
    figures = []
    for page in pages:
        figures.append(page_figure(page, *PAGE_CHANGES[page]))
        if page in EXTRA_CHANGES:
            figures.append(page_figure(page, *EXTRA_CHANGES[page]))
    return figures


# -- measuring, side by side -------------------------------------------------------------------------------
def _units(figure: Figure) -> int:
    """Timed calls per sample (a sample's seconds are per call; its CPU time covers them all)."""
    return getattr(figure.run, "repeat", 1)


def measure(figures: list[Figure], rounds: int, samples: int, load_seconds: float,
            on_block: Callable[[str], None] = lambda _condition: None) -> None:
    for r in range(rounds):
        for condition in (QUIET, LOADED):
            load = BusyCore(load_seconds) if condition == LOADED else contextlib.nullcontext()
            with load:
                on_block(condition)
                order = figures if r % 2 == 0 else figures[::-1]  # alternate the order: drift hits all alike
                for figure in order:
                    for _ in range(samples):
                        cpu = time.process_time()
                        wall = figure.run(len(figure.samples[condition]))
                        figure.samples[condition].append(wall)
                        figure.cpu[condition].append((time.process_time() - cpu) / wall / _units(figure))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)


def report(figures: list[Figure]) -> list[str]:
    """Print the table; return the goals missed."""
    missed = []
    width = max(len(f.name) for f in figures)
    unit = {"forward": 1e3, "rerun": 1e3}
    print(f"{'figure':<{width}}  {'quiet: median (min-max) ms':>30}  {'loaded: median (min-max) ms':>30}  "
          f"loaded/quiet  CPU/wall quiet, loaded  CPU per call loaded/quiet")
    for f in figures:
        scale = unit[f.kind]
        cells = []
        for condition in (QUIET, LOADED):
            s = f.samples[condition]
            cells.append(f"{f.median(condition) * scale:,.1f} ({min(s) * scale:,.1f}-{max(s) * scale:,.1f})")
        shares = " ".join(f"{statistics.median(f.cpu[c]):.2f}" for c in (QUIET, LOADED))
        work = [statistics.median(w * c for w, c in zip(f.samples[k], f.cpu[k], strict=True)) for k in (QUIET, LOADED)]
        print(f"{f.name:<{width}}  {cells[0]:>30}  {cells[1]:>30}  {f.ratio():11.2f}x  {shares:>21}  "
              f"{work[1] / work[0]:24.2f}x")
        if f.ratio() > GOAL_LOAD_RATIO:
            missed.append(f"{f.name}: loaded/quiet {f.ratio():.2f}x > {GOAL_LOAD_RATIO:g}x")
        if f.kind == "rerun" and max(f.median(QUIET), f.median(LOADED)) > GOAL_RERUN_S:
            missed.append(f"{f.name}: median rerun {max(f.median(QUIET), f.median(LOADED)):.3f} s > {GOAL_RERUN_S:g} s")
    by_name = {f.name: f for f in figures}
    for f in figures:
        if f.name.startswith("forward reference"):
            fast = by_name[f.name.replace("reference", "fast")]
            app = "(app)" in f.name
            for condition in (QUIET, LOADED):
                ratio = f.median(condition) / fast.median(condition)
                pairs = [a / b for a, b in zip(f.samples[condition], fast.samples[condition], strict=False)]
                print(f"fast/reference speed-up, {f.name.split(', ', 1)[1]}, {condition}: {ratio:.1f}x "
                      f"(per round {min(pairs):.1f}-{max(pairs):.1f}x)")
                if app and ratio < GOAL_FAST_RATIO:
                    missed.append(f"fast only {ratio:.1f}x faster than reference ({condition}, app threads)")
    return missed


# -- first render in a browser ---------------------------------------------------------------------------------
def first_renders(pages: list[str], server: str, repeats: int) -> list[str]:
    from playwright.sync_api import sync_playwright

    from convmix.ui.navigation import PAGE_SPECS, url_path
    from tests.browser.app_pages import CONTENT, DRAWN
    from tests.browser.server import CHROMIUM_ARGS, IDLE, chromium_path, running_app

    ready = f"() => !!document.querySelector({CONTENT!r}) && !!document.querySelector({IDLE!r}) && ({DRAWN})()"
    paths = {spec.path.rsplit("/", 1)[-1].removesuffix(".py"): url_path(spec) for spec in PAGE_SPECS}
    command = None if server == "streamlit" else [sys.executable, str(ROOT / "scripts" / "serve.py")]
    missed = []
    print(f"\nfirst render in Chromium, a fresh server per page ({'streamlit run' if command is None else 'scripts/serve.py'}),"
          f" quiet, {repeats} time(s) each: seconds from the request to a finished script with every element"
          " loaded and every chart drawn")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        with tempfile.TemporaryDirectory() as folder:  # what Streamlit alone costs: a title and nothing else
            bare = Path(folder) / "bare.py"
            bare.write_text("import streamlit as st\n\nst.title('A page with nothing on it')\n")
            with running_app(command=[sys.executable, "-m", "streamlit", "run", str(bare)]) as base:
                floor = [_render(browser, base, ready)[0] for _ in range(3)]
        print(f"  {'(Streamlit alone: a bare page)':<12} {statistics.median(floor):5.2f} s ({min(floor):.2f}-{max(floor):.2f})")
        for page in pages:
            times, second, phases = [], [], []
            for _ in range(repeats):
                with running_app(command=command, timeout=600) as base:
                    seconds, steps = _render(browser, f"{base}/{paths[page]}?lang=en", ready)
                    times.append(seconds)
                    phases.append(steps)
                    second.append(_render(browser, f"{base}/{paths[page]}?lang=en", ready)[0])
            med = statistics.median(times)
            steps = ", ".join(f"{name} {statistics.median(p[name] for p in phases):.2f}" for name in phases[0])
            print(f"  {page:<12} first {med:5.2f} s ({min(times):.2f}-{max(times):.2f}; {steps});"
                  f"  a second visitor {statistics.median(second):5.2f} s")
            if med > GOAL_FIRST_RENDER_S:
                missed.append(f"{page}: first render {med:.2f} s > {GOAL_FIRST_RENDER_S:g} s")
        browser.close()
    return missed


def _render(browser, url: str, ready: str) -> tuple[float, dict[str, float]]:
    """Seconds from the request until the page is ready, and stays so (a page is idle before its
    first run too: the main area must hold an element and the state be idle on four checks in a row),
    and when the browser had loaded Streamlit's page, when the server's last message of the run
    arrived (the script's end, as the server sent it) and when the browser had taken in the end of
    the run (after drawing what came before it)."""
    from tests.browser.app_pages import CONTENT
    from tests.browser.server import IDLE

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    received: list[float] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda _frame: received.append(time.perf_counter())))
    start = time.perf_counter()
    page.goto(url, wait_until="load")
    steps = {"page loaded": time.perf_counter() - start}
    page.wait_for_function(f"() => !!document.querySelector({CONTENT!r}) && !!document.querySelector({IDLE!r})",
                           timeout=180_000, polling=25)
    done = time.perf_counter()
    steps["last message"] = max((t for t in received if t <= done), default=done) - start
    steps["script done"] = done - start
    while True:
        page.wait_for_function(ready, timeout=180_000, polling=25)
        seconds = time.perf_counter() - start
        stable = True
        for _ in range(4):
            page.wait_for_timeout(250)
            stable = stable and page.evaluate(ready)
        if stable:
            break
    if page.locator("[data-testid='stException']").count():
        raise RuntimeError(f"{url}: the page shows an exception")
    context.close()
    return seconds, steps


def main() -> int:
    pages_all = list(PAGE_CHANGES)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each quiet then loaded (default %(default)s)")
    parser.add_argument("--samples", type=int, default=2, help="samples per figure per round and condition")
    parser.add_argument("--only", default="forward,pages,browser", help="which parts (default %(default)s)")
    parser.add_argument("--pages", default=",".join(pages_all), help="which pages (default: all)")
    parser.add_argument("--server", choices=("warm", "streamlit"), default="warm",
                        help="how the browser part starts its servers (default %(default)s)")
    parser.add_argument("--renders", type=int, default=2, help="fresh servers per page in the browser part")
    parser.add_argument("--load-seconds", type=float, default=600.0,
                        help="the longest one background load runs, whatever happens (default %(default)s)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    pages = [p for p in args.pages.split(",") if p]
    unknown = [p for p in pages if p not in PAGE_CHANGES]
    if unknown:
        parser.error(f"unknown page(s) {', '.join(unknown)}: choose from {', '.join(pages_all)}")

    configure_torch(SERVER)  # this thread as the app's; figures set their own counts
    with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else contextlib.nullcontext() as fh:
        load = fh.read().split()[0] if fh else "?"
    print(f"torch {torch.__version__}; {os.cpu_count()} CPUs, {thread_count(role=MEASUREMENT)} usable; app threads "
          f"{thread_count(role=SERVER)}; 1-minute load average at start {load}; background load: one spinning "
          "process pinned to one CPU")
    figures: list[Figure] = []
    sweep_threads = SweepThreads()
    if "forward" in parts:
        figures += forward_figures(sweep_threads)
    if "pages" in parts:
        figures += page_figures(pages)
    missed = []
    if figures:
        measure(figures, args.rounds, args.samples, args.load_seconds,
                sweep_threads.choose if "forward" in parts else lambda _condition: None)
        missed += report(figures)
        if "forward" in parts:
            print("a sweep's threads, picked per block: " + "; ".join(
                f"{c} {', '.join(map(str, sweep_threads.chosen[c]))}" for c in (QUIET, LOADED)))
    if "browser" in parts:
        missed += first_renders(pages, args.server, args.renders)
    print("\ngoals: loaded/quiet <= 2x for every figure; fast >= 15x reference in both conditions (app threads); "
          "warm rerun <= 0.3 s; first render <= 2 s")
    print("all goals met" if not missed else "missed:\n  " + "\n  ".join(missed))
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
