"""Text cells for spreadsheets: what kbflow writes to a CSV opens as text, never runs as a formula."""

from __future__ import annotations

import re

# What Excel, LibreOffice and Google Sheets read as the start of a formula (OWASP's list): = + - @, tab and CR.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number ("-5", "+3.2e4") opens as that number, not a formula: left as it is.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, with a leading apostrophe (shown as text)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(value: str) -> str:
    """A cell read back from a CSV that kbflow wrote: the apostrophe csv_cell added taken off again."""
    if value.startswith("'") and value[1:].startswith(FORMULA_START) and not _NUMBER.fullmatch(value[1:]):
        return value[1:]
    return value
