"""`kbflow ask` with one question: what the terminal shows, and what counts as a question rather than a file."""

from __future__ import annotations

import pytest

from kbflow.cli.ask import looks_like_a_question, print_one_answer

pytestmark = pytest.mark.unit


def test_one_answer_prints_its_citations_with_source_and_page_and_its_support(capsys):
    print_one_answer(
        {
            "answer": "The battery is covered for 18 months [1].",
            "refused": False,
            "error": None,
            "citations": [{"source": "support/warranty.pdf", "page": 3}, {"source": "faq.html", "page": None}],
            "unsupported": False,
            "support": 0.8,
            "answer_source": "reused",
            "first_run": "20261202-101010-abc123",
        }
    )
    assert capsys.readouterr().out.splitlines() == [
        "The battery is covered for 18 months [1].",
        "  [1] support/warranty.pdf, page 3",
        "  [2] faq.html",
        "  supported by its cited passages (support 80.0%)",
        "  (reused from the answer cache: first made in run 20261202-101010-abc123)",
    ]


def test_an_unsupported_or_refused_answer_says_so(capsys):
    print_one_answer(
        {"answer": "Maybe.", "citations": [], "unsupported": True, "flag_reason": "no citation", "support": None}
    )
    print_one_answer({"answer": "Not found in the knowledge base.", "citations": [], "refused": True})
    out = capsys.readouterr().out
    assert "unsupported: no citation (support n/a)" in out and "not found in the knowledge base" in out


def test_an_argument_that_is_no_file_and_ends_like_a_question_is_a_question(tmp_path):
    assert looks_like_a_question("How long is the S7 battery covered?")
    assert looks_like_a_question("S7 的电池保修多久？")
    assert not looks_like_a_question("questions.csv")
    existing = tmp_path / "odd?"
    existing.write_text("question\nWhy?\n")
    assert not looks_like_a_question(str(existing))  # a file is read as a question file, whatever its name
