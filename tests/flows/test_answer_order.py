"""The order questions are answered in (by language, for llama.cpp's prompt cache) and the order rows are read back."""

from __future__ import annotations

import json

import pytest

from flows.answer import answering_order, read_rows
from tasks.answer.questions import Question

pytestmark = pytest.mark.unit


def questions(*texts: str) -> list[Question]:
    return [Question(id=f"q{i}", question=t) for i, t in enumerate(texts, start=1)]


def test_questions_are_answered_by_language_the_first_questions_language_first():
    mixed = questions("年假几天？", "How many days?", "病假几天？", "Who signs?", "退货期限？")
    assert answering_order(mixed) == [0, 2, 4, 1, 3]
    assert answering_order(questions("Who signs?", "年假几天？", "How many days?")) == [0, 2, 1]
    assert answering_order(questions("A?", "B?")) == [0, 1] and answering_order([]) == []


def test_rows_written_in_answering_order_are_read_back_in_question_order(tmp_path):
    path = tmp_path / "rows.jsonl"
    written = [{"index": i, "answer": f"答案 {i}"} for i in (0, 2, 4, 1, 3)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in written), encoding="utf-8")
    assert [r["index"] for r in read_rows(path)] == [0, 1, 2, 3, 4]
    assert [r["answer"] for r in read_rows(path)] == [f"答案 {i}" for i in range(5)]
