"""Score answers and runs: accuracy, source hit, MRR, exact match, F1, grounding, latency."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime

from tasks.answer.prompts import REFUSAL
from tasks.report.grounding import check_grounding
from tasks.text import ASKS_AMOUNT, answer_tokens, contains_answer, normalize_answer, normalize_numbers


def _norm_path(path: str) -> str:
    """Forward slashes, no leading './', surrounding whitespace removed."""
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def source_matches(expected: str, source: str) -> bool:
    """True when source is the expected relative path, or has the expected file name when expected has no '/'."""
    expected, source = _norm_path(expected), _norm_path(source)
    if not expected or not source:
        return False
    if expected == source:
        return True
    return "/" not in expected and source.rsplit("/", 1)[-1] == expected


def reciprocal_rank(expected_source: str, retrieved_sources: list[str]) -> float:
    """1/rank of the first retrieved source that matches the expected one, 0.0 when none does."""
    for rank, source in enumerate(retrieved_sources, start=1):
        if source_matches(expected_source, source):
            return 1.0 / rank
    return 0.0


def _answer_list(expected: str | list[str]) -> list[str]:
    """The acceptable answers as a non-empty list."""
    answers = [expected] if isinstance(expected, str) else list(expected)
    if not answers:
        raise ValueError("no expected answer given")
    return answers


def exact_match(prediction: str, expected: str | list[str]) -> float:
    """1.0 when the prediction equals any expected answer after normalize_answer, else 0.0."""
    pred = normalize_answer(prediction)
    return 1.0 if any(pred == normalize_answer(e) for e in _answer_list(expected)) else 0.0


def _f1_tokens(text: str) -> list[str]:
    """answer_tokens without English articles: the tokens normalize_answer keeps."""
    return [t for t in answer_tokens(text) if t not in {"a", "an", "the"}]


def _f1_single(prediction: str, expected: str) -> float:
    """Token F1 of one prediction against one expected answer."""
    pred, gold = _f1_tokens(prediction), _f1_tokens(expected)
    if not pred or not gold:
        return 1.0 if pred == gold else 0.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, expected: str | list[str]) -> float:
    """Token F1 (one token per Chinese character, per English word or number); the best over a list."""
    return max(_f1_single(prediction, e) for e in _answer_list(expected))


# A long expected answer said in other words: the share of its tokens the prediction must hold.
COVERED = 0.75
# An answer that is a part of a long expected one ("台湾台北市" for "出生地于台湾台北市"): how much of it, at least.
CORE = 0.5
# Expected answers shorter than this (in tokens: a Chinese character, an English word, a number) must appear whole.
LONG_ANSWER = 4


# Words a Chinese reference wraps its answer in, which a right answer need not repeat: a copula, a particle, a
# qualifier of age or amount ("年仅两岁" is "2岁"; "约只有8公斤重" is "8公斤重"), 一 as an article before a measure word
# ("是一座古典巴洛克建筑": the 1 is no figure of the answer), and a demonstrative ("这座城镇" for the question's
# "此城镇").
_MEASURE = "[座个种位名家所部本条只件次项]"
_WRAPPING = re.compile(rf"年仅|仅有|只有|大约|约为|约|仅|是|的|了|一(?={_MEASURE})|[这此该]{_MEASURE}?")
# "X（Y）" at the end of a reference: Y is another name of X ("东日本旅客铁道（JR东日本）") unless it holds a figure,
# when it is a detail ("8月18日结束（撮影期21日）").
_TRAILING_ALIAS = re.compile(r"^(?P<main>.+?)\s*[(（](?P<alias>[^()（）]+)[)）]\s*[。.]?$")


def _figures(tokens: list[str]) -> set[str]:
    return {t for t in tokens if t[0].isdigit()}


def _said_otherwise(prediction: str, expected: str, question: str = "") -> bool:
    """A long expected answer that the prediction says in its own words: its figures all there, and most of its
    tokens, or the prediction's own tokens are all in it and make up enough of it. Reading comprehension references
    (CMRC's "育有3名子女", "出生地于台湾台北市") carry words a right answer need not repeat (_WRAPPING), and restate
    the question ("莫斯科公国在1303年控制了这座城镇" for "莫斯科公国在哪一年控制了此城镇？"): the question's own tokens
    are left out of both sides, so what is compared is what the question asked for."""
    if len(_f1_tokens(normalize_numbers(expected))) < LONG_ANSWER:
        return False
    asked = set(_f1_tokens(normalize_numbers(_WRAPPING.sub("", question))))
    gold = [t for t in _f1_tokens(normalize_numbers(_WRAPPING.sub("", expected))) if t not in asked]
    if not gold:
        return False
    pred = Counter(t for t in _f1_tokens(normalize_numbers(_WRAPPING.sub("", prediction))) if t not in asked)
    if any(not pred[t] for t in _figures(gold)):
        return False  # a figure of the expected answer is missing: never right
    if ASKS_AMOUNT.search(question) and _figures(gold) and _figures(list(pred)) == _figures(gold):
        return True  # an amount asked, and the prediction gives the reference's figures and no other
    common = sum((Counter(gold) & pred).values())
    if common >= COVERED * len(gold):
        return True
    return common == sum(pred.values()) and common >= CORE * len(gold)


def _forms(expected: str) -> tuple[list[str], str]:
    """What a reader accepts of an expected answer with a closing parenthesis: the forms that may appear whole (the
    answer, the answer without it, and the name in it when it holds no figure), and the answer said in other words is
    compared with (without the parenthesis when it holds a figure: a detail, "8月18日结束（撮影期21日）")."""
    found = _TRAILING_ALIAS.match(expected.strip())
    if not found:
        return [expected], expected
    main, alias = found["main"], found["alias"].strip()
    if any(c.isdigit() for c in alias):
        return [expected, main], main
    return [expected, main, alias], expected


def answer_correct(prediction: str, expected: str | list[str], question: str = "") -> bool:
    """Whether any expected answer (or another form of it a reader accepts, _forms) appears in the prediction
    (case, width, spacing, punctuation, [n] marks, numbers aside), or a long one is said in other words
    (_said_otherwise), read with and without the question it answers."""
    for e in _answer_list(expected):
        whole, said = _forms(e)
        if any(contains_answer(prediction, form) for form in whole) or _said_otherwise(prediction, said):
            return True
        if question and _said_otherwise(prediction, said, question):
            return True
    return False


def _present(value: object) -> bool:
    """A non-empty expected value (None, NaN, blank strings and empty lists are absent)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, (list, tuple)):
        return any(_present(v) for v in value)
    return bool(str(value).strip())


def expected_answers(value: object) -> list[str]:
    """The acceptable answers in an expected_answer cell: a list, a JSON list string, or values separated by ' | '."""
    if not _present(value):
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if _present(v)]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and parsed:
            return [str(v).strip() for v in parsed if _present(v)]
    return [part.strip() for part in text.split(" | ") if part.strip()]


def score_rows(rows: list[dict], *, generated: bool = True, support_threshold: float = 0.5) -> list[dict]:
    """Copies of rows with correct, hit, reciprocal_rank, exact_match, f1, support, unsupported and flag_reason added.

    A figure is None where nothing is expected, and every answer figure is None when no answers were generated.
    """
    scored = []
    for row in rows:
        out = dict(row)
        expected_source = row.get("expected_source")
        if _present(expected_source):
            sources = [str(r.get("source", "")) for r in row.get("retrieved") or []]
            rr = reciprocal_rank(str(expected_source), sources)
            out["hit"], out["reciprocal_rank"] = rr > 0, rr
        else:
            out["hit"] = out["reciprocal_rank"] = None
        answers = expected_answers(row.get("expected_answer"))
        if answers and generated:
            # A failed question is scored as an empty answer; a refusal is scored on its refusal text.
            prediction = "" if row.get("error") else str(row.get("answer") or "")
            out["correct"] = answer_correct(prediction, answers, str(row.get("question") or ""))
            out["exact_match"] = exact_match(prediction, answers)
            out["f1"] = f1_score(prediction, answers)
        else:
            out["correct"] = out["exact_match"] = out["f1"] = None
        if generated:
            out.update(check_grounding(row, support_threshold))
        else:
            out.update(support=None, unsupported=None, flag_reason=None)
        scored.append(out)
    return scored


def _mean(values: list[float]) -> float | None:
    """Arithmetic mean, None for no values."""
    return float(sum(values) / len(values)) if values else None


def _refusal(row: dict) -> bool:
    """Refused without a model call, or the model's own refusal over the passages it was given."""
    return bool(row.get("refused")) or str(row.get("answer") or "").strip() in REFUSAL.values()


def flag_figures(judged: list[dict]) -> dict:
    """flag_recall: share of the wrong answers that are flagged; flag_precision: share of the flags that are on
    wrong answers. None where there is nothing to divide (no wrong answer, no flag)."""
    wrong = [r for r in judged if not r["correct"]]
    flagged = [r for r in judged if r["unsupported"]]
    caught = sum(1 for r in wrong if r["unsupported"])
    return {
        "flag_recall": caught / len(wrong) if wrong else None,
        "flag_precision": caught / len(flagged) if flagged else None,
        "flagged_wrong": caught,
        "flagged": len(flagged) if judged else None,
    }


def _looked(row: dict) -> bool:
    look = row.get("other_language_look")
    return isinstance(look, dict) and bool(look.get("passages"))


def summarize(
    rows: list[dict],
    *,
    top_k: int,
    model: str,
    embedding_model: str,
    mode: str,
    generated: bool = True,
    support_threshold: float = 0.5,
    questions_file: str | None = None,
    scored: bool = False,
) -> dict:
    """Run-level figures, accuracy first: counts, recall@k, MRR, EM, F1, support (0-1, None if unmeasured), latency.

    scored: the rows carry their scores already (they may lack passage text, which scoring needs)."""
    import numpy as np

    scored = rows if scored else score_rows(rows, generated=generated, support_threshold=support_threshold)
    with_source = [r for r in scored if r["hit"] is not None]
    with_answer = [r for r in scored if _present(r.get("expected_answer"))]
    judged = [r for r in scored if r["correct"] is not None]
    latencies = [float(r["latency_ms"]) for r in scored if r.get("latency_ms") is not None]
    errors = sum(1 for r in scored if r.get("error"))
    refused = sum(1 for r in scored if r.get("refused") and not r.get("error"))
    cached = generated and any("answer_source" in r for r in scored)  # rows of the answer flow say where they came from
    return {
        "accuracy": _mean([1.0 if r["correct"] else 0.0 for r in judged]),
        "questions": len(scored),
        "answered": len(scored) - errors - refused,
        "refused": refused,
        "errors": errors,
        "unsupported": sum(1 for r in scored if r["unsupported"]) if generated else None,
        # How well the flags point at the wrong answers, where expected answers say which are wrong (None: n/a).
        **flag_figures([r for r in judged if not _refusal(r) and not r.get("error")] if generated else []),
        # Answers the model wrote in this run, and answers taken from the answer cache (null: nothing generated).
        "answers_generated": sum(r.get("answer_source") == "generated" for r in scored) if cached else None,
        "answers_reused": sum(r.get("answer_source") == "reused" for r in scored) if cached else None,
        # Flagged answers asked again over the other language's passages (tasks/answer/crossing.py), and how many of
        # those answers replaced the first (null: no answer flow rows).
        "other_language_looks": sum(_looked(r) for r in scored) if cached else None,
        "other_language_kept": sum(_looked(r) and r["other_language_look"].get("kept", False) for r in scored)
        if cached
        else None,
        "generated": generated,
        "top_k": top_k,
        "mode": mode,
        "questions_with_expected_source": len(with_source),
        "questions_with_expected_answer": len(with_answer),
        "recall_at_k": _mean([1.0 if r["hit"] else 0.0 for r in with_source]),
        "mrr": _mean([r["reciprocal_rank"] for r in with_source]),
        "exact_match": _mean([r["exact_match"] for r in judged]),
        "f1": _mean([r["f1"] for r in judged]),
        "support": _mean([r["support"] for r in scored if r["support"] is not None]),
        "support_threshold": support_threshold,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "model": model,
        "embedding_model": embedding_model,
        "questions_file": questions_file,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
