"""Maintaining the translation catalogs with Babel: extract, update, compile, check.

    python -m convmix.i18n_tools update    # extract messages from the source into convmix.pot,
                                           # merge them into every language's .po, compile .mo
    python -m convmix.i18n_tools compile   # .po -> .mo only (after editing translations)
    python -m convmix.i18n_tools check     # what the tests check: every message translated, not
                                           # fuzzy, same placeholders, .pot/.mo up to date, glossary
    python -m convmix.i18n_tools merge OTHER.po   # fill untranslated entries from another catalog
    python -m convmix.i18n_tools font      # rebuild static/fonts/convmix-cjk*.woff2 (needs fonttools,
                                           # brotli and Debian's fonts-noto-cjk)

These wrap Babel's own extract / update / compile steps (`pybabel extract -F babel.cfg`, `pybabel
update`, `pybabel compile`) with the project's options kept in one place. Developer tooling only:
the app itself reads the compiled .mo files through the standard library's gettext.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from .i18n import DEFAULT_LANGUAGE, DOMAIN, LANGUAGE_MENU_LABEL, LANGUAGES, LOCALE_DIR

ROOT = LOCALE_DIR.parent.parent
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
GLOSSARY = LOCALE_DIR / "glossary.csv"
# Which files hold visitor-facing text (as in babel.cfg).
METHOD_MAP = [("streamlit_app.py", "python"), ("pages/**.py", "python"), ("convmix/**.py", "python")]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
COMMENT_TAGS = ["Translators:"]
WIDTH = 100
# Fixed header fields: dates that changed on every run would make each update a merge conflict.
_STAMP = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
_HEADER = "# Translations of convmix ({language}).\n# The msgids are the English source text; see convmix/i18n.py and README.md."
PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)(![rsa])?(:[^{}]*)?\}(?!\})")


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(lang: str) -> Path:
    return po_path(lang).with_suffix(".mo")


def translated_languages() -> list[str]:
    return [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]


# -- extraction ------------------------------------------------------------------------------------
def extract() -> Catalog:
    """Every translatable message in the source, as a template catalog (no locations: line numbers
    would churn the catalogs on every edit; comments tagged "Translators:" are kept)."""
    template = _new_catalog(None)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), METHOD_MAP, keywords=KEYWORDS, comment_tags=COMMENT_TAGS, strip_comment_tags=True
    ):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def _new_catalog(lang: str | None) -> Catalog:
    return Catalog(locale=lang, project="convmix", version="main", charset="utf-8", fuzzy=False,
                   msgid_bugs_address="the convmix issue tracker",
                   creation_date=_STAMP, revision_date=_STAMP, copyright_holder="convmix contributors",
                   last_translator="convmix contributors", language_team=f"convmix ({lang or 'template'})",
                   header_comment=_HEADER.format(language=LANGUAGES.get(lang or "", "template")))


def _write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=WIDTH, no_location=True, sort_output=True, omit_header=False,
             include_previous=False)
    path.write_bytes(buffer.getvalue())


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale, domain=DOMAIN)


def compile_catalog(lang: str) -> None:
    catalog = _read(po_path(lang), lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    mo_path(lang).write_bytes(buffer.getvalue())


def update() -> None:
    """Extract, merge into every .po (new messages untranslated, changed ones fuzzy), compile."""
    template = extract()
    _write(template, TEMPLATE)
    for lang in translated_languages():
        path = po_path(lang)
        if path.exists():
            catalog = _read(path, lang)
        else:
            catalog = _new_catalog(lang)
        catalog.update(template, update_header_comment=False, update_creation_date=False)
        catalog.obsolete.clear()  # removed messages: the source no longer has them
        _write(catalog, path)
        compile_catalog(lang)


def merge(other: Path) -> int:
    """Fill untranslated or fuzzy entries of every language's catalog from `other`; returns how many."""
    donor = _read(other)
    filled = 0
    for lang in translated_languages():
        catalog = _read(po_path(lang), lang)
        for message in catalog:
            if not message.id:
                continue
            theirs = donor.get(message.id, message.context)
            if theirs is None or theirs.fuzzy or not _has_translation(theirs):
                continue
            if message.fuzzy or not _has_translation(message):
                message.string = theirs.string
                message.flags.discard("fuzzy")
                filled += 1
        _write(catalog, po_path(lang))
        compile_catalog(lang)
    return filled


# -- checks ----------------------------------------------------------------------------------------
def placeholders(text: str) -> list[str]:
    """The {name:spec} placeholders of a msgid or msgstr, sorted (what must survive translation)."""
    return sorted(match.group(0) for match in PLACEHOLDER.finditer(text))


def _has_translation(message) -> bool:
    strings = message.string if isinstance(message.string, (tuple, list)) else [message.string]
    return all(s and s.strip() for s in strings)


def _ids(message) -> list[str]:
    return list(message.id) if isinstance(message.id, (tuple, list)) else [message.id]


def _strings(message) -> list[str]:
    return list(message.string) if isinstance(message.string, (tuple, list)) else [message.string]


@dataclass(frozen=True)
class GlossaryTerm:
    english: str  # a whole word or phrase, matched case-insensitively outside `code`
    chinese: str  # must appear in the translation of a message that contains `english`
    avoid: tuple[str, ...]  # translations of the term that must not appear anywhere
    note: str


def glossary() -> list[GlossaryTerm]:
    with GLOSSARY.open(encoding="utf-8", newline="") as fh:
        return [
            GlossaryTerm(row["english"].strip(), row["chinese"].strip(),
                         tuple(a.strip() for a in row["avoid"].split("|") if a.strip()), row["note"].strip())
            for row in csv.DictReader(fh)
        ]


_CODE = re.compile(r"`[^`]*`")


def _mentions(text: str, term: str) -> bool:
    plain = _CODE.sub(" ", text)
    return re.search(rf"(?<![A-Za-z_]){re.escape(term)}(?![A-Za-z_])", plain, re.IGNORECASE) is not None


def check() -> list[str]:
    """Everything the completeness rules require, as a list of problems (empty when all hold)."""
    problems: list[str] = []
    source = extract()
    source_ids = {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in source if m.id}
    if TEMPLATE.exists():
        template_ids = {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in _read(TEMPLATE) if m.id}
        if template_ids != source_ids:
            problems.append(f"{TEMPLATE.name} is out of date with the source: run "
                            "`python -m convmix.i18n_tools update`.")
    else:
        problems.append(f"{TEMPLATE} is missing: run `python -m convmix.i18n_tools update`.")
    terms = glossary() if GLOSSARY.exists() else []
    for lang in translated_languages():
        path = po_path(lang)
        if not path.exists():
            problems.append(f"{lang}: no catalog at {path}.")
            continue
        catalog = _read(path, lang)
        catalog_ids = {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in catalog if m.id}
        for msgid, context in sorted(source_ids - catalog_ids, key=str):
            where = f" (context {context!r})" if context else ""
            problems.append(f"{lang}: not in the catalog (run update): {msgid!r}{where}")
        for message in catalog:
            if not message.id:
                continue
            label = _ids(message)[0][:80]
            if message.fuzzy:
                problems.append(f"{lang}: fuzzy (counts as untranslated): {label!r}")
            if not _has_translation(message):
                problems.append(f"{lang}: untranslated: {label!r}")
                continue
            wanted = placeholders(_ids(message)[-1])
            for text in _strings(message):
                if placeholders(text) != wanted:
                    problems.append(f"{lang}: placeholders {placeholders(text)} differ from {wanted} in "
                                    f"{label!r}")
            if lang == "zh":
                for term in terms:
                    english = " ".join(_ids(message))
                    translated = " ".join(_strings(message))
                    if _mentions(english, term.english) and term.chinese not in translated:
                        problems.append(f"zh: glossary: {term.english!r} should be {term.chinese!r} in "
                                        f"{label!r}")
                    for avoided in term.avoid:
                        if avoided in translated:
                            problems.append(f"zh: glossary: {avoided!r} is not our word for "
                                            f"{term.english!r} ({term.chinese}) in {label!r}")
        problems += _mo_problems(lang, catalog)
    return problems


def _mo_problems(lang: str, catalog: Catalog) -> list[str]:
    path = mo_path(lang)
    if not path.exists():
        return [f"{lang}: {path.name} is missing: run `python -m convmix.i18n_tools compile`."]
    with path.open("rb") as fh:
        compiled = read_mo(fh)
    def plain(value):  # plural messages: a tuple from the .po, a list from the .mo
        return tuple(value) if isinstance(value, (list, tuple)) else value

    want = {(plain(m.id), m.context): plain(m.string) for m in catalog if m.id and not m.fuzzy}
    have = {(plain(m.id), m.context): plain(m.string) for m in compiled if m.id}
    if want != have:
        return [f"{lang}: {path.name} is out of date with {po_path(lang).name}: run "
                "`python -m convmix.i18n_tools compile`."]
    return []


# -- the CJK web font ------------------------------------------------------------------------------
# Two files of one family, told apart by their unicode ranges (.streamlit/config.toml), so that a
# browser downloads a file only for text that needs it: every page's language menu needs a few CJK
# characters (语言, 中文) and the general punctuation that Source Sans lacks (‖), which the small file
# holds (a few kB); Chinese text needs the large one (about 1.3 MB).
FONT = ROOT / "static" / "fonts" / "convmix-cjk.woff2"
MENU_FONT = ROOT / "static" / "fonts" / "convmix-cjk-menu.woff2"
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
NOTO_SC_INDEX = 2  # the collection's Simplified Chinese face
PUNCTUATION = "，。、；：？！（）《》〈〉“”‘’—…·「」『』【】〔〕％＋－×÷＝～￥"
# What the font family is for (the theme's font stacks put Source Sans first; these are the rest).
CJK_RANGES = ((0x2010, 0x2027), (0x3000, 0x303F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
              (0xFF00, 0xFFEF))
MENU_PUNCTUATION = (0x2010, 0x2027)


def in_cjk_ranges(code: int) -> bool:
    return any(lo <= code <= hi for lo, hi in CJK_RANGES)


def menu_codepoints() -> set[int]:
    """What the small file serves: the language menu's CJK characters and the general punctuation."""
    menu = {ord(ch) for ch in LANGUAGE_MENU_LABEL + "".join(LANGUAGES.values()) if in_cjk_ranges(ord(ch))}
    return menu | set(range(MENU_PUNCTUATION[0], MENU_PUNCTUATION[1] + 1))


def unicode_range(codes: set[int]) -> str:
    """CSS unicode-range text for a set of code points: runs of consecutive ones as U+A-B."""
    runs: list[list[int]] = []
    for code in sorted(codes):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return ", ".join(f"U+{lo:X}" if lo == hi else f"U+{lo:X}-{hi:X}" for lo, hi in runs)


def font_ranges() -> dict[Path, str]:
    """Each file's unicode-range, as .streamlit/config.toml must declare it: the ranges cover
    CJK_RANGES together, and no code point twice."""
    menu = menu_codepoints()
    rest = {code for lo, hi in CJK_RANGES for code in range(lo, hi + 1)} - menu
    return {MENU_FONT: unicode_range(menu), FONT: unicode_range(rest)}


def common_hanzi() -> str:
    """GB 2312 level 1: the 3,755 most common simplified characters (what visitors' own text, such
    as a Chinese file name, most likely uses)."""
    chars = []
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            try:
                chars.append(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return "".join(chars)


def catalog_characters(lang: str = "zh") -> set[str]:
    """Every non-ASCII character of the translations (what the font must cover)."""
    chars: set[str] = set()
    for message in _read(po_path(lang), lang):
        for text in _strings(message):
            chars.update(ch for ch in text or "" if ord(ch) > 0x7F)
    return chars


def build_font(source: Path = NOTO_CJK) -> dict[Path, int]:
    """Subset Noto Sans CJK SC (SIL Open Font License 1.1) into the two files: the large one to the
    catalog's characters, the common hanzi and CJK punctuation; the small one to the language menu's
    characters and the general punctuation it has. WOFF2; returns each file's size in bytes."""
    from fontTools import subset
    from fontTools.ttLib import TTCollection

    menu = "".join(chr(code) for code in sorted(menu_codepoints()))
    texts = {FONT: "".join(sorted(catalog_characters() | set(common_hanzi()) | set(PUNCTUATION))), MENU_FONT: menu}
    sizes = {}
    for out, text in texts.items():
        font = TTCollection(str(source)).fonts[NOTO_SC_INDEX]
        options = subset.Options()
        options.flavor = "woff2"
        options.layout_features = ["*"]
        options.name_IDs = ["*"]
        options.notdef_outline = True
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=text)
        subsetter.subset(font)
        out.parent.mkdir(parents=True, exist_ok=True)
        font.flavor = "woff2"
        font.save(str(out))
        sizes[out] = out.stat().st_size
    return sizes


def font_characters(path: Path = FONT) -> set[str]:
    from fontTools.ttLib import TTFont

    return {chr(code) for code in TTFont(str(path)).getBestCmap()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    if command == "update":
        update()
        return 0
    if command == "compile":
        for lang in translated_languages():
            compile_catalog(lang)
        return 0
    if command == "font":
        for path, size in build_font().items():
            print(f"wrote {path} ({size:,} bytes)")
        return 0
    if command == "merge" and len(args) == 2:
        print(f"filled {merge(Path(args[1]))} entries")
        return 0
    if command == "check":
        problems = check()
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s)")
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
