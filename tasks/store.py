"""The vector store: a protocol, its Chroma implementation (embedded or server), the write lock and crash repair."""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Iterator, Protocol, Sequence, runtime_checkable

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from tasks.split import Chunk

if TYPE_CHECKING:
    from tasks.ledger import Ledger

logger = logging.getLogger("kbflow.tasks.store")

META_MODEL = "kbflow_embedding_model"
META_DIM = "kbflow_embedding_dim"
META_BACKEND = "kbflow_embedding_backend"


class StoreError(Exception):
    """The store cannot be used as asked; the message says what to do."""


class EmbeddingMismatchError(StoreError):
    pass


class StoreBusyError(StoreError):
    pass


class StoreConfig(BaseModel, frozen=True):
    """Where one knowledge base lives: a store folder (ledger, lock, embedded Chroma) and a collection."""

    store_dir: str = Field(description="Folder of the ledger, the lock, the reports and the embedded Chroma files.")
    collection: str = Field(description="Chroma collection: one knowledge base.")
    chroma_host: str = Field("", description="host:port of a Chroma server; empty uses the embedded store.")
    chroma_token: str = Field("", repr=False, description="Bearer token sent to the Chroma server, if any.")

    @property
    def chroma_dir(self) -> str:
        return str(Path(self.store_dir) / "chroma")


@dataclass
class StoredChunk:
    """A chunk as read back from the store."""

    id: str
    text: str
    metadata: dict


@runtime_checkable
class VectorStore(Protocol):
    """What ingest and retrieval need from a vector store; ids are kbflow's deterministic chunk ids."""

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> int: ...
    def delete(self, ids: Sequence[str]) -> int: ...
    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]: ...
    def query(self, vector: Sequence[float], n: int, sources: Collection[str] | None = None) -> list[tuple[str, float]]: ...
    def chunks_under(self, prefix: str) -> dict[str, str]: ...
    def all_ids(self) -> set[str]: ...
    def count(self) -> int: ...


@lru_cache(maxsize=4)
def _client(chroma_dir: str, host: str = "", token: str = ""):
    """One Chroma client per store per process: embedded (PersistentClient) or a Chroma server (host:port)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if host:
        name, sep, port = host.rpartition(":")
        if not sep:
            name, port = host, "8000"
        if not port.isdigit():
            raise StoreError(f"KBFLOW_CHROMA_HOST={host!r} is not host:port")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            # The client checks the server at once: a refused connection or a proxy's 401 surfaces here.
            return chromadb.HttpClient(host=name, port=int(port), headers=headers, settings=chroma_settings)
        except Exception as exc:
            import httpx

            why = "it does not answer" if isinstance(exc, httpx.TransportError) else f"it refused the client ({type(exc).__name__})"
            raise StoreError(
                f"cannot use the Chroma server at {host}: {why}. Check that it runs, KBFLOW_CHROMA_HOST and, "
                "behind a token-checking proxy, KBFLOW_CHROMA_TOKEN."
            ) from None
    Path(chroma_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=chroma_dir, settings=chroma_settings)


def _batches(seq: Sequence, size: int):
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class ChromaStore:
    """A Chroma collection written only with our own embeddings (never Chroma's default function)."""

    def __init__(self, config: StoreConfig, collection):
        self.config = config
        self._coll = collection
        try:
            self._max_batch = int(self._client().get_max_batch_size())
        except Exception:
            self._max_batch = 5000

    def _client(self):
        c = self.config
        return _client(c.chroma_dir, c.chroma_host, c.chroma_token)

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def collection_exists(cls, config: StoreConfig) -> bool:
        client = _client(config.chroma_dir, config.chroma_host, config.chroma_token)
        return config.collection in {c.name for c in client.list_collections()}

    @classmethod
    def open_existing(cls, config: StoreConfig) -> "ChromaStore":
        """A collection an ingest has built, for reading; a StoreError that says what to run when there is none."""
        from tasks.ledger import ledger_path

        if not ledger_path(Path(config.store_dir)).exists():
            raise StoreError(f"no knowledge base in {config.store_dir}: run `kbflow ingest PATH` first (or set --store)")
        client = _client(config.chroma_dir, config.chroma_host, config.chroma_token)
        try:
            coll = client.get_collection(config.collection, embedding_function=None)
        except Exception:  # chromadb raises NotFoundError / ValueError depending on version
            raise StoreError(
                f"collection {config.collection!r} does not exist in {config.store_dir}; run `kbflow ingest PATH` first"
            ) from None
        return cls(config, coll)

    @classmethod
    def open_for_writing(cls, config: StoreConfig, embedding_model: str, dim: int, backend: str = "") -> "ChromaStore":
        """Open (or create) the collection and refuse it if it was built with another embedding model."""
        client = _client(config.chroma_dir, config.chroma_host, config.chroma_token)
        coll = client.get_or_create_collection(
            config.collection,
            embedding_function=None,  # never Chroma's default: it would download an ONNX model
            metadata={"hnsw:space": "cosine", META_MODEL: embedding_model, META_DIM: dim, META_BACKEND: backend},
        )
        meta = coll.metadata or {}
        stored_model, stored_dim = meta.get(META_MODEL), meta.get(META_DIM)
        if stored_model != embedding_model or (stored_dim is not None and int(stored_dim) != dim):
            raise EmbeddingMismatchError(
                f"collection {config.collection!r} in {config.store_dir} was built with embedding model "
                f"{stored_model!r} ({stored_dim}-d), but the current setting is {embedding_model!r} ({dim}-d). "
                f"Mixing them would give wrong answers. Set KBFLOW_EMBEDDING_MODEL={stored_model} to use it, or "
                f"rebuild it with `kbflow ingest PATH --collection {config.collection} --rebuild` "
                "(or pick another --collection)."
            )
        return cls(config, coll)

    @classmethod
    def drop(cls, config: StoreConfig) -> None:
        try:
            _client(config.chroma_dir, config.chroma_host, config.chroma_token).delete_collection(config.collection)
        except Exception:
            pass  # it did not exist

    @property
    def metadata(self) -> dict:
        return dict(self._coll.metadata or {})

    @property
    def embedding_model(self) -> str | None:
        return self.metadata.get(META_MODEL)

    @property
    def embedding_dim(self) -> int | None:
        dim = self.metadata.get(META_DIM)
        return int(dim) if dim else None

    # --- VectorStore -----------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> int:
        """Upsert chunks with their embeddings, in batches no larger than Chroma accepts."""
        for idx in _batches(range(len(chunks)), self._max_batch):
            part = [chunks[i] for i in idx]
            self._coll.upsert(
                ids=[c.id for c in part],
                embeddings=[list(vectors[i]) for i in idx],
                documents=[c.text for c in part],
                metadatas=[c.metadata() for c in part],
            )
        return len(chunks)

    def delete(self, ids: Sequence[str]) -> int:
        ids = list(ids)
        for part in _batches(ids, self._max_batch):
            self._coll.delete(ids=list(part))
        return len(ids)

    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        if not ids:
            return {}
        got = self._coll.get(ids=list(ids), include=["documents", "metadatas"])
        return {cid: StoredChunk(cid, doc or "", meta or {}) for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])}

    def chunks_under(self, prefix: str) -> dict[str, str]:
        """chunk_id -> source of every chunk whose source path starts with `prefix`."""
        got = self._coll.get(include=["metadatas"])
        return {cid: str(m.get("source", "")) for cid, m in zip(got["ids"], got["metadatas"])
                if str(m.get("source", "")).startswith(prefix)}

    def query(self, vector: Sequence[float], n: int, sources: Collection[str] | None = None) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk_id, cosine similarity clipped to 0-1), best first; only from `sources` if given."""
        total = self._coll.count()
        if not total or (sources is not None and not sources):
            return []
        where = {"source": {"$in": sorted(sources)}} if sources is not None else None
        res = self._coll.query(query_embeddings=[list(vector)], n_results=min(n, total), where=where, include=["distances"])
        # cosine space: distance = 1 - cosine
        return [(cid, max(0.0, min(1.0, 1.0 - float(d)))) for cid, d in zip(res["ids"][0], res["distances"][0])]

    def all_ids(self) -> set[str]:
        """Every chunk id in the collection, read in pages."""
        out: set[str] = set()
        page, offset = 10000, 0
        while True:
            ids = self._coll.get(include=[], limit=page, offset=offset)["ids"]
            out.update(ids)
            if len(ids) < page:
                return out
            offset += page

    def count(self) -> int:
        return int(self._coll.count())


def reconcile(store: VectorStore, ledger: "Ledger") -> tuple[int, set[tuple[str, str]]]:
    """Make the store and the ledger agree after any crash: drop unknown chunks, forget documents missing chunks.

    After a run that finished its writes, with the chunk counts of both equal, there is nothing to
    repair and the full id comparison (20,000 ids read from Chroma) is skipped.
    Returns the number of stray chunks removed and the (source_id, path) of documents to index again.
    """
    if not ledger.interrupted() and store.count() == ledger.counts()[1]:
        return 0, set()
    present = store.all_ids()
    expected = ledger.all_chunk_ids()
    orphans = present - expected
    if orphans:
        store.delete(sorted(orphans))
    missing = expected - present
    broken: set[tuple[str, str]] = set()
    if missing:
        for entry in ledger.documents().values():
            if missing.intersection(entry.chunk_ids):
                broken.add((entry.ref.source_id, entry.ref.path))
        for source_id in {s for s, _ in broken}:
            ledger.forget_documents(source_id, [p for s, p in broken if s == source_id])
    ledger.mark_consistent()
    return len(orphans), broken


@contextmanager
def store_lock(store_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the store's write lock; wait up to `timeout` seconds for another writer, then refuse."""
    from filelock import FileLock, Timeout

    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    lock_path = store_dir / "ingest.lock"
    info_path = store_dir / "ingest.lock.info"
    lock = FileLock(str(lock_path))
    try:
        if timeout > 0:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                logger.info("Another ingest holds %s; waiting up to %.0f s", lock_path, timeout)
                lock.acquire(timeout=timeout)
        else:
            lock.acquire(timeout=0)
    except Timeout:
        holder = info_path.read_text() if info_path.exists() else "unknown process"
        raise StoreBusyError(
            f"another ingest is writing to {store_dir} ({holder}); it did not finish within {timeout:.0f} s. "
            "Wait for it, or raise KBFLOW_LOCK_TIMEOUT."
        ) from None
    try:
        info_path.write_text(json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        yield
    finally:
        lock.release()


@task(name="write-batch", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def write_batch(store: StoreConfig, embedding: dict, refs: list[dict], chunks: list[dict], vectors: list[list[float]],
                terms: list[list[str]], old_ids: list[str]) -> dict:
    """Write a batch: upsert new chunks, commit the ledger, then delete the replaced chunks (idempotent)."""
    from connectors.base import DocumentRef
    from tasks.ledger import DocumentWrite, Ledger

    vectors_store = ChromaStore.open_for_writing(store, **embedding)
    objs = [Chunk(**c) for c in chunks]
    vectors_store.upsert(objs, vectors)
    by_path: dict[str, list[tuple[Chunk, list[str]]]] = {}
    for c, t in zip(objs, terms):
        by_path.setdefault(c.source, []).append((c, t))
    writes = []
    for raw in refs:
        doc_chunks = by_path.get(raw["path"], [])
        writes.append(DocumentWrite(DocumentRef.from_dict(raw), [c.id for c, _ in doc_chunks], [t for _, t in doc_chunks]))
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        ledger.commit_documents(writes)
    new_ids = {c.id for c in objs}
    stale = [i for i in old_ids if i not in new_ids]
    vectors_store.delete(stale)
    return {"written": len(objs), "deleted": len(stale)}
