"""The persisted keyword index: BM25 as bm25s computes it, updated by the chunks that came and went, on disk."""

from __future__ import annotations

import random

import numpy as np
import pytest

from connectors.base import DocumentRef
from tasks.ingest.ledger import DocumentWrite, Ledger
from tasks.store import keyword
from tasks.store.base import StoreConfig
from tasks.store.keyword import KeywordIndex

pytestmark = pytest.mark.unit

WORDS = "refund window 退款 期限 travel 柏林 住宿 robot battery warranty 年假 申请 delivery product 报销".split()


def corpus(n: int, seed: int, least: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    return {f"{rng.getrandbits(64):016x}": [rng.choice(WORDS) for _ in range(rng.randint(least, 12))] for _ in range(n)}


def test_scores_are_bm25s_lucene_scores():
    import bm25s

    docs = corpus(60, 1, least=1)  # bm25s needs a token in every document
    ids = list(docs)
    index = KeywordIndex.build(ids, list(docs.values()))
    reference = bm25s.BM25()  # Lucene's BM25, k1 1.5, b 0.75: what kbflow used before the index was saved
    reference.index([docs[i] for i in ids], show_progress=False)
    query = ["退款", "期限", "robot", "robot"]
    expected = np.asarray(reference.get_scores(query))
    got = dict(index.search(query, len(ids)))
    assert set(got) == {ids[i] for i in np.flatnonzero(expected > 0)}
    for i in np.flatnonzero(expected > 0):
        assert got[ids[i]] == pytest.approx(expected[i], rel=1e-5)


def test_an_update_equals_an_index_built_from_scratch():
    docs = corpus(200, 2)
    ids = list(docs)
    base = KeywordIndex.build(ids[:150], [docs[i] for i in ids[:150]])
    removed = set(ids[:40])
    updated = base.updated(removed, ids[150:], [docs[i] for i in ids[150:]])
    scratch = KeywordIndex.build(ids[40:], [docs[i] for i in ids[40:]])
    assert updated.chunk_ids() == set(ids[40:])
    for name in keyword.FILES:
        assert np.array_equal(getattr(updated, name), getattr(scratch, name)), name
    for q in (["refund", "window"], ["柏林", "住宿", "报销"], ["nothing"]):
        assert updated.search(q, 10) == scratch.search(q, 10)
    gone = next(iter(removed))
    assert updated.coverage(["refund"], gone) == 0.0 and updated.search(WORDS, 500, allowed={gone}) == []


def write(path: str, ids: list[str], terms: list[list[str]]) -> DocumentWrite:
    return DocumentWrite(DocumentRef("local:/d", path, 5, 2.0, path + "-sha"), ids, terms)


def test_saved_with_the_ledger_state_and_brought_up_to_date_by_a_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(keyword, "STEP", 2)  # the ledger's tokens read in steps of 2 chunks
    store = StoreConfig(store_dir=str(tmp_path), collection="kb", min_free_mb=0)
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.commit_documents([write("a.txt", ["a1", "a2"], [["refund", "window"], ["travel"]])])
        ledger.commit_documents([write("b.txt", ["b1"], [["柏林", "住宿"]])])
    index, done = keyword.refresh(store)
    assert done == "built 3" and keyword.is_current(store)
    again, done = keyword.refresh(store)
    assert done == "current" and isinstance(again.rows, np.memmap)  # mapped from disk, not rebuilt
    # A writer changes the ledger; the next reader applies only the difference, and saves the new version.
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.commit_documents([write("a.txt", ["a3"], [["refund", "期限"]])])
    assert not keyword.is_current(store)
    index, done = keyword.refresh(store)
    assert done == "updated +1 -2" and index.chunk_ids() == {"a3", "b1"}
    assert [cid for cid, _ in index.search(["期限"], 5)] == ["a3"]
    assert len(list(keyword.index_home(tmp_path, "kb").iterdir())) == 1  # the old version is gone
    # A dropped (or recreated) ledger starts a new epoch: an index saved for the old one is never taken for it.
    key = Ledger.of_store(tmp_path, "kb").index_key()
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.drop_collection()
        ledger.commit_documents([write("c.txt", ["c1"], [["robot"]])])
        assert ledger.index_key() != key
    index, _ = keyword.refresh(store)
    assert index.chunk_ids() == {"c1"}


def test_a_damaged_saved_index_is_made_again(tmp_path):
    store = StoreConfig(store_dir=str(tmp_path), collection="kb", min_free_mb=0)
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.commit_documents([write("a.txt", ["a1"], [["refund"]])])
    keyword.refresh(store)
    saved = next(keyword.index_home(tmp_path, "kb").iterdir())
    (saved / "rows.npy").write_bytes(b"not numpy")
    index, done = keyword.refresh(store)
    assert done == "built 1" and index.search(["refund"], 1)[0][0] == "a1"
