"""Two bulk jobs and a refresh at once on one store, against the same three one after another (issue 32, Load).

    .venv/bin/python benchmarks/concurrent_jobs.py --model qwen2.5-1.5b --questions 13

On the held-out corpus (benchmarks/heldout: 16 documents, English and Chinese), with `kbflow` run from the shell
as a user runs it (no PREFECT_* setting: the store's own background server and warm process), each mode starts
from a fresh store of a fresh copy of the corpus, ingested before the clock starts, with an empty answer cache:
- job A: `kbflow ask` of the first N English questions; job B: of the first N Chinese questions;
- the refresh: one gold document of each job edited (a sentence appended), then `kbflow ingest` of the folder.
"sequential" runs A, B, then the refresh; "concurrent" starts A and B together and the refresh once both are
answering (their first rows written). Recorded for each mode: wall time of the whole, of each command, seconds a
question, and the checks of the load test (tests/flows/test_concurrent_jobs.py): every question in its report
exactly once, the store holding exactly the current files' chunks (Chroma, ledger and keyword index agree), and
answer-cache rows against distinct (question, setup, evidence).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import KBFLOW, REPO, run_kbflow, save, wait_warm  # noqa: E402 - run as a script
from tasks.offline import OFFLINE_ENV  # noqa: E402 - the same

HELDOUT = REPO / "benchmarks" / "heldout"
TEXT = (".md", ".txt")  # the edited documents: a sentence appended keeps them valid


def shell_env(**extra: str) -> dict:
    """A user's shell: no Prefect or kbflow settings but the ones given (the store's own Prefect server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KBFLOW_"))}
    return {**env, **OFFLINE_ENV, **extra}


def write_set(source: Path, target: Path, n: int) -> list[dict]:
    """The first n questions of a held-out set, as a question file of its own."""
    with source.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:n]
    with target.open("w", encoding="utf-8", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    return rows


def start(args: list[str], env: dict) -> tuple[subprocess.Popen, float, dict]:
    """Start `kbflow ARGS`; a thread reads its output (a full pipe never stalls it) and notes when it ends."""
    proc = subprocess.Popen([KBFLOW, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done: dict = {}

    def read() -> None:
        done["out"], done["err"] = proc.communicate()
        done["ended"] = time.perf_counter()

    done["reader"] = threading.Thread(target=read, daemon=True)
    done["reader"].start()
    return proc, time.perf_counter(), done


def finish(proc: subprocess.Popen, started: float, done: dict, what: str) -> tuple[dict, float]:
    """Wait for a started command: its JSON summary and its own wall seconds (from its start to its end)."""
    done["reader"].join()
    if proc.returncode != 0:
        sys.exit(f"{what} failed ({proc.returncode}): {done['err'][-3000:]}")
    return json.loads(done["out"]), done["ended"] - started


def edit(corpus: Path, paths: list[str]) -> None:
    """Append a sentence to each gold document: the refresh has real work (one file of each job's questions)."""
    for rel in paths:
        doc = corpus / rel
        doc.write_bytes(doc.read_bytes() + b"\n\nThis paragraph was added by the load benchmark.\n")


def answering(store: Path, jobs: int) -> bool:
    """Whether `jobs` runs have each written a row (STORE/work/answers-RUN.jsonl, one line a question)."""
    files = list((store / "work").glob("answers-*.jsonl"))
    try:
        return len(files) >= jobs and all(f.stat().st_size > 0 for f in files)
    except FileNotFoundError:
        return False


def checks(store: Path, corpus: Path, summaries: dict[str, dict], sets: dict[str, list[dict]]) -> dict:
    """What must hold after the three: no answer lost or duplicated, the store true to the folder, the cache."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from tasks.ingest.ledger import Ledger
    from tasks.store import keyword
    from tasks.store.base import StoreConfig

    reports = {}
    for job, summary in summaries.items():
        rows = [json.loads(line) for line in (Path(summary["report_dir"]) / "rows.jsonl").open(encoding="utf-8")]
        got, wanted = Counter(r["id"] for r in rows), Counter(q["id"] for q in sets[job])
        reports[job] = {
            "report_dir": summary["report_dir"],
            "questions": len(wanted),
            "answers_lost": sum((wanted - got).values()),
            "answers_duplicated": sum((got - wanted).values()),
            "errors": summary["errors"],
            "generated": summary.get("answers_generated"),
            "reused": summary.get("answers_reused"),
            "accuracy": summary.get("accuracy"),
        }
    client = chromadb.PersistentClient(path=str(store / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    got = client.get_collection("knowledge", embedding_function=None).get(include=["metadatas"])
    chroma_ids = got["ids"]
    with Ledger.of_store(store, "knowledge") as ledger:
        ledger_ids = ledger.all_chunk_ids()
    index, done = keyword.refresh(StoreConfig(store_dir=str(store), collection="knowledge"), save=False)
    files = {
        p.relative_to(corpus).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in corpus.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    stale = [m["source"] for m in got["metadatas"] if files.get(m["source"]) != m["doc_sha256"]]
    with sqlite3.connect(store / "answers.sqlite") as db:
        cached = db.execute("SELECT question, setup, evidence FROM answers").fetchall()
    distinct = {(q, s, json.dumps([e[:2] for e in json.loads(ev)])) for q, s, ev in cached}
    return {
        "reports": reports,
        "store": {
            "chroma_chunks": len(chroma_ids),
            "duplicate_chunk_ids": len(chroma_ids) - len(set(chroma_ids)),
            "chroma_equals_ledger": set(chroma_ids) == ledger_ids,
            "keyword_index_current": done == "current",
            "keyword_equals_ledger": index.chunk_ids() == ledger_ids,
            "chunks_of_an_old_or_missing_file": len(stale),
            "files_without_chunks": len(set(files) - {m["source"] for m in got["metadatas"]}),
        },
        "answer_cache": {"rows": len(cached), "distinct_question_setup_evidence": len(distinct)},
    }


def run_mode(mode: str, args, sets: dict[str, list[dict]], qfiles: dict[str, Path], work: Path, env: dict) -> dict:
    """One mode on a fresh store: the two jobs and the refresh, timed; then the checks."""
    corpus, store = work / mode / "corpus", work / mode / "store"
    shutil.copytree(HELDOUT / "corpus", corpus)
    setup_s, _ = run_kbflow("ingest", str(corpus), "--store", str(store), "--json", env=env)
    warm = wait_warm(store)  # as it is a few seconds after a user's first command
    gold = sorted(
        {next(q["expected_source"] for q in sets[job] if q["expected_source"].endswith(TEXT)) for job in sets}
    )
    asks = {job: ["ask", str(qfiles[job]), "--store", str(store), "--json"] for job in ("A", "B")}
    refresh = ["ingest", str(corpus), "--store", str(store), "--json"]
    walls, summaries = {}, {}
    started = time.perf_counter()
    if mode == "sequential":
        for job in ("A", "B"):
            summaries[job], walls[f"job_{job}_s"] = finish(*start(asks[job], env), f"job {job}")
        edit(corpus, gold)
        refreshed, walls["refresh_s"] = finish(*start(refresh, env), "refresh")
    else:
        running = {job: start(asks[job], env) for job in ("A", "B")}
        while not answering(store, 2):
            if any(proc.poll() is not None for proc, *_ in running.values()):
                break  # a job ended before both answered: its error is reported below
            time.sleep(0.2)
        refresh_started = time.perf_counter() - started
        edit(corpus, gold)
        refreshed, walls["refresh_s"] = finish(*start(refresh, env), "refresh")
        walls["refresh_started_after_s"] = round(refresh_started, 1)
        for job, started_job in running.items():
            summaries[job], walls[f"job_{job}_s"] = finish(*started_job, f"job {job}")
    total = time.perf_counter() - started
    questions = sum(len(s) for s in sets.values())
    return {
        "setup_ingest_s": round(setup_s, 1),
        "warm_process_ready": warm,
        "edited": gold,
        "refresh_updated": refreshed["updated"],
        "wall_s": round(total, 1),
        **{k: round(v, 1) for k, v in walls.items()},
        "seconds_a_question": round(total / questions, 2),
        **checks(store, corpus, summaries, sets),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--questions", type=int, default=13, help="questions of each job")
    ap.add_argument("--work", default="/tmp/kbflow-bench-concurrent")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (stores, corpora, reports)")
    ap.add_argument("--name", default="concurrent-jobs")
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sets, qfiles = {}, {}
    for job, lang in (("A", "en"), ("B", "zh")):
        qfiles[job] = work / f"job-{job}-{lang}.csv"
        sets[job] = write_set(HELDOUT / f"questions_{lang}.csv", qfiles[job], args.questions)
    env = shell_env(KBFLOW_LLM_MODEL=args.model)
    from tasks.settings import load_settings

    cfg = load_settings(llm_model=args.model)
    result: dict = {
        "corpus": "benchmarks/heldout/corpus",
        "model": args.model,
        "questions_per_job": args.questions,
        "jobs": {"A": f"{args.questions} English questions", "B": f"{args.questions} Chinese questions"},
        "cpus": os.cpu_count(),
        "threads_setting": cfg.threads,
        "top_k": cfg.top_k,
        "max_tokens": cfg.max_tokens,
    }
    stores = []
    try:
        for mode in ("sequential", "concurrent"):
            stores.append(work / mode / "store")
            result[mode] = run_mode(mode, args, sets, qfiles, work, env)
            print(mode, json.dumps(result[mode], indent=2), flush=True)
        result["concurrent_over_sequential"] = round(result["concurrent"]["wall_s"] / result["sequential"]["wall_s"], 3)
        print(f"concurrent / sequential wall: {result['concurrent_over_sequential']}")
        print(f"saved {save(args.name, result)}")
    finally:
        for store in stores:
            subprocess.run([KBFLOW, "server", "stop", "--store", str(store)], env=env, capture_output=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
