"""Rewrite each best-practice library file as the export writes it: export(import(file)) with its own layout.

    .venv/bin/python scripts/library_export.py            # rewrite workflows/library/*.bpmn
    .venv/bin/python scripts/library_export.py --check    # exit 1 (listing them) when a file is not current

Run it after a change to the BPMN writer (element form, expression language, layout or routing), so the
library files are what a person gets when exporting them. A file is only written when its export reads
back into the same compiled graph as the file; otherwise the script stops, naming it, and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "workflows" / "library"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report the files that are not current")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.dev")
    import django

    django.setup()
    from workflows.bpmn import bpmn_to_definition, definition_to_bpmn
    from workflows.compiler import compile_spec

    exports: dict[Path, str] = {}
    for path in sorted(LIBRARY.glob("*.bpmn")):
        first = bpmn_to_definition(path.read_bytes())
        xml = definition_to_bpmn(first.spec, layout=first.layout)
        again = bpmn_to_definition(xml)
        if compile_spec(again.spec, check_registry=False) != compile_spec(first.spec, check_registry=False):
            print(f"{path.relative_to(ROOT)}: the export does not read back into the same graph; nothing written")
            return 1
        exports[path] = xml
    stale = [path for path, xml in exports.items() if path.read_text(encoding="utf-8") != xml]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not current: run scripts/library_export.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(exports[path], encoding="utf-8")
        print(f"rewrote {path.relative_to(ROOT)}")
    print(f"{len(exports)} library files, {len(stale)} rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
