"""Re-score stored answers with an earlier normalize_numbers and this one, without a model.

    .venv/bin/python benchmarks/rescore_numbers.py REPORT_DIR... [--old-rev REV] [--stores GLOB]

REPORT_DIR: a run's report folder (rows.jsonl, summary.json). The earlier tasks/text.py is read from git at REV
(default 461990a, the last commit before cn2an/text2num). For each run: accuracy (the report's own answer_correct) with
either normalize_numbers, and every answer whose correctness or whose figures (the numbers the grounding check reads)
changed. With --stores (a glob of Chroma SQLite files, read-only), the grounding check is run again too, on the cited
and retrieved passages' texts found there by chunk id.
"""

from __future__ import annotations

import argparse
import glob
import json
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import tasks.report.grounding as grounding
import tasks.report.metrics as metrics
import tasks.text as text
from tasks.report.metrics import answer_correct, expected_answers

ROOT = Path(__file__).resolve().parents[1]


def old_normalize(rev: str):
    """normalize_numbers as tasks/text.py had it at git revision rev."""
    source = subprocess.run(
        ["git", "show", f"{rev}:tasks/text.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("old_text")
    exec(compile(source, f"{rev}:tasks/text.py", "exec"), module.__dict__)  # noqa: S102 - our own file at rev
    return module.normalize_numbers


def passage_texts(pattern: str) -> dict[str, str]:
    """chunk id -> text, from every Chroma SQLite file matching pattern (opened read-only)."""
    texts: dict[str, str] = {}
    for db in sorted(glob.glob(pattern)):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        query = (
            "select e.embedding_id, m.string_value from embeddings e join embedding_metadata m on m.id = e.id "
            "where m.key = 'chroma:document'"
        )
        for chunk_id, doc in con.execute(query):
            texts.setdefault(chunk_id, doc)
        con.close()
    return texts


def use(normalize) -> None:
    # Each module that reads numbers looks normalize_numbers up in its own namespace.
    for module in (text, grounding, metrics):
        if hasattr(module, "normalize_numbers"):
            module.normalize_numbers = normalize


def judge(rows: list[dict], normalize, regrade: bool) -> list[tuple]:
    """(correct, figures, grounding) of each stored answer with this normalize_numbers."""
    use(normalize)
    out = []
    for r in rows:
        answers = expected_answers(r.get("expected_answer"))
        prediction = "" if r.get("error") else str(r.get("answer") or "")
        correct = answer_correct(prediction, answers, str(r.get("question") or "")) if answers else None
        out.append(
            (correct, sorted(grounding._Text(prediction).numbers), grounding.check_grounding(r) if regrade else None)
        )
    return out


def accuracy(results: list[tuple], judged: list[int]) -> str:
    return f"{sum(results[i][0] for i in judged) / len(judged):.3f}" if judged else "n/a"


def flagged(results: list[tuple]) -> str:
    """Answers flagged unsupported, n/a when the grounding check was not run again."""
    return "n/a" if results and results[0][2] is None else str(sum(bool(g["unsupported"]) for _, _, g in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--old-rev", default="461990a")
    parser.add_argument("--stores", help="glob of chroma.sqlite3 files holding the runs' passages")
    args = parser.parse_args()
    old, new = old_normalize(args.old_rev), text.normalize_numbers
    texts = passage_texts(args.stores) if args.stores else {}
    print("| run | judged | accuracy before | after | unsupported before | after |\n|---|---|---|---|---|---|")
    changes = []
    for run in args.runs:
        rows = [json.loads(line) for line in (run / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
        for r in rows:
            for p in (r.get("retrieved") or []) + (r.get("citations") or []):
                p["text"] = texts.get(p.get("chunk_id"))
        before, after = judge(rows, old, bool(texts)), judge(rows, new, bool(texts))
        use(new)
        judged = [i for i, b in enumerate(before) if b[0] is not None]

        a, f = (accuracy(before, judged), accuracy(after, judged)), (flagged(before), flagged(after))
        print(f"| {run.name} | {len(judged)} | {a[0]} | {a[1]} | {f[0]} | {f[1]} |")
        for r, b, a in zip(rows, before, after):
            if b != a:
                changes.append({"run": run.name, "id": r["id"], "answer": r.get("answer"), "before": b, "after": a})
    print(f"\n{len(changes)} answer(s) changed:")
    for change in changes:
        print(json.dumps(change, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
