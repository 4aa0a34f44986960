"""A refresh by another process while a job reads the store: the job reads the store's current version from the
next question on, and no question loses its document (issue: the edited documents vanished for the rest of a job)."""

from __future__ import annotations

import subprocess

import pytest

from tasks.answer.options import RetrievalOptions
from tasks.answer.retrieve import retrieve_context
from tasks.settings import load_settings
from tests.conftest import KBFLOW, demo_store_copy

pytestmark = pytest.mark.slow

QUESTION = "How many people did Starling Home Robotics employ at the end of 2023?"


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_refresh_by_another_process_mid_job_keeps_every_question_on_its_document(
    tmp_path, cli_env, mode, demo_kb, demo_corpus_restored
):
    corpus = demo_corpus_restored  # the store's source: put back after the test
    store = demo_store_copy(demo_kb, tmp_path / "store")
    cfg = load_settings(store_dir=str(store))

    def ask() -> list[dict]:
        options = RetrievalOptions(top_k=5, mode=mode)
        return retrieve_context.fn(QUESTION, cfg.store_config(), cfg.embedder_config(), options)["passages"]

    before = ask()
    assert before[0]["source"] == "company/about_starling.txt" and len(before) == 5

    # The nightly refresh, in its own process, while this "job" keeps its store open.
    gold = corpus / "company" / "about_starling.txt"
    gold.write_text(gold.read_text(encoding="utf-8") + "\nIn 2024 Starling opened an office in Munich.\n", "utf-8")
    refreshed = subprocess.run(
        [KBFLOW, "ingest", str(corpus), "--store", str(store), "--json"], env=cli_env, capture_output=True, text=True
    )
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]

    for _ in range(3):  # every later question of the job, not only the first after the refresh
        after = ask()
        assert len(after) == 5  # top-k counts passages that exist
        assert after[0]["source"] == "company/about_starling.txt"
        assert any("412" in p["text"] for p in after if p["source"] == "company/about_starling.txt")
    assert {p["chunk_id"] for p in after} != {p["chunk_id"] for p in before}  # the new version's chunks


def test_a_question_asked_after_another_process_refreshed_its_document_is_answered_from_it(
    tmp_path, cli_env, demo_kb, demo_corpus_restored, monkeypatch
):
    """With the model (SmolLM2, short answers): the same process answers before and after a refresh by another
    process; the second answer is generated anew from the document's new version, not reused or lost."""
    import json

    from flows.answer import answer_flow

    corpus = demo_corpus_restored  # the store's source: put back after the test
    store = demo_store_copy(demo_kb, tmp_path / "store")
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "48")
    out = tmp_path / "reports"

    def answer(name: str) -> dict:
        answer_flow(question=QUESTION, store_dir=str(store), out_dir=str(out / name))
        return json.loads((out / name / "rows.jsonl").read_text(encoding="utf-8").splitlines()[0])

    first = answer("before")
    assert first["answer_source"] == "generated"
    gold = corpus / "company" / "about_starling.txt"
    text = gold.read_text(encoding="utf-8").replace("412 people", "436 people")
    assert "436 people" in text
    gold.write_text(text, encoding="utf-8")
    refreshed = subprocess.run(
        [KBFLOW, "ingest", str(corpus), "--store", str(store), "--json"], env=cli_env, capture_output=True, text=True
    )
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]
    assert json.loads(refreshed.stdout)["updated"] == 1

    second = answer("after")
    assert second["answer_source"] == "generated"  # new evidence: never the cached answer of the old version
    evidence = [e[2] for e in second["evidence"]]
    assert "company/about_starling.txt" in evidence
    assert second["evidence"] != first["evidence"]
