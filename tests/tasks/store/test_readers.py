"""Readers inside retrieval, on a real Chroma store and the real keyword index: top k is k passages the asker may
read, the fast dense path gives what Chroma's `where` filter gives, and a permission change updates both in place."""

from __future__ import annotations

import random

import numpy as np
import pytest

from connectors.base import DocumentRef
from tasks.ingest.ledger import DocumentWrite, Ledger
from tasks.ingest.split import Chunk, chunk_id
from tasks.store import keyword
from tasks.store.base import StoreConfig
from tasks.store.chroma import ChromaStore
from tasks.store.visible import query_visible

pytestmark = pytest.mark.unit

GROUPS = [f"g{i:02d}" for i in range(20)]
WORDS = "policy leave salary band budget contract office travel refund manual".split()


def readers_of(doc: int) -> tuple[str, ...]:
    """Every fifth document public; the rest one group of twenty and its owner."""
    return ("*",) if doc % 5 == 0 else tuple(sorted([GROUPS[doc % 20], f"user:u{doc % 3}"]))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """600 documents of one chunk, with random unit vectors and real keyword tokens, readers over 20 groups."""
    config = StoreConfig(store_dir=str(tmp_path_factory.mktemp("readers") / "store"), collection="knowledge")
    vectors_store = ChromaStore.open_for_writing(config, "test-model", 16, "test")
    rng, words = np.random.default_rng(3), random.Random(3)
    chunks, vectors, writes, readers = [], [], [], {}
    for doc in range(600):
        path, text = f"d{doc:03d}.txt", " ".join(words.choice(WORDS) for _ in range(8))
        cid = chunk_id("local:/s", path, f"{doc:064d}", 0, text)
        chunks.append(Chunk(cid, text, path, "local:/s", None, "", 0, f"{doc:064d}"))
        v = rng.standard_normal(16)
        vectors.append((v / np.linalg.norm(v)).tolist())
        ref = DocumentRef("local:/s", path, len(text), 0.0, f"{doc:064d}", readers_of(doc))
        writes.append(DocumentWrite(ref, [cid], [text.split()]))
        readers[cid] = readers_of(doc)
    vectors_store.upsert(chunks, vectors, {c.source: readers[c.id] for c in chunks})
    with Ledger.of_store(config.store_dir, config.collection) as ledger:
        ledger.commit_documents(writes)
    return config, vectors_store, readers, rng


def may(readers, groups):
    return "*" in readers or bool(set(readers) & set(groups))


@pytest.mark.parametrize("groups", [(), ("g01", "g02"), ("g03",), ("user:u1",), ("nobody",)])
def test_dense_top_k_is_k_visible_chunks_the_same_as_chromas_where_filter(store, groups):
    config, vectors_store, readers, rng = store
    index, _ = keyword.refresh(config)
    for _ in range(10):
        v = rng.standard_normal(16)
        v = (v / np.linalg.norm(v)).tolist()
        fast = query_visible(vectors_store, index, v, 20, None, groups)
        filtered = vectors_store.query(v, 20, None, groups)
        assert [c for c, _ in fast] == [c for c, _ in filtered]
        assert len(fast) == 20 and all(may(readers[c], groups) for c, _ in fast)
        everything = vectors_store.query(v, 600)  # the filter is the same ranking, hidden chunks taken out
        assert [c for c, _ in fast] == [c for c, _ in everything if may(readers[c], groups)][:20]
    assert [c for c, _ in query_visible(vectors_store, index, v, 5, None, None)] == [
        c for c, _ in vectors_store.query(v, 5)
    ]


def test_keyword_top_k_is_k_visible_chunks(store):
    config, _, readers, _ = store
    index, _ = keyword.refresh(config)
    for groups in [(), ("g01", "g02"), ("g07",)]:
        got = index.search(["salary", "band"], 20, mask=index.mask(groups))
        assert len(got) == 20 and all(may(readers[c], groups) for c, _ in got)
        every = [c for c, _ in index.search(["salary", "band"], 600) if may(readers[c], groups)]
        assert [c for c, _ in got] == every[:20]
    assert index.mask(None) is None and len(index.search(["salary"], 20, mask=None)) == 20


def test_a_permission_change_updates_chroma_and_the_keyword_index_in_place(store):
    config, vectors_store, readers, rng = store
    cid = next(c for c, r in readers.items() if r == ("*",))
    before = vectors_store.get([cid])[cid]
    vectors_store.set_readers([cid], ("g19",))
    after = vectors_store.get([cid])[cid]
    assert after.metadata["readers"] == ["g19"]
    assert {k: v for k, v in after.metadata.items() if k != "readers"} == {
        k: v for k, v in before.metadata.items() if k != "readers"
    }  # the other keys stay: Chroma merged the new one in
    with Ledger.of_store(config.store_dir, config.collection) as ledger:
        entry = next(e for e in ledger.documents("local:/s").values() if cid in e.chunk_ids)
        ledger.set_readers([DocumentRef(**{**entry.ref.to_dict(), "readers": ("g19",)})])
    index, done = keyword.refresh(config)
    assert done.startswith("updated +0 -0")  # the same chunks: only the readers column changed
    assert index.visible([cid], index.mask(("g19",))) == [True]
    assert index.visible([cid], index.mask(())) == [False]
    v = vectors_store._coll.get(ids=[cid], include=["embeddings"])["embeddings"][0].tolist()
    assert cid not in [c for c, _ in query_visible(vectors_store, index, v, 5, None, ())]
    assert [c for c, _ in query_visible(vectors_store, index, v, 1, None, ("g19",))] == [cid]
    vectors_store.set_readers([cid], ("*",))
    with Ledger.of_store(config.store_dir, config.collection) as ledger:
        ledger.set_readers([DocumentRef(**{**entry.ref.to_dict(), "readers": ("*",)})])
