"""The ingest flow: keep a Chroma collection exactly in sync with a document folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.runtime import flow_run

from connectors.base import DocumentRef, SourceError, source_from_config
from connectors.local import LocalSource, LocalSourceConfig
from flows.settings import Settings, load_settings
from tasks.embed import embed_texts, embedding_dimension
from tasks.ledger import DocumentWrite, Ledger, ledger_path
from tasks.partition import PartitionError, partition_document
from tasks.split import Chunk, split_sections
from tasks.store import (
    EmbeddingMismatchError,
    all_ids,
    delete_chunks,
    drop_collection,
    get_client,
    open_collection,
    store_lock,
    upsert_chunks,
)
from tasks.text import tokenize


class ConfigError(Exception):
    """A usage or configuration error: the message says what to fix (CLI exit code 2)."""


class DocumentsFailed(Exception):
    """Some documents failed; the others were indexed. Carries the run summary (CLI exit code 1)."""

    def __init__(self, summary: dict[str, Any]):
        self.summary = summary
        failed = summary["failed"]
        shown = "; ".join(f"{f['path']}: {f['reason']}" for f in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        super().__init__(f"{len(failed)} document(s) failed, the rest were indexed: {shown}{more}")


def _run_name() -> str:
    source = flow_run.parameters.get("source_path", "") or "source"
    return f"refresh-{Path(str(source)).resolve().name or 'root'}"


@task(name="list-documents", retries=2, retry_delay_seconds=[1, 5])
def list_documents(source_config: dict, known: dict[str, dict]) -> dict:
    """List the source's documents with their hashes, reusing known hashes of unchanged files."""
    source = source_from_config(source_config)
    listing = source.list({p: DocumentRef.from_dict(r) for p, r in known.items()})
    return {"refs": [r.to_dict() for r in listing.refs], "errors": listing.errors}


@task(name="prepare-documents")
def prepare_documents(source_config: dict, refs: list[dict], chunk_size: int, chunk_overlap: int) -> dict:
    """Read, partition and split a batch of documents; a document that fails is reported, not raised."""
    source = source_from_config(source_config)
    chunks: list[dict] = []
    failed: dict[str, str] = {}
    for raw in refs:
        ref = DocumentRef.from_dict(raw)
        try:
            data = source.read(ref)
            sections = partition_document(data, ref.path)
            doc_chunks = split_sections(
                sections,
                source=ref.path,
                source_id=ref.source_id,
                doc_sha256=ref.sha256,
                chunk_size=chunk_size,
                chunk_overlap=chunk_overlap,
            )
            if not doc_chunks:
                raise PartitionError("no text extracted")
        except (PartitionError, SourceError) as exc:
            failed[ref.path] = str(exc)
            continue
        chunks.extend(c.to_dict() for c in doc_chunks)
    return {"chunks": chunks, "failed": failed}


@task(name="embed-chunks")
def embed_chunks(texts: list[str], model: str, backend: str, batch_size: int) -> list[list[float]]:
    """Embed chunk texts with the sentence-transformers model (loaded once per process)."""
    return embed_texts(texts, model=model, backend=backend, batch_size=batch_size)


@task(name="write-chunks", retries=2, retry_delay_seconds=[1, 5])
def write_chunks(
    store_dir: str, collection: str, chroma_host: str, embedding_model: str, dim: int,
    refs: list[dict], chunks: list[dict], embeddings: list[list[float]], old_ids: list[str],
) -> dict:
    """Write a batch: upsert new chunks, commit the ledger, then delete the replaced chunks (idempotent)."""
    coll = open_collection(str(Path(store_dir) / "chroma"), collection, embedding_model, dim, host=chroma_host)
    objs = [Chunk(**c) for c in chunks]
    upsert_chunks(coll, objs, embeddings)
    by_path: dict[str, list[Chunk]] = {}
    for c in objs:
        by_path.setdefault(c.source, []).append(c)
    writes = []
    for raw in refs:
        ref = DocumentRef.from_dict(raw)
        doc_chunks = by_path.get(ref.path, [])
        writes.append(DocumentWrite(ref, [c.id for c in doc_chunks], [tokenize(c.text) for c in doc_chunks]))
    ledger = Ledger(ledger_path(Path(store_dir)), collection)
    try:
        ledger.commit_documents(writes)
    finally:
        ledger.close()
    new_ids = {c.id for c in objs}
    stale = [i for i in old_ids if i not in new_ids]
    delete_chunks(coll, stale)
    return {"written": len(objs), "deleted": len(stale)}


def reconcile(coll, ledger: Ledger) -> tuple[int, set[tuple[str, str]]]:
    """Make Chroma and the ledger agree after any crash: drop unknown chunks, re-index documents missing chunks."""
    present = all_ids(coll)
    expected = ledger.all_chunk_ids()
    orphans = present - expected
    if orphans:
        delete_chunks(coll, sorted(orphans))
    missing = expected - present
    broken: set[tuple[str, str]] = set()
    if missing:
        for entry in ledger.documents().values():
            if missing.intersection(entry.chunk_ids):
                broken.add((entry.ref.source_id, entry.ref.path))
        for source_id in {s for s, _ in broken}:
            ledger.forget_documents(source_id, [p for s, p in broken if s == source_id])
    return len(orphans), broken


def _table(summary: dict) -> list[dict]:
    rows = [{"item": k, "value": str(summary[k])} for k in (
        "added", "updated", "deleted", "unchanged", "repaired", "chunks_written", "chunks_deleted", "duration_s"
    )]
    rows.append({"item": "failed", "value": str(len(summary["failed"]))})
    rows += [{"item": f"failed: {f['path']}", "value": f["reason"]} for f in summary["failed"]]
    return rows


def _artifact_key(prefix: str, name: str) -> str:
    import re

    return (prefix + "-" + re.sub(r"[^a-z0-9-]+", "-", name.lower())).strip("-")[:100]


@flow(name="kb-ingest", flow_run_name=_run_name, log_prints=False)
def ingest_flow(
    source_path: str,
    store_dir: str | None = None,
    collection: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    embedding_model: str | None = None,
    rebuild: bool = False,
) -> dict:
    """Refresh a knowledge base from a folder: index new and changed documents, drop deleted ones, report failures."""
    logger = get_run_logger()
    started = time.monotonic()
    cfg: Settings = load_settings(
        store_dir=store_dir, collection=collection, include=include, exclude=exclude,
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, embedding_model=embedding_model,
    )
    try:
        source = LocalSource(LocalSourceConfig(root=source_path, include=cfg.include, exclude=cfg.exclude))
    except SourceError as exc:
        raise ConfigError(str(exc)) from exc
    source_config = source.to_config()
    store = Path(cfg.store_dir)
    chroma_dir = str(cfg.chroma_dir)

    with store_lock(store, cfg.lock_timeout):
        ledger = Ledger(ledger_path(store), cfg.collection)
        try:
            if rebuild:
                logger.info("Rebuilding collection %r from scratch", cfg.collection)
                drop_collection(chroma_dir, cfg.collection, cfg.chroma_host)
                ledger.drop_collection()
            # The model is loaded only when the collection is new or something needs embedding.
            dim: int | None = None
            existing = {c.name for c in get_client(chroma_dir, cfg.chroma_host).list_collections()}
            if cfg.collection in existing:
                coll = get_client(chroma_dir, cfg.chroma_host).get_collection(cfg.collection, embedding_function=None)
                dim = int((coll.metadata or {}).get("kbflow_embedding_dim", 0)) or None
            if dim is None:
                dim = embedding_dimension(cfg.embedding_model, cfg.embedding_backend)
            try:
                coll = open_collection(chroma_dir, cfg.collection, cfg.embedding_model, dim, host=cfg.chroma_host)
            except EmbeddingMismatchError as exc:
                raise ConfigError(str(exc)) from exc

            orphans, broken = reconcile(coll, ledger)
            if orphans or broken:
                logger.info("Repaired the store after an interrupted run: %d stray chunks removed, %d documents to re-index", orphans, len(broken))
            repaired_paths = {p for s, p in broken if s == source.source_id}

            entries = ledger.documents(source.source_id)
            known = {p: e.ref.to_dict() for p, e in entries.items()}
            known_ids = {p: e.chunk_ids for p, e in entries.items()}
            listing = list_documents(source_config, known)
            current = {r["path"]: r for r in listing["refs"]}
            failed: dict[str, str] = dict(listing["errors"])

            added = [r for p, r in current.items() if p not in known and p not in repaired_paths]
            repaired = [r for p, r in current.items() if p in repaired_paths]
            updated = [r for p, r in current.items() if p in known and known[p]["sha256"] != r["sha256"]]
            unchanged = [p for p, r in current.items() if p in known and known[p]["sha256"] == r["sha256"]]
            # A file we could not even read is kept as it was indexed: a failure must not delete knowledge.
            deleted = [p for p in known if p not in current and p not in failed]
            logger.info(
                "Listed %d documents in %s: %d new, %d changed, %d unchanged, %d deleted, %d unreadable",
                len(current), source_path, len(added), len(updated), len(unchanged), len(deleted), len(failed),
            )

            chunks_deleted = 0
            if deleted:
                stale = [i for p in deleted for i in known_ids[p]]
                ledger.forget_documents(source.source_id, deleted)
                chunks_deleted += delete_chunks(coll, stale)

            todo = added + repaired + updated
            chunks_written = 0
            if todo:
                embedding_dimension(cfg.embedding_model, cfg.embedding_backend)  # load once, before the loop
                progress_id = create_progress_artifact(
                    progress=0.0, key=_artifact_key("ingest-progress", cfg.collection),
                    description=f"Documents prepared, embedded and written ({len(todo)} to do)",
                )
                step = cfg.ingest_batch_docs
                for start in range(0, len(todo), step):
                    batch = todo[start : start + step]
                    prepared = prepare_documents(source_config, batch, cfg.chunk_size, cfg.chunk_overlap)
                    failed.update(prepared["failed"])
                    ok_refs = [r for r in batch if r["path"] not in prepared["failed"]]
                    chunks = prepared["chunks"]
                    vectors = embed_chunks([c["text"] for c in chunks], cfg.embedding_model, cfg.embedding_backend, cfg.embed_batch_size)
                    old = [i for r in ok_refs for i in known_ids.get(r["path"], [])]
                    wrote = write_chunks(
                        str(store), cfg.collection, cfg.chroma_host, cfg.embedding_model, dim, ok_refs, chunks, vectors, old
                    )
                    chunks_written += wrote["written"]
                    chunks_deleted += wrote["deleted"]
                    if progress_id:
                        update_progress_artifact(progress_id, progress=100.0 * min(len(todo), start + step) / len(todo))
                logger.info("Wrote %d chunks for %d documents", chunks_written, len(todo) - len([r for r in todo if r["path"] in failed]))

            ledger.record_failures(source.source_id, failed)
            ledger.clear_failures(source.source_id, keep=failed)
            ledger.set_meta("last_refresh", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        finally:
            ledger.close()

    failed_paths = set(failed)
    summary = {
        "source": str(source.root),
        "store": str(store),
        "collection": cfg.collection,
        "added": len([r for r in added if r["path"] not in failed_paths]),
        "updated": len([r for r in updated + repaired if r["path"] not in failed_paths]),
        "deleted": len(deleted),
        "unchanged": len(unchanged),
        "repaired": len(broken),
        "failed": [{"path": p, "reason": failed[p]} for p in sorted(failed)],
        "chunks_written": chunks_written,
        "chunks_deleted": chunks_deleted,
        "duration_s": round(time.monotonic() - started, 3),
    }
    create_table_artifact(
        table=_table(summary), key=_artifact_key("ingest-summary", cfg.collection),
        description=f"Ingest of {source.root} into {cfg.collection!r}",
    )
    logger.info(
        "Done in %.1f s: %d added, %d updated, %d deleted, %d unchanged, %d failed",
        summary["duration_s"], summary["added"], summary["updated"], summary["deleted"], summary["unchanged"], len(failed),
    )
    if failed:
        for f in summary["failed"]:
            logger.warning("Could not index %s: %s", f["path"], f["reason"])
        raise DocumentsFailed(summary)
    return summary
