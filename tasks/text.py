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


@lru_cache(maxsize=1024)
def chinese_verbs(text: str) -> frozenset[str]:
    """The Chinese words jieba tags as verbs in text (发往, 送达): they say what is done, not which thing."""
    import jieba.posseg

    _jieba()
    return frozenset(w.word for w in jieba.posseg.cut(text) if w.flag in ("v", "vd", "vi", "vq"))


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

# A question that asks for an amount: 多少, 几, 多长/多大/多高/多久/多远/多重/多深/多宽, how many/much/long/far/old.
ASKS_AMOUNT = re.compile(
    r"多少|几|多[长大高久远重深宽厚]|\bhow (?:many|much|long|far|old|big|tall|high)\b", re.IGNORECASE
)


def _fold_accents(text: str) -> str:
    """Latin letters without their accents (Chloé Zhao is Chloe Zhao, Pogačar Pogacar): the combining diacritical
    marks U+0300-U+036F dropped; kana keep their voicing marks, which are other code points."""
    if text.isascii():
        return text
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not 0x300 <= ord(ch) <= 0x36F)
    return unicodedata.normalize("NFC", bare)


def answer_tokens(text: str) -> list[str]:
    """Tokens for answer F1: each Chinese character is one token, each English word or number another; citation marks
    like [1] are not part of the answer."""
    text = _fold_accents(_CITATION_MARK.sub(" ", unicodedata.normalize("NFKC", text)).lower())
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
# cn2an reads Chinese numerals (万 and 亿 too) and text2num English number words (thousand, million, billion); the
# code here finds the runs they read, and keeps what they miss: 百分之N, a lone "one" or "zero", and the guards.

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}
_CN_RUN = re.compile(f"(百分之)?([{''.join(_CN_DIGIT)}{''.join(_CN_UNIT)}]+)")
# 1.2亿, 35万: digits with a Chinese myriad unit (not 1万5, which is left as written).
_CN_SCALED = re.compile(f"(?<![\\d.])(\\d+(?:\\.\\d+)?)([万亿])(?![\\d{''.join(_CN_DIGIT)}{''.join(_CN_UNIT)}])")
_EN_SCALE = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
# 3.5 million, 2 thousand
_EN_SCALED = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s+(thousand|million|billion)\b", re.IGNORECASE)
# A lone digit character is a number before a measure word, after 第, or where jieba cuts it as a word of its own
# (答案是三。); inside a word jieba knows it is left as written: 一致, 统一, 一些, 三星.
_CN_MEASURE = set(
    "个位名人口天日年月周次遍回条项家种类份件张本页台辆套层号级倍岁元块角分秒米克斤吨升里公千百成折点轮批笔所间座部首句段章节场届期季度"
    "只头匹棵朵支杯瓶双对片颗粒封门"
)
_EN_SMALL = {
    w: n
    for n, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
        " seventeen eighteen nineteen".split()
    )
}
_EN_TENS = {w: 10 * n for n, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_EN_WORD = "|".join([*_EN_SMALL, *_EN_TENS, "hundred", "thousand", "million", "billion"])
_EN_RUN = re.compile(rf"\b(?:{_EN_WORD})(?:(?:[\s-]+and)?[\s-]+(?:{_EN_WORD}))*\b", re.IGNORECASE)
# "one of the", "one another", "no one": a pronoun, not a count.
_EN_PRONOUN_ONE = re.compile(r"\bone(?=\s+(?:of|another)\b)|(?<=\bno\s)one\b", re.IGNORECASE)
_THOUSANDS_SEP = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _digits(value: float) -> str:
    """A number as plain digits: 120000000, 1.5 (never 1.2e8 or 120000000.0)."""
    return str(int(value)) if float(value).is_integer() else format(value, "f").rstrip("0")


def chinese_numeral_value(text: str) -> int | None:
    """Value of a Chinese numeral (十五, 三百五, 一千零二, 二〇二四, 三万五千, 一亿二千万); None when it is not one."""
    import cn2an

    if not text or any(ch not in _CN_DIGIT and ch not in _CN_UNIT for ch in text):
        return None
    try:
        value = cn2an.cn2an(text, "normal")
    except (ValueError, KeyError, IndexError):  # cn2an raises ValueError on 三四十, 百, 万一; guard the rest too
        return None
    return int(value) if float(value).is_integer() else None


def _english_numbers(words: list[str]) -> list[str]:
    """Number-word runs as digits, greedily: ['twenty', 'four'] -> ['24'], ['one', 'and', 'two'] -> ['1', 'and',
    '2']. The fallback for what text2num leaves as words (a lone one or zero)."""
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


def _english_run(run: str) -> str:
    """One run of English number words as digits: text2num's alpha2digit, then our own reading of what it leaves."""
    from text_to_num import alpha2digit

    words = re.split(r"[\s-]+", run.lower())
    read = alpha2digit(" ".join(words), "en").split()
    return " ".join(_english_numbers(read))


def _in_a_word(text: str, at: int) -> bool:
    """Whether the lone numeral character at text[at] is part of an ordinary word (一致, 统一), not a count."""
    after = text[at + 1] if at + 1 < len(text) else ""
    if after in _CN_MEASURE or (at and text[at - 1] == "第"):
        return False
    if not (_CJK.match(after) or (at and _CJK.match(text[at - 1]))):
        return False
    start = max(0, at - 4)
    pos = start
    for word in _jieba().lcut(text[start : at + 5]):
        if pos <= at < pos + len(word):
            return len(word) > 1
        pos += len(word)
    return False


def _chinese_run(match: re.Match) -> str:
    """One run of Chinese numeral characters as digits, left as written when it is not a number or a lone digit in a
    word."""
    percent, run = match.group(1), match.group(2)
    if not percent and len(run) == 1 and run in _CN_DIGIT and _in_a_word(match.string, match.start()):
        return run
    value = chinese_numeral_value(run)
    if value is None:
        return match.group(0)
    return f"{value}%" if percent else str(value)


def normalize_numbers(text: str) -> str:
    """NFKC text with numbers as digits: 1,000 -> 1000, 三十 -> 30, 1.2亿 -> 120000000, 百分之五 -> 5%,
    twenty-four -> 24, twelve thousand four hundred -> 12400; anything else is left as written."""
    text = _THOUSANDS_SEP.sub("", unicodedata.normalize("NFKC", text))
    text = _CN_SCALED.sub(lambda m: _digits(float(m.group(1)) * _CN_UNIT[m.group(2)]), text)
    text = _EN_SCALED.sub(lambda m: _digits(float(m.group(1)) * _EN_SCALE[m.group(2).lower()]), text)
    text = _CN_RUN.sub(_chinese_run, text)
    kept = {m.start() for m in _EN_PRONOUN_ONE.finditer(text)}

    def english(match: re.Match) -> str:
        if match.start() in kept and match.group(0).lower() == "one":
            return match.group(0)
        return _english_run(match.group(0))

    return _EN_RUN.sub(english, text)


def contains_answer(prediction: str, expected: str) -> bool:
    """Whether expected appears in prediction as a run of whole tokens, after normalize_numbers and normalize_answer."""
    want = normalize_answer(normalize_numbers(expected))
    if not want:
        return False
    return f" {want} " in f" {normalize_answer(normalize_numbers(prediction))} "
