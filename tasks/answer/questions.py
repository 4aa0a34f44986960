"""Load a question set from CSV, XLSX, JSONL or TXT into Question records, with errors that name file and row."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tasks.cells import csv_text
from tasks.ingest.decode import TextDecodeError, decode_text

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".jsonl", ".txt")
COLUMNS = ("id", "question", "expected_answer", "expected_source")


@dataclass(frozen=True)
class Question:
    """One question to answer, with what a correct answer and source would be when known."""

    id: str
    question: str
    expected_answer: str | None = None
    expected_source: str | None = None
    # Every cell of the input row, in the file's column order with its own header: an analyst's notes columns
    # come back in answers.csv/xlsx, left of kbflow's columns.
    input: tuple[tuple[str, str | None], ...] = field(default=(), compare=False)

    def to_dict(self) -> dict:
        """Plain dict of the fields (JSON-able)."""
        return asdict(self)


class QuestionFileError(Exception):
    """A question file cannot be used; the message always names the file, and the row when there is one."""


def load_questions(path: str | Path) -> list[Question]:
    """Read the questions in a .csv, .xlsx, .jsonl or .txt file; ids are generated (q001, ...) when missing."""
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise QuestionFileError(
            f"{name}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.exists():
        raise QuestionFileError(f"{name}: file not found")
    if not path.is_file():
        raise QuestionFileError(f"{name}: not a file")
    if suffix == ".xlsx":
        records = _table_records(name, _xlsx_rows(path), unit="row")
    elif suffix == ".csv":
        records = _table_records(name, _csv_rows(name, _read_text(path)), unit="row")
    elif suffix == ".jsonl":
        records = _jsonl_records(name, _read_text(path))
    else:
        records = _txt_records(_read_text(path))
    return _build_questions(name, records)


# A record is (where, fields, cells): where is "row 4" or "line 3", fields maps known column -> value or None,
# cells are every (header, value) of the input row in its order.
Record = tuple[str, dict[str, str | None], list[tuple[str, str | None]]]


def _read_text(path: Path) -> str:
    """File text in any encoding the document decoder reads (UTF-8 with or without BOM, GB18030, ...)."""
    try:
        return decode_text(path.read_bytes())
    except TextDecodeError as exc:
        raise QuestionFileError(f"{path}: {exc}") from exc


def _cell(value: object) -> str | None:
    """A cell or JSON value as stripped text; empty, NaN and null become None, 7 and 7.0 become '7'."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def _csv_rows(name: str, text: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) per CSV record; row numbers count records as a spreadsheet shows them."""
    # The csv module rather than pandas: every cell stays text, and a record spanning lines is still one row.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        # A cell kbflow guarded against formulas ('=...) reads back as the text it was (a dataset's questions.csv).
        for number, cells in enumerate(reader, start=1):
            yield number, [csv_text(c) for c in cells]
    except csv.Error as exc:
        raise QuestionFileError(f"{name} row {reader.line_num}: cannot parse CSV ({exc})") from exc


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, cells) for the first sheet of a workbook, every cell read as text."""
    import pandas as pd

    try:
        frame = pd.read_excel(path, sheet_name=0, header=None, dtype=str, keep_default_na=False, engine="openpyxl")
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors for a broken workbook
        raise QuestionFileError(f"{path}: cannot read spreadsheet ({type(exc).__name__}: {exc})") from exc
    # Leading empty rows are kept by pandas, so index + 1 is the row number Excel shows.
    for index, cells in enumerate(frame.itertuples(index=False, name=None)):
        yield index + 1, ["" if c is None else str(c) for c in cells]


def _table_records(name: str, rows: Iterable[tuple[int, list[str]]], *, unit: str) -> list[Record]:
    """Records from a header row (the first non-empty one) and the data rows after it."""
    header: dict[str, int] | None = None
    names: list[str] = []
    width = 0
    records: list[Record] = []
    for number, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = _header_columns(name, cells)
            width = len(cells)
            names = [c.strip() or f"column {i + 1}" for i, c in enumerate(cells)]
            continue
        extra = [c for c in cells[width:] if c.strip()]
        if extra:
            raise QuestionFileError(
                f"{name} {unit} {number}: {len(cells)} cells but the header has {width} columns "
                "(a comma inside a value needs quotes)"
            )
        fields = {col: _cell(cells[i]) if i < len(cells) else None for col, i in header.items()}
        values = [(names[i], _cell(cells[i]) if i < len(cells) else None) for i in range(width)]
        records.append((f"{unit} {number}", fields, values))
    if header is None:
        raise QuestionFileError(f"{name}: file is empty")
    return records


def _header_columns(name: str, cells: list[str]) -> dict[str, int]:
    """Map each known column (case-insensitive, whitespace stripped) to its position in the header row."""
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        key = cell.strip().lower()
        if key not in COLUMNS:
            continue
        if key in found:
            raise QuestionFileError(f"{name}: two columns named {key!r} (columns {found[key] + 1} and {i + 1})")
        found[key] = i
    if "question" not in found:
        shown = ", ".join(c.strip() for c in cells if c.strip())
        raise QuestionFileError(f"{name}: no 'question' column (found: {shown})")
    return found


def _jsonl_records(name: str, text: str) -> list[Record]:
    """One record per non-blank line, each line a JSON object with at least a 'question' field."""
    records: list[Record] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{name} {where}: not valid JSON ({exc})") from exc
        if not isinstance(obj, dict):
            raise QuestionFileError(f"{name} {where}: expected a JSON object, got {type(obj).__name__}")
        fields: dict[str, str | None] = {}
        values = [
            (str(k), v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False))
            for k, v in obj.items()
        ]
        for key, value in obj.items():
            col = str(key).strip().lower()
            if col not in COLUMNS:
                continue
            if (
                col == "expected_answer"
                and isinstance(value, list)
                and all(isinstance(v, (str, int, float)) for v in value)
            ):
                value = json.dumps([str(v) for v in value], ensure_ascii=False)  # several acceptable answers
            elif isinstance(value, (dict, list)):
                raise QuestionFileError(f"{name} {where}: {key!r} must be text, not a JSON {type(value).__name__}")
            fields[col] = _cell(value)
        if "question" not in fields:
            raise QuestionFileError(f"{name} {where}: no 'question' field (found: {', '.join(map(str, obj))})")
        records.append((where, fields, values))
    return records


def _txt_records(text: str) -> list[Record]:
    """One record per non-blank line; the line is the question."""
    return [
        (f"line {number}", {"question": line.strip()}, [])
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _build_questions(name: str, records: list[Record]) -> list[Question]:
    """Questions from records: a question is required, ids are generated by position and must be unique."""
    if not records:
        raise QuestionFileError(f"{name}: no questions found")
    questions: list[Question] = []
    first_seen: dict[str, str] = {}
    for position, (where, fields, values) in enumerate(records, start=1):
        text = fields.get("question")
        if not text:
            raise QuestionFileError(f"{name} {where}: empty question")
        qid = fields.get("id") or f"q{position:03d}"
        if qid in first_seen:
            raise QuestionFileError(f"{name} {where}: duplicate id {qid!r} (already used in {first_seen[qid]})")
        first_seen[qid] = where
        questions.append(
            Question(
                id=qid,
                question=text,
                expected_answer=fields.get("expected_answer"),
                expected_source=fields.get("expected_source"),
                input=tuple(values),
            )
        )
    return questions


def piped_suffix(text: str) -> str:
    """The file type of questions piped in as text: '.csv' when the first non-blank line is a CSV header with a
    'question' column, else '.txt' (one question a line)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        cells = next(csv.reader([first]), [])
    except csv.Error:
        return ".txt"
    return ".csv" if any(c.strip().lower() == "question" for c in cells) else ".txt"
