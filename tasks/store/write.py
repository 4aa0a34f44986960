"""The store's mutations as Prefect task runs: they show in the UI and retry like any I/O."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from tasks.ingest.split import Chunk
from tasks.store.base import StoreConfig
from tasks.store.chroma import ChromaStore


@task(name="write-batch", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
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

    vectors_store = ChromaStore.open_for_writing(store, **embedding)
    objs = [Chunk(**c) for c in chunks]
    vectors_store.upsert(objs, vectors)
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
