"""Every CSV Leadbridge writes (panel exports, chart downloads, the importer's skipped rows)
goes through here, so no cell can run as a spreadsheet formula (OWASP "CSV injection"): a
text cell starting with = + - @, a tab or a carriage return gets a leading single quote.
Numbers stay numbers, negative ones included: an int or float, or a text that is nothing but
a decimal number such as "-12" or "-0.5", is written as it is."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import TextIO

# OWASP's list, and the full-width and small forms a spreadsheet with an East Asian input
# method may also read as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠", "﹦", "﹢", "﹣", "﹫")
NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?\Z")


def csv_cell(value: object) -> object:
    """The value as a CSV cell no spreadsheet evaluates."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not NUMBER.match(text):
        return "'" + text
    return text


class Writer:
    """csv.writer whose every cell goes through csv_cell."""

    def __init__(self, file: TextIO):
        self._writer = csv.writer(file)

    def writerow(self, row: Iterable) -> object:
        return self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable]) -> None:
        for row in rows:
            self.writerow(row)


def csv_text(rows: Iterable[Iterable]) -> str:
    """A whole (small) CSV file as text."""
    out = io.StringIO()
    Writer(out).writerows(rows)
    return out.getvalue()
