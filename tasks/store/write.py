"""The store's mutations as Prefect task runs: they show in the UI and retry like any I/O."""

from __future__ import annotations

import errno
import time

from prefect import task
from prefect.cache_policies import NONE

from tasks.ingest.split import Chunk
from tasks.store.base import StoreConfig
from tasks.store.chroma import ChromaStore


def ensure_room(store: StoreConfig, chunks: list[Chunk], dim: int) -> None:
    """Stop before a write that would fill the store's disk (ENOSPC, as a full disk would give).

    Chroma's embedded engine is not reliable on a full disk: a write that meets ENOSPC can fail half-way, and a
    retry of it was seen to hang. So, like Elasticsearch's flood-stage watermark, a batch is written only while
    it leaves `min_free_mb` free. Its bytes are estimated generously: each vector is held in Chroma's log and in
    its index, and each text in its table and in its full-text index, plus the ledger.

    Seen with chromadb 1.x on a 1 MB tmpfs: an upsert fails ("database or disk is full"), the next ones report
    success, and a later one blocks forever inside the Rust engine."""
    import os
    from pathlib import Path

    from tasks.faults import free_bytes

    # Measured: 750 chunks of 500 characters, 384-d, took 5.7 MB in Chroma and 0.6 MB in the ledger; twice that.
    local = 0 if store.chroma_host else sum(2 * (3 * 4 * dim + 6 * len(c.text.encode()) + 1024) for c in chunks)
    batch = local + 512 * len(chunks)  # the ledger's rows
    free = free_bytes(store.store_dir)
    if free < store.min_free_mb * 2**20 + batch:
        raise OSError(
            errno.ENOSPC,
            f"{os.strerror(errno.ENOSPC)}: {free / 2**20:.1f} MB free, this batch needs about {batch / 2**20:.1f} MB "
            f"and kbflow keeps {store.min_free_mb} MB free (KBFLOW_MIN_FREE_MB)",
            str(Path(store.store_dir) / "chroma"),
        )


def _not_a_full_disk(task, task_run, state) -> bool:
    """Retry anything but a full disk: it does not go away in five seconds, and Chroma should not meet it twice."""
    try:
        state.result(raise_on_failure=True)
    except OSError as exc:
        return exc.errno != errno.ENOSPC
    except Exception:  # noqa: BLE001 - any other failure is worth the retry
        return True
    return True


@task(
    name="write-batch",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=_not_a_full_disk,
    cache_policy=NONE,
)
def write_batch(
    store: StoreConfig,
    embedding: dict,
    refs: list[dict],
    chunks: list[dict],
    vectors: list[list[float]],
    terms: list[list[str]],
    old_ids: list[str],
) -> dict:
    """Write a batch: upsert new chunks, commit the ledger, then delete the replaced chunks (idempotent)."""
    from connectors.base import DocumentRef
    from tasks.ingest.ledger import DocumentWrite, Ledger

    objs = [Chunk(**c) for c in chunks]
    ensure_room(store, objs, len(vectors[0]) if vectors else 0)
    vectors_store = ChromaStore.open_for_writing(store, **embedding)
    vectors_store.upsert(objs, vectors, {raw["path"]: raw.get("readers") for raw in refs})
    by_path: dict[str, list[tuple[Chunk, list[str]]]] = {}
    for c, t in zip(objs, terms):
        by_path.setdefault(c.source, []).append((c, t))
    writes = []
    for raw in refs:
        doc_chunks = by_path.get(raw["path"], [])
        writes.append(
            DocumentWrite(DocumentRef.from_dict(raw), [c.id for c, _ in doc_chunks], [t for _, t in doc_chunks])
        )
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        ledger.commit_documents(writes)
    new_ids = {c.id for c in objs}
    stale = [i for i in old_ids if i not in new_ids]
    vectors_store.delete(stale)
    return {"written": len(objs), "deleted": len(stale)}


@task(name="reconcile-store", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def reconcile_store(store: StoreConfig, embedding: dict) -> dict:
    """Repair the store and the ledger after an interrupted run: stray chunks removed, documents to index again."""
    from tasks.ingest.ledger import Ledger
    from tasks.store.reconcile import reconcile

    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        orphans, broken = reconcile(ChromaStore.open_for_writing(store, **embedding), ledger)
    return {"orphans": orphans, "broken": sorted(broken)}


@task(name="set-readers", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def set_readers(store: StoreConfig, embedding: dict, refs: list[dict], ids: list[list[str]]) -> int:
    """A permission change: the documents' chunks get their new readers in Chroma, then the ledger records them
    (idempotent; a run killed between the two does it again). Nothing is embedded; the chunks updated."""
    from connectors.base import DocumentRef
    from tasks.ingest.ledger import Ledger

    if not refs:
        return 0
    by_readers: dict[tuple[str, ...], list[str]] = {}
    for raw, chunk_ids in zip(refs, ids):
        by_readers.setdefault(tuple(raw["readers"]), []).extend(chunk_ids)
    vectors_store = ChromaStore.open_for_writing(store, **embedding)
    updated = sum(vectors_store.set_readers(chunk_ids, readers) for readers, chunk_ids in by_readers.items())
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        ledger.set_readers([DocumentRef.from_dict(raw) for raw in refs])
    return updated


@task(name="delete-documents", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def delete_documents(store: StoreConfig, embedding: dict, source_id: str, paths: list[str], ids: list[str]) -> int:
    """Remove documents from the ledger, then their chunks from the store (idempotent); the chunks removed."""
    from tasks.ingest.ledger import Ledger

    if not paths:
        return 0
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        ledger.forget_documents(source_id, paths)
    return ChromaStore.open_for_writing(store, **embedding).delete(ids)


@task(name="drop-collection", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def drop_collection(store: StoreConfig) -> None:
    """Drop the collection and its ledger records, for a rebuild from scratch."""
    from tasks.ingest.ledger import Ledger

    ChromaStore.drop(store)
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        ledger.drop_collection()


@task(name="keyword-index", cache_policy=NONE)
def update_keyword_index(store: StoreConfig) -> str:
    """Bring the saved keyword index up to the ledger's state (the chunk ids that came and went), so the next process
    that answers maps it from disk instead of making it."""
    from prefect import get_run_logger

    from tasks.store import keyword

    started = time.perf_counter()
    index, done = keyword.refresh(store)
    get_run_logger().info("keyword index %s: %d chunks (%.2f s)", done, index.n, time.perf_counter() - started)
    return done
