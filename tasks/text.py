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


def answer_tokens(text: str) -> list[str]:
    """Tokens for answer F1: each Chinese character is one token, each English word or number another; citation marks like [1] are not part of the answer."""
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
