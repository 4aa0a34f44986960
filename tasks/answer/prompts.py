"""Prompts by answer style and language, and the citation marks read back from an answer."""

from __future__ import annotations

import re

from tasks.answer.backends import AnswerStyle
from tasks.text import is_chinese

REFUSAL = {"en": "Not found in the knowledge base.", "zh": "知识库中没有找到答案。"}


# Prompts by answer style and language. "sentence": a short cited sentence a person reads;
# "short": the answer alone (a checklist or extraction sheet), its citation parsed off afterwards.
SYSTEM = {
    ("sentence", "en"): (
        "You answer questions about a company's documents, using only the numbered context passages. "
        "The passages may be in Chinese or in English: read them in either language. "
        "Answer in English with a short, complete sentence that states the answer, then cite the passages "
        "you used, like [1] or [2]. A passage often gives several figures for different things: take the one "
        "it states for exactly what the question asks about, with its unit. If the passages do not contain the "
        "answer, reply exactly: "
        f"{REFUSAL['en']}"
    ),
    ("sentence", "zh"): (
        "你根据公司文档回答问题，只能使用编号的上下文段落。段落可能是中文或英文，两种语言都要读。"
        "用中文写一句简短完整的话直接给出答案，"
        "然后用 [1]、[2] 这样的编号注明所用的段落。段落里常有多个数字分别说明不同的事项：只取段落中"
        "与问题所问事项直接对应的那个数字，并带上单位（如欧元、天）。"
        f"如果段落中没有答案，只回答：{REFUSAL['zh']}"
    ),
    ("short", "en"): (
        "You answer questions about a company's documents from the numbered context passages, which may be in "
        "Chinese or in English. Reply with the answer only: the shortest span copied word for word from a passage "
        "that fully answers the question. Keep a number's unit and qualifiers (about, over, per year); when the "
        "question asks which ones, list them all; when it asks why, how or what something is, copy the clause that "
        "says it. "
        f"No explanation. If no passage contains the answer, reply exactly: {REFUSAL['en']}"
    ),
    ("short", "zh"): (
        "你根据公司文档的编号段落（可能是中文或英文）回答问题。只回答答案本身：从段落中原样摘抄、能完整回答问题的最短片段。"
        "数字要带上单位和修饰词（如“约”“超过”“个”“名”）；问“哪些”“哪几个”时列出全部；"
        "问原因、方式或“是什么”时，摘抄说明它的那个分句。"
        f"不要解释。如果所有段落都没有答案，只回答：{REFUSAL['zh']}"
    ),
}


USER = {
    (
        "sentence",
        "en",
    ): "Context passages:\n\n{context}\n\nQuestion: {question}\n(Answer in one sentence that ends with the number of "
    "the passage you used, in brackets, like [1].)",
    (
        "sentence",
        "zh",
    ): "上下文段落：\n\n{context}\n\n问题：{question}\n（用一句话回答，句末用方括号注明所用段落的编号，如 [1]。）",
    ("short", "en"): "Context passages:\n\n{context}\n\nQuestion: {question}\nAnswer:",
    ("short", "zh"): "上下文段落：\n\n{context}\n\n问题：{question}\n答案：",
}


def language_of(question: str) -> str:
    return "zh" if is_chinese(question) else "en"


def refusal(question: str) -> str:
    return REFUSAL[language_of(question)]


def format_passage(number: int, passage: dict) -> str:
    where = passage["source"] + (f", page {passage['page']}" if passage.get("page") not in (None, -1) else "")
    return f"[{number}] ({where})\n{passage['text'].strip()}"


def build_messages(question: str, passages: list[dict], lang: str, style: AnswerStyle = "sentence") -> list[dict]:
    context = "\n\n".join(format_passage(i, p) for i, p in enumerate(passages, start=1))
    return [
        {"role": "system", "content": SYSTEM[style, lang]},
        {"role": "user", "content": USER[style, lang].format(context=context, question=question.strip())},
    ]


_CITATION = re.compile(r"\[(\d{1,3})\]")


# "(2)" where the prompt asked for "[2]": at the end of the answer or of one of its sentences.
_ROUND_CITATION = re.compile(r"[(（](\d{1,2})[)）](?=\s*(?:[.。;；]|$))")


_DOUBLED_CITATION = re.compile(r"\s*[(（](\d{1,2})[)）](?=\s*\[\d{1,3}\])")


def clean_citations(answer: str, n_passages: int) -> tuple[str, list[int]]:
    """Drop citation marks that point to no passage; return the answer and the passages it cites (1-based).

    An answer with no [n] mark whose sentences end in "(n)", n a passage's number, cites with round brackets:
    those become [n], so the figure in them is not read as part of the answer. A "(n)" just before an [n] mark is
    dropped, for the same reason."""
    cited: list[int] = []
    # "(1) [1]": the same mark twice, round then square; the round one would read as a figure of the answer.
    answer = _DOUBLED_CITATION.sub(lambda m: "" if 1 <= int(m.group(1)) <= n_passages else m.group(0), answer)
    if not _CITATION.search(answer):
        answer = _ROUND_CITATION.sub(
            lambda m: f"[{m.group(1)}]" if 1 <= int(m.group(1)) <= n_passages else m.group(0), answer
        )

    def keep(match: re.Match) -> str:
        n = int(match.group(1))
        if 1 <= n <= n_passages:
            if n not in cited:
                cited.append(n)
            return match.group(0)
        return ""

    cleaned = _CITATION.sub(keep, answer)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned, sorted(cited)


# What answer_question does besides the one prompt, by version: a change makes cached answers stale too.
ANSWER_STEPS = (
    "second look at a misplaced or broken figure (a table's cells labelled then), a figure from a column not asked "
    "about or other than the cell the question names, or a year or bracketed name the cited passages lack; hesitation "
    "over figures and names recorded; (n) read as [n]; the tier holding the question's quantity marked; a run-on "
    "answer stopped at its third sentence; a connective alone says nothing, v12"
)


def template_hash(style: AnswerStyle) -> str:
    """A hash of the prompt templates of an answer style: a changed prompt makes every cached answer stale."""
    import hashlib

    text = "\x00".join(f"{SYSTEM[style, lang]}\x01{USER[style, lang]}" for lang in ("en", "zh")) + ANSWER_STEPS
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
