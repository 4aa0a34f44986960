"""Score answers (accuracy, source hit, MRR, EM, F1, grounding) and write summary.json, rows.jsonl, answers.csv/.xlsx, report.html."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from tasks.compare import CHANGE_LISTS, FIGURES, compare_runs
from tasks.formats import fmt_ms, fmt_num, fmt_rate
from tasks.grounding import check_grounding
from tasks.text import answer_tokens, contains_answer, is_chinese, normalize_answer

BASE_COLUMNS = [
    "id", "question", "answer", "refused", "citations", "retrieved",
    "latency_ms", "prompt_tokens", "completion_tokens", "error", "warning",
]
GROUNDING_COLUMNS = ["support", "unsupported", "flag_reason"]
EXPECTED_COLUMNS = ["expected_answer", "expected_source", "correct", "hit", "reciprocal_rank", "exact_match", "f1"]
# Figures that only mean something when the model wrote the answers; null in a retrieval-only run.
ANSWER_FIGURES = ("accuracy", "exact_match", "f1", "support", "unsupported")
XLSX_CELL_LIMIT = 32_767  # Excel refuses longer cell text


# ---------------------------------------------------------------- metrics


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


def answer_correct(prediction: str, expected: str | list[str]) -> bool:
    """Whether any expected answer appears in the prediction (case, width, spacing, punctuation, [n] marks, numbers aside)."""
    return any(contains_answer(prediction, e) for e in _answer_list(expected))


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
            out["correct"] = answer_correct(prediction, answers)
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
) -> dict:
    """Run-level figures, accuracy first: counts, recall@k, MRR, EM, F1, support (0-1, None if unmeasured), latency."""
    import numpy as np

    scored = score_rows(rows, generated=generated, support_threshold=support_threshold)
    with_source = [r for r in scored if r["hit"] is not None]
    with_answer = [r for r in scored if _present(r.get("expected_answer"))]
    judged = [r for r in scored if r["correct"] is not None]
    latencies = [float(r["latency_ms"]) for r in scored if r.get("latency_ms") is not None]
    errors = sum(1 for r in scored if r.get("error"))
    refused = sum(1 for r in scored if r.get("refused") and not r.get("error"))
    return {
        "accuracy": _mean([1.0 if r["correct"] else 0.0 for r in judged]),
        "questions": len(scored),
        "answered": len(scored) - errors - refused,
        "refused": refused,
        "errors": errors,
        "unsupported": sum(1 for r in scored if r["unsupported"]) if generated else None,
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
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- tables


def _plain(value: object) -> object:
    """numpy scalars as Python numbers, so json.dumps accepts them."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _citations_json(citations: list[dict] | None) -> str:
    """Citations as a JSON list of {source, page}."""
    items = [{"source": c.get("source"), "page": _plain(c.get("page"))} for c in citations or []]
    return json.dumps(items, ensure_ascii=False)


def _retrieved_json(retrieved: list[dict] | None) -> str:
    """Retrieved passages in rank order as a JSON list of {source, page, chunk_id, score}, without their text."""
    items = [
        {
            "source": r.get("source"),
            "page": _plain(r.get("page")),
            "chunk_id": r.get("chunk_id"),
            "score": _plain(r.get("score")),
        }
        for r in retrieved or []
    ]
    return json.dumps(items, ensure_ascii=False)


def _jsonable(value: object) -> object:
    """value with numpy scalars as Python numbers and NaN as None, lists and dicts included."""
    value = _plain(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _row_record(row: dict) -> dict:
    """A scored row for rows.jsonl: every field, passages and citations without their text."""
    record = {k: v for k, v in row.items() if k not in ("retrieved", "citations")}
    record["citations"] = [{k: v for k, v in c.items() if k != "text"} for c in row.get("citations") or []]
    record["retrieved"] = [{k: v for k, v in p.items() if k != "text"} for p in row.get("retrieved") or []]
    return _jsonable(record)


def _has_expected(rows: list[dict]) -> bool:
    """Whether any row has an expected answer or source."""
    return any(_present(r.get("expected_answer")) or _present(r.get("expected_source")) for r in rows)


def answers_table(rows: list[dict]):
    """A pandas DataFrame with one row per question in the report's column order (rows must be scored)."""
    import pandas as pd

    columns = BASE_COLUMNS + GROUNDING_COLUMNS + (EXPECTED_COLUMNS if _has_expected(rows) else [])
    records = []
    for row in rows:
        record = {col: row.get(col) for col in columns}
        record["refused"] = bool(row.get("refused"))
        record["citations"] = _citations_json(row.get("citations"))
        record["retrieved"] = _retrieved_json(row.get("retrieved"))
        records.append(record)
    return pd.DataFrame(records, columns=columns)


def _write_xlsx(frame, path: Path) -> None:
    """Write the answers table to one sheet, keeping every text cell text (never a formula)."""
    import pandas as pd
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def clean(value: object) -> object:
        # openpyxl rejects control characters (PDF text has them) and Excel rejects over-long cells.
        if not isinstance(value, str):
            return value
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        return value if len(value) <= XLSX_CELL_LIMIT else value[: XLSX_CELL_LIMIT - 1] + "…"

    frame = frame.astype(object).where(frame.notna(), None).map(clean)
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="answers", index=False)
        sheet = writer.sheets["answers"]
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                if cell.data_type == "f":  # an answer starting with '=' is text, not a formula to run
                    cell.data_type = "s"
        sheet.freeze_panes = "A2"
        widths = {"id": 10, "question": 50, "answer": 80, "citations": 40, "retrieved": 40, "error": 30, "flag_reason": 30}
        for i, col in enumerate(frame.columns):
            sheet.column_dimensions[sheet.cell(row=1, column=i + 1).column_letter].width = widths.get(col, 14)


# ---------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:0;
 background:#f6f7f9;color:#1d2330;line-height:1.5}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}.meta{color:#5b6475;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:10px;margin-bottom:20px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:1.4em}.card span{color:#5b6475;font-size:.85em}
.card.lead{border:2px solid #3b6fd8}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:24px}
th,td{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top;font-size:.9em}
th{background:#eef1f5}
section.q{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:14px 18px;margin-bottom:16px}
section.q.flagged{border:3px solid #d97706}
section.q h2{font-size:1.05em;margin:0 0 8px}.qid{color:#5b6475;font-weight:normal;margin-right:6px}
section.box{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 18px;margin-bottom:20px}
section.check{border:2px solid #d97706}section.box h2{font-size:1.1em;margin:4px 0 8px}
section.box h3{font-size:1em;margin:10px 0 4px}
.answer,.passage,.old,.new{white-space:pre-wrap;overflow-wrap:anywhere}
.answer{background:#f3f6fb;border-left:4px solid #3b6fd8;padding:8px 12px;margin:6px 0}
.old{background:#fdf0f0;padding:2px 8px}.new{background:#eefaf1;padding:2px 8px}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:.8em;font-weight:bold;margin-left:6px}
.refused{background:#fff2cc;color:#7a5a00}.error{background:#fde2e1;color:#9b1c1c}
.hit{background:#dcf5e3;color:#17643a}.miss{background:#fde2e1;color:#9b1c1c}
.flag{background:#d97706;color:#fff}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:8px 0}dt{color:#5b6475}dd{margin:0}
details{border:1px solid #e3e6ec;border-radius:6px;padding:4px 8px;margin:4px 0}
details.match{border-color:#6cc58b}summary{cursor:pointer}
.passage{font-size:.9em;margin:6px 0 2px;color:#2c3443}
"""


def _e(value: object) -> str:
    """HTML-escaped text of any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt_count(value: int | None) -> str:
    """A count, n/a when absent."""
    return "n/a" if value is None else str(value)


def _fmt_yes_no(value: bool | None) -> str:
    """yes / no, n/a when absent."""
    return "n/a" if value is None else ("yes" if value else "no")


def _fmt_page(page: object) -> str:
    """', p. N' for a real page number, nothing otherwise."""
    return f", p. {_e(page)}" if page is not None and page != -1 else ""


def _status_badge(row: dict) -> str:
    """The refused / error badge of a row, or nothing."""
    if row.get("error"):
        return '<span class="badge error">error</span>'
    if row.get("refused"):
        return '<span class="badge refused">refused</span>'
    return ""


def _flag_badge(row: dict) -> str:
    """The 'unsupported' badge of a flagged answer, with its reason, or nothing."""
    if not row.get("unsupported"):
        return ""
    return f'<span class="badge flag">unsupported: {_e(row.get("flag_reason"))}</span>'


def summary_markdown(summary: dict) -> str:
    """The headline figures as a markdown table, accuracy first (for a Prefect artifact or a terminal)."""
    rows = [
        ("accuracy", fmt_rate(summary.get("accuracy"))),
        ("questions", summary.get("questions")),
        ("refused", summary.get("refused")),
        ("errors", summary.get("errors")),
        ("unsupported answers", "n/a" if summary.get("unsupported") is None else summary["unsupported"]),
        (f"recall@{summary.get('top_k')}", fmt_rate(summary.get("recall_at_k"))),
        ("MRR", fmt_num(summary.get("mrr"))),
        ("exact match", fmt_rate(summary.get("exact_match"))),
        ("F1", fmt_rate(summary.get("f1"))),
        ("support", fmt_rate(summary.get("support"))),
        ("latency p50 / p95", f"{fmt_ms(summary.get('latency_ms_p50'))} / {fmt_ms(summary.get('latency_ms_p95'))}"),
        ("model", summary.get("model")),
        ("embedding model", summary.get("embedding_model")),
    ]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _summary_html(summary: dict) -> str:
    """The figure cards at the top of the page, accuracy first."""
    cards = [
        ("accuracy", fmt_rate(summary["accuracy"])),
        ("questions", str(summary["questions"])),
        ("answered", str(summary["answered"])),
        ("refused", str(summary["refused"])),
        ("errors", str(summary["errors"])),
        ("unsupported", _fmt_count(summary["unsupported"])),
        (f"recall@{summary['top_k']}", fmt_rate(summary["recall_at_k"])),
        ("MRR", fmt_num(summary["mrr"])),
        ("exact match", fmt_rate(summary["exact_match"])),
        ("F1", fmt_rate(summary["f1"])),
        ("support", fmt_rate(summary["support"])),
        ("latency p50", fmt_ms(summary["latency_ms_p50"])),
        ("latency p95", fmt_ms(summary["latency_ms_p95"])),
    ]
    body = "".join(
        f'<div class="card{" lead" if n == 0 else ""}"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
        for n, (k, v) in enumerate(cards)
    )
    return f'<div class="cards">{body}</div>'


def _check_first_html(rows: list[dict], summary: dict) -> str:
    """The 'check these first' list of flagged answers, linking to their sections."""
    if not summary.get("generated", True):
        return ""
    flagged = [(n, r) for n, r in enumerate(rows, start=1) if r.get("unsupported")]
    if not flagged:
        return '<section class="box check" id="check"><h2>Check these first</h2><p>No answer is flagged.</p></section>'
    items = "".join(
        f'<li><a href="#q-{n}">{_e(r.get("id"))}</a> {_e(r.get("question"))} '
        f'<span class="badge flag">{_e(r.get("flag_reason"))}</span></li>'
        for n, r in flagged
    )
    return (
        f'<section class="box check" id="check"><h2>Check these first ({len(flagged)})</h2>'
        f"<p>These answers cite nothing, or say things their cited passages do not contain.</p><ol>{items}</ol></section>"
    )


def _fmt_when(created_at: object) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC', or as given when it is not one."""
    try:
        moment = datetime.fromisoformat(str(created_at))
    except ValueError:
        return str(created_at or "an earlier run")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")


def _changes_html(cmp: dict) -> str:
    """The 'Changes since <date>' section: figure deltas, then each kind of per-question change."""
    old, new = cmp["old"], cmp["new"]
    parts = [f'<section class="box changes" id="changes"><h2>Changes since {_e(_fmt_when(old.get("created_at")))}</h2>']
    parts.append(f'<p class="meta">compared with {_e(old.get("dir"))} · model {_e(old.get("model"))}'
                 + (f" → {_e(new.get('model'))}" if old.get("model") != new.get("model") else "") + "</p>")
    lines = []
    for key, label in FIGURES:
        d = cmp["deltas"][key]
        fmt = fmt_ms if key == "latency_ms_p50" else fmt_rate
        if d["delta"] is None:
            delta = "n/a"
        elif key == "latency_ms_p50":
            delta = f"{d['delta']:+.0f} ms"
        else:
            delta = f"{d['delta'] * 100:+.1f} pt"
        lines.append(f"<tr><td>{_e(label)}</td><td>{fmt(d['old'])}</td><td>{fmt(d['new'])}</td><td>{delta}</td></tr>")
    parts.append(f"<table><tr><th>figure</th><th>before</th><th>now</th><th>change</th></tr>{''.join(lines)}</table>")
    for key, label in CHANGE_LISTS:
        items = cmp[key]
        if not items:
            continue
        lis = []
        for item in items:
            text = f"<b>{_e(item['id'])}</b> {_e(item.get('question'))}"
            if "flag_reason" in item and item["flag_reason"]:
                text += f' <span class="badge flag">{_e(item["flag_reason"])}</span>'
            if "old" in item:
                text += f'<div class="old">before: {_e(item["old"])}</div><div class="new">now: {_e(item["new"])}</div>'
            lis.append(f"<li>{text}</li>")
        parts.append(f"<h3>{_e(label)} ({len(items)})</h3><ul>{''.join(lis)}</ul>")
    if not any(cmp[key] for key, _ in CHANGE_LISTS):
        parts.append("<p>No question changed.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _index_html(rows: list[dict], generated: bool = True) -> str:
    """A table of all questions linking to their sections."""
    judged = any(r.get("correct") is not None for r in rows)
    sourced = any(r.get("hit") is not None for r in rows)
    scored = any(r.get("f1") is not None for r in rows)
    head = (
        "<tr><th>id</th><th>question</th><th>status</th>"
        + ("<th>correct</th>" if judged else "")
        + ("<th>hit</th>" if sourced else "")
        + ("<th>F1</th>" if scored else "")
        + ("<th>support</th>" if generated else "")
        + "</tr>"
    )
    lines = []
    for n, row in enumerate(rows, start=1):
        status = (_status_badge(row) or "answered") + _flag_badge(row)
        cells = ""
        if judged:
            cells += f"<td>{_fmt_yes_no(row.get('correct'))}</td>"
        if sourced:
            cells += f"<td>{_fmt_yes_no(row.get('hit'))}</td>"
        if scored:
            cells += f"<td>{fmt_rate(row.get('f1'))}</td>"
        if generated:
            cells += f"<td>{fmt_rate(row.get('support'))}</td>"
        lines.append(
            f'<tr><td><a href="#q-{n}">{_e(row.get("id"))}</a></td><td>{_e(row.get("question"))}</td>'
            f"<td>{status}</td>{cells}</tr>"
        )
    return f"<table>{head}{''.join(lines)}</table>"


def _question_html(n: int, row: dict, generated: bool = True) -> str:
    """One question's section: answer, expectations and scores, grounding, citations, retrieved passages."""
    lang = "zh" if is_chinese(f"{row.get('question') or ''} {row.get('answer') or ''}") else "en"
    flagged = " flagged" if row.get("unsupported") else ""
    parts = [
        f'<section class="q{flagged}" id="q-{n}" lang="{lang}">',
        f'<h2><span class="qid">{_e(row.get("id"))}</span>{_e(row.get("question"))}{_status_badge(row)}'
        f"{_flag_badge(row)}</h2>",
    ]
    if row.get("error"):
        parts.append(f'<div class="answer">Error: {_e(row.get("error"))}</div>')
    else:
        parts.append(f'<div class="answer">{_e(row.get("answer"))}</div>')
    facts = []
    if _present(row.get("expected_answer")):
        facts.append(("expected answer", " | ".join(_e(a) for a in expected_answers(row["expected_answer"]))))
        facts.append(("correct", _fmt_yes_no(row.get("correct"))))
        em = "n/a" if row.get("exact_match") is None else ("yes" if row.get("exact_match") == 1.0 else "no")
        facts.append(("exact match / F1", f"{em} / {fmt_rate(row.get('f1'))}"))
    if _present(row.get("expected_source")):
        hit = row.get("hit")
        badge = '<span class="badge hit">hit</span>' if hit else '<span class="badge miss">miss</span>'
        facts.append(("expected source", f"{_e(row['expected_source'])} {badge}"))
        facts.append(("reciprocal rank", fmt_num(row.get("reciprocal_rank"))))
    support = fmt_rate(row.get("support"))
    if row.get("flag_reason"):
        support += f" ({_e(row['flag_reason'])})"
    elif generated and (row.get("refused") or row.get("error")):
        support += " (not checked)"
    facts.append(("support in cited passages", support))
    facts.append(
        (
            "latency",
            f"{fmt_ms(row.get('latency_ms'))} (retrieval {fmt_ms(row.get('retrieval_ms'))}, "
            f"generation {fmt_ms(row.get('generation_ms'))})",
        )
    )
    facts.append(("tokens", f"{_e(row.get('prompt_tokens'))} prompt, {_e(row.get('completion_tokens'))} completion"))
    parts.append("<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")

    citations = row.get("citations") or []
    if citations:
        items = "".join(f"<li>{_e(c.get('source'))}{_fmt_page(c.get('page'))}</li>" for c in citations)
        parts.append(f"<h3>Citations</h3><ul>{items}</ul>")
    else:
        parts.append("<h3>Citations</h3><p>none</p>")

    retrieved = row.get("retrieved") or []
    parts.append(f"<h3>Retrieved passages ({len(retrieved)})</h3>")
    expected_source = row.get("expected_source")
    for rank, passage in enumerate(retrieved, start=1):
        source = str(passage.get("source") or "")
        match = _present(expected_source) and source_matches(str(expected_source), source)
        score = passage.get("score")
        score_text = fmt_num(float(score)) if score is not None else "n/a"
        parts.append(
            f'<details{" class=match" if match else ""}><summary>#{rank} {_e(source)}'
            f"{_fmt_page(passage.get('page'))} · score {score_text}{' · expected source' if match else ''}"
            f'</summary><div class="passage">{_e(passage.get("text"))}</div></details>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(rows: list[dict], summary: dict, *, title: str) -> str:
    """The self-contained HTML report (inline CSS, no scripts, every text escaped); rows must be scored."""
    generated = summary.get("generated", True)
    meta = (
        f"model {_e(summary['model'])} · embeddings {_e(summary['embedding_model'])} · mode {_e(summary['mode'])}"
        f" · top_k {_e(summary['top_k'])} · {_e(summary['created_at'])}"
        + ("" if generated else " · retrieval only: no answers generated")
    )
    changes = _changes_html(summary["comparison"]) if summary.get("comparison") else ""
    body = "\n".join(_question_html(n, row, generated) for n, row in enumerate(rows, start=1))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_e(title)}</h1>\n<p class=\"meta\">{meta}</p>\n{changes}\n{_check_first_html(rows, summary)}\n"
        f"{_summary_html(summary)}\n{_index_html(rows, generated)}\n{body}\n</main>\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------- writer


def write_report(
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
) -> dict:
    """Write summary.json, rows.jsonl, answers.csv, answers.xlsx and report.html into out_dir; return the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scored = score_rows(rows, generated=generated, support_threshold=support_threshold)
    summary = summarize(
        scored, top_k=top_k, model=model, embedding_model=embedding_model, mode=mode, generated=generated,
        support_threshold=support_threshold, questions_file=questions_file,
    )
    clash = sorted(set(extra or {}) & (set(summary) | {"comparison"}))
    if clash:
        raise ValueError(f"extra must not replace computed summary keys: {', '.join(clash)}")
    summary.update(_jsonable(extra or {}))
    records = [_row_record(r) for r in scored]
    if previous is not None:
        summary["comparison"] = compare_runs(Path(previous), out, records, summary)
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with (out / "rows.jsonl").open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    frame = answers_table(scored)
    frame.to_csv(out / "answers.csv", index=False, encoding="utf-8-sig")
    _write_xlsx(frame, out / "answers.xlsx")
    (out / "report.html").write_text(render_html(scored, summary, title=title), encoding="utf-8")
    return summary
