"""Hybrid retrieval: dense top-k from the vector store fused with a BM25 keyword ranking that reads Chinese too."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from prefect import task

from tasks.answer.options import Mode, RetrievalOptions
from tasks.embed.embedder import Embedder, EmbedderConfig, get_embedder
from tasks.ingest.ledger import Ledger, ledger_path
from tasks.store.base import StoreConfig, StoredChunk, VectorStore
from tasks.store.chroma import ChromaStore
from tasks.text import tokenize

RRF_K = 60


@dataclass
class Passage:
    """A retrieved chunk with its scores; `score` is the relevance (0-1) the threshold is applied to."""

    chunk_id: str
    source: str
    page: int | None
    section: str
    text: str
    score: float
    dense_score: float | None = None
    keyword_score: float | None = None
    rank: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class KeywordIndex:
    """BM25 over the chunks' stored jieba/English tokens, with each chunk's token set for coverage."""

    ids: list[str]
    token_sets: list[frozenset[str]]
    bm25: object = None
    idf: dict[str, float] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, ids: list[str], terms: list[list[str]]) -> KeywordIndex:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build
        index = cls(ids=ids, token_sets=[frozenset(t) for t in terms], position={cid: i for i, cid in enumerate(ids)})
        if ids:
            index.bm25 = bm25s.BM25()
            # An empty token list would break bm25s; a placeholder matches no query token.
            index.bm25.index([t or ["\x00"] for t in terms], show_progress=False)
        df: dict[str, int] = {}
        for tokens in index.token_sets:
            for t in tokens:
                df[t] = df.get(t, 0) + 1
        n = len(ids)
        index.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        return index

    def idf_of(self, token: str) -> float:
        return self.idf.get(token, math.log(1 + (len(self.ids) + 0.5) / 0.5))

    def coverage(self, query_tokens: list[str], chunk_id: str) -> float:
        """IDF-weighted share of the query's tokens that the chunk contains (0-1; 0 for an unknown chunk)."""
        i = self.position.get(chunk_id)
        q = set(query_tokens)
        total = sum(self.idf_of(t) for t in q)
        if i is None or not total:
            return 0.0
        return sum(self.idf_of(t) for t in q if t in self.token_sets[i]) / total

    def search(self, query_tokens: list[str], n: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Top n chunks as (chunk_id, bm25 score), best first; only chunks with a matching token."""
        if not self.ids or not query_tokens:
            return []
        import numpy as np

        scores = np.asarray(self.bm25.get_scores(query_tokens))
        out = []
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] <= 0 or len(out) >= n:
                break
            if allowed is None or self.ids[i] in allowed:
                out.append((self.ids[i], float(scores[i])))
        return out


@lru_cache(maxsize=4)
def load_keyword_index(ledger_file: str, collection: str, generation: int) -> KeywordIndex:
    """Build the keyword index from the ledger once per store version (the generation changes on every write)."""
    with Ledger(ledger_file, collection) as ledger:
        ids, terms = ledger.chunk_terms()
    return KeywordIndex.build(ids, terms)


def fuse(
    dense: list[tuple[str, float]], keyword: list[tuple[str, float]], w_dense: float, w_keyword: float = 1.0
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion of the two rankings: (chunk_id, fused score), best first."""
    fused: dict[str, float] = {}
    for rank, (cid, _) in enumerate(dense, start=1):
        fused[cid] = fused.get(cid, 0.0) + w_dense / (RRF_K + rank)
    for rank, (cid, _) in enumerate(keyword, start=1):
        fused[cid] = fused.get(cid, 0.0) + w_keyword / (RRF_K + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def relevance(mode: Mode, dense_sim: float | None, coverage: float, w_question: float, w_passage: float) -> float:
    """The 0-1 relevance a question is refused on: dense similarity where the embedder reads both sides, keyword
    coverage."""
    if mode == "dense":
        return dense_sim or 0.0
    if mode == "keyword":
        return coverage
    return max((dense_sim or 0.0) * min(w_question, w_passage), coverage)


def retrieve(
    question: str,
    *,
    store: VectorStore,
    keyword_index: KeywordIndex,
    embedder: Embedder | None,
    options: RetrievalOptions,
) -> list[Passage]:
    """Rank the store's chunks for a question; every passage carries a 0-1 relevance in `score`."""
    mode, top_k = options.mode, options.top_k
    if mode == "all":
        return all_passages(store, options.source_prefix)
    n_candidates = max(top_k * 4, 20)
    allowed: set[str] | None = None
    sources: set[str] | None = None
    if options.source_prefix:
        under = store.chunks_under(options.source_prefix)
        if not under:
            return []
        allowed, sources = set(under), set(under.values())

    use_dense = mode != "keyword" and embedder is not None
    dense = store.query(embedder.embed([question])[0], n_candidates, sources) if use_dense else []
    q_tokens = tokenize(question)
    keyword = keyword_index.search(q_tokens, n_candidates, allowed) if mode != "dense" else []
    w_question = embedder.can_read(question) if use_dense else 0.0

    if mode == "dense":
        ranked = dense
    elif mode == "keyword":
        ranked = keyword
    else:
        ranked = fuse(dense, keyword, w_question)
    ids = [cid for cid, _ in ranked[:top_k]]
    rows = store.get(ids)
    dense_sim, bm25 = dict(dense), dict(keyword)
    passages = []
    for rank, cid in enumerate(ids, start=1):
        if cid not in rows:
            continue  # deleted since the keyword index was built
        chunk = rows[cid]
        d = dense_sim.get(cid)
        w_passage = embedder.can_read(chunk.text) if use_dense and mode == "hybrid" else 0.0
        score = relevance(mode, d, keyword_index.coverage(q_tokens, cid), w_question, w_passage)
        page = chunk.metadata.get("page")
        passages.append(
            Passage(
                chunk_id=cid,
                source=chunk.metadata.get("source", ""),
                page=None if page in (None, -1) else int(page),
                section=chunk.metadata.get("section", ""),
                text=chunk.text,
                score=round(float(score), 4),
                dense_score=None if d is None else round(d, 4),
                keyword_score=round(bm25[cid], 4) if cid in bm25 else None,
                rank=rank,
            )
        )
    return passages


def all_passages(store: VectorStore, source_prefix: str | None = None, page: int = 1000) -> list[Passage]:
    """Every chunk of the collection (or under source_prefix) in document order: source path, then chunk index."""
    ids = sorted(store.chunks_under(source_prefix)) if source_prefix else sorted(store.all_ids())
    rows: dict[str, StoredChunk] = {}
    for start in range(0, len(ids), page):
        rows.update(store.get(ids[start : start + page]))
    ordered = sorted(
        rows.values(), key=lambda c: (str(c.metadata.get("source", "")), int(c.metadata.get("chunk_index", 0)), c.id)
    )
    passages = []
    for rank, chunk in enumerate(ordered, start=1):
        page_no = chunk.metadata.get("page")
        passages.append(
            Passage(
                chunk_id=chunk.id,
                source=chunk.metadata.get("source", ""),
                page=None if page_no in (None, -1) else int(page_no),
                section=chunk.metadata.get("section", ""),
                text=chunk.text,
                score=1.0,
                rank=rank,
            )
        )
    return passages


def select_context(passages: list[dict], min_score: float, keep_ratio: float) -> list[dict]:
    """The passages worth the model's time: relevant (score >= min_score), and close to the best one.

    A passage whose relevance is below keep_ratio x the best passage's is left out of the prompt: it
    costs prefill time (most of an answer's time) and rarely holds the answer. Empty means refuse.
    """
    relevant = [p for p in passages if p["score"] >= min_score]
    if not relevant:
        return []
    best = max(p["score"] for p in relevant)
    return [p for p in relevant if p["score"] >= keep_ratio * best]


@task(name="retrieve-context")
def retrieve_context(question: str, store: StoreConfig, embedder: EmbedderConfig, options: RetrievalOptions) -> dict:
    """Retrieve the top passages for one question (dense, keyword or hybrid), or every passage (all)."""
    started = time.perf_counter()
    vectors = ChromaStore.open_existing(store)
    if options.mode == "all":
        passages = all_passages(vectors, options.source_prefix)
        return {
            "passages": [p.to_dict() for p in passages],
            "retrieval_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        generation = ledger.generation()
    index = load_keyword_index(str(ledger_path(store.store_dir)), store.collection, generation)
    passages = retrieve(
        question,
        store=vectors,
        keyword_index=index,
        embedder=get_embedder(embedder) if options.mode != "keyword" else None,
        options=options,
    )
    return {
        "passages": [p.to_dict() for p in passages],
        "retrieval_ms": round((time.perf_counter() - started) * 1000, 1),
    }
