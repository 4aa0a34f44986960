"""Hybrid retrieval: dense top-k from the vector store fused with a BM25 keyword ranking that reads Chinese too."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from prefect import task

from connectors.access import may_read
from tasks.answer.options import Mode, RetrievalOptions
from tasks.embed.embedder import Embedder, EmbedderConfig, get_embedder
from tasks.ingest.ledger import Ledger, ledger_path
from tasks.store import keyword, visible
from tasks.store.base import StoreConfig, StoredChunk, VectorStore
from tasks.store.chroma import READERS, ChromaStore, reopen_if_moved
from tasks.store.keyword import KeywordIndex
from tasks.text import is_chinese, tokenize

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


@lru_cache(maxsize=4)
def load_keyword_index(store: StoreConfig, key: str) -> KeywordIndex:
    """The store's keyword index for one ledger state (the key changes on every write), memory-mapped from disk."""
    return keyword.refresh(store)[0]


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


# The dense ranking's weight in the fusion when the keywords already match a passage well (BM25 is the stronger
# ranking within one language: CMRC recall@1 0.955 alone, 0.895 fused at equal weight with the multilingual
# embedder, 0.935 at 0.3), and when they do not (a question in the other language: the dense ranking is all there is).
DENSE_WEIGHT_KEYWORDS_MATCH, DENSE_WEIGHT_KEYWORDS_MISS, KEYWORDS_MATCH = 0.3, 1.0, 0.5


def dense_trust(index: KeywordIndex, q_tokens: list[str], keyword: list[tuple[str, float]]) -> float:
    """How much the fusion weighs the dense ranking: less when the best keyword hit covers the question well."""
    if not keyword:
        return DENSE_WEIGHT_KEYWORDS_MISS
    best = index.coverages(q_tokens, [keyword[0][0]]).get(keyword[0][0], 0.0)
    return DENSE_WEIGHT_KEYWORDS_MATCH if best >= KEYWORDS_MATCH else DENSE_WEIGHT_KEYWORDS_MISS


# A question's answer may be in the other language only. Keywords cannot cross (BM25 ranks the same-language
# documents first: on our held-out set, recall@5 of cross-lingual questions was 0.50 to 0.62 fused, though the
# multilingual embedder alone ranked every gold passage in its top 5). So when the fused top k holds no passage in
# another language than the question's, the dense ranking's best such passages within its first CROSS_LOOK take the
# last CROSS_SLOTS places.
CROSS_LOOK, CROSS_SLOTS = 5, 1


# Hybrid retrieval orders the fused ranking's first POOL chunks by relevance and keeps the top k: the fusion of
# ranks puts a distractor that shares every word of the question but its year above the passage that answers it
# (RGB English: recall@5 0.81 fused, 0.94 so; CMRC 60: 0.97 -> 1.00; heldout2 English 1.00 both).
POOL = 20


def _other_language_slot(
    question: str, ids: list[str], dense: list[tuple[str, float]], rows: dict, store: VectorStore, top_k: int
) -> list[str]:
    asked_in_chinese = is_chinese(question)
    if any(is_chinese(rows[cid].text) != asked_in_chinese for cid in ids if cid in rows):
        return ids
    look = [cid for cid, _ in dense[:CROSS_LOOK] if cid not in ids]
    rows.update(store.get([cid for cid in look if cid not in rows]))
    other = [cid for cid in look if cid in rows and is_chinese(rows[cid].text) != asked_in_chinese][:CROSS_SLOTS]
    return ids[: max(0, top_k - len(other))] + other if other else ids


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
    groups = options.readers_filter()  # who asks: every ranking below sees only what they may read
    if mode == "all":
        return all_passages(store, options.source_prefix, groups=groups)
    n_candidates = max(top_k * 4, 20)
    allowed: set[str] | None = None
    sources: set[str] | None = None
    if options.source_prefix:
        under = store.chunks_under(options.source_prefix)
        if not under:
            return []
        allowed, sources = set(under), set(under.values())

    use_dense = mode != "keyword" and embedder is not None
    vector = embedder.embed([question])[0] if use_dense else None
    dense = visible.query_visible(store, keyword_index, vector, n_candidates, sources, groups) if use_dense else []
    q_tokens = tokenize(question)
    readable = keyword_index.mask(groups)
    keyword = keyword_index.search(q_tokens, n_candidates, allowed, readable) if mode != "dense" else []
    w_question = embedder.can_read(question) if use_dense else 0.0

    if mode == "dense":
        ranked = dense
    elif mode == "keyword":
        ranked = keyword
    else:
        ranked = fuse(dense, keyword, w_question * dense_trust(keyword_index, q_tokens, keyword))
    # The fused ranking's first POOL chunks that exist (a candidate deleted since an index was read is dropped);
    # in hybrid mode the top k of them by relevance, else its top k.
    pool = max(top_k, POOL) if mode == "hybrid" else top_k
    ids, rows, start = [], {}, 0
    while len(ids) < pool and start < len(ranked):
        batch = [cid for cid, _ in ranked[start : start + pool]]
        start += pool
        got = store.get(batch)
        rows.update(got)
        ids += [cid for cid in batch if cid in got][: pool - len(ids)]
    dense_sim, bm25 = dict(dense), dict(keyword)
    scores: dict[str, float] = {}

    def score(cids: list[str]) -> None:
        """The relevance of each chunk not scored yet (the pool's, then any the other-language slot brings)."""
        new = [cid for cid in cids if cid not in scores and cid in rows]
        covered = keyword_index.coverages(q_tokens, new)
        for cid in new:
            w_passage = embedder.can_read(rows[cid].text) if use_dense and mode == "hybrid" else 0.0
            scores[cid] = relevance(mode, dense_sim.get(cid), covered[cid], w_question, w_passage)

    score(ids)
    if pool > top_k:
        ids = sorted(ids, key=lambda cid: -scores[cid])[:top_k]
    if mode == "hybrid" and use_dense:
        ids = _other_language_slot(question, ids, dense, rows, store, top_k)
        score(ids)
    passages = []
    for rank, cid in enumerate(ids, start=1):
        if cid not in rows:
            continue  # deleted since the keyword index was built
        chunk = rows[cid]
        d = dense_sim.get(cid)
        score = scores[cid]
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
    # The fused order picks the top k; within them the most relevant passage comes first (the prompt's [1]).
    passages.sort(key=lambda p: -p.score)
    for rank, p in enumerate(passages, start=1):
        p.rank = rank
    return passages


def all_passages(
    store: VectorStore, source_prefix: str | None = None, page: int = 1000, groups: tuple[str, ...] | None = None
) -> list[Passage]:
    """Every chunk of the collection (or under source_prefix) that readers of `groups` may read (None: every chunk),
    in document order: source path, then chunk index."""
    ids = sorted(store.chunks_under(source_prefix)) if source_prefix else sorted(store.all_ids())
    rows: dict[str, StoredChunk] = {}
    for start in range(0, len(ids), page):
        got = store.get(ids[start : start + page])
        rows.update((cid, c) for cid, c in got.items() if groups is None or may_read(c.metadata.get(READERS), groups))
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


_preloaded: set[EmbedderConfig | None] = set()


def recorded_embedding_model(store: StoreConfig) -> str | None:
    """The embedding model the ledger says the collection was made with (None when it has no record), read without
    opening Chroma."""
    if not ledger_path(store.store_dir).exists():
        return None
    try:
        with Ledger.of_store(store.store_dir, store.collection) as ledger:
            recorded = ledger.recorded_embedding()
    except Exception:  # noqa: BLE001 - only a head start: a damaged ledger is reported where the store is opened
        return None
    return recorded["embedding_model"] if recorded else None


def preload(embedder: EmbedderConfig | None) -> None:
    """Once per process: load the embedding model (OpenVINO compiles it outside the GIL) and jieba's dictionary in a
    background thread while this one imports chromadb and opens the store; the first question waits for the longer
    of them, not for their sum. Errors surface where the question asks for the model itself."""

    def load() -> None:
        try:
            if embedder is not None:
                get_embedder(embedder)
            tokenize("预热")
        except Exception:  # noqa: BLE001 - get_embedder raises it again, in the question's own thread
            pass

    if embedder not in _preloaded:
        _preloaded.add(embedder)
        # Not a daemon: a command that stops on an error waits for the load to end rather than exit under it.
        threading.Thread(target=load, name="kbflow-preload").start()


logger = logging.getLogger("kbflow.tasks.answer.retrieve")

# The bundled English embedder, which reads English better than the multilingual one the store is embedded with.
ENGLISH_READER = "all-MiniLM-L6-v2"
_reader_failed: list[str] = []  # why the English reader could not run in this process, once said


def english_reading(question: str, passages: list[dict], embedder: EmbedderConfig) -> None:
    """For an English question, each English passage's similarity to it by the English reader, as `reading` (the
    cut of tasks/answer/evidence.py select_context). Nothing for a Chinese question or passage: it reads English
    only. About 30 ms a question for five passages, once its model is loaded (0.3 s). If it cannot load, a warning
    says so once and the passages go unread."""
    english = [p for p in passages if not is_chinese(p["text"])]
    if not english or is_chinese(question):
        return
    if _reader_failed:
        return
    try:
        reader = get_embedder(embedder.model_copy(update={"model": ENGLISH_READER, "backend": "auto"}))
        vectors = np.asarray(reader.embed([question] + [p["text"] for p in english]), dtype=np.float32)
    except (OSError, RuntimeError, ValueError) as exc:
        # A refinement, not the answer: without it the passages are judged by relevance alone, and nothing is lost.
        _reader_failed.append(f"{type(exc).__name__}: {exc}")
        logger.warning(
            "The English reader (%s) cannot run (%s); English passages are chosen by relevance alone in this run",
            ENGLISH_READER,
            _reader_failed[0][:300],
        )
        return
    for p, similarity in zip(english, vectors[1:] @ vectors[0]):
        p["reading"] = round(float(similarity), 4)


@task(name="retrieve-context")
def retrieve_context(question: str, store: StoreConfig, embedder: EmbedderConfig, options: RetrievalOptions) -> dict:
    """Retrieve the top passages for one question (dense, keyword or hybrid), or every passage (all)."""
    started = time.perf_counter()
    if options.mode != "all" and ledger_path(store.store_dir).exists():  # not for a store that is not there
        preload(embedder if options.mode != "keyword" else None)
        with Ledger.of_store(store.store_dir, store.collection) as ledger:
            key = ledger.index_key()
        reopen_if_moved(store, key)  # another process refreshed the store: read its current version
    vectors = ChromaStore.open_existing(store)
    if vectors.embedding_model and vectors.embedding_model != embedder.model:  # the store switched model meanwhile
        embedder = embedder.model_copy(update={"model": vectors.embedding_model})
    if options.mode == "all":
        passages = all_passages(vectors, options.source_prefix, groups=options.readers_filter())
        return {
            "passages": [p.to_dict() for p in passages],
            "retrieval_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    index = load_keyword_index(store, key)
    tokens = tokenize(question)
    passages = retrieve(
        question,
        store=vectors,
        keyword_index=index,
        embedder=get_embedder(embedder) if options.mode != "keyword" else None,
        options=options,
    )
    return {
        "passages": [p.to_dict() for p in passages],
        "term_weights": {t: index.idf_of(t) for t in set(tokens)},  # what narrow() weighs sentences by
        "retrieval_ms": round((time.perf_counter() - started) * 1000, 1),
    }
