"""The headline figures of an answer run, declared once: key, label and how each is shown (CLI, artifact, report.html,
compare)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from tasks.report.formats import fmt_count, fmt_ms, fmt_num, fmt_rate


class Figure(NamedTuple):
    key: str
    label: str
    show: Callable[[object], str]


def _recall_label(summary: dict) -> str:
    return f"recall@{summary.get('top_k')}"


# Accuracy first: it is what a reader checks. "recall@k" takes the run's k when shown.
FIGURES: list[Figure] = [
    Figure("accuracy", "accuracy", fmt_rate),
    Figure("questions", "questions", fmt_count),
    Figure("answered", "answered", fmt_count),
    Figure("refused", "refused", fmt_count),
    Figure("errors", "errors", fmt_count),
    Figure("answers_generated", "generated", fmt_count),
    Figure("answers_reused", "reused", fmt_count),
    Figure("unsupported", "unsupported answers", fmt_count),
    Figure("recall_at_k", "recall@k", fmt_rate),
    Figure("mrr", "MRR", fmt_num),
    Figure("exact_match", "exact match", fmt_rate),
    Figure("f1", "F1", fmt_rate),
    Figure("support", "support", fmt_rate),
    Figure("latency_ms_p50", "latency p50", fmt_ms),
    Figure("latency_ms_p95", "latency p95", fmt_ms),
]
BY_KEY = {f.key: f for f in FIGURES}
# The figures a run-to-run comparison shows as deltas.
COMPARED = ["accuracy", "recall_at_k", "latency_ms_p50"]


def label(key: str, summary: dict) -> str:
    return _recall_label(summary) if key == "recall_at_k" else BY_KEY[key].label


def shown(summary: dict) -> list[tuple[str, str]]:
    """(label, shown value) of every headline figure of a run, n/a where nothing was measured."""
    return [(label(f.key, summary), f.show(summary.get(f.key))) for f in FIGURES]


def summary_markdown(summary: dict) -> str:
    """The headline figures as a markdown table, accuracy first (for a Prefect artifact or a terminal)."""
    rows = shown(summary) + [("model", summary.get("model")), ("embedding model", summary.get("embedding_model"))]
    if summary.get("audience"):
        rows.append(("answered for", summary["audience"]))
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def headline_lines(s: dict) -> list[str]:
    """The CLI's closing lines after the count line: accuracy, reuse, retrieval, the rest, model, warnings, changes."""
    from tasks.report.formats import fmt_delta

    with_answer = s.get("questions_with_expected_answer") or 0
    correct = (
        ""
        if s.get("accuracy") is None
        else f" ({round(s['accuracy'] * with_answer)} of {with_answer} expected answers found)"
    )
    lines = [f"accuracy {fmt_rate(s.get('accuracy'))}{correct}; unsupported answers {fmt_count(s.get('unsupported'))}"]
    if s.get("flagged") is not None:
        lines.append(
            f"flags: {s['flagged']} raised, {s['flagged_wrong']} on wrong answers; they catch "
            f"{fmt_rate(s.get('flag_recall'))} of the wrong answers, precision {fmt_rate(s.get('flag_precision'))}"
        )
    if s.get("answers_generated") is not None:
        lines.append(f"answers generated {s['answers_generated']}, reused from the answer cache {s['answers_reused']}")
    lines += [
        f"retrieval ({s['mode']}, k={s['top_k']}): recall@k {fmt_rate(s.get('recall_at_k'))}, MRR "
        f"{fmt_num(s.get('mrr'))}",
        f"also: exact match {fmt_rate(s.get('exact_match'))}, F1 {fmt_rate(s.get('f1'))}; "
        f"latency p50 {fmt_ms(s.get('latency_ms_p50'))}, p95 {fmt_ms(s.get('latency_ms_p95'))}",
        f"model {s['model']}, embedding model {s['embedding_model']}",
    ]
    lines += [f"warning: {w}" for w in s.get("warnings") or []]
    if cmp := s.get("comparison"):
        lines.append(
            f"since {cmp['old'].get('created_at')}: accuracy "
            f"{fmt_delta('accuracy', cmp['deltas']['accuracy']['delta'])}, "
            f"{len(cmp['answers_changed'])} answer(s) changed, {len(cmp['newly_refused'])} newly refused, "
            f"{len(cmp['correct_lost'])} no longer correct"
        )
    return lines
