"""Check the second held-out set without running kbflow or any model on it.

For every question: the CSV parses, the expected source exists, and for answerable questions at least one alternative
of expected_answer is in the source text (raw, and as whole tokens by tasks.text.contains_answer); prints how often
each found alternative occurs in its source and in which other documents it occurs. Run from the repository root:
    PYTHONPATH=. .venv/bin/python benchmarks/heldout2/check_set.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from tasks.text import contains_answer, normalize_answer, normalize_numbers

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def text_of(path: Path) -> str:
    """The document's text: cells of every sheet for xlsx, paragraphs and table cells for docx, else the file."""
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True)
        return "\n".join(
            " ".join("" if v is None else str(v) for v in row) for ws in book for row in ws.iter_rows(values_only=True)
        )
    if path.suffix == ".docx":
        from docx import Document

        doc = Document(path)
        cells = [c.text for t in doc.tables for r in t.rows for c in r.cells]
        return "\n".join([p.text for p in doc.paragraphs] + cells)
    return path.read_text(encoding="utf-8")


def count(text: str, alt: str) -> int:
    """Whole-token occurrences of alt in text after the scorer's normalization."""
    want = normalize_answer(normalize_numbers(alt))
    return len(re.findall(rf"(?<!\S){re.escape(want)}(?!\S)", normalize_answer(normalize_numbers(text))))


def main() -> int:
    docs = {p.relative_to(CORPUS).as_posix(): text_of(p) for p in sorted(CORPUS.rglob("*")) if p.is_file()}
    problems = 0
    for name in ("questions_en.csv", "questions_zh.csv"):
        frame = pd.read_csv(HERE / name, dtype=str, keep_default_na=False)
        assert list(frame.columns) == ["id", "question", "expected_answer", "expected_source"], frame.columns
        assert frame["id"].is_unique
        print(f"{name}: {len(frame)} rows")
        for row in frame.itertuples():
            if not row.expected_answer:
                assert not row.expected_source, row.id
                continue
            source = docs.get(row.expected_source)
            if source is None:
                print(f"  {row.id}: missing source {row.expected_source}")
                problems += 1
                continue
            alts = [a.strip() for a in row.expected_answer.split(" | ")]
            found = [a for a in alts if a in source]
            if not found or not contains_answer(source, row.expected_answer.split(" | ")[0]) and not any(
                contains_answer(source, a) for a in found
            ):
                print(f"  {row.id}: no alternative of {row.expected_answer!r} in {row.expected_source}")
                problems += 1
                continue
            counts = {a: count(source, a) for a in found}
            elsewhere = sorted({p for p, t in docs.items() if p != row.expected_source for a in found if count(t, a)})
            flag = "" if max(counts.values()) == 1 else "  <-- more than once"
            print(f"  {row.id}: {counts} in {row.expected_source}; also in {elsewhere or '-'}{flag}")
    print("problems:", problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
