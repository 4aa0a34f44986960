"""load_questions reads every supported format from real files, and its errors name the file and the row."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.answer.questions import Question, QuestionFileError, load_questions

pytestmark = pytest.mark.unit


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_all_columns_any_case_and_blank_cells(tmp_path):
    path = write(
        tmp_path / "questions.csv",
        " ID ,Question,Expected_Answer, expected_source ,notes\n"
        "7,How long do refunds take?,14 days,policy.docx,x\n"
        "a2,Where is the Lyon center?,,,\n",
    )
    assert load_questions(path) == [
        Question("7", "How long do refunds take?", "14 days", "policy.docx"),
        Question("a2", "Where is the Lyon center?", None, None),
    ]


def test_csv_without_id_column_gets_generated_ids_and_skips_empty_rows(tmp_path):
    path = write(tmp_path / "q.csv", "question\nFirst?\n\n,\nSecond?\n")
    questions = load_questions(path)
    assert [(q.id, q.question) for q in questions] == [("q001", "First?"), ("q002", "Second?")]


def test_csv_quoted_cell_with_comma_and_newline(tmp_path):
    path = write(tmp_path / "q.csv", 'id,question\n1,"Refunds, returns\nand exchanges?"\n')
    assert load_questions(path)[0].question == "Refunds, returns\nand exchanges?"


def test_gbk_encoded_csv_with_chinese_questions(tmp_path):
    path = write(
        tmp_path / "问题.csv",
        "id,question,expected_answer\n1,退款需要多少天？,30天\n2,客服电话是多少？,\n",
        encoding="gbk",
    )
    questions = load_questions(path)
    assert [q.question for q in questions] == ["退款需要多少天？", "客服电话是多少？"]
    assert questions[0].expected_answer == "30天"
    assert questions[1].expected_answer is None


def test_utf8_bom_csv(tmp_path):
    path = write(tmp_path / "q.csv", "question,id\n价格是多少？,p1\n", encoding="utf-8-sig")
    assert load_questions(path) == [Question("p1", "价格是多少？")]


def test_xlsx_reads_first_sheet_numbers_as_text(tmp_path):
    path = tmp_path / "questions.xlsx"
    first = pd.DataFrame(
        {
            "Id": [7, 8],
            "question": ["How many centers?", "What is the price?"],
            "expected_answer": [3, None],
            "expected_source": ["centers.csv", None],
        }
    )
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        first.to_excel(writer, sheet_name="set", index=False)
        pd.DataFrame({"question": ["not me"]}).to_excel(writer, sheet_name="other", index=False)
    assert load_questions(path) == [
        Question("7", "How many centers?", "3", "centers.csv"),
        Question("8", "What is the price?", None, None),
    ]


def test_xlsx_empty_question_names_spreadsheet_row(tmp_path):
    path = tmp_path / "questions.xlsx"
    pd.DataFrame({"question": ["ok?", None, "also ok?"], "id": ["a", "b", "c"]}).to_excel(path, index=False)
    with pytest.raises(QuestionFileError, match=r"questions\.xlsx row 3: empty question"):
        load_questions(path)


def test_jsonl_skips_blank_lines_and_reads_keys_case_insensitively(tmp_path):
    first = {"question": "What is the refund period?", "expected_answer": "14 days", "id": 1}
    second = {"Question": "退款期限？", "expected_source": "docs/中文说明.txt", "expected_answer": None}
    text = json.dumps(first) + "\n\n" + json.dumps(second, ensure_ascii=False) + "\n"
    path = write(tmp_path / "q.jsonl", text)
    assert load_questions(path) == [
        Question("1", "What is the refund period?", "14 days", None),
        Question("q002", "退款期限？", None, "docs/中文说明.txt"),
    ]


def test_txt_one_question_per_line(tmp_path):
    path = write(tmp_path / "q.txt", "  What is kbflow?  \n\n什么是知识库？\n")
    assert load_questions(path) == [Question("q001", "What is kbflow?"), Question("q002", "什么是知识库？")]


def test_gb18030_txt(tmp_path):
    path = write(tmp_path / "q.txt", "营业时间？\n", encoding="gb18030")
    assert load_questions(path)[0].question == "营业时间？"


def test_to_dict():
    q = Question("q1", "Why?", "Because.", "a.md")
    assert q.to_dict() == {
        "id": "q1",
        "question": "Why?",
        "expected_answer": "Because.",
        "expected_source": "a.md",
        "input": (),
    }


# ------------------------------------------------------------------ errors


def error_of(path: Path) -> str:
    with pytest.raises(QuestionFileError) as info:
        load_questions(path)
    return str(info.value)


def test_missing_question_column_lists_found_columns(tmp_path):
    path = write(tmp_path / "questions.csv", "a,b\n1,2\n")
    assert error_of(path) == f"{path}: no 'question' column (found: a, b)"


def test_empty_question_names_csv_row(tmp_path):
    # Header is row 1, so the second data row is row 3.
    path = write(tmp_path / "questions.csv", "id,question\n1,ok?\n2,  \n3,fine\n")
    message = error_of(path)
    assert "questions.csv" in message
    assert "row 3" in message
    assert "empty question" in message


def test_bad_json_line(tmp_path):
    path = write(tmp_path / "questions.jsonl", '{"question": "ok?"}\n{"question": "ok too?"}\n{"question": oops}\n')
    message = error_of(path)
    assert message.startswith(f"{path} line 3: not valid JSON (")


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "questions.jsonl", '{"question": "ok?"}\n["a list"]\n')
    assert "line 2: expected a JSON object" in error_of(path)


def test_duplicate_id_names_both_rows(tmp_path):
    path = write(tmp_path / "questions.csv", "id,question\nx,one?\ny,two?\nx,three?\n")
    message = error_of(path)
    assert "questions.csv row 4: duplicate id 'x'" in message
    assert "row 2" in message


def test_generated_id_that_collides_with_a_given_one(tmp_path):
    path = write(tmp_path / "q.jsonl", '{"id": "q002", "question": "a?"}\n{"question": "b?"}\n')
    assert "line 2: duplicate id 'q002' (already used in line 1)" in error_of(path)


def test_unsupported_suffix_lists_supported_ones(tmp_path):
    path = write(tmp_path / "questions.docx", "x")
    message = error_of(path)
    assert "questions.docx" in message
    for suffix in (".csv", ".xlsx", ".jsonl", ".txt"):
        assert suffix in message


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "questions.csv"
    # Binary noise that no encoding reads (a Western file in cp1252 would be read, as documents are).
    path.write_bytes(b"question\n" + bytes(range(128, 256)) * 3 + b"\n")
    assert error_of(path) == f"{path}: cannot decode text: not UTF-8, GB18030 or Big5"


@pytest.mark.parametrize(
    ("name", "text"),
    [("empty.csv", ""), ("header_only.csv", "id,question\n"), ("blank.txt", "\n  \n"), ("blank.jsonl", "\n")],
)
def test_files_without_questions(tmp_path, name, text):
    path = write(tmp_path / name, text)
    message = error_of(path)
    assert message.startswith(str(path))
    assert "empty" in message or "no questions" in message


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.csv"
    assert error_of(path) == f"{path}: file not found"


def test_broken_xlsx(tmp_path):
    path = write(tmp_path / "questions.xlsx", "not a workbook")
    assert error_of(path).startswith(f"{path}: cannot read spreadsheet")


def test_csv_row_with_extra_cells(tmp_path):
    path = write(tmp_path / "q.csv", "id,question\n1,Hello, world?\n")
    assert "row 2: 3 cells but the header has 2 columns" in error_of(path)


def test_jsonl_expected_answer_may_list_several_answers(tmp_path):
    from tasks.report.metrics import answer_correct, expected_answers

    path = write(
        tmp_path / "q.jsonl",
        json.dumps({"question": "几个校区？", "expected_answer": ["两个", "2个"]}, ensure_ascii=False)
        + "\n"
        + json.dumps({"question": "Where?", "expected_answer": {"city": "Berlin"}})
        + "\n",
    )
    with pytest.raises(QuestionFileError, match=r"line 2: 'expected_answer' must be text, not a JSON dict"):
        load_questions(path)
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    answers = expected_answers(load_questions(path)[0].expected_answer)
    assert (
        answers == ["两个", "2个"] and answer_correct("学校有2个校区", answers) and not answer_correct("三个", answers)
    )
