"""CSV cells a spreadsheet shows as text, never runs as a formula (OWASP "CSV injection").

Every CSV the portal writes (accounting exports, the dunning list) goes through :func:`csv_writer`,
so a customer called ``=HYPERLINK(...)`` or a cost centre ``+1+cmd|...`` reaches Excel or LibreOffice
as text. Text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
apostrophe. Numbers (``int``, ``float``, ``Decimal``) are not text and pass unchanged, so amounts stay
numbers — negative credit-note amounts included — while text that merely looks like arithmetic
(``"-1+1"``) is neutralised.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> str:
    """The value as text a spreadsheet will not compute: an apostrophe before a formula's first character."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def csv_cell(value: Any) -> Any:
    """A cell for the csv module: numbers as they are, everything else as :func:`csv_text`."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    return csv_text(value)


class SafeCsvWriter:
    """``csv.writer`` whose rows are passed through :func:`csv_cell` first."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(fileobj: Any, **kwargs: Any) -> SafeCsvWriter:
    """``csv.writer(fileobj, **kwargs)`` that neutralises formula cells; use it for every CSV the portal writes."""
    return SafeCsvWriter(csv.writer(fileobj, **kwargs))
