"""Write a run's report: summary.json, rows.jsonl, answers.csv/.xlsx and report.html."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from tasks.report.compare import compare_runs
from tasks.report.html import write_html
from tasks.report.metrics import score_rows, summarize
from tasks.report.tables import _jsonable, _row_record, _write_xlsx, answers_table, write_csv


def write_report(rows: list[dict], out_dir: str | Path, **options) -> dict:
    """_write_report, with a full disk named by the report folder (a write that fails on close names no file)."""
    try:
        return _write_report(rows, out_dir, **options)
    except OSError as exc:
        if exc.errno != errno.ENOSPC or exc.filename:
            raise
        raise OSError(errno.ENOSPC, exc.strerror or os.strerror(errno.ENOSPC), str(Path(out_dir) / "report")) from exc


def _write_report(
    rows: list[dict],
    out_dir: str | Path,
    *,
    top_k: int,
    model: str,
    embedding_model: str,
    mode: str,
    title: str = "kbflow answer report",
    generated: bool = True,
    support_threshold: float = 0.5,
    questions_file: str | None = None,
    previous: str | Path | None = None,
    extra: dict | None = None,
    scored: bool = False,
    details: Callable[[], Iterable[dict]] | None = None,
) -> dict:
    """Write summary.json, rows.jsonl, answers.csv, answers.xlsx and report.html into out_dir; return the summary.

    scored: the rows are scored already (the answer flow scores each row as it is made, then keeps it without
    its passages' text); details: the full rows again, in order, for report.html's per-question sections
    (streamed from the run's JSONL, so a 10,000-question run never holds every passage in memory).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not scored:
        rows = score_rows(rows, generated=generated, support_threshold=support_threshold)
    summary = summarize(
        rows,
        top_k=top_k,
        model=model,
        embedding_model=embedding_model,
        mode=mode,
        generated=generated,
        support_threshold=support_threshold,
        questions_file=questions_file,
        scored=True,
    )
    clash = sorted(set(extra or {}) & (set(summary) | {"comparison"}))
    if clash:
        raise ValueError(f"extra must not replace computed summary keys: {', '.join(clash)}")
    summary.update(_jsonable(extra or {}))
    records = [_row_record(r) for r in rows]
    if previous is not None:
        summary["comparison"] = compare_runs(Path(previous), out, records, summary)
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with (out / "rows.jsonl").open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    frame = answers_table(rows)
    write_csv(frame, out / "answers.csv")
    _write_xlsx(frame, out / "answers.xlsx", changes=summary.get("comparison"))
    write_html(out, rows, summary, title=title, details=details() if details else rows)
    return summary
