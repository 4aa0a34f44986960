"""Load (issue 32): two bulk `kbflow ask` jobs and a refresh at once on one store. Both jobs finish, each report
has every question exactly once, the store holds exactly the current files' chunks, and the answer cache holds
one row per question and evidence."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import time
from collections import Counter

import pytest

from tasks.answer.cache import answer_key
from tasks.store import keyword
from tasks.store.base import StoreConfig
from tests.conftest import KBFLOW, REPO, assert_store_matches_folder, demo_store_copy, stop_process

pytestmark = pytest.mark.slow

EDITED = "company/about_starling.txt"


def write_question_set(path) -> list[str]:
    """Five of the demo's English questions and one it cannot answer, with the edited document's question first and
    again last: the last one is asked after the refresh. Returns the ids."""
    with (REPO / "docs" / "demo" / "questions.csv").open(encoding="utf-8") as fh:
        demo = [r for r in csv.DictReader(fh) if r["id"] in ("en-01", "en-02", "en-03", "en-05", "en-07", "none-01")]
    starling = next(r for r in demo if r["expected_source"] == EDITED)
    rows = [starling, *(r for r in demo if r is not starling), {**starling, "id": "en-07-again"}]
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(starling))
        out.writeheader()
        out.writerows(rows)
    return [r["id"] for r in rows]


def rows_files(store) -> list:
    """The running jobs' row files (STORE/work/answers-RUN.jsonl, removed when a run ends)."""
    return sorted((store / "work").glob("answers-*.jsonl"))


def lines(path) -> int:
    try:
        return len(path.read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return -1  # the run ended


def test_two_bulk_jobs_and_a_refresh_at_once_lose_and_duplicate_nothing(
    tmp_path, cli_env, demo_kb, demo_corpus_restored
):
    from flows.ingest import ingest_flow

    corpus = demo_corpus_restored  # the store's source: put back after the test
    store = demo_store_copy(demo_kb, tmp_path / "store")
    qfile = tmp_path / "questions.csv"
    ids = write_question_set(qfile)
    # SmolLM2 (the bundled default), short answers and 3 passages: each question takes about a second.
    env = {**cli_env, "KBFLOW_MAX_TOKENS": "16", "KBFLOW_TOP_K": "3"}
    jobs = [
        subprocess.Popen(
            [KBFLOW, "ask", str(qfile), "--store", str(store), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        # The refresh starts once both jobs are answering (each has a row written).
        deadline = time.monotonic() + 120
        while not (len(files := rows_files(store)) == 2 and all(lines(f) >= 1 for f in files)):
            assert all(j.poll() is None for j in jobs), "a job ended before both had answered a question"
            assert time.monotonic() < deadline, "the two jobs did not start answering within 120 s"
            time.sleep(0.1)
        gold = corpus / EDITED
        text = gold.read_text(encoding="utf-8").replace("412 people", "436 people")
        assert "436 people" in text
        gold.write_text(text, encoding="utf-8")
        refreshed = ingest_flow(source_path=str(corpus), store_dir=str(store))
        assert (refreshed["updated"], refreshed["failed"]) == (1, [])
        done_at_refresh = [lines(f) for f in files]
        # The last question (en-07-again) had not started in either job: it is asked after the refresh.
        assert all(0 <= n <= len(ids) - 2 for n in done_at_refresh), f"rows done at the refresh: {done_at_refresh}"
        outputs = [j.communicate(timeout=180) for j in jobs]
    finally:
        for j in jobs:
            if j.poll() is None:
                stop_process(j)

    # Both finish, with exit 0.
    assert [j.returncode for j in jobs] == [0, 0], [err[-3000:] for _, err in outputs]
    summaries = [json.loads(out) for out, _ in outputs]

    # The store holds exactly the current files' chunks: Chroma, the ledger and the keyword index agree.
    state = assert_store_matches_folder(store, corpus)
    edited_now = {c["id"] for c in state["by_source"][EDITED]}
    assert any("436 people" in c["text"] for c in state["by_source"][EDITED])

    # Two reports, each with every question exactly once, and the question asked after the refresh answered from
    # the document's new version.
    assert len({s["report_dir"] for s in summaries}) == 2, "both jobs wrote the same report folder"
    for s in summaries:
        rows = [json.loads(line) for line in (tmp_path / s["report_dir"] / "rows.jsonl").open(encoding="utf-8")]
        assert Counter(r["id"] for r in rows) == Counter(ids)
        assert s["questions"] == len(ids) and s["errors"] == 0
        last = next(r for r in rows if r["id"] == "en-07-again")
        assert last["retrieved"] and last["retrieved"][0]["chunk_id"] in edited_now
        assert last["answer_source"] in ("generated", "reused")
    config = StoreConfig(store_dir=str(store), collection="knowledge")
    assert keyword.is_current(config)
    index, done = keyword.refresh(config)
    assert done == "current" and index.chunk_ids() == state["ids"]

    # The answer cache: one row per (question, setup, evidence), and every report answer made from the store's
    # current chunks is there, under its key.
    with sqlite3.connect(store / "answers.sqlite") as db:
        cached = db.execute("SELECT key, question, setup, evidence FROM answers").fetchall()
    per_evidence = Counter((q, setup, json.dumps([e[:2] for e in json.loads(ev)])) for _, q, setup, ev in cached)
    assert cached and max(per_evidence.values()) == 1
    keys = {key for key, *_ in cached}
    for s in summaries:
        for r in map(json.loads, (tmp_path / s["report_dir"] / "rows.jsonl").open(encoding="utf-8")):
            if r["evidence"] and all(e[0] in state["ids"] for e in r["evidence"]):
                assert answer_key(r["question"], s["answer_setup"], r["evidence"]) in keys, r["id"]
