"""Questions about an English corpus of our own find their own document in the top 5 (issue 26, part 3).

`kbflow dataset export` writes questions from sampled chunks; a fine-tune is only as good as the retrieval that
gives it its passages, so the questions must retrieve the document they were written from. The corpus
(tests/data/heldout_en: 15 short documents of one company, with overlapping words: four appliance manuals, HR and
IT policies) is held out from everything the retrieval was tuned on. Its questions (tests/data/heldout_en_questions.csv,
36 of them, every document asked about) are the export's own: dataset_flow(chunks=40, pairs_per_chunk=2,
distractors=0, llm_model="qwen2.5-1.5b"), seed 0, on a store of this corpus; SmolLM2 wrote no usable pair (24 of 24
replies without one), so they are kept as a file and the test needs no model.

Measured (retrieval only, top 5): multilingual-use-v3 (the default) hybrid 1.0, dense 1.0, keyword 0.972;
all-MiniLM-L6-v2 hybrid 0.972.
"""

from __future__ import annotations

import csv

import pytest

from flows.answer import answer_flow
from flows.ingest import ingest_flow
from tests.conftest import DATA

pytestmark = pytest.mark.slow

CORPUS = DATA / "heldout_en"
QUESTIONS = DATA / "heldout_en_questions.csv"
# Measured 1.0 (36 of 36) with the default embedder; 0.972 with all-MiniLM-L6-v2.
RECALL_AT_5 = 0.9


def test_questions_retrieve_their_own_document_at_recall_5(tmp_path):
    """recall@5 of every question's own document, with the default embedder and hybrid retrieval."""
    store = tmp_path / "store"
    assert ingest_flow(source_path=str(CORPUS), store_dir=str(store))["failed"] == []
    with QUESTIONS.open(encoding="utf-8") as fh:
        expected = {r["id"]: r["expected_source"] for r in csv.DictReader(fh)}
    assert set(expected.values()) == {p.name for p in CORPUS.iterdir()}  # every document is asked about

    summary = answer_flow(
        questions_path=str(QUESTIONS), store_dir=str(store), out_dir=str(tmp_path / "r"), retrieval_only=True, top_k=5
    )
    assert summary["questions"] == len(expected)
    assert summary["recall_at_k"] >= RECALL_AT_5, summary["recall_at_k"]
