"""Compare two answer reports question by question, and find the report a new run should be compared with."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

from tasks.answer.options import ALL_DOCUMENTS
from tasks.report.figures import BY_KEY, COMPARED
from tasks.report.formats import fmt_delta

# (key in the comparison, heading) for each kind of per-question change, in the order a reader checks them.
CHANGE_LISTS = [
    ("answers_changed", "Answers changed"),
    ("newly_refused", "Newly refused"),
    ("newly_answered", "Newly answered"),
    ("newly_failed", "Newly failed"),
    ("correct_lost", "No longer correct"),
    ("correct_gained", "Now correct"),
    ("hit_lost", "Expected source no longer retrieved"),
    ("hit_gained", "Expected source now retrieved"),
    ("newly_flagged", "Newly flagged as unsupported"),
    ("flag_cleared", "No longer flagged"),
    ("only_old", "Questions no longer asked"),
    ("only_new", "New questions"),
]


# ---------------------------------------------------------------- reading reports


def _read_summary(report_dir: Path) -> dict:
    """A report's summary.json, {} when it has none or it cannot be read."""
    try:
        data = json.loads((Path(report_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cell_bool(value: str) -> bool | None:
    """'True' / 'False' from answers.csv as a bool, blank as None."""
    return {"true": True, "false": False}.get(value.strip().lower())


def _cell_json(value: str) -> list:
    """A JSON list cell, [] when blank or unreadable."""
    try:
        data = json.loads(value) if value.strip() else []
    except ValueError:
        return []
    return data if isinstance(data, list) else []


def load_rows(report_dir: str | Path) -> list[dict]:
    """A report's scored rows: rows.jsonl, or answers.csv for reports written before rows.jsonl existed."""
    report_dir = Path(report_dir)
    jsonl = report_dir / "rows.jsonl"
    if jsonl.exists():
        lines = jsonl.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    import pandas as pd

    frame = pd.read_csv(report_dir / "answers.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    rows = []
    for record in frame.to_dict("records"):
        row: dict = {k: (v if v != "" else None) for k, v in record.items()}
        for key in ("refused", "hit", "correct", "unsupported"):
            if key in record:
                row[key] = _cell_bool(record[key])
        row["refused"] = bool(row.get("refused"))
        row["citations"] = _cell_json(record.get("citations", ""))
        row["retrieved"] = _cell_json(record.get("retrieved", ""))
        rows.append(row)
    return rows


# ---------------------------------------------------------------- comparing


def _status(row: dict) -> str:
    """answered, refused or error."""
    if row.get("error"):
        return "error"
    return "refused" if row.get("refused") else "answered"


def _shown(row: dict) -> str:
    """The answer as the report shows it: the error message for a failed row."""
    return f"Error: {row['error']}" if row.get("error") else str(row.get("answer") or "")


def _figure(summary: dict, key: str) -> float | None:
    """A summary figure as a float, None when absent or not a number."""
    value = summary.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _side(report_dir: Path, summary: dict) -> dict:
    """What the comparison records about one report."""
    keys = ("created_at", "model", "embedding_model", "questions_file", "mode", "top_k")
    return {"dir": str(report_dir), **{k: summary.get(k) for k in keys}}


def _evidence(row: dict) -> list | None:
    value = row.get("evidence")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None


def why_changed(old: dict, new: dict, old_summary: dict, new_summary: dict) -> str:
    """Why an answer changed: the documents whose passages entered, left or changed in its evidence; else the setup."""
    before, now = _evidence(old), _evidence(new)
    if before is None or now is None:
        return "evidence not recorded for both runs"
    old_ids = {e[0]: (e[1], e[2]) for e in before}
    new_ids = {e[0]: (e[1], e[2]) for e in now}
    entered = {new_ids[i][1] for i in new_ids.keys() - old_ids.keys()}
    left = {old_ids[i][1] for i in old_ids.keys() - new_ids.keys()}
    retexted = {new_ids[i][1] for i in new_ids.keys() & old_ids.keys() if new_ids[i][0] != old_ids[i][0]}
    docs = []
    for source in sorted(entered | left | retexted):
        if source in retexted or (source in entered and source in left):
            docs.append(f"{source} (edited)")
        elif source in entered:
            docs.append(f"{source} (entered)")
        else:
            docs.append(f"{source} (left)")
    if docs:
        return "evidence changed: " + ", ".join(docs)
    if [e[0] for e in before] != [e[0] for e in now]:
        return "evidence changed: the same passages in another order"
    if old_summary.get("answer_setup") != new_summary.get("answer_setup"):
        return "same evidence: the model, prompt or settings differ"
    if not new_summary.get("answers_deterministic", True):
        return "same evidence and setup: the backend is not deterministic"
    return "same evidence and setup"


def compare_runs(old_dir: str | Path, new_dir: str | Path, new_rows: list[dict], new_summary: dict) -> dict:
    """compare_reports with the new side given in memory (write_report compares before its files exist)."""
    old_dir = Path(old_dir)
    old_summary = _read_summary(old_dir)
    old = {str(r.get("id")): r for r in load_rows(old_dir)}
    new = {str(r.get("id")): r for r in new_rows}
    cmp: dict = {"old": _side(old_dir, old_summary), "new": _side(Path(new_dir), new_summary)}
    cmp.update({key: [] for key, _ in CHANGE_LISTS})
    for qid, n in new.items():
        if qid not in old:
            cmp["only_new"].append({"id": qid, "question": n.get("question")})
            continue
        o = old[qid]
        item = {"id": qid, "question": n.get("question")}
        texts = {"old": _shown(o), "new": _shown(n)}
        before, now = _status(o), _status(n)
        if before != now:
            key = {"refused": "newly_refused", "answered": "newly_answered", "error": "newly_failed"}[now]
            cmp[key].append({**item, **texts, "why": why_changed(o, n, old_summary, new_summary)})
        elif now == "answered" and " ".join(texts["old"].split()) != " ".join(texts["new"].split()):
            cmp["answers_changed"].append({**item, **texts, "why": why_changed(o, n, old_summary, new_summary)})
        for field, gained, lost in (("correct", "correct_gained", "correct_lost"), ("hit", "hit_gained", "hit_lost")):
            # Only a real change counts: a figure missing on either side (retrieval only, nothing expected) is none.
            if o.get(field) is False and n.get(field) is True:
                cmp[gained].append(item)
            elif o.get(field) is True and n.get(field) is False:
                cmp[lost].append(item)
        if o.get("unsupported") is False and n.get("unsupported") is True:
            cmp["newly_flagged"].append({**item, "flag_reason": n.get("flag_reason")})
        elif o.get("unsupported") is True and n.get("unsupported") is False:
            cmp["flag_cleared"].append({**item, "flag_reason": o.get("flag_reason")})
    cmp["only_old"] = [{"id": qid, "question": o.get("question")} for qid, o in old.items() if qid not in new]
    cmp["deltas"] = {}
    for key in COMPARED:
        before, now = _figure(old_summary, key), _figure(new_summary, key)
        delta = None if before is None or now is None else now - before
        cmp["deltas"][key] = {"old": before, "new": now, "delta": delta}
    return cmp


def compare_reports(old_dir: str | Path, new_dir: str | Path) -> dict:
    """Per-question changes (answers, refusals, hits, correctness, support flags) and figure deltas from old to new."""
    return compare_runs(old_dir, new_dir, load_rows(new_dir), _read_summary(Path(new_dir)))


# ---------------------------------------------------------------- finding the previous report


def _created_at(summary: dict) -> datetime | None:
    """summary.json created_at as an aware datetime, None when absent or unreadable."""
    try:
        moment = datetime.fromisoformat(str(summary.get("created_at")))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _question_ids(report_dir: Path) -> set[str] | None:
    """The ids a report answered, None when its rows cannot be read."""
    try:
        return {str(r.get("id")) for r in load_rows(report_dir)}
    except (OSError, ValueError, KeyError):
        return None


def find_previous_report(
    reports_root: Path, current_dir: Path, questions_file: str, question_ids: list[str], audience: str | None = None
) -> Path | None:
    """The newest report under reports_root older than current_dir with the same question file name or question ids,
    and, when `audience` is given, made for the same readers (a report for other groups may hold what this run's
    readers must not see; one made before readers were kept was made from every document)."""
    reports_root, current_dir = Path(reports_root), Path(current_dir)
    if not reports_root.is_dir():
        return None
    # current_dir usually has no summary yet (it is being written): then every finished report is older.
    now = _created_at(_read_summary(current_dir)) or datetime.now(UTC)
    wanted_name = Path(str(questions_file)).name if questions_file else None
    wanted_ids = {str(i) for i in question_ids}
    candidates = []
    for folder in reports_root.iterdir():
        if not folder.is_dir() or folder.resolve() == current_dir.resolve() or not (folder / "summary.json").exists():
            continue
        summary = _read_summary(folder)
        created = _created_at(summary)
        older = created < now if created is not None else folder.name < current_dir.name
        if not older:
            continue
        if audience is not None and summary.get("audience", ALL_DOCUMENTS) != audience:
            continue
        same_file = (
            bool(wanted_name)
            and bool(summary.get("questions_file"))
            and (Path(str(summary["questions_file"])).name == wanted_name)
        )
        if same_file or (wanted_ids and _question_ids(folder) == wanted_ids):
            candidates.append((created or datetime.min.replace(tzinfo=UTC), folder.name, folder))
    return max(candidates)[2] if candidates else None


def history_of(
    reports_root: Path, current_dir: Path, questions_file: str, question_ids: list[str], audience: str | None = None
) -> list[dict]:
    """The set's earlier runs in this store (for the same audience when given), oldest first: when, accuracy,
    recall@k and unsupported answers."""
    runs, folder = [], find_previous_report(reports_root, current_dir, questions_file, question_ids, audience)
    while folder is not None and len(runs) < 20:
        summary = _read_summary(folder)
        runs.append({k: summary.get(k) for k in ("created_at", "accuracy", "recall_at_k", "unsupported")})
        folder = find_previous_report(reports_root, folder, questions_file, question_ids, audience)
    return runs[::-1]


# ---------------------------------------------------------------- markdown


def _one_line(text: object, limit: int = 200) -> str:
    """Text on one line, cut at limit characters, with markdown table pipes escaped."""
    flat = " ".join(str(text or "").split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def comparison_markdown(cmp: dict) -> str:
    """The comparison as markdown: figure deltas, then each kind of per-question change."""
    old, new = cmp["old"], cmp["new"]
    lines = [f"## Changes since {old.get('created_at') or 'the previous run'}", ""]
    lines.append(f"Compared with `{old.get('dir')}` (model {old.get('model')}); now model {new.get('model')}.")
    lines += ["", "| figure | before | now | change |", "|---|---|---|---|"]
    for key in COMPARED:
        d, show = cmp["deltas"][key], BY_KEY[key].show
        lines.append(f"| {BY_KEY[key].label} | {show(d['old'])} | {show(d['new'])} | {fmt_delta(key, d['delta'])} |")
    for key, label in CHANGE_LISTS:
        items = cmp[key]
        if not items:
            continue
        lines += ["", f"**{label} ({len(items)})**", ""]
        for item in items:
            line = f"- `{item['id']}` {_one_line(item.get('question'), 120)}"
            if item.get("flag_reason"):
                line += f" ({_one_line(item['flag_reason'], 80)})"
            if "old" in item:
                line += f"\n  - before: {_one_line(item['old'])}\n  - now: {_one_line(item['new'])}"
            if item.get("why"):
                line += f"\n  - why: {_one_line(item['why'])}"
            lines.append(line)
    if not any(cmp[key] for key, _ in CHANGE_LISTS):
        lines += ["", "No question changed."]
    return "\n".join(lines) + "\n"
