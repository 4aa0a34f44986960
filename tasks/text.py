"""Language helpers shared by ingest and query: keyword tokens, language detection, answer normalization."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_TOKEN_OK = re.compile(r"\w", re.UNICODE)

STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being do does did
    has have had it its this that these those there here what which who whom whose when where why how
    i you he she we they me him her us them my your his our their can could should would will shall may might
    must not no yes so than then too very just about into over under again any all each other some such only
    own same also s t don doesn isn aren
    的 了 是 在 和 与 及 或 也 都 就 而 及其 吗 呢 吧 啊 么 什么 怎么 怎样 如何 哪 哪个 哪些 多少 几 为什么
    请 问 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 之 其 有 没有 被 把 对 从 到 为 以 于 上 下 中 个 么""".split()
)


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def cjk_ratio(text: str) -> float:
    """Share of letters that are CJK ideographs (0 for English, 1 for pure Chinese)."""
    letters = _LETTER.findall(text)
    if not letters:
        return 0.0
    return sum(1 for ch in letters if _CJK.match(ch)) / len(letters)


def is_chinese(text: str) -> bool:
    return cjk_ratio(text) >= 0.3


def tokenize(text: str) -> list[str]:
    """Keyword tokens: jieba words (search mode) for Chinese, lower-case words for English, stopwords dropped."""
    text = unicodedata.normalize("NFKC", text).lower()
    if _CJK.search(text):
        raw = _jieba().lcut_for_search(text)
    else:
        raw = re.findall(r"\w+", text)
    return [t for t in (r.strip() for r in raw) if t and _TOKEN_OK.search(t) and t not in STOPWORDS]


_PUNCT_SPACE = re.compile(r"[\s\W_]+", re.UNICODE)


_CITATION_MARK = re.compile(r"\[\d{1,3}\]")
# A sentence: up to Chinese or English end punctuation (an English period only before a space: not 3.5), or the
# line's end. Headings and list items are lines of their own.
SENTENCE = re.compile(r"[^\n]+?(?:[。！？；!?;]+|\.(?=\s)|$)", re.MULTILINE)


def answer_tokens(text: str) -> list[str]:
    """Tokens for answer F1: each Chinese character is one token, each English word or number another; citation marks
    like [1] are not part of the answer."""
    text = _CITATION_MARK.sub(" ", unicodedata.normalize("NFKC", text)).lower()
    tokens: list[str] = []
    for part in _PUNCT_SPACE.split(text):
        if not part:
            continue
        buf = ""
        for ch in part:
            if _CJK.match(ch):
                if buf:
                    tokens.append(buf)
                    buf = ""
                tokens.append(ch)
            else:
                buf += ch
        if buf:
            tokens.append(buf)
    return tokens


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and whitespace removed, English articles dropped: for exact match."""
    tokens = [t for t in answer_tokens(text) if t not in {"a", "an", "the"}]
    return " ".join(tokens)


# ---------------------------------------------------------------- numbers

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
_CN_RUN = re.compile(f"(百分之)?([{''.join(_CN_DIGIT)}{''.join(_CN_UNIT)}]+)")
_EN_SMALL = {
    w: n
    for n, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
        " seventeen eighteen nineteen".split()
    )
}
_EN_TENS = {w: 10 * n for n, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_EN_WORD = "|".join([*_EN_SMALL, *_EN_TENS, "hundred"])
_EN_RUN = re.compile(rf"\b(?:{_EN_WORD})(?:(?:[\s-]+and)?[\s-]+(?:{_EN_WORD}))*\b", re.IGNORECASE)
_THOUSANDS_SEP = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def chinese_numeral_value(text: str) -> int | None:
    """Value of a Chinese numeral from 0 to 9999 (十五, 三百五, 一千零二, 二〇二四), None when text is not one."""
    if not text:
        return None
    if all(ch in _CN_DIGIT for ch in text):  # read digit by digit: 二〇二四 -> 2024
        return int("".join(str(_CN_DIGIT[ch]) for ch in text))
    total, digit, last_unit, after_zero = 0, None, 10_000, False
    for ch in text:
        if ch in _CN_DIGIT:
            if digit:  # two digits in a row, as in 三四十
                return None
            digit = _CN_DIGIT[ch]
            after_zero = after_zero or digit == 0
        else:
            unit = _CN_UNIT[ch]
            if unit >= last_unit or digit == 0:
                return None
            if digit is None:
                if unit != 10 or total:  # only 十 may stand without its digit (十五 = 15)
                    return None
                digit = 1
            total += digit * unit
            last_unit, digit, after_zero = unit, None, False
    if digit:
        # 三百五 is 350 (the digit takes the next lower unit); 三百零五 is 305.
        total += digit if after_zero or last_unit == 10 else digit * last_unit // 10
    return total


def _english_numbers(words: list[str]) -> list[str]:
    """Number-word runs as digits, greedily: ['twenty', 'four'] -> ['24'], ['one', 'and', 'two'] -> ['1', 'and',
    '2']."""
    out: list[str] = []
    i, n = 0, len(words)

    def below_hundred(j: int) -> tuple[int, int] | None:
        if j < n and words[j] in _EN_TENS:
            value, j = _EN_TENS[words[j]], j + 1
            if j < n and 0 < _EN_SMALL.get(words[j], 0) < 10:
                value, j = value + _EN_SMALL[words[j]], j + 1
            return value, j
        if j < n and words[j] in _EN_SMALL:
            return _EN_SMALL[words[j]], j + 1
        return None

    while i < n:
        word = words[i]
        value = None
        if word == "hundred" or (0 < _EN_SMALL.get(word, 0) < 10 and i + 1 < n and words[i + 1] == "hundred"):
            value = 100 if word == "hundred" else _EN_SMALL[word] * 100
            i += 1 if word == "hundred" else 2
            j = i + 1 if i < n and words[i] == "and" else i
            rest = below_hundred(j)
            if rest:
                value, i = value + rest[0], rest[1]
        elif (got := below_hundred(i)) is not None:
            value, i = got
        if value is None:
            out.append(word)
            i += 1
        else:
            out.append(str(value))
    return out


def normalize_numbers(text: str) -> str:
    """NFKC text with numbers as digits: 1,000 -> 1000, 三十 -> 30, 百分之五 -> 5%, twenty-four -> 24.

    Chinese numerals 0-9999 (no 万), English number words 0-999; anything else is left as written.
    """
    text = _THOUSANDS_SEP.sub("", unicodedata.normalize("NFKC", text))

    def chinese(match: re.Match) -> str:
        value = chinese_numeral_value(match.group(2))
        if value is None:
            return match.group(0)
        return f"{value}%" if match.group(1) else str(value)

    text = _CN_RUN.sub(chinese, text)
    return _EN_RUN.sub(lambda m: " ".join(_english_numbers(re.split(r"[\s-]+", m.group(0).lower()))), text)


def contains_answer(prediction: str, expected: str) -> bool:
    """Whether expected appears in prediction as a run of whole tokens, after normalize_numbers and normalize_answer."""
    want = normalize_answer(normalize_numbers(expected))
    if not want:
        return False
    return f" {want} " in f" {normalize_answer(normalize_numbers(prediction))} "
