"""The Chroma store: one collection per knowledge base, written only with our own embeddings."""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

from tasks.split import Chunk

logger = logging.getLogger("kbflow.tasks.store")

META_MODEL = "kbflow_embedding_model"
META_DIM = "kbflow_embedding_dim"


class StoreError(Exception):
    """The store cannot be used as asked; the message says what to do."""


class EmbeddingMismatchError(StoreError):
    pass


class StoreBusyError(StoreError):
    pass


@lru_cache(maxsize=4)
def get_client(chroma_dir: str, host: str = ""):
    """One Chroma client per store per process: embedded (PersistentClient) or a Chroma server (host:port)."""
    from flows.settings import apply_offline_env

    apply_offline_env()
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if host:
        name, _, port = host.rpartition(":")
        return chromadb.HttpClient(host=name or host, port=int(port or 8000), settings=chroma_settings)
    Path(chroma_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=chroma_dir, settings=chroma_settings)


def existing_collection(store_dir: Path, name: str, host: str = ""):
    """A collection an ingest has built, for reading; a StoreError that says what to run when there is none."""
    from tasks.ledger import ledger_path

    if not ledger_path(store_dir).exists():
        raise StoreError(f"no knowledge base in {store_dir}: run `kbflow ingest PATH` first (or set --store)")
    try:
        return get_client(str(Path(store_dir) / "chroma"), host).get_collection(name, embedding_function=None)
    except Exception:  # chromadb raises NotFoundError / ValueError depending on version
        raise StoreError(f"collection {name!r} does not exist in {store_dir}; run `kbflow ingest PATH` first") from None


def open_collection(chroma_dir: str, name: str, embedding_model: str, dim: int, *, host: str = ""):
    """Open (or create) a collection and refuse it if it was built with another embedding model."""
    coll = get_client(str(chroma_dir), host).get_or_create_collection(
        name,
        embedding_function=None,  # never Chroma's default: it would download an ONNX model
        metadata={"hnsw:space": "cosine", META_MODEL: embedding_model, META_DIM: dim},
    )
    meta = coll.metadata or {}
    stored_model, stored_dim = meta.get(META_MODEL), meta.get(META_DIM)
    if stored_model != embedding_model or (stored_dim is not None and int(stored_dim) != dim):
        raise EmbeddingMismatchError(
            f"collection {name!r} in {chroma_dir} was built with embedding model {stored_model!r} ({stored_dim}-d), "
            f"but the current setting is {embedding_model!r} ({dim}-d). Mixing them would give wrong answers. "
            f"Set KBFLOW_EMBEDDING_MODEL={stored_model} to use it, or rebuild it with "
            f"`kbflow ingest PATH --collection {name} --rebuild` (or pick another --collection)."
        )
    return coll


def drop_collection(chroma_dir: str, name: str, host: str = "") -> None:
    client = get_client(str(chroma_dir), host)
    try:
        client.delete_collection(name)
    except Exception:
        pass  # it did not exist


def max_batch(coll) -> int:
    try:
        return int(coll._client.get_max_batch_size())
    except Exception:
        return 5000


def _batches(seq: Sequence, size: int):
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def upsert_chunks(coll, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> int:
    """Upsert chunks with their embeddings, in batches no larger than Chroma accepts."""
    size = max_batch(coll)
    for idx in _batches(range(len(chunks)), size):
        part = [chunks[i] for i in idx]
        coll.upsert(
            ids=[c.id for c in part],
            embeddings=[list(embeddings[i]) for i in idx],
            documents=[c.text for c in part],
            metadatas=[c.metadata() for c in part],
        )
    return len(chunks)


def delete_chunks(coll, ids: Sequence[str]) -> int:
    ids = list(ids)
    for part in _batches(ids, max_batch(coll)):
        coll.delete(ids=list(part))
    return len(ids)


def all_ids(coll) -> set[str]:
    """Every chunk id in the collection, read in pages."""
    out: set[str] = set()
    page, offset = 10000, 0
    while True:
        got = coll.get(include=[], limit=page, offset=offset)
        ids = got["ids"]
        out.update(ids)
        if len(ids) < page:
            return out
        offset += page


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
