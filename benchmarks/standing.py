"""Standing question sets: what a re-run costs once the answers are in the store's answer cache.

    .venv/bin/python benchmarks/standing.py --model qwen2.5-1.5b --questions 300 --resume-questions 100

On CMRC 2018 trial paragraphs (Chinese) and questions, with `kbflow ask` as a user runs it (a fresh process each
time, the store's own Prefect home), it measures:
- the first run of N questions (every answer generated), and a re-run with nothing changed;
- a re-run after one document was edited and re-ingested: answers regenerated (and how many had that document
  in their evidence), and its wall time;
- a run of M other questions killed (SIGKILL) at half, then resumed: generations in all, against M + 1;
- a retrieval-only run of 10,000 questions: task runs per 1,000 questions, peak RSS, report.html size.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CMRC, REPO, load_cmrc, save, write_cmrc_folder  # noqa: E402 - run as a script: the repository goes on sys.path first
from tasks.offline import OFFLINE_ENV  # noqa: E402 - the same

KBFLOW = str(REPO / ".venv" / "bin" / "kbflow")


def write_questions(path: Path, questions: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "question", "expected_answer", "expected_source"])
        for q in questions:
            out.writerow([q["id"], q["question"], json.dumps(q["answers"], ensure_ascii=False), q["source"]])


PEAK_RSS_MB: dict[str, float] = {}


def kbflow(args: list[str], env: dict) -> tuple[dict, float]:
    """Run `kbflow ... --json`; its JSON summary and wall seconds (its own peak RSS goes to PEAK_RSS_MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [KBFLOW, *args, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    PEAK_RSS_MB[args[0]] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode not in (0, 1):
        raise SystemExit(f"kbflow {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out), wall


def cached(store: Path) -> int:
    with sqlite3.connect(store / "answers.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def task_runs_of_last_flow_run(store: Path) -> int:
    """Task runs of the newest flow run in the store's own Prefect database (where `kbflow` runs report)."""
    with sqlite3.connect(store / "prefect" / "home" / "prefect.db") as db:
        (flow_run,) = db.execute("SELECT id FROM flow_run ORDER BY created DESC LIMIT 1").fetchone()
        return db.execute("SELECT COUNT(*) FROM task_run WHERE flow_run_id = ?", (flow_run,)).fetchone()[0]


def bulk_run(args, questions: list[dict], store: Path, work: Path) -> dict:
    """A retrieval-only run of --bulk questions: wall time, task runs, peak RSS, report size."""
    env = {**os.environ, **OFFLINE_ENV}
    # 5: a bulk retrieval-only run: task runs, memory, report size. It runs in a process of its own (a child of a
    # child), so its peak RSS is its own, not the largest of the earlier runs'.
    bulk = [{**q, "id": f"{q['id']}-{n}"} for n in range(args.bulk // len(questions) + 1) for q in questions]
    bfile = work / "bulk.csv"
    write_questions(bfile, bulk[: args.bulk])
    measured = subprocess.run(
        [sys.executable, __file__, "--bulk-child", str(bfile), "--store", str(store), "--out", str(work / "bulk")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    bulk_summary, bulk_s, bulk_rss = json.loads(measured.stdout)
    page = work / "bulk" / "report.html"
    return {
        "questions": bulk_summary["questions"],
        "wall_s": round(bulk_s, 1),
        "task_runs": task_runs_of_last_flow_run(store),
        "task_runs_per_1000_questions": round(1000 * task_runs_of_last_flow_run(store) / bulk_summary["questions"], 1),
        "peak_rss_mb": round(bulk_rss),
        "report_html_mb": round(page.stat().st_size / 1e6, 2),
        "details_pages": len(list((work / "bulk").glob("details-*.html"))),
        "recall_at_k": bulk_summary["recall_at_k"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--style", default="short", help="answer style (short: the answer alone, fewer tokens)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--resume-questions", type=int, default=100)
    ap.add_argument("--bulk", type=int, default=10_000, help="questions of the retrieval-only run")
    ap.add_argument("--store", default="/tmp/kbflow-bench-standing")
    ap.add_argument("--cmrc", type=Path, default=CMRC)
    ap.add_argument("--name", default="standing")
    ap.add_argument("--bulk-child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--only-bulk", action="store_true", help="run the retrieval-only bulk part alone")
    args = ap.parse_args()
    if args.bulk_child:  # one retrieval-only run, measured on its own
        summary, wall = kbflow(
            ["ask", args.bulk_child, "--store", args.store, "--retrieval-only", "--out", args.out],
            {**os.environ, **OFFLINE_ENV},
        )
        print(json.dumps([summary, wall, PEAK_RSS_MB["ask"]]))
        return

    # The machine runs nothing else: both cores answer; three passages and short answers keep a question cheap.
    tuning = {"KBFLOW_THREADS": str(args.threads), "KBFLOW_TOP_K": str(args.top_k), "KBFLOW_MAX_TOKENS": "48"}
    env = {**os.environ, **OFFLINE_ENV, "KBFLOW_LLM_MODEL": args.model, "KBFLOW_ANSWER_STYLE": args.style, **tuning}
    store = Path(args.store)
    docs = store.parent / (store.name + "-docs")
    work = store.parent / (store.name + "-work")
    work.mkdir(parents=True, exist_ok=True)
    if not (store / "ledger.sqlite").exists():
        write_cmrc_folder(docs, args.cmrc)
        kbflow(["ingest", str(docs), "--store", str(store)], env)
    _, questions = load_cmrc(args.cmrc)
    questions = [q for q in questions if q["question"].strip()]  # the trial set has an empty question
    random.Random(11).shuffle(questions)
    standing = questions[: args.questions]
    others = questions[args.questions : args.questions + args.resume_questions]
    if args.only_bulk:
        print(json.dumps(bulk_run(args, questions, store, work), indent=2))
        return
    (store / "answers.sqlite").unlink(missing_ok=True)  # the first run starts with an empty answer cache
    result: dict = {
        "model": args.model,
        "answer_style": args.style,
        "questions": len(standing),
        "documents": len(list(docs.glob("*.txt"))),
    }

    # 1-2: the first run, then the same command again.
    qfile = work / "standing.csv"
    write_questions(qfile, standing)
    ask = ["ask", str(qfile), "--store", str(store)]
    first, first_s = kbflow([*ask, "--out", str(work / "first")], env)
    again, again_s = kbflow([*ask, "--out", str(work / "again")], env)
    result["first_run"] = {
        "wall_s": round(first_s, 1),
        "generated": first["answers_generated"],
        "reused": first["answers_reused"],
        "accuracy": first["accuracy"],
    }
    result["rerun_nothing_changed"] = {
        "wall_s": round(again_s, 1),
        "generated": again["answers_generated"],
        "reused": again["answers_reused"],
        "share_of_first_run": round(again_s / first_s, 4),
    }

    # 3: edit the document that is the gold source of the most standing questions, refresh, re-run.
    counts: dict[str, int] = {}
    for q in standing:
        counts[q["source"]] = counts.get(q["source"], 0) + 1
    edited = max(counts, key=counts.get)
    with (docs / edited).open("a", encoding="utf-8") as fh:
        fh.write("\n本段由基准测试追加，用于检验只重新回答受影响的问题。\n")
    refresh, refresh_s = kbflow(["ingest", str(docs), "--store", str(store)], env)
    rows = [json.loads(line) for line in (work / "again" / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    touched = sum(any(e[2] == edited for e in (r.get("evidence") or [])) for r in rows)
    after, after_s = kbflow([*ask, "--out", str(work / "after-edit")], env)
    result["rerun_after_one_edit"] = {
        "edited": edited,
        "refresh_wall_s": round(refresh_s, 1),
        "refresh_updated": refresh["updated"],
        "wall_s": round(after_s, 1),
        "generated": after["answers_generated"],
        "reused": after["answers_reused"],
        "questions_with_that_document_in_their_evidence": touched,
        "answers_changed": len(after["comparison"]["answers_changed"]) if after.get("comparison") else None,
    }

    # 4: another set killed at half, then resumed with the same command.
    rfile = work / "resume.csv"
    write_questions(rfile, others)
    before = cached(store)
    resume_ask = ["ask", str(rfile), "--store", str(store), "--out", str(work / "resumed")]
    proc = subprocess.Popen(
        [KBFLOW, *resume_ask], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    started = time.perf_counter()
    while proc.poll() is None and cached(store) - before < len(others) // 2:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_s, kept = time.perf_counter() - started, cached(store) - before
    resumed, resumed_s = kbflow(resume_ask, env)
    result["killed_and_resumed"] = {
        "questions": len(others),
        "answered_before_the_kill": kept,
        "killed_after_s": round(killed_s, 1),
        "resumed_wall_s": round(resumed_s, 1),
        "generated_on_resume": resumed["answers_generated"],
        "reused_on_resume": resumed["answers_reused"],
        "generations_in_all": kept + resumed["answers_generated"],
        "answerable": resumed["questions"] - resumed["refused"] - resumed["errors"],
    }

    result["bulk_retrieval_only"] = bulk_run(args, questions, store, work)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    print(f"saved {save(args.name, result)}")


if __name__ == "__main__":
    main()
