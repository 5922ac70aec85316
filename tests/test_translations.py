"""The portal stays translated: no untranslated text in templates, no gaps in the German catalogues.

(a) Every template's visible text (and its placeholder/title/aria-label/alt attributes) sits inside
    ``{% translate %}`` / ``{% blocktranslate %}``.
(b) Every German catalogue (``*/locale/de/LC_MESSAGES/django.po``) has a translation for every entry,
    plural forms included, and no fuzzy entry.
(c) Every marked string has an entry: ``makemessages`` run on a copy of each part adds no new msgid.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.template.base import tag_re

ROOT = Path(__file__).resolve().parent.parent
APPS = sorted(path.parent.name for path in ROOT.glob("*/apps.py"))
# The project's own part (the frame templates and the parkinghq package) has the root catalogue.
ROOT_PARTS = ("templates", "parkinghq")

# Text that is not language: names, standards, abbreviations, units and typographic marks.
ALLOWED_WORDS = (
    "ParkingHQ Business Workflow",  # the product's name
    "ParkingHQ Workflow",
    "ParkingHQ",
    "CPMS",
    "IBAN",
    "BIC",
    "DATEV",
    "API",
    "BPMN",
    "XES",
    "CSV",
    "TOTP",
    "SEPA",
    "€",
    "%",
    "km",
    "kWh",
)
_ALLOWED = re.compile("|".join(r"(?<!\w)" + re.escape(word) + r"(?!\w)" for word in ALLOWED_WORDS))
_LETTER = re.compile(r"[^\W\d_]")
VISIBLE_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")
MARK = "\x00"  # stands for a template tag or variable: never language


# --- (a) templates ----------------------------------------------------------------------------


def template_files() -> list[Path]:
    dirs = [ROOT / "templates"] + [ROOT / app / "templates" for app in APPS]
    return sorted(path for folder in dirs if folder.is_dir() for path in folder.rglob("*") if path.is_file())


def _blank(match: re.Match[str]) -> str:
    """Replace a stretch by one mark, keeping its line breaks (so line numbers stay right)."""
    return MARK + "\n" * match.group(0).count("\n")


def _language(text: str) -> str:
    """What is left of ``text`` that a person reads as language ('' when nothing)."""
    text = html.unescape(text).replace(MARK, " ")
    text = _ALLOWED.sub(" ", text)
    text = " ".join(text.split())
    return text if _LETTER.search(text) else ""


def untranslated_text(source: str) -> list[tuple[int, str]]:
    """(line, text) of each piece of visible text outside translate tags, from Django's template lexing."""
    pieces: list[str] = []
    closing = ""  # inside {% blocktranslate %} / {% comment %} / {% verbatim %}: the tag that ends it
    for position, bit in enumerate(tag_re.split(source)):
        if position % 2 == 0:  # TEXT token
            pieces.append(MARK + "\n" * bit.count("\n") if closing else bit)
            continue
        if bit.startswith("{%"):
            name = (bit[2:-2].split() or [""])[0]
            if closing and name == closing:
                closing = ""
            elif not closing and name in ("blocktranslate", "blocktrans", "comment", "verbatim"):
                closing = {"blocktrans": "endblocktrans"}.get(name, "end" + name)
        pieces.append(MARK + "\n" * bit.count("\n"))
    text = "".join(pieces)
    text = re.sub(r"<!--.*?-->|<![a-zA-Z][^>]*>", _blank, text, flags=re.S)  # comments, <!doctype html>
    text = re.sub(r"<(script|style)\b.*?</\1\s*>", _blank, text, flags=re.S | re.I)

    findings: list[tuple[int, str]] = []

    def tag(match: re.Match[str]) -> str:
        line = text.count("\n", 0, match.start()) + 1
        for attribute in re.finditer(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*')""", match.group(0)):
            if attribute.group(1).lower() in VISIBLE_ATTRIBUTES:
                value = _language(attribute.group(2)[1:-1])
                if value:
                    found_at = line + match.group(0).count("\n", 0, attribute.start())
                    findings.append((found_at, f'{attribute.group(1)}="{value}"'))
        return _blank(match)

    text = re.sub(r"</?[a-zA-Z][^>]*>", tag, text)
    for number, line in enumerate(text.split("\n"), start=1):
        for chunk in line.split(MARK):
            value = _language(chunk)
            if value:
                findings.append((number, value))
    return sorted(findings)


def test_the_checker_finds_untranslated_text_and_accepts_translated_text() -> None:
    source = (
        '{% load i18n %}<h1 title="Open">{% translate "Hello" %}</h1>\n'
        "<!doctype html><p>Plain words</p>{# a comment #}<!-- Not shown -->\n"
        '{% blocktranslate trimmed with n=x %}Hi {{ n }}{% endblocktranslate %}<input placeholder="{{ p }}">\n'
        "<script>var a = 'not checked';</script><span>ParkingHQ · CPMS — 12 €</span>&nbsp;\n"
        '<img alt="Logo of {{ x }}" src="a.png">{% if a > b %}\n{% endif %}<b>{{ v }} left</b>'
    )
    assert untranslated_text(source) == [(1, 'title="Open"'), (2, "Plain words"), (5, 'alt="Logo of"'), (6, "left")]


def test_no_template_has_untranslated_text() -> None:
    findings = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in template_files()
        for line, text in untranslated_text(path.read_text(encoding="utf-8"))
    ]
    print("\n".join(findings))
    assert not findings, f"{len(findings)} untranslated texts:\n" + "\n".join(findings)


def test_the_frame_and_account_templates_have_no_untranslated_text() -> None:
    owned = [ROOT / "templates", ROOT / "accounts" / "templates"]
    findings = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in template_files()
        if any(path.is_relative_to(folder) for folder in owned)
        for line, text in untranslated_text(path.read_text(encoding="utf-8"))
    ]
    assert not findings, f"{len(findings)} untranslated texts:\n" + "\n".join(findings)


# --- (b) catalogues ---------------------------------------------------------------------------


def catalogue_paths() -> dict[str, Path]:
    """The German catalogue of each part of the portal: 'root' and each app."""
    parts = {"root": ROOT / "locale"} | {app: ROOT / app / "locale" for app in APPS}
    return {name: folder / "de" / "LC_MESSAGES" / "django.po" for name, folder in parts.items()}


def _unquote(line: str) -> str:
    return line[line.index('"') + 1 : line.rindex('"')].encode("raw_unicode_escape").decode("unicode_escape")


def parse_po(text: str) -> list[dict]:
    """Entries of a .po file: {'line', 'flags', 'msgctxt', 'msgid', 'msgid_plural', 'msgstr': [..]}."""
    entries: list[dict] = []
    entry: dict | None = None
    key = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#~"):
            entry, key = None, ""
            continue
        if entry is None:
            entry = {"line": number, "flags": set(), "msgctxt": None, "msgid": "", "msgid_plural": None, "msgstr": {}}
            entries.append(entry)
        if line.startswith("#,"):
            entry["flags"].update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            if key.startswith("msgstr"):
                entry["msgstr"][key] += _unquote(line)
            else:
                entry[key] += _unquote(line)
        else:
            key = line.split(None, 1)[0]
            if key.startswith("msgstr"):
                entry["msgstr"][key] = _unquote(line)
            else:
                entry[key] = _unquote(line)
    return [entry for entry in entries if entry["msgid"] or entry["msgctxt"] is not None or entry["msgid_plural"]]


def catalogue_problems(path: Path) -> list[str]:
    problems = []
    for entry in parse_po(path.read_text(encoding="utf-8")):
        where = f"{path.relative_to(ROOT)}:{entry['line']}: {entry['msgid']!r}"
        if "fuzzy" in entry["flags"]:
            problems.append(f"{where} is fuzzy")
        empty = [key for key, value in entry["msgstr"].items() if not value]
        if empty or not entry["msgstr"]:
            problems.append(f"{where} has no translation ({', '.join(empty) or 'msgstr'})")
    return problems


def test_the_po_reader_sees_empty_plural_and_fuzzy_entries() -> None:
    text = (
        'msgid ""\nmsgstr ""\n"Plural-Forms: nplurals=2;\\n"\n\n'
        '#: a.py:1\nmsgid "Save"\nmsgstr "Speichern"\n\n'
        '#, fuzzy, python-format\nmsgid "Saved %(name)s"\nmsgstr "Gespeichert"\n\n'
        'msgid "one"\nmsgid_plural "many"\nmsgstr[0] "eins"\nmsgstr[1] ""\n\n'
        'msgid ""\n"Long "\n"text"\nmsgstr ""\n\n'
        '#~ msgid "Old"\n#~ msgstr ""\n'
    )
    entries = parse_po(text)
    assert [entry["msgid"] for entry in entries] == ["Save", "Saved %(name)s", "one", "Long text"]
    assert entries[1]["flags"] == {"fuzzy", "python-format"}
    assert entries[2]["msgstr"] == {"msgstr[0]": "eins", "msgstr[1]": ""}
    assert entries[3]["msgstr"] == {"msgstr": ""}


@pytest.mark.parametrize("part", ["root", "accounts"])
def test_the_frame_and_account_catalogues_are_complete(part: str) -> None:
    path = catalogue_paths()[part]
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    problems = catalogue_problems(path)
    assert not problems, "\n".join(problems)


def test_every_german_catalogue_is_complete() -> None:
    problems = []
    for path in catalogue_paths().values():
        problems += catalogue_problems(path) if path.is_file() else [f"{path.relative_to(ROOT)} is missing"]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


# --- (c) every marked string has an entry -----------------------------------------------------

# What makemessages -d django reads (Python, templates, text templates) and the catalogue; static files,
# fonts, BPMN and fixtures are left out of the copy (they hold no marked string of this domain).
_SOURCES = ("*.py", "*.html", "*.txt", "*.xml", "*.po")
_SKIP_DIRS = {"__pycache__", "static", "node_modules", ".venv"}
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo")


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    skipped = set()
    for name in names:
        path = Path(folder) / name
        if path.is_dir():
            if name in _SKIP_DIRS:
                skipped.add(name)
        elif not any(path.match(pattern) for pattern in _SOURCES):
            skipped.add(name)
    return skipped


# One Django start runs makemessages in several copies, one after the other (chdir: its own process).
_RUNNER = """
import os, sys
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "parkinghq.settings.test"
import django
django.setup()
from django.core.management import call_command
for folder in sys.argv[2:]:
    os.chdir(folder)
    call_command("makemessages", locale=["de"], no_obsolete=True, no_location=True, verbosity=0)
"""


def _msgids(path: Path) -> set[tuple[str | None, str]]:
    if not path.is_file():
        return set()
    return {(entry["msgctxt"], entry["msgid"]) for entry in parse_po(path.read_text(encoding="utf-8"))}


def copy_part(part: str, workdir: Path) -> Path:
    """A copy of the source files of ``part`` with its German catalogue, for makemessages to run in."""
    copy = workdir / part
    if part == "root":
        for folder in ROOT_PARTS:
            shutil.copytree(ROOT / folder, copy / folder, ignore=_copy_ignore)
    else:
        shutil.copytree(ROOT / part, copy, ignore=_copy_ignore)
    original = catalogue_paths()[part]
    target = copy / "locale" / "de" / "LC_MESSAGES" / "django.po"
    target.parent.mkdir(parents=True, exist_ok=True)
    if original.is_file():
        shutil.copyfile(original, target)
    return copy


def run_makemessages(copies: list[Path]) -> None:
    """makemessages (as the README says: -l de --no-obsolete --no-location) in each copy, one Django start."""
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(ROOT), *map(str, copies)],
        cwd=ROOT,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "parkinghq.settings.test"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def added_msgids(part: str, copy: Path) -> list[str]:
    """The msgids makemessages added to the copy of ``part``'s catalogue: marked strings without an entry."""
    original = catalogue_paths()[part]
    target = copy / "locale" / "de" / "LC_MESSAGES" / "django.po"
    return [
        f"{original.relative_to(ROOT)}: no entry for {msgid!r}" + (f" (context {context!r})" if context else "")
        for context, msgid in sorted(_msgids(target) - _msgids(original), key=lambda item: (item[0] or "", item[1]))
    ]


def missing_msgids(parts: list[str], workdir: Path, workers: int = 4) -> dict[str, list[str]]:
    """part → its marked strings without an entry: copies of the parts' sources, makemessages run in them
    by a few processes at once (each starting Django once for its share of the parts)."""
    copies = {part: copy_part(part, workdir) for part in parts}
    # the biggest parts first, dealt out in turn: the shares take about as long as each other
    by_size = sorted(copies.values(), key=lambda copy: -sum(1 for _ in copy.rglob("*")))
    shares = [by_size[index::workers] for index in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run_makemessages, [share for share in shares if share]))
    return {part: added_msgids(part, copy) for part, copy in copies.items()}


@pytest.fixture(scope="module")
def missing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    return missing_msgids(["root", *APPS], tmp_path_factory.mktemp("makemessages"))


def test_a_marked_string_without_an_entry_is_missing(tmp_path: Path) -> None:
    """The check's own mutation: a new {% translate %} in a template, and nothing added to the catalogue."""
    copy = copy_part("accounts", tmp_path)
    page = copy / "templates" / "accounts" / "mutation.html"
    page.write_text('{% load i18n %}<p>{% translate "An unmarked new text x7q" %}</p>', encoding="utf-8")
    run_makemessages([copy])
    assert added_msgids("accounts", copy) == [
        "accounts/locale/de/LC_MESSAGES/django.po: no entry for 'An unmarked new text x7q'"
    ]


@pytest.mark.parametrize("part", ["root", "accounts"])
def test_every_marked_frame_and_account_string_has_an_entry(missing: dict[str, list[str]], part: str) -> None:
    assert not missing[part], "\n".join(missing[part])


def test_every_marked_string_has_an_entry(missing: dict[str, list[str]]) -> None:
    problems = [problem for part_problems in missing.values() for problem in part_problems]
    assert not problems, f"{len(problems)} missing entries:\n" + "\n".join(problems)


# --- (d) the JavaScript catalogues (djangojs, served at /jsi18n/) -----------------------------


def js_catalogue_paths() -> dict[str, Path]:
    """The German djangojs catalogue of each app whose static JavaScript marks texts with gettext()."""
    return {
        app: ROOT / app / "locale" / "de" / "LC_MESSAGES" / "djangojs.po"
        for app in APPS
        if any(
            re.search(r"\b(?:n?gettext|interpolate)\(", path.read_text(encoding="utf-8"))
            for path in (ROOT / app / "static").rglob("*.js")
        )
    }


def test_every_german_javascript_catalogue_is_complete() -> None:
    paths = js_catalogue_paths()
    assert "workflows" in paths  # the editor and the process diagram
    problems = []
    for path in paths.values():
        problems += catalogue_problems(path) if path.is_file() else [f"{path.relative_to(ROOT)} is missing"]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def test_every_marked_javascript_string_has_an_entry(tmp_path: Path) -> None:
    problems = []
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "parkinghq.settings.test"}
    for app, original in js_catalogue_paths().items():
        copy = tmp_path / app
        shutil.copytree(ROOT / app / "static", copy / "static", ignore=_COPY_IGNORE)
        target = copy / "locale" / "de" / "LC_MESSAGES" / "djangojs.po"
        target.parent.mkdir(parents=True)
        if original.is_file():
            shutil.copyfile(original, target)
        command = ["makemessages", "-d", "djangojs", "-l", "de", "--no-obsolete", "--no-location"]
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *command],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        problems += [
            f"{original.relative_to(ROOT)}: no entry for {msgid!r}"
            for context, msgid in sorted(_msgids(target) - _msgids(original), key=lambda item: (item[0] or "", item[1]))
        ]
    assert not problems, f"{len(problems)} missing entries:\n" + "\n".join(problems)
