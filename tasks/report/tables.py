"""The answers table: columns, JSON cells, CSV and XLSX (text stays text, never a formula)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tasks.cells import csv_cell
from tasks.report.metrics import _present

BASE_COLUMNS = [
    "id",
    "question",
    "answer",
    "refused",
    "citations",
    "retrieved",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "warning",
    "answer_source",
    "first_run",
]
GROUNDING_COLUMNS = ["support", "unsupported", "flag_reason"]
EXPECTED_COLUMNS = ["expected_answer", "expected_source", "correct", "hit", "reciprocal_rank", "exact_match", "f1"]
XLSX_CELL_LIMIT = 32_767  # Excel refuses longer cell text


def _plain(value: object) -> object:
    """numpy scalars as Python numbers, so json.dumps accepts them."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _citations_json(citations: list[dict] | None) -> str:
    """Citations as a JSON list of {source, page}."""
    items = [{"source": c.get("source"), "page": _plain(c.get("page"))} for c in citations or []]
    return json.dumps(items, ensure_ascii=False)


def _retrieved_json(retrieved: list[dict] | None) -> str:
    """Retrieved passages in rank order as a JSON list of {source, page, chunk_id, score}, without their text."""
    items = [
        {
            "source": r.get("source"),
            "page": _plain(r.get("page")),
            "chunk_id": r.get("chunk_id"),
            "score": _plain(r.get("score")),
        }
        for r in retrieved or []
    ]
    return json.dumps(items, ensure_ascii=False)


def _jsonable(value: object) -> object:
    """value with numpy scalars as Python numbers and NaN as None, lists and dicts included."""
    value = _plain(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def without_text(row: dict) -> dict:
    """A row with every field, its passages and citations without their text."""
    record = {k: v for k, v in row.items() if k not in ("retrieved", "citations", "look_passages")}
    record["citations"] = [{k: v for k, v in c.items() if k != "text"} for c in row.get("citations") or []]
    record["retrieved"] = [{k: v for k, v in p.items() if k != "text"} for p in row.get("retrieved") or []]
    if row.get("look_passages"):
        record["look_passages"] = [{k: v for k, v in p.items() if k != "text"} for p in row["look_passages"]]
    return record


def _row_record(row: dict) -> dict:
    """A scored row for rows.jsonl: every field, passages and citations without their text, JSON-able."""
    return _jsonable(without_text(row))


def _has_expected(rows: list[dict]) -> bool:
    """Whether any row has an expected answer or source."""
    return any(_present(r.get("expected_answer")) or _present(r.get("expected_source")) for r in rows)


def answers_table(rows: list[dict]):
    """A pandas DataFrame with one row per question in the report's column order (rows must be scored)."""
    import pandas as pd

    ours = BASE_COLUMNS + GROUNDING_COLUMNS + (EXPECTED_COLUMNS if _has_expected(rows) else [])
    # The input file's columns first, in its order and with its headers (an analyst's own notes columns
    # survive), then kbflow's columns to the right, less those the input already has.
    theirs = list(dict.fromkeys(name for row in rows for name, _ in row.get("input") or ()))
    taken = {name.strip().lower() for name in theirs}
    columns = theirs + [c for c in ours if c not in taken]
    records = []
    for row in rows:
        record = dict(row.get("input") or ())
        record.update({col: row.get(col) for col in ours if col not in taken})
        record["refused"] = bool(row.get("refused"))
        record["citations"] = _citations_json(row.get("citations"))
        record["retrieved"] = _retrieved_json(row.get("retrieved"))
        records.append(record)
    return pd.DataFrame(records, columns=columns)


def changes_table(cmp: dict):
    """The comparison with the previous run as rows for a "Changes" sheet: one per changed question."""
    import pandas as pd

    from tasks.report.compare import CHANGE_LISTS

    records = [
        {
            "change": label,
            "id": item.get("id"),
            "question": item.get("question"),
            "before": item.get("old"),
            "now": item.get("new"),
            "why": item.get("why") or item.get("flag_reason"),
        }
        for key, label in CHANGE_LISTS
        for item in cmp.get(key) or []
    ]
    return pd.DataFrame(records, columns=["change", "id", "question", "before", "now", "why"])


def write_csv(frame, path: Path) -> None:
    """Write a table as CSV (UTF-8 with BOM, for Excel) whose text cells and headers open as text, never a formula."""
    frame = frame.rename(columns=csv_cell)
    # CRLF line ends (RFC 4180, the csv module's default): a cell holding a bare CR is then quoted. With pandas' "\n",
    # it is not, and a spreadsheet starts a new row at the CR, whose first cell can be a formula.
    frame.astype(object).map(csv_cell).to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")


def _write_xlsx(frame, path: Path, changes: dict | None = None) -> None:
    """Write the answers table to one sheet (and the changes since the previous run to a second), text kept text."""
    import pandas as pd
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def clean(value: object) -> object:
        # openpyxl rejects control characters (PDF text has them) and Excel rejects over-long cells.
        if not isinstance(value, str):
            return value
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        return value if len(value) <= XLSX_CELL_LIMIT else value[: XLSX_CELL_LIMIT - 1] + "…"

    frame = frame.astype(object).where(frame.notna(), None).map(clean)
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="answers", index=False)
        if changes is not None:  # the comparison with the previous run, on a sheet after the answers
            table = changes_table(changes)
            table.astype(object).where(table.notna(), None).map(clean).to_excel(
                writer, sheet_name="Changes", index=False
            )
        for sheet in writer.sheets.values():
            for row in sheet.iter_rows():
                for cell in row:
                    if cell.data_type == "f":  # a cell starting with '=' is text, not a formula to run
                        cell.data_type = "s"
        sheet = writer.sheets["answers"]
        sheet.freeze_panes = "A2"
        widths = {
            "id": 10,
            "question": 50,
            "answer": 80,
            "citations": 40,
            "retrieved": 40,
            "error": 30,
            "flag_reason": 30,
        }
        for i, col in enumerate(frame.columns):
            sheet.column_dimensions[sheet.cell(row=1, column=i + 1).column_letter].width = widths.get(col, 14)
