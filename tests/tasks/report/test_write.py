"""Metrics on hand-checked cases, and the four report files as a user would open them."""

from __future__ import annotations

import html
import json

import openpyxl
import pandas as pd
import pytest

from tasks.report.figures import summary_markdown
from tasks.report.metrics import (
    answer_correct,
    exact_match,
    expected_answers,
    f1_score,
    reciprocal_rank,
    score_rows,
    source_matches,
    summarize,
)
from tasks.report.write import write_report
from tasks.text import chinese_numeral_value, normalize_numbers

pytestmark = pytest.mark.unit

PAYLOAD = "<script>alert(1)</script>"
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


def test_correct_is_containment_after_normalization():
    # The RGB rule: the expected answer appears in the answer, case, width, spacing and punctuation aside.
    assert answer_correct("The refund takes 14 days.", "14 days")
    assert answer_correct("退款期限为30天。", "30天")
    assert answer_correct("ＲＥＦＵＮＤ　within  14\tdays!", "refund within 14 days")  # full width, spaces
    assert answer_correct("Refunds take 14 days [1][2].", "14 days")  # citation marks
    assert answer_correct('It is "Plan-B" (premium).', "plan b premium")
    assert not answer_correct("The refund takes 15 days.", "14 days")
    assert not answer_correct("The refund takes 114 days.", "14 days")  # whole tokens, not any substring
    assert not answer_correct("", "14 days")
    assert answer_correct("Two years.", ["24 months", "two years"])


def test_a_long_expected_answer_said_in_other_words_is_right_but_not_without_its_figures():
    # CMRC references carry words a right answer need not repeat; these were read as right by a person.
    assert answer_correct("林永康有3名子女。[1]", "育有3名子女")
    assert answer_correct("台湾台北市[1]", "出生地于台湾台北市")
    assert answer_correct("软枝黄蝉的原生地在巴西。[2]", "原生于巴西")
    assert answer_correct("塔身高23.5米象征着北回归线的纬度值。[1]", "暗示北回归线的纬度值")
    # The reference's wrapping words: a qualifier of age or amount, a copula, 一 as an article.
    assert answer_correct("尤金袋鼠的体重大约是8公斤重。[1]", "约只有8公斤重")
    assert answer_correct("毛利幸松丸被拥立为下任当主时2岁。[1]", "年仅两岁")
    assert answer_correct("古典巴洛克建筑，[2]", "是一座古典巴洛克建筑")
    assert not answer_correct("尤金袋鼠的体重大约是9公斤重。[1]", "约只有8公斤重")
    assert not answer_correct("毛利幸松丸被拥立为下任当主时3岁。[1]", "年仅两岁")
    assert not answer_correct("古典哥特式建筑。[2]", "是一座古典巴洛克建筑")
    # ... and these as wrong: another place, a part too small, a missing figure, a short answer not said whole.
    assert not answer_correct("蒙泰罗在2005年没有参加美国大奖赛。[1]", "巴西大奖赛")
    assert not answer_correct("统治者会议拥有最高元首的选举权和被选举权。", "世袭统治者")
    assert not answer_correct("朱泚称帝。", "783年，拥立朱泚称帝")
    assert not answer_correct("长柄艾纳香的花期约是10月起至翌年5~6月。", "花期1-3月")
    assert not answer_correct("克伦贝格尔的出生地在德国。", "瑞士")



def test_correct_reads_a_reference_that_restates_its_question():
    """CMRC references restate the question around the answer; what a reader checks is the part the question asks
    for. Each right case is an answer a reader marks right that the scorer had marked wrong."""
    q = "莫斯科公国在哪一年控制了此城镇？"
    assert answer_correct("1303年", "莫斯科公国在1303年控制了这座城镇", q)
    assert not answer_correct("1301年", "莫斯科公国在1303年控制了这座城镇", q)
    q = "拆卸后的道路改建成了什么建筑？"
    assert answer_correct("改建成了佐敦谷游泳池职员通道。[1]", "道路现已改建为佐敦谷游泳池职员通道", q)
    assert not answer_correct("改建成了佐敦谷公园。[1]", "道路现已改建为佐敦谷游泳池职员通道", q)
    q = "游戏的模式有哪些？"
    assert answer_correct("游戏的模式有经典、热血、狙击等模式。", "可选择经典、热血、狙击等模式进行游戏。", q)
    assert not answer_correct("游戏的模式有单人和多人模式。", "可选择经典、热血、狙击等模式进行游戏。", q)
    # An amount asked: the reference's figures and no other make a right answer.
    q = "溶组织内阿米巴感染的人数约是多少？"
    ref = "溶组织内阿米巴主要感染人类和其他灵长类动物，估计感染全球总人数约为50万人。"
    assert answer_correct("50万人[1]", ref, q)
    assert not answer_correct("5万人[1]", ref, q) and not answer_correct("50万人或500万人", ref, q)
    q = "五月艾所生长的地区海拔约是多少米？"
    assert not answer_correct("五月艾所生长的地区海拔约是1,400米。[2]", "生长于海拔100米至2,800米的地区", q)
    q, ref = "摄影开始和结束的时间分别是什么时候？", "2007年7月27日摄影开始，8月18日结束（撮影期21日）。"
    assert answer_correct("摄影开始和结束的时间分别是2007年7月27日和8月18日。[1]", ref, q)  # the (21日) is a detail
    assert not answer_correct("摄影开始和结束的时间分别是2007年7月27日和8月28日。[1]", ref, q)
    # Without the question, a restated reference is read as before.
    assert answer_correct("凉茶饮料不可含有西药成分。[1]", "凉茶舖售卖的凉茶饮料不可含有西药成分，否则属违法行为。")


def test_correct_takes_the_name_in_a_references_closing_parenthesis_as_another_name():
    assert answer_correct("JR东日本[1]", "东日本旅客铁道（JR东日本）")
    assert answer_correct("东日本旅客铁道。", "东日本旅客铁道（JR东日本）")
    assert not answer_correct("西日本旅客铁道。", "东日本旅客铁道（JR东日本）")
    # A parenthesis that holds a figure is a detail, not another name: it alone is no answer.
    assert not answer_correct("撮影期21日", "8月18日结束（撮影期21日）")

def test_correct_reads_numbers_written_as_words():
    assert answer_correct("退款期限为三十天[1]。", "30天")
    assert answer_correct("退款在30天内完成", "三十天")
    assert answer_correct("Refunds take fourteen days.", "14 days")
    assert answer_correct("The warranty lasts twenty-four months.", "24 months")
    assert answer_correct("It costs 1,000 euros.", "1000 euros")
    assert not answer_correct("退款期限为三十五天。", "30天")
    assert not answer_correct("Refunds take fourteen days.", "40 days")


def test_chinese_numerals_by_hand():
    cases = {
        "零": 0,
        "七": 7,
        "十": 10,
        "十五": 15,
        "二十": 20,
        "一百零五": 105,
        "三百五": 350,
        "两千": 2000,
        "一千零二十": 1020,
        "九千九百九十九": 9999,
        "二〇二四": 2024,
    }
    assert {text: chinese_numeral_value(text) for text in cases} == cases
    for not_a_number in ("三四十", "百", "十十", "零十", ""):
        assert chinese_numeral_value(not_a_number) is None, not_a_number


def test_normalize_numbers_in_text():
    assert normalize_numbers("百分之三十的员工") == "30%的员工"
    assert normalize_numbers("one hundred and five days, not twenty-one") == "105 days, not 21"
    assert normalize_numbers("one and two") == "1 and 2"
    assert normalize_numbers("Hundreds of Twelve-year-olds") == "Hundreds of 12-year-olds"
    assert normalize_numbers("１,０００ 元") == "1000 元"


def test_expected_answers_accepts_json_lists_and_pipes():
    assert expected_answers('["24 months", "two years"]') == ["24 months", "two years"]
    assert expected_answers("24 months | two years") == ["24 months", "two years"]
    assert expected_answers(["24 months", " two years "]) == ["24 months", "two years"]
    assert expected_answers("[1] is the answer") == ["[1] is the answer"]  # not JSON: one answer
    assert expected_answers("a|b") == ["a|b"]  # only ' | ' separates
    assert expected_answers(None) == [] and expected_answers("  ") == []


# ------------------------------------------------------------------ rows


def passage(source: str, page: int | None, rank: int, text: str = "some text") -> dict:
    return {
        "source": source,
        "page": page,
        "chunk_id": f"{source}-{rank}",
        "score": round(1 - rank / 10, 2),
        "text": text,
    }


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
            "q1",
            "How long do refunds take?",
            "The refund takes 14 days.",
            citations=[{"source": "policy.docx", "page": 2}],
            retrieved=[passage("policy.docx", 2, 1, "Refunds are paid within 14 days."), passage("guide.md", None, 2)],
            latency_ms=100.0,
            expected_answer="14 days",
            expected_source="policy.docx",
        ),
        # source hit at rank 2 -> RR 1/2; EM 0, F1 6/11 (see test_f1_chinese_is_per_character_by_hand)
        row(
            "q2",
            "退款期限是多久？",
            "退款在30天内完成",
            citations=[{"source": "docs/中文说明.txt", "page": None}],
            retrieved=[passage("notes.txt", None, 1), passage("docs/中文说明.txt", None, 2, "退款在30天内完成。")],
            latency_ms=200.0,
            expected_answer="30天内",
            expected_source="docs/中文说明.txt",
        ),
        # source missed -> RR 0; refused, refusal text scored against "42 euros" -> EM 0, F1 0
        row(
            "q3",
            "What does the premium plan cost?",
            "I cannot answer this from the documents.",
            refused=True,
            retrieved=[passage("guide.md", None, 1, f"Install notes {PAYLOAD}"), passage("notes.txt", None, 2)],
            latency_ms=300.0,
            expected_answer="42 euros",
            expected_source="prices.xlsx",
        ),
        # no expected source; "Fourteen days." vs "fourteen days" -> EM 1, F1 1
        row("q4", "How long is the trial?", "Fourteen days.", latency_ms=400.0, expected_answer="fourteen days"),
        # error: scored as the empty answer -> EM 0, F1 0
        row(
            "q5",
            "What colour is the logo?",
            "",
            error="LLM timeout after 60 s",
            latency_ms=500.0,
            expected_answer="blue",
        ),
        # nothing expected: not scored at all
        row("q6", "Is 2 < 3 & 4 > 1?", "=1+1 is text, not a formula", latency_ms=600.0),
    ]


HAND = {
    "accuracy": 3 / 5,  # q1 contains "14 days", q2 contains "30天内", q4 "fourteen days"; q3 refused, q5 failed
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
    # q4 and q6 are answered without a citation; q1 and q2 cite passages holding all their content words.
    "unsupported": 2,
    "support": 1.0,  # q1 and q2 are fully supported; the other rows have no support figure
}


def test_score_rows(rows):
    scored = score_rows(rows)
    assert [r["hit"] for r in scored] == [True, True, False, None, None, None]
    assert [r["reciprocal_rank"] for r in scored] == [1.0, 0.5, 0.0, None, None, None]
    assert [r["correct"] for r in scored] == [True, True, False, True, False, None]
    assert [r["exact_match"] for r in scored] == [0.0, 0.0, 0.0, 1.0, 0.0, None]
    assert [r["unsupported"] for r in scored] == [False, False, False, True, False, True]
    assert [r["flag_reason"] for r in scored] == [None, None, None, "no citation", None, "no citation"]
    assert [r["support"] for r in scored] == [1.0, 1.0, None, None, None, None]
    assert scored[0]["f1"] == pytest.approx(2 / 3)
    assert scored[5]["f1"] is None
    assert "hit" not in rows[0]  # the input rows are left as they were


def test_summarize_matches_hand_computed_figures(rows):
    summary = summarize(rows, top_k=2, model="qwen", embedding_model="minilm", mode="hybrid")
    for key, value in HAND.items():
        assert summary[key] == pytest.approx(value), key
    assert (summary["top_k"], summary["mode"], summary["model"], summary["embedding_model"]) == (
        2,
        "hybrid",
        "qwen",
        "minilm",
    )


def test_summarize_without_expected_values_gives_nulls():
    summary = summarize(
        [row("q1", "Why?", "Because.", latency_ms=5.0)], top_k=4, model="m", embedding_model="e", mode="m"
    )
    assert summary["recall_at_k"] is None and summary["mrr"] is None
    assert summary["exact_match"] is None and summary["f1"] is None
    assert summary["accuracy"] is None
    assert summary["latency_ms_p50"] == 5.0


def test_summary_leads_with_accuracy(rows):
    summary = summarize(rows, top_k=2, model="qwen", embedding_model="minilm", mode="hybrid")
    assert next(iter(summary)) == "accuracy"
    table = summary_markdown(summary)
    assert table.splitlines()[2] == "| accuracy | 60.0% |"
    assert "| exact match | 20.0% |" in table and "| unsupported answers | 2 |" in table


# ------------------------------------------------------------------ files


@pytest.fixture
def report(tmp_path, rows):
    out = tmp_path / "report"
    summary = write_report(
        rows, out, top_k=2, model="qwen", embedding_model="minilm", mode="hybrid", title="Refund <QA>"
    )
    return out, summary


def test_write_report_writes_the_four_files(report):
    out, _ = report
    assert sorted(p.name for p in out.iterdir()) == [
        "answers.csv",
        "answers.xlsx",
        "report.html",
        "rows.jsonl",
        "summary.json",
    ]


def test_summary_json_has_hand_computed_figures(report):
    out, returned = report
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == returned
    for key, value in HAND.items():
        assert summary[key] == pytest.approx(value), key
    assert summary["created_at"][:2] == "20"
    assert list(summary)[:2] == ["accuracy", "questions"]
    assert summary["generated"] is True and summary["questions_file"] is None


def test_answers_csv_columns_and_json_cells(report, rows):
    out, _ = report
    assert (out / "answers.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # BOM for Excel
    frame = pd.read_csv(out / "answers.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame.columns) == BASE_COLUMNS + GROUNDING_COLUMNS + EXPECTED_COLUMNS
    assert list(frame["id"]) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert list(frame["correct"]) == ["True", "True", "False", "True", "False", ""]
    assert list(frame["unsupported"]) == ["False", "False", "False", "True", "False", "True"]
    assert list(frame["flag_reason"]) == ["", "", "", "no citation", "", "no citation"]
    assert list(frame["support"]) == ["1.0", "1.0", "", "", "", ""]
    assert frame.loc[1, "answer"] == "退款在30天内完成"
    assert list(frame["refused"]) == ["False", "False", "True", "False", "False", "False"]
    assert frame.loc[4, "error"] == "LLM timeout after 60 s"
    assert list(frame["hit"]) == ["True", "True", "False", "", "", ""]
    for i, source_row in enumerate(rows):
        assert json.loads(frame.loc[i, "citations"]) == source_row["citations"]
        expected = [{k: p[k] for k in ("source", "page", "chunk_id", "score")} for p in source_row["retrieved"]]
        assert json.loads(frame.loc[i, "retrieved"]) == expected
    assert json.loads(frame.loc[1, "retrieved"])[1] == {
        "source": "docs/中文说明.txt",
        "page": None,
        "chunk_id": "docs/中文说明.txt-2",
        "score": 0.8,
    }
    assert float(frame.loc[0, "f1"]) == pytest.approx(2 / 3)


def test_answers_xlsx_same_columns_and_text_stays_text(report):
    out, _ = report
    frame = pd.read_excel(out / "answers.xlsx")
    assert list(frame.columns) == BASE_COLUMNS + GROUNDING_COLUMNS + EXPECTED_COLUMNS
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
    assert list(frame.columns) == BASE_COLUMNS + GROUNDING_COLUMNS


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
    assert '<div class="card lead"><b>60.0%</b><span>accuracy</span></div>' in page
    assert page.index("<span>accuracy</span>") < page.index("<span>exact match</span>") < page.index("<span>F1</span>")
    assert "退款在30天内完成" in page and 'lang="zh"' in page


def test_citation_marks_do_not_count_against_the_answer():
    from tasks.report.metrics import exact_match, f1_score

    assert exact_match("21 days [1]", "21 days") == 1.0
    assert f1_score("退款期限为三十天[1][2]。", "三十天") == f1_score("退款期限为三十天。", "三十天")


# ------------------------------------------------------------------ new report content


def test_rows_jsonl_has_one_scored_row_per_question_without_passage_text(report, rows):
    out, _ = report
    lines = (out / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert [r["correct"] for r in records] == [True, True, False, True, False, None]
    assert [r["hit"] for r in records] == [True, True, False, None, None, None]
    assert records[3]["flag_reason"] == "no citation" and records[0]["support"] == 1.0
    assert records[1]["answer"] == "退款在30天内完成"
    assert records[0]["retrieved"] == [
        {"source": "policy.docx", "page": 2, "chunk_id": "policy.docx-1", "score": 0.9},
        {"source": "guide.md", "page": None, "chunk_id": "guide.md-2", "score": 0.8},
    ]
    assert PAYLOAD not in (out / "rows.jsonl").read_text(encoding="utf-8")  # passage texts are left out


def test_csv_citations_keep_only_source_and_page(tmp_path):
    cited = {
        "source": "policy.docx",
        "page": 2,
        "chunk_id": "policy.docx-1",
        "text": "Refunds are paid within 14 days.",
    }
    rows = [row("q1", "How long do refunds take?", "Refunds are paid within 14 days [1].", citations=[cited])]
    write_report(rows, tmp_path, top_k=2, model="m", embedding_model="e", mode="hybrid")
    frame = pd.read_csv(tmp_path / "answers.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert json.loads(frame.loc[0, "citations"]) == [{"source": "policy.docx", "page": 2}]
    assert "Refunds are paid" not in frame.loc[0, "citations"]
    assert frame.loc[0, "support"] == "1.0" and frame.loc[0, "unsupported"] == "False"
    record = json.loads((tmp_path / "rows.jsonl").read_text(encoding="utf-8"))
    assert record["citations"] == [{"source": "policy.docx", "page": 2, "chunk_id": "policy.docx-1"}]


def test_retrieval_only_report_shows_no_answer_figure_as_zero(tmp_path, rows):
    summary = write_report(
        rows, tmp_path, top_k=2, model="(retrieval only)", embedding_model="minilm", mode="hybrid", generated=False
    )
    on_disk = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert on_disk == summary and on_disk["generated"] is False
    for key in ("accuracy", "exact_match", "f1", "support", "unsupported"):
        assert on_disk[key] is None, key
    assert on_disk["recall_at_k"] == pytest.approx(2 / 3)  # retrieval is still measured
    records = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in records:
        for key in ("correct", "exact_match", "f1", "support", "unsupported", "flag_reason"):
            assert record[key] is None, (record["id"], key)
    frame = pd.read_csv(tmp_path / "answers.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    for key in ("correct", "exact_match", "f1", "support", "unsupported"):
        assert set(frame[key]) == {""}, key
    assert list(frame["hit"]) == ["True", "True", "False", "", "", ""]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for label in ("accuracy", "unsupported answers", "generated", "reused", "exact match", "F1", "support"):
        assert f"<b>n/a</b><span>{label}</span>" in page, label
    assert "<b>0.0%</b>" not in page and "<b>0</b><span>unsupported</span>" not in page
    assert "Check these first" not in page and "retrieval only" in page


def test_flagged_answers_are_badged_bordered_and_listed_first(tmp_path):
    passage_text = "Refunds are paid within 14 days of the return."
    cite = [{"source": "policy.docx", "page": 2, "chunk_id": "c1", "text": passage_text}]
    rows = [
        row("q1", "How long do refunds take?", "Refunds are paid within 14 days [1].", citations=cite),
        row("q2", "How long do refunds take?", "Refunds are paid within 45 days [1].", citations=cite),
        row("q3", "Who approves <refunds>?", "The <b>manager</b> approves them."),
        row("q4", "What is the premium price?", "Not found in the knowledge base.", refused=True),
    ]
    summary = write_report(rows, tmp_path, top_k=2, model="m", embedding_model="e", mode="hybrid")
    assert summary["unsupported"] == 2
    frame = pd.read_csv(tmp_path / "answers.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame["flag_reason"]) == ["", "number 45 not in cited passages", "no citation", ""]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    check = page[
        page.index('<section class="box check"') : page.index("</section>", page.index('<section class="box check"'))
    ]
    assert "Check these first (2)" in check
    assert check.index('href="#q-2"') < check.index('href="#q-3"') and 'href="#q-1"' not in check
    assert "Who approves &lt;refunds&gt;?" in check and "<refunds>" not in page
    assert page.index("Check these first") < page.index('class="cards"') < page.index('id="q-1"')
    assert '<section class="q flagged" id="q-2"' in page and '<section class="q flagged" id="q-3"' in page
    assert '<section class="q" id="q-1"' in page and '<section class="q" id="q-4"' in page
    assert '<span class="badge flag">unsupported: number 45 not in cited passages</span>' in page
    assert '<span class="badge flag">unsupported: no citation</span>' in page
    assert "section.q.flagged{border:3px solid" in page


def test_no_flag_says_so(tmp_path):
    cite = [{"source": "a.md", "page": None, "chunk_id": "c1", "text": "The office opens at 9."}]
    write_report(
        [row("q1", "When does the office open?", "At 9 [1].", citations=cite)],
        tmp_path,
        top_k=1,
        model="m",
        embedding_model="e",
        mode="dense",
    )
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "No answer is flagged." in page and "section.q.flagged" in page and 'class="q flagged"' not in page


def test_questions_file_and_extra_are_stored(tmp_path):
    summary = write_report(
        [row("q1", "Why?", "Because.")],
        tmp_path,
        top_k=1,
        model="m",
        embedding_model="e",
        mode="dense",
        questions_file="sets/faq.csv",
        extra={"adapter": "lora-7", "answer_style": {"language": "zh"}},
    )
    on_disk = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert on_disk == summary
    assert on_disk["questions_file"] == "sets/faq.csv"
    assert on_disk["adapter"] == "lora-7" and on_disk["answer_style"] == {"language": "zh"}
    with pytest.raises(ValueError, match="accuracy"):
        write_report(
            [row("q1", "Why?", "Because.")],
            tmp_path / "x",
            top_k=1,
            model="m",
            embedding_model="e",
            mode="dense",
            extra={"accuracy": 1.0},
        )


def test_several_expected_answers_in_a_report(tmp_path):
    rows = [
        row("q1", "How long is the warranty?", "Two years [1].", expected_answer='["24 months", "two years"]'),
        row("q2", "How long is the warranty?", "24 months.", expected_answer="24 months | two years"),
        row("q3", "How long is the warranty?", "Three years.", expected_answer="24 months | two years"),
    ]
    summary = write_report(rows, tmp_path, top_k=1, model="m", embedding_model="e", mode="dense")
    assert summary["accuracy"] == pytest.approx(2 / 3)
    assert summary["exact_match"] == pytest.approx(2 / 3)  # EM and F1 also take the best of the list
    frame = pd.read_csv(tmp_path / "answers.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame["correct"]) == ["True", "True", "False"]
    assert frame.loc[0, "expected_answer"] == '["24 months", "two years"]'
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<dd>24 months | two years</dd>" in page


@pytest.mark.unit
def test_flag_figures_say_how_many_wrong_answers_the_flags_catch_and_how_many_flags_are_right():
    from tasks.report.metrics import flag_figures

    rows = [
        {"correct": False, "unsupported": True},
        {"correct": False, "unsupported": False},
        {"correct": True, "unsupported": True},
        {"correct": True, "unsupported": False},
    ]
    assert flag_figures(rows) == {"flag_recall": 0.5, "flag_precision": 0.5, "flagged_wrong": 1, "flagged": 2}
    right = [{"correct": True, "unsupported": False}]
    assert flag_figures(right) == {"flag_recall": None, "flag_precision": None, "flagged_wrong": 0, "flagged": 0}
    assert flag_figures([])["flagged"] is None  # nothing judged: n/a, not 0
