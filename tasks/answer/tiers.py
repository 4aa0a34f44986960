"""Tiers: a list of ranges over one quantity, each with its own value ("满1年不满5年的，年假为7天；满5年不满10年的，
年假为12天"; "银叶会员：累计消费满1000元 … 墨叶会员：累计消费满20000元"; "1 to 5 years of service: 20 days").

A question that names a quantity ("工龄满6年", "6 years of service") asks for the value of the tier it falls in, and a
small model reads the figures of the list without working out which range holds 6: on our held-out sets it gave the
next tier's 17 or 15 days for 6 years, in both languages. So the line of the tier that holds the question's quantity
gets a mark in the prompt ("（6年适用此条）"), computed here, the way a table's cells are labelled with their column
(tasks/answer/evidence.py). The mark is the prompt's only: citations and checks read the passage without it (strip).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

# A unit, as the question and the passages write it, and what it measures (万元 is 10,000 元).
_UNITS = {
    "年": ("year", 1),
    "years": ("year", 1),
    "year": ("year", 1),
    "个月": ("month", 1),
    "月": ("month", 1),
    "months": ("month", 1),
    "month": ("month", 1),
    "天": ("day", 1),
    "days": ("day", 1),
    "day": ("day", 1),
    "小时": ("hour", 1),
    "hours": ("hour", 1),
    "hour": ("hour", 1),
    "万元": ("cny", 10000),
    "元": ("cny", 1),
    "cny": ("cny", 1),
    "rmb": ("cny", 1),
    "yuan": ("cny", 1),
    "欧元": ("eur", 1),
    "eur": ("eur", 1),
    "euros": ("eur", 1),
    "euro": ("eur", 1),
    "公里": ("km", 1),
    "km": ("km", 1),
    "公斤": ("kg", 1),
    "kg": ("kg", 1),
}
_UNIT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_NUM = r"(\d+(?:,\d{3})*(?:\.\d+)?)"
# A unit ends where a word does (not "years" in "yearsx"); Chinese units need no boundary.
_U = rf"\s*(?P<unit>{_UNIT})(?![a-z])"
_U2 = rf"\s*(?P<unit2>{_UNIT})(?![a-z])"

# Each pattern and its kind: lo_hi (a range from one figure to another), lo (from the figure up), gt (past the
# figure) or hi (up to it); tried in this order, each match blanked out before the next pattern reads the clause.
_RANGES = [
    # 满5年不满10年, 5年以上不满10年, 5年(含)至10年
    (
        re.compile(rf"满?{_NUM}(?:{_U})?(?:以上|\(含\)|（含）)?(?:不满|未满|不足|至|到|~|～|-|–|—)\s*{_NUM}{_U2}"),
        "lo_hi",
    ),
    (re.compile(rf"(?:from\s+|between\s+)?{_NUM}(?:{_U})?\s*(?:to|and|-|–)\s*{_NUM}{_U2}"), "lo_hi"),
    # 满10年及以上, 10年以上, at least 10 years, 10 or more years, more than 10 years
    (re.compile(rf"满?{_NUM}{_U}(?:及以上|以上|或以上|或更多|(?:\s+or\s+(?:more|longer|above)))"), "lo"),
    (re.compile(rf"(?:at\s+least|no\s+less\s+than)\s+{_NUM}{_U}"), "lo"),
    (re.compile(rf"(?:不少于|不低于){_NUM}{_U}"), "lo"),
    # 超过7天, more than 7 days: past the figure (3天至7天 holds 7 itself)
    (re.compile(rf"(?:more\s+than|over|above)\s+{_NUM}{_U}"), "gt"),
    (re.compile(rf"(?:超过|多于|高于|大于){_NUM}{_U}"), "gt"),
    (re.compile(rf"{_NUM}\+\s*(?P<unit>{_UNIT})(?![a-z])"), "lo"),
    (re.compile(rf"{_NUM}\s+or\s+(?:more|longer)\s+(?P<unit>{_UNIT})(?![a-z])"), "lo"),
    (re.compile(rf"{_NUM}{_U}\s+(?:and|or)\s+(?:more|above|over|longer)"), "lo"),
    # 不满1年, 1年以下, less than 1 year, under 1 year
    (re.compile(rf"(?:不满|未满|不足|少于|低于){_NUM}{_U}"), "hi"),
    (re.compile(rf"{_NUM}{_U}(?:以下|以内)"), "hi"),
    (re.compile(rf"(?:less\s+than|fewer\s+than|under|below|up\s+to)\s+{_NUM}{_U}"), "hi"),
    # 满20000元 (a threshold: the highest one the quantity reaches is its tier)
    (re.compile(rf"满{_NUM}{_U}"), "lo"),
]

# The question's quantity: a figure with a unit (工龄满6年, 6 years of service, 累计消费满20000元).
_QUANTITY = re.compile(rf"{_NUM}{_U}")

_CLAUSE = re.compile(r"[^；;。\n]+")
TIER_MARK = re.compile(r"（[^（）]*适用此条）| \(this applies to [^()]*\)")


def _prepare(text: str) -> str:
    """Lower case, each character in its place (ranges report where they end)."""
    return text.lower()


def _figure(text: str) -> float:
    return float(text.replace(",", ""))


def _unit(match: re.Match, group: str = "unit") -> tuple[str, float] | None:
    name = match.groupdict().get(group)
    return _UNITS.get(name) if name else None


def ranges(clause: str) -> list[tuple[str, float, float, int, int]]:
    """The ranges a clause states: (what they measure, low, high, where the range starts and ends), high math.inf
    when open."""
    text, found = _prepare(clause), []
    for pattern, kind in _RANGES:
        for m in pattern.finditer(text):
            if kind == "lo_hi":
                unit = _unit(m, "unit2")
                # The low figure's own unit, if written, must measure the same thing ("5年至10年").
                if unit is None or _unit(m) not in (None, unit):
                    continue
                numbers = [g for g in m.groups() if g and g[0].isdigit()]
                found.append(
                    (unit[0], _figure(numbers[0]) * unit[1], _figure(numbers[1]) * unit[1], m.start(), m.end())
                )
            else:
                unit = _unit(m)
                if unit is None:
                    continue
                value = _figure(m.group(1)) * unit[1]
                low, high = {"lo": (value, math.inf), "gt": (value + _NUDGE, math.inf)}.get(kind, (0.0, value))
                found.append((unit[0], low, high, m.start(), m.end()))
            text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    return found


# A question's quantity just past or short of its figure ("超过7天", "more than 7 days"): it lies in the tier above or
# below a range that ends at the figure.
_ABOVE = re.compile(r"(?:超过|多于|高于|大于|more\s+than|over|above)\s*$")
_BELOW = re.compile(r"(?:不满|未满|不足|少于|低于|less\s+than|fewer\s+than|under|below)\s*$")
_NUDGE = 1e-6


def quantities(question: str) -> list[tuple[str, float, str]]:
    """The question's figures with a unit: (what they measure, value, as written). A calendar year (2000年) is a date,
    not an amount of years."""
    out, prepared = [], _prepare(question)
    for m in _QUANTITY.finditer(prepared):
        unit = _unit(m)
        if not unit:
            continue
        value = _figure(m.group(1)) * unit[1]
        if unit[0] == "year" and value >= 1000:
            continue
        before = prepared[max(0, m.start() - 12) : m.start()]
        value += _NUDGE if _ABOVE.search(before) else -_NUDGE if _BELOW.search(before) else 0.0
        out.append((unit[0], value, question[m.start() : m.end()].strip()))
    return out


class Tier(NamedTuple):
    """The tier of a list that holds the question's quantity: where its mark goes, its clause (a sentence's part, or
    a table row), that clause without its range, and the quantity as the question wrote it."""

    at: int
    start: int  # where the clause starts in the text
    clause: str
    values: str  # the clause without its range: where the tier's own figures are
    written: str


def _holding(text: str, unit: str, value: float) -> tuple[int, int, str, str] | None:
    """The one tier of this unit in text that holds value, if text lists two tiers or more."""
    tiers = []
    for m in _CLAUSE.finditer(text):
        own = [r for r in ranges(m.group()) if r[0] == unit]
        if len(own) == 1:
            _, low, high, start, end = own[0]
            # A table row is marked where its range ends (its label cell), a sentence where it ends.
            at = m.start() + end if m.group().lstrip().startswith("|") else m.start() + len(m.group().rstrip())
            values = m.group()[:start] + " " + m.group()[end:]
            tiers.append((low, high, at, text.count("\n", 0, m.start()), m.start(), m.group(), values))
    # Thresholds alone within one sentence ("at least 300 EUR; repeat orders at least 150 EUR") are minimums of
    # different things; tiers of thresholds (银叶 1000元, 金叶 5000元, 墨叶 20000元) are a line each.
    thresholds = all(t[1] == math.inf for t in tiers)
    if len(tiers) < 2 or (thresholds and len({t[3] for t in tiers}) < len(tiers)):
        return None
    holding = [t for t in tiers if t[0] <= value < t[1] or (t[1] != math.inf and t[0] <= value == t[1])]
    top = max((t[0] for t in holding), default=None)
    best = [t for t in holding if t[0] == top]
    if len(best) != 1:
        return None
    _, _, at, _, start, clause, values = best[0]
    return at, start, clause, values


def tier_clause(question: str, text: str) -> Tier | None:
    """The tier that holds the question's one quantity text lists tiers of (of a threshold list, the highest it
    reaches). None unless the text lists at least two tiers of that unit and exactly one holds it, for exactly one of
    the question's quantities."""
    found = []
    for unit, value, written in quantities(question):
        held = _holding(text, unit, value)
        if held:
            found.append(Tier(*held, written))
    return found[0] if len(found) == 1 else None


def _mark(tier: Tier, chinese: bool) -> str:
    """The mark a tier gets, in the question's language (TIER_MARK reads it back)."""
    return f"（{tier.written}适用此条）" if chinese else f" (this applies to {tier.written})"


def mark_tiers(question: str, text: str, chinese: bool) -> str:
    """text with the tier that holds the question's quantity marked, in the question's language."""
    tier = tier_clause(question, text)
    if not tier:
        return text
    return text[: tier.at] + _mark(tier, chinese) + text[tier.at :]


def tier_alone(question: str, text: str, chinese: bool) -> str | None:
    """Only the tier that holds the question's quantity, marked (a table's row under its header): a second look's
    evidence from a passage that lists tiers, when the first answer took another tier's figure."""
    tier = tier_clause(question, text)
    if not tier:
        return None
    cut = tier.at - tier.start
    clause = (tier.clause[:cut] + _mark(tier, chinese) + tier.clause[cut:]).strip()
    if clause.startswith("|"):
        lines = text[: tier.start].splitlines()
        rule = next((i for i, line in enumerate(lines) if line.replace(" ", "").startswith("|--")), None)
        if rule is not None:
            return "\n".join([*lines[max(0, rule - 1) : rule + 1], clause])
    return clause


def strip_marks(text: str) -> str:
    """text without the marks mark_tiers put in."""
    return TIER_MARK.sub("", text)
