"""Metrics on hand-checked cases, and the four report files as a user would open them."""

from __future__ import annotations

import html
import json

import openpyxl
import pandas as pd
import pytest

from tasks.report import (
    exact_match,
    f1_score,
    reciprocal_rank,
    score_rows,
    source_matches,
    summarize,
    write_report,
)

PAYLOAD = "<script>alert(1)</script>"
BASE_COLUMNS = [
    "id", "question", "answer", "refused", "citations", "retrieved",
    "latency_ms", "prompt_tokens", "completion_tokens", "error",
]
EXPECTED_COLUMNS = ["expected_answer", "expected_source", "hit", "reciprocal_rank", "exact_match", "f1"]


# ------------------------------------------------------------------ metrics


def test_source_matches():
    assert source_matches("policy.docx", "policy.docx")
    assert source_matches("policy.docx", "hr/policy.docx")  # bare file name matches in any folder
    assert source_matches("hr/policy.docx", "hr\\policy.docx")  # Windows separators
    assert source_matches("hr\\policy.docx", "hr/policy.docx")
    assert not source_matches("hr/policy.docx", "old/hr/policy.docx")  # a path must be the whole path
    assert not source_matches("Policy.docx", "policy.docx")  # case-sensitive
    assert not source_matches("policy.doc", "policy.docx")


def test_reciprocal_rank():
    assert reciprocal_rank("b.md", ["b.md", "a.md"]) == 1.0
    assert reciprocal_rank("b.md", ["a.md", "docs/b.md", "b.md"]) == 0.5  # first match counts
    assert reciprocal_rank("b.md", ["a.md", "c.md"]) == 0.0
    assert reciprocal_rank("b.md", []) == 0.0


def test_exact_match_normalizes_case_punctuation_and_articles():
    assert exact_match("The 14 days.", "14 days") == 1.0
    assert exact_match("Fourteen days!", "fourteen  days") == 1.0
    assert exact_match("14 days", "15 days") == 0.0
    assert exact_match("三十天。", "三十天") == 1.0
    assert exact_match("15 days", ["14 days", "15 days"]) == 1.0


def test_f1_english_by_hand():
    # Articles are dropped as in normalize_answer:
    # prediction "The refund takes 14 days." -> [refund, takes, 14, days] (4 tokens)
    # expected   "14 days"                   -> [14, days]                 (2 tokens)
    # overlap 2: precision 2/4, recall 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert f1_score("The refund takes 14 days.", "14 days") == pytest.approx(2 / 3)
    assert f1_score("nothing in common", "14 days") == 0.0
    assert f1_score("", "14 days") == 0.0
    # max over a list: "14 days" against ["two weeks", "14 days"] -> 1.0
    assert f1_score("14 days", ["two weeks", "14 days"]) == 1.0


def test_f1_chinese_is_per_character_by_hand():
    # "三十天内" -> [三, 十, 天, 内]; "30天" -> [30, 天]; overlap {天} = 1
    # precision 1/4, recall 1/2, F1 = 2 * (1/8) / (3/4) = 1/3
    assert f1_score("三十天内", "30天") == pytest.approx(1 / 3)
    # "退款在30天内完成" -> [退, 款, 在, 30, 天, 内, 完, 成] (8); "30天内" -> [30, 天, 内] (3); overlap 3
    # precision 3/8, recall 1, F1 = 2 * (3/8) / (11/8) = 6/11
    assert f1_score("退款在30天内完成", "30天内") == pytest.approx(6 / 11)


# ------------------------------------------------------------------ rows


def passage(source: str, page: int | None, rank: int, text: str = "some text") -> dict:
    return {"source": source, "page": page, "chunk_id": f"{source}-{rank}", "score": round(1 - rank / 10, 2), "text": text}


def row(qid: str, question: str, answer: str, **kw) -> dict:
    base = {
        "id": qid,
        "question": question,
        "answer": answer,
        "refused": False,
        "citations": [],
        "retrieved": [],
        "latency_ms": 0.0,
        "retrieval_ms": 10.0,
        "generation_ms": 20.0,
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "error": None,
        "expected_answer": None,
        "expected_source": None,
    }
    base.update(kw)
    return base


@pytest.fixture
def rows() -> list[dict]:
    """Six questions whose scores are worked out by hand in the comments."""
    return [
        # source hit at rank 1 -> RR 1; EM 0, F1 2/3 (see test_f1_english_by_hand)
        row(
            "q1", "How long do refunds take?", "The refund takes 14 days.",
            citations=[{"source": "policy.docx", "page": 2}],
            retrieved=[passage("policy.docx", 2, 1, "Refunds are paid within 14 days."), passage("guide.md", None, 2)],
            latency_ms=100.0, expected_answer="14 days", expected_source="policy.docx",
        ),
        # source hit at rank 2 -> RR 1/2; EM 0, F1 6/11 (see test_f1_chinese_is_per_character_by_hand)
        row(
            "q2", "退款期限是多久？", "退款在30天内完成",
            citations=[{"source": "docs/中文说明.txt", "page": None}],
            retrieved=[passage("notes.txt", None, 1), passage("docs/中文说明.txt", None, 2, "退款在30天内完成。")],
            latency_ms=200.0, expected_answer="30天内", expected_source="docs/中文说明.txt",
        ),
        # source missed -> RR 0; refused, refusal text scored against "42 euros" -> EM 0, F1 0
        row(
            "q3", "What does the premium plan cost?", "I cannot answer this from the documents.",
            refused=True,
            retrieved=[passage("guide.md", None, 1, f"Install notes {PAYLOAD}"), passage("notes.txt", None, 2)],
            latency_ms=300.0, expected_answer="42 euros", expected_source="prices.xlsx",
        ),
        # no expected source; "Fourteen days." vs "fourteen days" -> EM 1, F1 1
        row("q4", "How long is the trial?", "Fourteen days.", latency_ms=400.0, expected_answer="fourteen days"),
        # error: scored as the empty answer -> EM 0, F1 0
        row("q5", "What colour is the logo?", "", error="LLM timeout after 60 s", latency_ms=500.0, expected_answer="blue"),
        # nothing expected: not scored at all
        row("q6", "Is 2 < 3 & 4 > 1?", "=1+1 is text, not a formula", latency_ms=600.0),
    ]


HAND = {
    "questions": 6,
    "answered": 4,
    "refused": 1,
    "errors": 1,
    "questions_with_expected_source": 3,
    "questions_with_expected_answer": 5,
    "recall_at_k": 2 / 3,  # ranks 1, 2 and a miss
    "mrr": (1 + 0.5 + 0) / 3,
    "exact_match": 1 / 5,  # only q4
    "f1": (2 / 3 + 6 / 11 + 0 + 1 + 0) / 5,  # = 73/165
    "latency_ms_p50": 350.0,  # numpy linear: between 300 and 400
    "latency_ms_p95": 575.0,  # position 0.95 * 5 = 4.75: 500 + 0.75 * 100
}


def test_score_rows(rows):
    scored = score_rows(rows)
    assert [r["hit"] for r in scored] == [True, True, False, None, None, None]
    assert [r["reciprocal_rank"] for r in scored] == [1.0, 0.5, 0.0, None, None, None]
    assert [r["exact_match"] for r in scored] == [0.0, 0.0, 0.0, 1.0, 0.0, None]
    assert scored[0]["f1"] == pytest.approx(2 / 3)
    assert scored[5]["f1"] is None
    assert "hit" not in rows[0]  # the input rows are left as they were


def test_summarize_matches_hand_computed_figures(rows):
    summary = summarize(rows, top_k=2, model="qwen", embedding_model="minilm", mode="hybrid")
    for key, value in HAND.items():
        assert summary[key] == pytest.approx(value), key
    assert (summary["top_k"], summary["mode"], summary["model"], summary["embedding_model"]) == (
        2, "hybrid", "qwen", "minilm",
    )


def test_summarize_without_expected_values_gives_nulls():
    summary = summarize([row("q1", "Why?", "Because.", latency_ms=5.0)], top_k=4, model="m", embedding_model="e", mode="m")
    assert summary["recall_at_k"] is None and summary["mrr"] is None
    assert summary["exact_match"] is None and summary["f1"] is None
    assert summary["latency_ms_p50"] == 5.0


# ------------------------------------------------------------------ files


@pytest.fixture
def report(tmp_path, rows):
    out = tmp_path / "report"
    summary = write_report(rows, out, top_k=2, model="qwen", embedding_model="minilm", mode="hybrid", title="Refund <QA>")
    return out, summary


def test_write_report_writes_the_four_files(report):
    out, _ = report
    assert sorted(p.name for p in out.iterdir()) == ["answers.csv", "answers.xlsx", "report.html", "summary.json"]


def test_summary_json_has_hand_computed_figures(report):
    out, returned = report
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == returned
    for key, value in HAND.items():
        assert summary[key] == pytest.approx(value), key
    assert summary["created_at"][:2] == "20"


def test_answers_csv_columns_and_json_cells(report, rows):
    out, _ = report
    assert (out / "answers.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # BOM for Excel
    frame = pd.read_csv(out / "answers.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame.columns) == BASE_COLUMNS + EXPECTED_COLUMNS
    assert list(frame["id"]) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert frame.loc[1, "answer"] == "退款在30天内完成"
    assert list(frame["refused"]) == ["False", "False", "True", "False", "False", "False"]
    assert frame.loc[4, "error"] == "LLM timeout after 60 s"
    assert list(frame["hit"]) == ["True", "True", "False", "", "", ""]
    for i, source_row in enumerate(rows):
        assert json.loads(frame.loc[i, "citations"]) == source_row["citations"]
        expected = [{k: p[k] for k in ("source", "page", "chunk_id", "score")} for p in source_row["retrieved"]]
        assert json.loads(frame.loc[i, "retrieved"]) == expected
    assert json.loads(frame.loc[1, "retrieved"])[1] == {
        "source": "docs/中文说明.txt", "page": None, "chunk_id": "docs/中文说明.txt-2", "score": 0.8,
    }
    assert float(frame.loc[0, "f1"]) == pytest.approx(2 / 3)


def test_answers_xlsx_same_columns_and_text_stays_text(report):
    out, _ = report
    frame = pd.read_excel(out / "answers.xlsx")
    assert list(frame.columns) == BASE_COLUMNS + EXPECTED_COLUMNS
    assert frame.loc[1, "question"] == "退款期限是多久？"
    sheet = openpyxl.load_workbook(out / "answers.xlsx").active
    answer_col = BASE_COLUMNS.index("answer") + 1
    cell = sheet.cell(row=7, column=answer_col)  # q6, whose answer starts with '='
    assert cell.value == "=1+1 is text, not a formula"
    assert cell.data_type == "s"


def test_no_expected_columns_when_nothing_is_expected(tmp_path):
    rows = [row("q1", "Why?", "Because.", latency_ms=5.0)]
    write_report(rows, tmp_path, top_k=4, model="m", embedding_model="e", mode="vector")
    frame = pd.read_csv(tmp_path / "answers.csv", encoding="utf-8-sig")
    assert list(frame.columns) == BASE_COLUMNS


def test_html_escapes_text_and_shows_every_question(report, rows):
    out, _ = report
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in page
    assert PAYLOAD not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Refund &lt;QA&gt;</title>" in page
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page  # self-contained
    for r in rows:
        assert html.escape(r["question"]) in page
    assert "Is 2 &lt; 3 &amp; 4 &gt; 1?" in page
    assert 'class="badge refused"' in page and 'class="badge error"' in page
    assert "LLM timeout after 60 s" in page
    assert "66.7%" in page  # recall@2 in the summary cards
    assert "退款在30天内完成" in page and 'lang="zh"' in page


def test_citation_marks_do_not_count_against_the_answer():
    from tasks.report import exact_match, f1_score

    assert exact_match("21 days [1]", "21 days") == 1.0
    assert f1_score("退款期限为三十天[1][2]。", "三十天") == f1_score("退款期限为三十天。", "三十天")
