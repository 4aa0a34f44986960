"""The other-language look: an answer the report flags, on a knowledge base in both languages, is asked again over the
passages in the other language that the embedder finds closest to its question.

Most wrong answers left on our mixed corpora were a Chinese question whose answer is only in an English document, or
the reverse. The keyword index cannot match across languages and the fusion favours the question's own, so the
answering chunk ranks low (Rotterdam's 0.23 EUR a kilometre 15th for "鹿特丹员工出差私车公用，每公里报销多少？") and
the model takes a figure from a passage in the question's language about something else, which the report flags.
Among the passages of the other language alone, the multilingual embedder ranks it 4th, and the same for 10 of 15
such questions in the top 5. Translating the question with the answering model instead cost a generation more and
changed the names it asks about (鹿特丹 -> Antwerp, 科沃德 -> Kodu), so the look uses the embedder alone.
"""

from __future__ import annotations

import re

from tasks.answer.confidence import HESITANT, HESITANT_NAME
from tasks.answer.evidence import ACROSS_LANGUAGES
from tasks.answer.prompts import _CITATION, REFUSAL, language_of
from tasks.text import is_chinese, normalize_numbers

# How many passages of the other language the second answer is given: the look's prompt stays short.
LOOK_PASSAGES = 3
# Dense only: the embedder reads both languages, the keyword ranking one. Deep enough to hold the other language's
# best passages when the question's own fill the top.
LOOK_RETRIEVAL = {"mode": "dense", "top_k": 40}


def other_language(text: str) -> str:
    return "en" if language_of(text) == "zh" else "zh"


def in_other_language(question: str, passages: list[dict]) -> list[dict]:
    """The passages written in the other language than the question's."""
    chinese = is_chinese(question)
    return [p for p in passages if is_chinese(p["text"]) != chinese]


def hesitated(hesitation: dict | None, name_hesitation: dict | None) -> bool:
    """Whether the model hesitated over the figure or the name it wrote (tasks/answer/confidence.py)."""
    figure = (hesitation or {}).get("share", 1.0)
    name = (name_hesitation or {}).get("share", 1.0)
    return figure < HESITANT or name < HESITANT_NAME


def wants_look(flag_reason: str | None, hesitation: dict | None, name_hesitation: dict | None) -> bool:
    """Whether an answer is worth the other-language look: the report flags it, and the model hesitated over the
    figure or the name it wrote. Over our three mixed corpora's questions, every answer the look put right had been
    written at 49-71% for its figure; of the flagged answers written surely, the look gave another answer to two, and
    both were wrong (one had been right: "3年" became "两年"). A refusal is not looked past: the questions our sets'
    documents do not answer were refused right, and a look there costs an answer each."""
    return bool(flag_reason) and hesitated(hesitation, name_hesitation)


def worth_a_look(other: list[dict], passages: list[dict], keep_ratio: float) -> bool:
    """Whether the other language's best passage is close enough to the question to be worth an answer: on the dense
    scale, raised across languages as select_context raises it (ACROSS_LANGUAGES), at least keep_ratio of the best
    passage's. On heldout's Chinese questions this skipped 4 of 14 looks, none of which found the answer, and one that
    had turned a flagged wrong answer into an unflagged one ("12 个月" for a charging time)."""
    if not other or not passages:
        return False
    return max(p["score"] for p in other) * ACROSS_LANGUAGES >= keep_ratio * max(p["score"] for p in passages)


_FIGURE = re.compile(r"\d+(?:\.\d+)?")


def figures(answer: str) -> set[str]:
    """The figures an answer states (numbers normalized, Chinese numerals read), without its citation marks."""
    return set(_FIGURE.findall(normalize_numbers(_CITATION.sub("", answer))))


def look_kept(answer: str, citations: list, flag_reason: str | None, first: str = "") -> bool:
    """Whether the look's answer replaces the first: an answer (not the refusal) that cites a passage, that the report
    would not flag, and that does not state the same figures as the first (the AP-90's "6 months" warranty found
    again in a Chinese passage would clear the flag of a wrong answer, and put nothing right)."""
    same = bool(figures(answer)) and figures(answer) == figures(first)
    return bool(citations) and answer.strip() not in REFUSAL.values() and not flag_reason and not same
