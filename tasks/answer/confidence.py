"""How sure the model was of the figures it wrote, from the probability it gave each token as it chose it.

The commonest wrong answer takes a real figure from the right passage and attaches it to the wrong thing (the
return label's 7 days for the return period's 21). All its words are in the passage, so no check of the words
finds it. But the model hesitated as it wrote it: at the figure's digits it gave a real part of its probability to
another digit, the one of the row or sentence next to it. So each digit of each figure the answer states gets a
share: the probability of the digit written, over that plus the probability of the strongest other digit. A digit
written with a share under HESITANT was weighed against another figure, and the answer is flagged.

Measured on our held-out set (benchmarks/heldout) with Qwen2.5-Coder-1.5B; the README's "Flags" section has the
figures. Only digits count: another way to write the same figure (" 8" for "8") or another word is no rival.
"""

from __future__ import annotations

import re

# A share under this: the model weighed another figure nearly as much as the one it wrote.
HESITANT = 0.8

# Figures as a reader sees them; a code (E12, AP-90, S7) is a name, not a figure.
_FIGURE = re.compile(r"(?<![A-Za-z0-9.\-])\d+(?:[.,:]\d+)*")
# Digits that are not the answer's figures: citation marks (also "(2)" ending a sentence or before a [2]) and page
# references.
_NOT_FIGURES = re.compile(
    r"\[\d+(?:\s*[,，、]\s*\d+)*\]|[(（]\d{1,2}[)）](?=\s*(?:[.。;；\[]|$))|(?i:\bpages?\s+\d+)|第\s*\d+\s*页"
)


def _rival(piece: str, others: list) -> float:
    """The probability of the strongest other token that starts another figure."""
    me = piece.strip()
    return max((p for alt, p in others if alt.strip()[:1].isdigit() and alt.strip() != me), default=0.0)


def figure_hesitation(tokens: list, question: str) -> dict | None:
    """The answer's least sure figure: {"figure", "share"}, or None when the answer states no figure of its own or
    the backend gave no probabilities. tokens: [piece, probability, [[other piece, probability], ...]] as written."""
    if not tokens or not any(len(t) > 2 and t[2] for t in tokens):
        return None
    text, starts = "", []
    for token in tokens:
        starts.append(len(text))
        text += token[0]
    skipped = [m.span() for m in _NOT_FIGURES.finditer(text)]
    asked = set(_FIGURE.findall(question))
    worst = None
    for match in _FIGURE.finditer(text):
        start, end = match.span()
        if match.group() in asked or any(s <= start < e for s, e in skipped):
            continue  # the question's own figure, a citation mark or a page
        for i, token in enumerate(tokens):
            if starts[i] < end and start < starts[i] + len(token[0]) and any(c.isdigit() for c in token[0]):
                prob, rival = float(token[1]), _rival(token[0], token[2] if len(token) > 2 else [])
                share = prob / (prob + rival) if prob + rival > 0 else 1.0
                if worst is None or share < worst["share"]:
                    worst = {"figure": match.group(), "share": round(share, 3)}
    return worst


# A name written with a share under this: the model weighed another name of the passages nearly as much (on RGB English
# news, "Elena Rybakina" at 60% against "Angelique", the 2018 champion). Lower than HESITANT: a name's first token is
# a guess between spellings and phrasings more often than a digit is.
HESITANT_NAME = 0.6

# Capitalized words that start a sentence or frame the answer, not a name: no rival, nor one to weigh.
_NOT_NAMES = frozenset(
    """The A An In On At According As It Its This That These Those There Their They He She His Her We Our You Your
    Not If For With By From To Of And Or But Yes No Answer Based Passage Passages Context Both Each Every After Before
    Within When Where Which Who What How Why Under Over""".split()
)


def _name_start(piece: str, asked: set[str]) -> str | None:
    """The piece as the start of a name: a capitalized Latin word, not a framing word nor one of the question's."""
    word = piece.strip()
    # An upper-case word is a unit, a time or a code (PM, EUR, UTC), not a name: "E" of "Egan" is one letter.
    named = word[:1].isupper() and word.isascii() and word.isalpha() and not (len(word) > 1 and word.isupper())
    return word if named and word not in _NOT_NAMES and word.lower() not in asked else None


def name_hesitation(tokens: list, question: str) -> dict | None:
    """The answer's least sure name: {"name", "share"}, where share is the probability of the token that starts it
    over that plus the strongest other token that starts another name (not the question's, not a framing word, not a
    longer or shorter spelling of the same start). None when no name of its own was weighed against another, or the
    backend gave no probabilities. Latin names only: a Chinese token's rivals are as often a rephrasing."""
    if not tokens or not any(len(t) > 2 and t[2] for t in tokens):
        return None
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    text = "".join(t[0] for t in tokens)
    worst, at = None, 0
    for token in tokens:
        start, at = at, at + len(token[0])
        me = _name_start(token[0], asked)
        if me is None or (start and text[start - 1].isalpha() and not token[0][:1].isspace()):
            continue  # not a name, or the middle of a word
        rival = max(
            (
                float(p)
                for alt, p in (token[2] if len(token) > 2 else [])
                if (other := _name_start(alt, asked)) and not other.startswith(me) and not me.startswith(other)
            ),
            default=0.0,
        )
        share = float(token[1]) / (float(token[1]) + rival) if rival else 1.0
        if share < (worst["share"] if worst else 1.0):
            name = re.match(r"[A-Za-z][\w.'-]*(?: [A-Z][\w.'-]*)*", text[start:].lstrip())
            worst = {"name": name.group() if name else me, "share": round(share, 3)}
    return worst
