"""Hybrid retrieval: dense top-k from Chroma fused with a BM25 keyword ranking that reads Chinese too."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from tasks.text import cjk_ratio, tokenize

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

    @classmethod
    def build(cls, ids: list[str], terms: list[list[str]]) -> "KeywordIndex":
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build
        index = cls(ids=ids, token_sets=[frozenset(t) for t in terms])
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

    def coverage(self, query_tokens: list[str], i: int) -> float:
        """IDF-weighted share of the query's tokens that the chunk contains (0-1)."""
        q = set(query_tokens)
        total = sum(self.idf_of(t) for t in q)
        if not total:
            return 0.0
        return sum(self.idf_of(t) for t in q if t in self.token_sets[i]) / total

    def search(self, query_tokens: list[str], n: int, allowed: set[str] | None = None) -> list[tuple[str, float, float]]:
        """Top n chunks as (chunk_id, bm25 score, coverage), best first; only chunks with a matching token."""
        if not self.ids or not query_tokens:
            return []
        import numpy as np

        scores = np.asarray(self.bm25.get_scores(query_tokens))
        order = np.argsort(-scores, kind="stable")
        out = []
        for i in order:
            if scores[i] <= 0 or len(out) >= n:
                break
            if allowed is not None and self.ids[i] not in allowed:
                continue
            out.append((self.ids[i], float(scores[i]), self.coverage(query_tokens, int(i))))
        return out


@lru_cache(maxsize=4)
def load_keyword_index(ledger_file: str, collection: str, generation: int) -> KeywordIndex:
    """Build the keyword index from the ledger once per store version (the generation changes on every write)."""
    from tasks.ledger import Ledger

    ledger = Ledger(Path(ledger_file), collection)
    try:
        ids, terms = ledger.chunk_terms()
    finally:
        ledger.close()
    return KeywordIndex.build(ids, terms)


def dense_weight(question: str, unknown_share: float = 0.0) -> float:
    """How far to trust the dense ranking: all-MiniLM-L6-v2 is blind to Chinese and to text it cannot tokenize."""
    blind = max(cjk_ratio(question), unknown_share)
    return max(0.0, 1.0 - 2.0 * blind)


def fuse(
    dense: list[tuple[str, float]], keyword: list[tuple[str, float, float]], w_dense: float, w_keyword: float = 1.0
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion of the two rankings: (chunk_id, fused score), best first."""
    fused: dict[str, float] = {}
    for rank, (cid, _) in enumerate(dense, start=1):
        fused[cid] = fused.get(cid, 0.0) + w_dense / (RRF_K + rank)
    for rank, (cid, _, _) in enumerate(keyword, start=1):
        fused[cid] = fused.get(cid, 0.0) + w_keyword / (RRF_K + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def retrieve(
    question: str,
    *,
    coll,
    keyword_index: KeywordIndex,
    query_embedding: list[float] | None,
    top_k: int,
    mode: str = "hybrid",
    unknown_share: float = 0.0,
    source_prefix: str | None = None,
) -> list[Passage]:
    """Rank the store's chunks for a question; every passage carries a 0-1 relevance in `score`."""
    if mode not in ("dense", "keyword", "hybrid"):
        raise ValueError(f"unknown retrieval mode {mode!r}: use dense, keyword or hybrid")
    n_candidates = max(top_k * 4, 20)
    allowed: set[str] | None = None
    where = None
    if source_prefix:
        got = coll.get(include=["metadatas"])
        matching = [(cid, m["source"]) for cid, m in zip(got["ids"], got["metadatas"])
                    if str(m.get("source", "")).startswith(source_prefix)]
        if not matching:
            return []
        allowed = {cid for cid, _ in matching}
        where = {"source": {"$in": sorted({source for _, source in matching})}}

    dense: list[tuple[str, float]] = []
    dense_sim: dict[str, float] = {}
    if mode in ("dense", "hybrid") and query_embedding is not None and coll.count():
        res = coll.query(
            query_embeddings=[query_embedding], n_results=min(n_candidates, coll.count()), where=where,
            include=["distances"],
        )
        for cid, dist in zip(res["ids"][0], res["distances"][0]):
            sim = max(0.0, min(1.0, 1.0 - float(dist)))  # cosine space: distance = 1 - cosine
            dense.append((cid, sim))
            dense_sim[cid] = sim

    q_tokens = tokenize(question)
    keyword: list[tuple[str, float, float]] = []
    kw: dict[str, tuple[float, float]] = {}
    if mode in ("keyword", "hybrid"):
        keyword = keyword_index.search(q_tokens, n_candidates, allowed)
        kw = {cid: (score, cov) for cid, score, cov in keyword}

    w_dense = dense_weight(question, unknown_share)
    if mode == "dense":
        ranked = [(cid, s) for cid, s in dense]
    elif mode == "keyword":
        ranked = [(cid, s) for cid, s, _ in keyword]
    else:
        ranked = fuse(dense, keyword, w_dense)
    ranked = ranked[:top_k]
    if not ranked:
        return []

    ids = [cid for cid, _ in ranked]
    got = coll.get(ids=ids, include=["documents", "metadatas"])
    rows = {cid: (doc, meta) for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])}
    index_of = {cid: i for i, cid in enumerate(keyword_index.ids)}
    passages = []
    for rank, cid in enumerate(ids, start=1):
        if cid not in rows:
            continue  # deleted since the keyword index was built
        doc, meta = rows[cid]
        d = dense_sim.get(cid)
        cov = kw[cid][1] if cid in kw else (keyword_index.coverage(q_tokens, index_of[cid]) if cid in index_of else 0.0)
        if mode == "dense":
            score = d or 0.0
        elif mode == "keyword":
            score = cov
        else:
            # The dense similarity means something only where the embedder can read both sides.
            score = max((d or 0.0) * min(w_dense, dense_weight(doc or "")), cov)
        page = meta.get("page")
        passages.append(
            Passage(
                chunk_id=cid, source=meta.get("source", ""), page=None if page in (None, -1) else int(page),
                section=meta.get("section", ""), text=doc or "", score=round(float(score), 4),
                dense_score=None if d is None else round(d, 4),
                keyword_score=round(kw[cid][0], 4) if cid in kw else None, rank=rank,
            )
        )
    return passages
