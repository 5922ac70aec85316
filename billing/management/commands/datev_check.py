"""Check a DATEV Buchungsstapel file as DATEV would read it: ``manage.py datev_check FILE``.

Counts the columns of every row (format version 13 has 125) and finds each credit note's invoice reference:
a credit note (a Haben booking on the debtor) names in Belegfeld 1 the invoice whose open item it clears, so
that number must be an invoice of the same file or of an earlier DATEV export. Reads the file on its own
terms (Windows-1252, semicolons), not through the code that wrote it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.models import AccountingExport, Invoice

COLUMNS = 125
HEADER_FIELDS = 31
EXPECTED_HEADER = {0: "EXTF", 1: "700", 2: "21", 3: "Buchungsstapel", 4: "13"}
SOLL_HABEN, BELEGFELD_1, BELEGFELD_2 = 1, 10, 11


@dataclass
class DatevCheck:
    """What the check found; ``problems`` is empty for a file DATEV can import and match."""

    rows: int = 0
    full_rows: int = 0
    credit_note_rows: int = 0
    credit_notes: set[str] = field(default_factory=set)
    found_in_file: int = 0
    found_in_earlier_export: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        found = self.found_in_file + self.found_in_earlier_export
        return [
            f"rows: {self.rows}; with {COLUMNS} columns: {self.full_rows}",
            f"credit-note rows: {self.credit_note_rows} (credit notes: {len(self.credit_notes)}); "
            f"invoice reference found: {found} ({self.found_in_file} in this file, "
            f"{self.found_in_earlier_export} in an earlier DATEV export); "
            f"missing: {self.credit_note_rows - found}",
        ]


def _exported_invoice(number: str) -> bool:
    """The invoice of this number went to DATEV in an earlier export (so DATEV holds its open item)."""
    series, _, counter = number.rpartition("-")
    if not counter.isdigit():
        return False
    return Invoice.objects.filter(
        series=series, number=int(counter), exports__format=AccountingExport.Format.DATEV
    ).exists()


def check_datev(content: bytes, *, use_database: bool = True) -> DatevCheck:
    """Read the file and check its header, its column count per row and its credit notes' invoice references."""
    result = DatevCheck()
    try:
        text = content.decode("cp1252")
    except UnicodeDecodeError as error:
        result.problems.append(f"not Windows-1252 (byte {error.start}): DATEV would misread it")
        return result
    lines = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=";") if row]
    if len(lines) < 2:
        result.problems.append("no header and column line")
        return result
    header, columns, rows = lines[0], lines[1], lines[2:]
    if len(header) != HEADER_FIELDS:
        result.problems.append(f"header line has {len(header)} fields, not {HEADER_FIELDS}")
    for index, expected in EXPECTED_HEADER.items():
        if index < len(header) and header[index] != expected:
            result.problems.append(f"header field {index + 1} is {header[index]!r}, not {expected!r}")
    if len(columns) != COLUMNS:
        result.problems.append(f"column line has {len(columns)} names, not {COLUMNS}")
    result.rows = len(rows)
    invoices = {row[BELEGFELD_1] for row in rows if len(row) == COLUMNS and row[SOLL_HABEN] == "S"}
    for line, row in enumerate(rows, start=3):
        if len(row) != COLUMNS:
            result.problems.append(f"line {line} has {len(row)} columns, not {COLUMNS}")
            continue
        result.full_rows += 1
        if row[SOLL_HABEN] != "H":
            continue
        result.credit_note_rows += 1
        result.credit_notes.add(row[BELEGFELD_2])
        reference = row[BELEGFELD_1]
        if reference in invoices:
            result.found_in_file += 1
        elif use_database and reference and _exported_invoice(reference):
            result.found_in_earlier_export += 1
        else:
            result.problems.append(
                f"line {line}: credit note {row[BELEGFELD_2] or '?'} refers to invoice {reference!r}, "
                "which is in neither this file nor an earlier DATEV export"
            )
    return result


class Command(BaseCommand):
    help = "Check a DATEV Buchungsstapel file: 125 columns per row, every credit note's invoice reference found."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path, help="The EXTF_Buchungsstapel_*.csv file.")
        parser.add_argument(
            "--file-only", action="store_true", help="Look for invoice references in this file only, not the database."
        )

    def handle(self, *args: Any, file: Path, file_only: bool = False, **options: Any) -> None:
        try:
            content = file.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}") from None
        result = check_datev(content, use_database=not file_only)
        self.stdout.write(f"{file}:")
        for line in result.summary():
            self.stdout.write(f"  {line}")
        if result.problems:
            for problem in result.problems:
                self.stderr.write(f"  {problem}")
            raise CommandError(f"{file}: {len(result.problems)} problems; DATEV would not import or match it as is.")
        self.stdout.write(self.style.SUCCESS("  OK: every row has 125 columns, every credit note's invoice is found"))
