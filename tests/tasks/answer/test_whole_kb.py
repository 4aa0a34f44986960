"""Whole-knowledge-base mode: every chunk in document order, answered whole or refused, never cut."""

from __future__ import annotations

import pytest

from tasks.answer.backends import ContextTooLarge
from tasks.answer.generate import answer_question, fit_all
from tasks.answer.options import RetrievalOptions
from tasks.answer.prompts import build_messages
from tasks.answer.retrieve import all_passages, retrieve
from tasks.store.base import StoredChunk
from tests.tasks.answer.test_generate import ScriptedBackend

pytestmark = pytest.mark.unit


class ListStore:
    """The part of the VectorStore protocol mode 'all' reads, over a list of chunks."""

    def __init__(self, chunks: list[StoredChunk]):
        self.chunks = {c.id: c for c in chunks}

    def all_ids(self):
        return set(self.chunks)

    def get(self, ids):
        return {i: self.chunks[i] for i in ids if i in self.chunks}

    def chunks_under(self, prefix):
        return {i: c.metadata["source"] for i, c in self.chunks.items() if c.metadata["source"].startswith(prefix)}


def chunk(cid, source, index, text, page=-1):
    return StoredChunk(
        cid, text, {"source": source, "chunk_index": index, "page": page, "section": "", "readers": ["*"]}
    )


STORE = ListStore(
    [
        chunk("z1", "policies/returns.md", 1, "Refunds are paid within 21 days."),
        chunk("a9", "faq.html", 0, "The office is in Berlin."),
        chunk("m3", "policies/returns.md", 0, "Returns are accepted for 30 days.", page=2),
        chunk("b2", "policies/leave.txt", 10, "Leave rolls over once."),
        chunk("c7", "policies/leave.txt", 2, "Staff have 25 days of leave."),
    ]
)


def test_every_chunk_comes_back_in_document_order_with_score_one():
    got = all_passages(STORE)
    assert [(p.source, p.chunk_id) for p in got] == [
        ("faq.html", "a9"),
        ("policies/leave.txt", "c7"),
        ("policies/leave.txt", "b2"),
        ("policies/returns.md", "m3"),
        ("policies/returns.md", "z1"),
    ]
    assert {p.score for p in got} == {1.0} and [p.rank for p in got] == [1, 2, 3, 4, 5]
    assert got[3].page == 2 and got[0].page is None


def test_source_prefix_limits_the_whole_knowledge_base_and_retrieve_needs_no_index():
    options = RetrievalOptions(mode="all", source_prefix="policies/returns")
    got = retrieve("anything at all", store=STORE, keyword_index=None, embedder=None, options=options)
    assert [p.chunk_id for p in got] == ["m3", "z1"]
    assert all_passages(ListStore([])) == []


def passages(n, text="Leave policy sentence. " * 10):
    return [
        {"source": f"doc{i:02d}.txt", "page": None, "text": text, "chunk_id": str(i), "score": 1.0} for i in range(n)
    ]


def test_all_passages_go_to_the_model_uncut_when_they_fit():
    backend = ScriptedBackend("Staff have 25 days [3].")
    ps = passages(20)
    out = answer_question(backend, "How many days of leave?", ps, max_tokens=64, temperature=0.0, whole=True)
    assert out["passages_used"] == 20 and out["citations"][0]["chunk_id"] == "2"
    assert out["prompt_tokens"] == backend.count_tokens(build_messages("How many days of leave?", ps, "en"))


def test_a_knowledge_base_too_large_is_refused_with_its_size_never_cut():
    backend = ScriptedBackend("never asked")
    backend.n_ctx = 512
    ps = passages(40)
    tokens = backend.count_tokens(build_messages("How many days of leave?", ps, "en"))
    with pytest.raises(ContextTooLarge) as err:
        answer_question(backend, "How many days of leave?", ps, max_tokens=64, temperature=0.0, whole=True)
    assert str(err.value) == (
        f"the whole knowledge base (40 chunks, {tokens} tokens) does not fit in n_ctx 512 with "
        "max_tokens 64: use hybrid retrieval or a longer-context model"
    )
    # The same passages in a ranked mode are packed (and cut) to fit instead.
    out = answer_question(backend, "How many days of leave?", ps, max_tokens=64, temperature=0.0)
    assert 0 < out["passages_used"] < 40


def test_the_fit_leaves_room_for_the_answer_budget():
    backend = ScriptedBackend("x")
    ps = passages(3)
    n = backend.count_tokens(build_messages("Q?", ps, "en"))
    backend.n_ctx = n + 100 + 4
    assert fit_all(backend, "Q?", ps, "en", 100)[1] == n
    with pytest.raises(ContextTooLarge):
        fit_all(backend, "Q?", ps, "en", 101)
