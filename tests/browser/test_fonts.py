"""Chinese is drawn with the app's own CJK font on every page (issue 12, item 6).

On each page in Chinese, in Chromium:
  * the convmix-cjk font face (static/fonts, .streamlit/config.toml) has loaded, and
    `document.fonts.check` says it can draw Chinese;
  * every sampled element that holds Chinese (prose, labels, menus, the diagram, chart titles, axes
    and legends) names convmix-cjk in its font-family before any generic family;
  * the Chinese characters of each sampled element, drawn in that element's font, come from a web
    font of the app: Chrome's DevTools protocol (CSS.getPlatformFontsForNode) names the fonts that
    really drew a node's glyphs and says whether each is a web font. A machine with system CJK fonts
    (CI installs fonts-noto-cjk) would draw with them if the app's font were missing or named too
    late, and this check tells the two apart;
  * Chinese drawn onto a canvas (Vega uses one for large charts) was drawn with a font list that names
    convmix-cjk, after the face had loaded (a canvas does not redraw when a font arrives).
"""

from __future__ import annotations

import pytest

from convmix.ui.navigation import PAGE_SPECS, url_path

from .app_pages import DESKTOP, settle

pytestmark = pytest.mark.browser

FAMILY = "convmix-cjk"
GENERIC = {"serif", "sans-serif", "monospace", "cursive", "fantasy", "system-ui", "ui-serif", "ui-sans-serif",
           "ui-monospace", "ui-rounded", "emoji", "math", "fangsong"}
CJK_CLASS = r"[\u2E80-\u9FFF\uF900-\uFAFF\uFF00-\uFFEF]"

# Records Chinese text drawn on any canvas, with the font it was drawn in and the face's state then.
CANVAS_SPY = """(() => {
  const cjk = new RegExp('__CJK__');
  const record = (ctx, text) => {
    if (typeof text !== 'string' || !cjk.test(text)) return;
    const face = [...document.fonts].find(f => f.family.replace(/["']/g, '') === '__FAMILY__');
    (window.__cjkCanvasText = window.__cjkCanvasText || []).push(
      {text: text.slice(0, 40), font: ctx.font, loaded: !!face && face.status === 'loaded'});
  };
  for (const name of ['fillText', 'strokeText']) {
    const draw = CanvasRenderingContext2D.prototype[name];
    CanvasRenderingContext2D.prototype[name] = function (text, ...rest) {
      record(this, text);
      return draw.call(this, text, ...rest);
    };
  }
})();""".replace("__CJK__", CJK_CLASS).replace("__FAMILY__", FAMILY)

# Marks up to `limit` visible elements whose own text holds Chinese, spread over the page, half from
# charts and diagrams (SVG text) when there are any; gives each a probe child holding only its Chinese
# characters, for the DevTools protocol to ask which fonts draw them.
PROBE = """(limit) => {
  const cjk = new RegExp('__CJK__', 'g');
  const owners = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    cjk.lastIndex = 0;
    if (!el || owners.has(el) || !cjk.test(walker.currentNode.data)) continue;
    if (el.closest('script, style, title, [data-cjk-probe]') || !el.getClientRects().length) continue;
    owners.add(el);
  }
  const all = [...owners];
  const spread = (list, n) => list.filter((_, i) => i % Math.max(1, Math.ceil(list.length / n)) === 0);
  const drawn = all.filter(el => el instanceof SVGElement);
  const html = all.filter(el => !(el instanceof SVGElement));
  const chosen = [...spread(drawn, Math.ceil(limit / 2)), ...spread(html, limit)].slice(0, limit);
  return chosen.map((el, i) => {
    const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.data).join('');
    const svg = el instanceof SVGElement;
    const probe = document.createElementNS(svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml',
                                           svg ? 'tspan' : 'span');
    probe.setAttribute('data-cjk-probe', String(i));
    probe.textContent = (own.match(cjk) || []).join('').slice(0, 60);
    el.appendChild(probe);
    return {i, text: own.trim().slice(0, 60), svg, family: getComputedStyle(el).fontFamily,
            chart: !!el.closest("[data-testid='stVegaLiteChart']")};
  });
}""".replace("__CJK__", CJK_CLASS)


def families(css: str) -> list[str]:
    return [part.strip().strip("'\"").lower() for part in css.split(",")]


def named_before_generic(css: str) -> bool:
    names = families(css)
    generic = [i for i, name in enumerate(names) if name in GENERIC]
    return FAMILY in names and (not generic or names.index(FAMILY) < generic[0])


@pytest.mark.parametrize("spec", PAGE_SPECS, ids=[s.title for s in PAGE_SPECS])
def test_chinese_is_drawn_with_the_apps_font(browser, app_url, spec):
    context = browser.new_context(**DESKTOP)
    context.add_init_script(CANVAS_SPY)
    pg = context.new_page()
    try:
        pg.goto(f"{app_url}/{url_path(spec)}?lang=zh")
        settle(pg)
        pg.evaluate("() => document.fonts.ready")
        faces = pg.evaluate(f"""() => [...document.fonts].filter(f => f.family.replace(/["']/g, '') === '{FAMILY}')
                                   .map(f => f.status)""")
        assert faces and all(status == "loaded" for status in faces), faces
        assert pg.evaluate(f"() => document.fonts.check('16px {FAMILY}', '中文偏置卷积注意力')")

        probes = pg.evaluate(PROBE, 60)
        assert len(probes) >= 5, probes  # the page is in Chinese
        cdp = context.new_cdp_session(pg)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        wrong = []
        for probe in probes:
            if not named_before_generic(probe["family"]):
                wrong.append((probe["text"], "font-family", probe["family"]))
            node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": f"[data-cjk-probe='{probe['i']}']"})
            fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
            drawn_by = [(f["familyName"], f["isCustomFont"]) for f in fonts if f["glyphCount"] > 0]
            if not drawn_by or not all(custom for _, custom in drawn_by):
                wrong.append((probe["text"], "drawn with", drawn_by))
        cdp.detach()
        assert wrong == [], wrong

        charts_with_chinese = pg.evaluate(f"""() => [...document.querySelectorAll("[data-testid='stVegaLiteChart'] svg text")]
            .filter(t => new RegExp('{CJK_CLASS}').test(t.textContent)).length""")
        if charts_with_chinese:
            assert any(p["chart"] for p in probes), "the charts' Chinese labels were not sampled"
        canvas = pg.evaluate("() => window.__cjkCanvasText || []")
        late = [c for c in canvas if not named_before_generic(c["font"].split("px", 1)[-1]) or not c["loaded"]]
        assert late == [], late
    finally:
        context.close()
