"""The model's hesitation over a figure: from the token probabilities it wrote the answer with, to the report's flag
and the second look."""

from __future__ import annotations

import pytest

from tasks.answer.confidence import figure_hesitation, name_hesitation
from tasks.answer.generate import answer_question
from tasks.answer.prompts import REFUSAL
from tasks.report.grounding import check_grounding

pytestmark = pytest.mark.unit


def written(*tokens) -> list:
    """Tokens as the llama.cpp backend notes them: (text, probability, [(another token, probability), ...])."""
    return [t if isinstance(t, tuple) else (t, 0.99, [("x", 0.005)]) for t in tokens]


def test_a_figure_written_against_another_digit_is_hesitant():
    # "7" got 0.5, the "2" of the 21 days beside it 0.45: the model weighed the two figures.
    tokens = written("Returns", " within", " ", ("7", 0.5, [("2", 0.45), (" ", 0.02)]), " days", " [", "1", "]", ".")
    assert figure_hesitation(tokens, "How long do I have to return a product?") == {"figure": "7", "share": 0.526}


def test_another_way_to_write_the_same_figure_or_a_word_is_no_rival():
    # " 8" is the same figure with a space before it; "about" is a word, not another figure.
    tokens = written("按住", ("8", 0.55, [(" 8", 0.3), ("about", 0.1)]), "秒", "。")
    assert figure_hesitation(tokens, "需要按住几秒？") == {"figure": "8", "share": 1.0}


def test_citation_marks_pages_and_the_questions_own_figures_are_not_the_answers_figures():
    unsure = ("1", 0.4, [("2", 0.4)])
    tokens = written(
        "For", " ", ("3", 0.5, [("5", 0.5)]), " years", ":", " 10", " days", " (page ", unsure, ")", " [", unsure, "]"
    )
    # 3 is the question's own figure; the page and the citation mark are not figures of the answer.
    assert figure_hesitation(tokens, "How many days of leave after 3 years?") == {"figure": "10", "share": 1.0}
    # "(1) [1]": the round mark before a square one is a citation too
    doubled = written("It", " is", " ", "8", "%", " (", ("1", 0.5, [("2", 0.5)]), ")", " [", "1", "].")
    assert figure_hesitation(doubled, "What discount?") == {"figure": "8", "share": 1.0}


def test_an_answer_without_probabilities_or_figures_has_no_hesitation():
    assert figure_hesitation([], "How long?") is None  # a server backend gives none
    assert figure_hesitation([("21", 0.5, [])], "How long?") is None
    assert figure_hesitation(written("Berlin", "."), "Where is the office?") is None


def test_a_name_written_against_another_name_is_hesitant():
    # RGB English: the 2018 champion (Angelique Kerber) weighed against the 2022 one the model wrote.
    question = "Who won the women's singles Wimbledon in 2018?"
    tokens = written(("E", 0.6, [("Angel", 0.36), ("The", 0.02)]), "lena", " Ryb", "akina", " won", " [", "1", "]")
    assert name_hesitation(tokens, question) == {"name": "Elena Rybakina", "share": 0.625}
    # A framing word ("The winner was ...") and the question's own words are no rival; nor is another spelling of
    # the same start, nor the middle of a word.
    framed = written(
        ("Simona", 0.5, [("The", 0.45), ("Wimbledon", 0.3), ("Sim", 0.2), ("Angel", 0.05)]),
        " Hal",
        ("Ep", 0.4, [("Kerber", 0.5)]),
    )
    assert name_hesitation(framed, question) == {"name": "Simona HalEp", "share": 0.909}
    assert name_hesitation(written("At", " 12", ":00", (" PM", 0.3, [(" AM", 0.3)])), "When?") is None  # no name
    assert name_hesitation([], question) is None  # a server backend gives no probabilities
    assert name_hesitation(written("12", " days"), "How long?") is None


def test_a_hesitant_name_is_flagged_and_a_sure_one_is_not():
    row = {
        "question": "Who won the women's singles Wimbledon in 2018?",
        "answer": "Elena Rybakina won the women's singles Wimbledon in 2018 [1].",
        "citations": [{"source": "w.txt", "text": "Elena Rybakina won Wimbledon, the youngest finalist since 2018."}],
        "retrieved": [],
    }
    flagged = check_grounding({**row, "name_hesitation": {"name": "Elena Rybakina", "share": 0.55}})
    assert (
        "the model weighed another name against Elena Rybakina as it wrote it (55% for the one written)"
        in (flagged["flag_reason"])
    )
    assert check_grounding({**row, "name_hesitation": {"name": "Elena Rybakina", "share": 0.9}})["unsupported"] is False


def _row(hesitation):
    text = "Returns are accepted within 21 days of delivery. The return label is valid for 7 days."
    return {
        "question": "How many days do I have to return a product?",
        "answer": "You have 7 days to return a product [1].",
        "citations": [{"source": "returns.md", "page": None, "chunk_id": "c1", "text": text}],
        "retrieved": [],
        "hesitation": hesitation,
    }


def test_the_report_flags_a_hesitant_figure_and_names_it():
    flagged = check_grounding(_row({"figure": "7", "share": 0.53}))
    assert flagged["unsupported"] is True
    assert (
        "the model weighed another figure against 7 as it wrote it (53% for the one written)" in flagged["flag_reason"]
    )
    sure = check_grounding(_row({"figure": "7", "share": 0.97}))
    assert "weighed another figure" not in (sure["flag_reason"] or "")


class TwoReplies:
    """A backend whose first reply hesitates over its figure and whose second is sure of another."""

    name, n_ctx = "scripted", 4096

    def __init__(self, replies):
        self.replies, self.asked, self.last_tokens = list(replies), [], []

    def count_tokens(self, messages):
        return sum(len(m["content"]) for m in messages) // 4

    def truncate(self, text, max_tokens):
        return text

    def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
        self.asked.append(messages)
        text, self.last_tokens = self.replies.pop(0)
        return text, self.count_tokens(messages), 8


def test_a_hesitant_figure_is_recorded_for_its_flag_and_not_asked_again():
    """A figure the model weighed against another is flagged by the report, not asked again (on both held-out sets a
    second look there changed no answer)."""
    passages = [
        {
            "source": "returns.md",
            "chunk_id": "c1",
            "text": "Returns are accepted within 21 days of delivery. Our shop ships to every country in the EU.",
        }
    ]
    hesitant = written("You", " have", " ", ("2", 0.5, [("7", 0.45)]), "1", " days", " [", "1", "]", ".")
    backend = TwoReplies([("You have 21 days [1].", hesitant), ("You have 7 days [1].", [])])
    out = answer_question(
        backend, "How many days do I have to return a product?", passages, max_tokens=32, temperature=0.0
    )
    assert len(backend.asked) == 1
    assert out["answer"] == "You have 21 days [1]." and out["second_look"] is False
    assert out["hesitation"] == {"figure": "21", "share": 0.526}


WIMBLEDON = [
    {"source": "news/a.txt", "chunk_id": "a", "text": "Elena Rybakina won the women's singles at Wimbledon 2022."},
    {"source": "news/b.txt", "chunk_id": "b", "text": "The club's lawns were reseeded in the spring."},
    {"source": "news/c.txt", "chunk_id": "c", "text": "Simona Halep beat Serena Williams in the 2019 Wimbledon final."},
]


def test_an_answer_from_a_passage_without_the_questions_year_is_asked_again_over_the_passages_that_state_it():
    backend = TwoReplies([("Elena Rybakina won it [1].", []), ("Simona Halep won it in 2019 [1].", [])])
    out = answer_question(
        backend, "Who won the women's singles Wimbledon in 2019?", WIMBLEDON, max_tokens=32, temperature=0.0
    )
    assert len(backend.asked) == 2
    second = backend.asked[1][1]["content"]
    assert "Simona Halep beat" in second and "Rybakina" not in second and "reseeded" not in second
    # The second answer's [1] was passage 3 of the first prompt: the citation is put back to it.
    assert out["answer"] == "Simona Halep won it in 2019 [3]." and out["cited"] == [3] and out["second_look"] is True
    assert out["citations"][0]["chunk_id"] == "c" and out["year_look"] == ["2019"]
    # The report still points a reader at it: on RGB English such a second answer was right 1 time in 3.
    row = {
        "question": "Who won the women's singles Wimbledon in 2019?",
        "answer": out["answer"],
        "citations": out["citations"],
        "retrieved": WIMBLEDON,
        "year_look": out["year_look"],
    }
    assert "asked again over those that state 2019" in check_grounding(row)["flag_reason"]
    assert check_grounding({**row, "year_look": None})["unsupported"] is False


def test_the_first_answer_stays_when_its_passage_states_the_year_or_the_second_look_refuses():
    backend = TwoReplies([("Simona Halep won it [3].", [])])
    out = answer_question(
        backend, "Who won the women's singles Wimbledon in 2019?", WIMBLEDON, max_tokens=32, temperature=0.0
    )
    assert len(backend.asked) == 1 and out["second_look"] is False
    backend = TwoReplies([("Elena Rybakina won it [1].", []), (REFUSAL["en"], [])])
    out = answer_question(
        backend, "Who won the women's singles Wimbledon in 2019?", WIMBLEDON, max_tokens=32, temperature=0.0
    )
    assert len(backend.asked) == 2 and out["answer"] == "Elena Rybakina won it [1]." and out["second_look"] is False
    assert out["year_look"] is None
    # No passage states the year: nothing to ask again over.
    backend = TwoReplies([("Elena Rybakina won it [1].", [])])
    out = answer_question(
        backend, "Who won the women's singles Wimbledon in 2017?", WIMBLEDON, max_tokens=32, temperature=0.0
    )
    assert len(backend.asked) == 1


SPECS = {
    "source": "specs.html",
    "chunk_id": "s",
    "text": "Corvid AP-60 and AP-90: technical specifications\n| Specification | AP-60 | AP-90 |\n|---|---|---|\n"
    "| Noise, sleep mode | 22 dB | 26 dB |\n| Noise, maximum speed | 52 dB | 58 dB |\n| Rated power | 45 W | 70 W |",
}


def test_a_figure_from_the_other_column_is_asked_again_over_rows_whose_cells_name_their_column():
    question = "How loud is the Corvid AP-60 at maximum speed?"
    # The second answer is kept though the model weighed 58 against it: the first one was wrong however sure.
    unsure = written(
        "The", " AP", "-", "60", " reaches", " ", ("5", 0.9, []), ("2", 0.55, [("8", 0.4)]), " dB", " [1]."
    )
    backend = TwoReplies(
        [("The AP-60 reaches 58 dB at maximum speed [1].", []), ("The AP-60 reaches 52 dB [1].", unsure)]
    )
    out = answer_question(backend, question, [SPECS], max_tokens=32, temperature=0.0)
    assert len(backend.asked) == 2
    second = backend.asked[1][1]["content"]
    assert "| Noise, maximum speed | AP-60: 52 dB | AP-90: 58 dB |" in second
    assert "| Specification | AP-60 | AP-90 |" in second  # the header row itself is not labelled
    assert out["answer"] == "The AP-60 reaches 52 dB [1]." and out["second_look"] is True
    assert out["hesitation"] == {"figure": "52", "share": 0.579}  # and the report flags it for that
    # The right column the first time: asked once.
    backend = TwoReplies([("The AP-60 reaches 52 dB at maximum speed [1].", [])])
    assert answer_question(backend, question, [SPECS], max_tokens=32, temperature=0.0)["second_look"] is False
    assert len(backend.asked) == 1


def test_an_answer_that_repeats_the_question_is_asked_again_and_then_for_the_answer_alone():
    question = "苏州员工每年病假的前几天按全额工资发放？"
    sick = [
        {
            "source": "hr/sick_leave_zh.txt",
            "chunk_id": "h",
            "text": "苏州员工每年病假的前5天按全额工资发放。之后按80%发放。",
        }
    ]
    backend = TwoReplies([("苏州员工每年病假的前几天按全额工资发放。[1]", []), ("前5天按全额工资发放。[1]", [])])
    out = answer_question(backend, question, sick, max_tokens=32, temperature=0.0)
    assert len(backend.asked) == 2 and out["answer"] == "前5天按全额工资发放。[1]" and out["second_look"] is True
    # Asked again, it repeats the question once more: then the answer alone is asked for (the short style's prompt),
    # and kept, cited to the passage that holds it.
    repeats = [("苏州员工每年病假的前几天按全额工资发放。[1]", []), ("病假的前几天按全额工资发放。[1]", [])]
    backend = TwoReplies([*repeats, ("5天", [])])
    out = answer_question(backend, question, sick, max_tokens=32, temperature=0.0)
    assert "只回答答案本身" in backend.asked[2][0]["content"]
    assert out["answer"] == "5天 [1]" and out["cited"] == [1] and out["second_look"] is True
    # An answer alone that no passage holds (or a refusal) is not kept: the first answer stays, for the report to flag.
    for alone in ("7天", "知识库中没有找到答案。"):
        out = answer_question(TwoReplies([*repeats, (alone, [])]), question, sick, max_tokens=32, temperature=0.0)
        assert out["answer"] == "苏州员工每年病假的前几天按全额工资发放。[1]" and out["second_look"] is False


def test_an_answer_that_stops_at_a_colon_is_asked_again():
    question = "What volume discount does a retailer get on a single order with a net value of 1,500 EUR?"
    terms = [
        {"source": "terms.pdf", "chunk_id": "t", "text": "The discount depends on the net value: 1,500 EUR gets 8%."}
    ]
    backend = TwoReplies(
        [("The discount depends on the net value of a single order: [1]", []), ("It gets 8% [1].", [])]
    )
    out = answer_question(backend, question, terms, max_tokens=32, temperature=0.0)
    assert len(backend.asked) == 2 and out["answer"] == "It gets 8% [1]." and out["second_look"] is True
