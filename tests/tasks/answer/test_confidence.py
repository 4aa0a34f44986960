"""The model's hesitation over a figure: from the token probabilities it wrote the answer with, to the report's flag
and the second look."""

from __future__ import annotations

import pytest

from tasks.answer.confidence import figure_hesitation
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


def test_an_answer_without_probabilities_or_figures_has_no_hesitation():
    assert figure_hesitation([], "How long?") is None  # a server backend gives none
    assert figure_hesitation([("21", 0.5, [])], "How long?") is None
    assert figure_hesitation(written("Berlin", "."), "Where is the office?") is None


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

    def chat(self, messages, max_tokens, temperature):
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
