"""Whole-knowledge-base mode (--mode all) on the demo corpus, with the bundled SmolLM2."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from flows.answer import answer_flow
from flows.errors import QuestionsFailed
from flows.ingest import ingest_flow
from tasks.answer.backends import load_llama
from tasks.answer.models import bundled_gguf
from tasks.answer.options import RetrievalOptions
from tasks.answer.prompts import build_messages
from tasks.answer.retrieve import retrieve_context
from tasks.embed.embedder import EmbedderConfig
from tasks.store.base import StoreConfig
from tests.conftest import DEMO_CORPUS, store_state

pytestmark = pytest.mark.slow

QUESTION = "How many fingerprints can the Starling Lock L2 store?"


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """The demo corpus ingested once for this module (its tests only read the store)."""
    root = tmp_path_factory.mktemp("demo-all")
    corpus = shutil.copytree(DEMO_CORPUS, root / "corpus")
    summary = ingest_flow(source_path=str(corpus), store_dir=str(root / "store"))
    assert summary["failed"] == []
    return root / "store"


def every_chunk(store, prefix=None) -> list[dict]:
    return retrieve_context.fn(
        "any question",
        StoreConfig(store_dir=str(store), collection="knowledge"),
        EmbedderConfig(),
        RetrievalOptions(mode="all", top_k=5, source_prefix=prefix),
    )["passages"]


def one_question(tmp_path):
    path = tmp_path / "q.csv"
    pd.DataFrame(
        [
            {
                "id": "l2",
                "question": QUESTION,
                "expected_answer": "100",
                "expected_source": "products/lock_l2_quickstart.md",
            }
        ]
    ).to_csv(path, index=False)
    return path


def test_mode_all_returns_every_chunk_in_document_order(demo_store):
    by_source = store_state(demo_store)["by_source"]
    got = every_chunk(demo_store)
    assert [p["chunk_id"] for p in got] == [c["id"] for src in sorted(by_source) for c in by_source[src]]
    assert {p["score"] for p in got} == {1.0} and len(got) > 50
    under = every_chunk(demo_store, "products/")
    assert [p["chunk_id"] for p in under] == [
        c["id"] for src in sorted(by_source) if src.startswith("products/") for c in by_source[src]
    ]


def test_mode_all_answers_from_every_chunk_uncut_when_they_fit(demo_store, tmp_path, monkeypatch):
    monkeypatch.setenv("KBFLOW_N_CTX", "8192")
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "32")
    out = tmp_path / "report"
    summary = answer_flow(
        questions_path=str(one_question(tmp_path)),
        store_dir=str(demo_store),
        out_dir=str(out),
        mode="all",
        source_prefix="products/",
        llm_model="smollm2",
    )
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["mode"] == "all"
    assert (summary["errors"], summary["refused"], summary["recall_at_k"]) == (0, 0, 1.0)
    row = json.loads((out / "rows.jsonl").read_text(encoding="utf-8").splitlines()[0])
    passages = every_chunk(demo_store, "products/")
    assert [r["chunk_id"] for r in row["retrieved"]] == [p["chunk_id"] for p in passages]
    # The prompt the model read is exactly every chunk, whole: nothing was cut to fit.
    backend = load_llama(str(bundled_gguf()), 8192, summary_threads(), "", 1.0)
    assert row["prompt_tokens"] == backend.count_tokens(build_messages(QUESTION, passages, "en"))
    assert row["answer"].strip() and row["completion_tokens"] > 0


def summary_threads() -> int:
    from tasks.settings import load_settings

    return load_settings().threads


def test_mode_all_refuses_a_knowledge_base_too_large_for_the_window(demo_store, tmp_path, monkeypatch):
    monkeypatch.setenv("KBFLOW_N_CTX", "512")
    out = tmp_path / "report"
    with pytest.raises(QuestionsFailed) as failed:
        answer_flow(
            questions_path=str(one_question(tmp_path)),
            store_dir=str(demo_store),
            out_dir=str(out),
            mode="all",
            llm_model="smollm2",
        )
    summary = failed.value.summary
    assert (summary["mode"], summary["errors"], summary["answered"]) == ("all", 1, 0)
    table = pd.read_csv(out / "answers.csv", keep_default_na=False)
    n_chunks = len(every_chunk(demo_store))
    error = table.loc[0, "error"]
    assert error.startswith(f"the whole knowledge base ({n_chunks} chunks, ")
    assert error.endswith(
        "tokens) does not fit in n_ctx 512 with max_tokens 256: use hybrid retrieval or a longer-context model"
    )
    assert table.loc[0, "answer"] == "" and int(table.loc[0, "completion_tokens"]) == 0
