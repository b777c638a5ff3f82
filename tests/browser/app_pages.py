"""Every view of the app that a browser check or a screenshot visits: each page of
convmix.ui.navigation, and each section of the walkthrough (its `?section=` values).

The walkthrough's sections are its language-neutral ids, convmix.walkthrough.SECTION_IDS (what the
page's tabs and `?section=` use).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from convmix.i18n import LANGUAGES
from convmix.ui.navigation import PAGE_SPECS, url_path
from convmix.walkthrough import SECTION_IDS

ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH = "pages/walkthrough.py"
SECTION_PARAM = "section"


@dataclass(frozen=True)
class View:
    page: str  # the page's file, as in PAGE_SPECS
    path: str  # its URL path ("" for home)
    section: str | None = None  # a walkthrough section's URL value

    @property
    def name(self) -> str:
        """A short name usable in a test id and a file name: home, bias, walkthrough-stage-i, …"""
        stem = self.path or "home"
        if self.section is None:
            return stem
        return stem + "-" + "-".join("".join(ch if ch.isalnum() else " " for ch in self.section.lower()).split())

    def url(self, base: str, lang: str) -> str:
        params = {SECTION_PARAM: self.section} if self.section is not None else {}
        params["lang"] = lang
        return f"{base}/{self.path}?{urlencode(params)}"


def walkthrough_sections() -> list[str]:
    """The URL values of the walkthrough's sections, in order."""
    return list(SECTION_IDS)


def views() -> list[View]:
    """Every page; the walkthrough once per section (its first section is what the bare page shows)."""
    out: list[View] = []
    for spec in PAGE_SPECS:
        if spec.path == WALKTHROUGH:
            out += [View(spec.path, url_path(spec), section) for section in walkthrough_sections()]
        else:
            out.append(View(spec.path, url_path(spec)))
    return out


LANGS = tuple(LANGUAGES)


# Every visible element has loaded its component (Streamlit draws a skeleton in its place until the
# element's code has arrived: at the end of a first run most widgets and charts are still skeletons),
# every visible chart has drawn its marks (Vega: svg.marks or canvas.marks) and every visible diagram
# its graph (Graphviz: g.graph); a chart's toolbar icons are SVGs too, so "an svg" is not enough.
DRAWN = """() => ![...document.querySelectorAll("[data-testid='stSkeleton']")].some(
    skeleton => skeleton.offsetParent !== null) && [...document.querySelectorAll(
    "[data-testid='stVegaLiteChart'], [data-testid='stGraphVizChart']")].every(
    chart => chart.offsetParent === null || chart.querySelector('.marks, g.graph'))"""
CONTENT = "[data-testid='stMain'] [data-testid='stElementContainer']"


def settle(pg, timeout_ms: float = 180_000) -> None:
    """Wait until the script has run and finished, and every visible chart and diagram is drawn.

    A fresh page is idle before its first run as well as after it: the run has started once the
    main area holds an element (a new browser context starts empty), and then idle means finished.
    """
    from .server import wait_idle

    pg.wait_for_selector(CONTENT, timeout=timeout_ms)
    wait_idle(pg, timeout_ms)
    pg.wait_for_function(DRAWN, timeout=60_000)
    pg.wait_for_timeout(300)


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1400, "height": 1000}}
MAIN_OVERFLOW = """() => {
    const main = document.querySelector("[data-testid='stMain']");
    return [main.scrollWidth, main.clientWidth];
}"""
# What makes the main area wider than the screen (for the message of a failed check): elements past
# its right edge that no scrolling or clipping box of their own holds in.
WIDER_THAN_MAIN = """() => {
    const main = document.querySelector("[data-testid='stMain']");
    const right = main.getBoundingClientRect().left + main.clientWidth;
    const held = el => {
        for (let a = el.parentElement; a && a !== main; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= right + 1) return true;
        }
        return false;
    };
    const out = [];
    for (const el of main.querySelectorAll('*')) {
        const box = el.getBoundingClientRect();
        if (box.width > 0 && box.right > right + 1 && !held(el)) {
            const owner = el.closest('[data-testid]');
            const text = (el.innerText || el.textContent || '').trim().slice(0, 40);
            out.push(`${el.tagName.toLowerCase()} in ${owner ? owner.dataset.testid : '?'} ` +
                     `(${Math.round(box.width)} px wide, right edge ${Math.round(box.right)} > ${Math.round(right)}): ${text}`);
        }
        if (out.length >= 6) break;
    }
    return out;
}"""


def exceptions(pg) -> list[str]:
    """The text of every Streamlit exception box on the page."""
    return [e.inner_text()[:300] for e in pg.locator("[data-testid='stException']").all()]
