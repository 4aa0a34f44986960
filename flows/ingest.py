"""The ingest flow: keep a Chroma collection exactly in sync with a document source."""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from connectors.access import AccessFileError
from connectors.base import DocumentRef, Listing, Source, SourceError, source_config_from_spec, source_from_config
from flows.errors import ConfigError, DocumentsFailed
from tasks import progress
from tasks.embed.embedder import get_embedder, resolve_backend
from tasks.ingest.index import index_batch, list_documents, warm_up
from tasks.ingest.ledger import Ledger, LedgerEntry
from tasks.ingest.plan import ChangePlan, plan_changes
from tasks.ingest.summary import IngestSummary
from tasks.settings import Settings, load_settings
from tasks.store import keyword
from tasks.store.base import EmbeddingMismatchError
from tasks.store.chroma import ChromaStore, collection_for_model, state_token
from tasks.store.lock import store_lock
from tasks.store.recover import heal_store
from tasks.store.reembed import drop_retired, reembed_store
from tasks.store.write import (
    delete_documents,
    drop_collection,
    reconcile_store,
    set_readers,
    update_keyword_index,
    write_batch,
)


def _run_name() -> str:
    params = flow_run.parameters
    source = params.get("source_path") or (params.get("source") or {}).get("root") or "source"
    return f"refresh-{Path(str(source)).resolve().name or 'root'}"


def artifact_key(prefix: str, name: str) -> str:
    return (prefix + "-" + re.sub(r"[^a-z0-9-]+", "-", name.lower())).strip("-")[:100]


def open_source(source: dict[str, Any] | None, source_path: str | None, cfg: Settings) -> Source:
    """The source to sync: a connector config, or a spec (a folder path or s3://BUCKET/PREFIX) as the CLI and
    prefect.yaml give."""
    if source is None and not source_path:
        raise ConfigError("no source given: pass a folder path or s3://BUCKET/PREFIX")
    try:
        config = source or source_config_from_spec(
            source_path, cfg.include, cfg.exclude, endpoint_url=cfg.s3_endpoint_url
        )
        return source_from_config(config)
    except (SourceError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


@contextmanager
def healed(cfg: Settings, rebuild: bool):
    """Check the ledger and the Chroma database first: heal what can be healed and say so; a store that only a
    re-index can mend stops the run with a message that names the folder and --rebuild (StoreDamaged)."""
    for line in heal_store(cfg.store_config(), rebuild):
        get_run_logger().warning("%s", line)
        progress.notice(line)
    yield


def open_store(cfg: Settings, rebuild: bool) -> tuple[ChromaStore, dict]:
    """The collection to write, created if new; the embedding model is loaded only when the collection is new. A
    collection embedded with another model than the setting's keeps serving while the knowledge base is embedded
    again into a new one, which then serves (tasks.store.reembed)."""
    store = cfg.store_config()
    if rebuild:
        get_run_logger().info("Rebuilding collection %r from scratch", cfg.collection)
        drop_collection(store)
    serving = ChromaStore.open_existing(store) if ChromaStore.collection_exists(store) else None
    changed = serving is not None and serving.embedding_model != cfg.embedding_model
    if serving is not None and not changed:
        dim = serving.embedding_dim
    else:
        try:
            dim = get_embedder(cfg.embedder_config()).dimension
        except Exception as exc:  # noqa: BLE001 - any failure to load it: the store is left as it is, and says so
            if not changed:
                raise
            raise ConfigError(
                f"cannot load embedding model {cfg.embedding_model!r} ({type(exc).__name__}: {str(exc)[:200]}); the "
                f"store still serves {serving.embedding_model!r}. Fix KBFLOW_EMBEDDING_MODEL, or set it back."
            ) from None
    embedding = {"embedding_model": cfg.embedding_model, "dim": dim, "backend": resolve_backend(cfg.embedder_config())}
    retire(cfg, serving, embedding if changed else None)
    if changed:
        return reembed_store(store, serving, cfg.embedder_config(), embedding), embedding
    try:
        return ChromaStore.open_for_writing(store, **embedding), embedding
    except EmbeddingMismatchError as exc:
        raise ConfigError(str(exc)) from exc


def retire(cfg: Settings, serving: ChromaStore | None, building: dict | None) -> None:
    """Drop the collections a model change left behind, but the one serving and the one being built."""
    store = cfg.store_config()
    keep = {serving.name} if serving is not None else set()
    if building is not None:
        keep.add(collection_for_model(store, building["embedding_model"]))
    else:
        with Ledger.of_store(cfg.store_dir, cfg.collection) as ledger:
            if ledger.building():
                ledger.abandon_building()  # the setting went back to the serving model
    for name in drop_retired(store, keep):
        get_run_logger().info("Dropped collection %s (embedded with a model that no longer serves)", name)


LOCAL_LANES = 2  # with task_runner=local: one batch partitions (Python, one core) while the other embeds


def lanes(cfg: Settings) -> int:
    """How many batches run at once."""
    return LOCAL_LANES if cfg.task_runner == "local" else cfg.workers


def batch_size(cfg: Settings, documents: int) -> int:
    """Documents per batch: at most KBFLOW_INGEST_BATCH_DOCS, and small enough that each lane gets two batches (a
    100-document folder was one batch, and one of two workers idled), but not below 8 unless asked (a batch's fixed
    cost)."""
    return min(cfg.ingest_batch_docs, max(8, math.ceil(documents / (2 * lanes(cfg)))))


def task_runner(cfg: Settings):
    """The Prefect task runner for the batches: threads of the flow's process (local), processes or Dask."""
    if cfg.task_runner == "local":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=LOCAL_LANES)
    if cfg.task_runner == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=cfg.workers)
    if cfg.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        # A local cluster stays on loopback, its dashboard included (the default listens on 0.0.0.0).
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": cfg.workers,
                "threads_per_worker": 1,
                "processes": True,
                "host": "127.0.0.1",
                "dashboard_address": "127.0.0.1:0",
            }
        )
    raise ConfigError(f"unknown task runner {cfg.task_runner!r}")


def batch_results(cfg: Settings, source: Source, batches: list[list[dict]]) -> Iterator[dict]:
    """index_batch's result for each batch, in order. A few batches are submitted ahead (every lane stays busy,
    memory and API load stay bounded); a batch that still fails after a retry (a worker died) comes back as failed
    documents, and the run goes on."""
    args = (source.to_config(), cfg.split_options(), cfg.embedder_config())
    runner = task_runner(cfg)
    task = index_batch.with_options(retries=1, retry_delay_seconds=2)

    def submit(batch):
        return runner.submit(task, {"source_config": args[0], "refs": batch, "split": args[1], "embedder": args[2]})

    with runner:
        ahead = deque((b, submit(b)) for b in batches[: 2 * lanes(cfg)])
        rest = iter(batches[2 * lanes(cfg) :])
        while ahead:
            batch, future = ahead.popleft()
            if (following := next(rest, None)) is not None:
                ahead.append((following, submit(following)))
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - reported per document; the other batches go on
                reason = f"batch failed on a worker: {type(exc).__name__}: {str(exc)[:200]}"
                yield {
                    "chunks": [],
                    "vectors": [],
                    "terms": [],
                    "failed": {r["path"]: reason for r in batch},
                    "vanished": [],
                }


def index_documents(
    plan: ChangePlan, source: Source, cfg: Settings, embedding: dict, entries: dict[str, LedgerEntry]
) -> dict:
    """Index the plan's documents batch by batch: prepare and embed, then write in order (the flow is the one
    writer)."""
    store, todo = cfg.store_config(), [r.to_dict() for r in plan.to_index]
    done = {"written": 0, "deleted": 0, "failed": {}, "vanished": [], "warnings": {}}
    if not todo:
        return done
    artifact = create_progress_artifact(
        progress=0.0,
        key=artifact_key("ingest-progress", cfg.collection),
        description=f"Documents prepared, embedded and written ({len(todo)} to do)",
    )
    if cfg.task_runner == "local":
        warm_up(cfg.embedder_config())
    step = batch_size(cfg, len(todo))
    batches = [todo[i : i + step] for i in range(0, len(todo), step)]
    progress.start(len(todo), "indexing")
    started, chunks = time.monotonic(), 0
    seconds: dict[str, float] = {}
    for n, (batch, got) in enumerate(zip(batches, batch_results(cfg, source, batches)), start=1):
        for stage, took in got.get("seconds", {}).items():
            seconds[stage] = seconds.get(stage, 0.0) + took
        write_started = time.monotonic()
        done["failed"].update(got["failed"])
        done["vanished"] += got["vanished"]
        done["warnings"].update(got.get("warnings", {}))
        ok = [r for r in batch if r["path"] not in got["failed"] and r["path"] not in got["vanished"]]
        old = [i for r in ok for i in chunk_ids(entries, r["path"])]
        # quote(): Prefect would otherwise visit every float of every vector looking for futures.
        wrote = write_batch(
            store, embedding, quote(ok), quote(got["chunks"]), quote(got["vectors"]), quote(got["terms"]), quote(old)
        )
        seconds["write"] = seconds.get("write", 0.0) + time.monotonic() - write_started
        done["written"] += wrote["written"]
        done["deleted"] += wrote["deleted"]
        chunks += len(got["chunks"])
        progress.advance(len(batch), f"{chunks} chunks, {chunks / max(1e-6, time.monotonic() - started):.1f} chunks/s")
        if artifact:
            update_progress_artifact(artifact, progress=100.0 * n / len(batches))
    progress.finish()
    get_run_logger().info(
        "Where the time went (summed over %d lanes): %s",
        lanes(cfg),
        ", ".join(f"{stage.replace('_', ' ')} {took:.1f} s" for stage, took in seconds.items()),
    )
    return done


def chunk_ids(entries: dict[str, LedgerEntry], path: str) -> list[str]:
    """The chunk ids the ledger holds for a path (none for a new one); parsed only for the paths that need it."""
    entry = entries.get(path)
    return entry.chunk_ids if entry is not None else []


def forget(cfg: Settings, embedding: dict, source_id: str, paths: list[str], entries: dict[str, LedgerEntry]) -> int:
    """Remove documents from the ledger, then their chunks from the store; the number of chunks removed."""
    if not paths:
        return 0
    ids = [i for p in paths for i in chunk_ids(entries, p)]
    return delete_documents(cfg.store_config(), embedding, source_id, paths, quote(ids))


KB_CHANGED = "kbflow.knowledge-base.changed"


def announce_change(cfg: Settings, source: Source, changes: list[dict]) -> None:
    """Emit a Prefect event when this run changed the knowledge base (none when nothing changed).

    Its resource is the store and collection; its payload carries them and the changed documents, so a
    deployment trigger (kb-answer's in prefect.yaml) re-answers the standing question set from that store.
    """
    if not changes:
        return
    from prefect.events import emit_event

    store_dir = str(Path(cfg.store_dir).resolve())
    emit_event(
        event=KB_CHANGED,
        resource={"prefect.resource.id": f"kbflow.knowledge-base.{cfg.collection}", "kbflow.store": store_dir},
        payload={
            "store_dir": store_dir,
            "collection": cfg.collection,
            "source": source.describe(),
            "changed": changes[:500],
            "changed_count": len(changes),
        },
    )
    get_run_logger().info("Announced %s: %d document(s) changed", KB_CHANGED, len(changes))


def publish(summary: IngestSummary) -> None:
    """The summary as a table artifact and log lines; a run with failed documents ends Failed."""
    logger = get_run_logger()
    create_table_artifact(
        table=summary.table(),
        key=artifact_key("ingest-summary", summary.collection),
        description=f"Ingest of {summary.source} into {summary.collection!r}",
    )
    logger.info("Done: %s", summary.counts())
    for path in summary.vanished:
        logger.info("%s was deleted while the run was going on: not indexed, its old chunks removed", path)
    for f in summary.failed:
        logger.warning("Could not index %s: %s", f["path"], f["reason"])
    if summary.failed:
        raise DocumentsFailed(summary.to_dict())


@flow(name="kb-ingest", flow_run_name=_run_name, log_prints=False)
def ingest_flow(
    source_path: str | None = None,
    store_dir: str | None = None,
    collection: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    embedding_model: str | None = None,
    rebuild: bool = False,
    source: dict[str, Any] | None = None,
) -> dict:
    """Refresh a knowledge base from a source: index new and changed documents, drop deleted ones, report failures.

    Every store mutation is a task run (drop-collection, reconcile-store, delete-documents, write-batch): each
    shows in the UI and retries on its own. The flow holds the store's write lock throughout.
    """
    started = time.monotonic()
    cfg = load_settings(
        store_dir=store_dir,
        collection=collection,
        include=include,
        exclude=exclude,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        embedding_model=embedding_model,
    )
    src = open_source(source, source_path, cfg)
    with (
        store_lock(cfg.store_dir, cfg.lock_timeout),
        healed(cfg, rebuild),
        Ledger.of_store(cfg.store_dir, cfg.collection) as ledger,
    ):
        run = plan_refresh(cfg, src, ledger, rebuild)
        apply_plan(cfg, src, ledger, run)
        record_refresh(cfg, src, ledger, run)
    summary, changes = summarize(cfg, src, run, time.monotonic() - started)
    announce_change(cfg, src, changes)
    publish(summary)
    return summary.to_dict()


@dataclass
class Refresh:
    """One refresh as it goes: the plan, the ledger's entries before it, and what the store work did."""

    plan: ChangePlan
    entries: dict[str, LedgerEntry]
    vectors: ChromaStore | None
    embedding: dict | None
    orphans: int
    broken: set
    done: dict = field(
        default_factory=lambda: {"written": 0, "deleted": 0, "failed": {}, "vanished": [], "warnings": {}}
    )
    chunks_deleted: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def plan_refresh(cfg: Settings, src: Source, ledger: Ledger, rebuild: bool) -> Refresh:
    """Reconcile the store if the last run did not finish, list the source, and plan what changes."""
    vectors, embedding = None, None
    orphans, broken = 0, set()
    # Chroma as the last finished run left it holds what the ledger lists: reconcile has nothing to repair,
    # and a refresh that finds no changed document never opens it (nor imports chromadb: a third of its time).
    # A model change's retired collection is dropped by the next refresh, even one that finds nothing changed.
    if rebuild or ledger.retired() or not ledger.store_as_left(state_token(cfg.store_config(), cfg.embedding_model)):
        vectors, embedding = open_store(cfg, rebuild)
        repaired = reconcile_store(cfg.store_config(), embedding)
        orphans, broken = repaired["orphans"], {tuple(b) for b in repaired["broken"]}
    entries = ledger.documents(src.source_id)
    known = {p: e.ref for p, e in entries.items()}
    # quote(): the known refs (one per indexed file) are data, not something for Prefect to walk.
    try:
        listed = list_documents(src.to_config(), quote({p: r.to_dict() for p, r in known.items()}))
    except AccessFileError as exc:  # before anything is written: readers are never guessed
        raise ConfigError(str(exc)) from None
    listing = Listing([DocumentRef.from_dict(r) for r in listed["refs"]], listed["errors"])
    plan = plan_changes(listing, known, {p for s, p in broken if s == src.source_id})
    log_plan(plan, orphans, src)
    if embedding is None and (plan.deleted or plan.to_index or plan.regranted):
        vectors, embedding = open_store(cfg, rebuild=False)
    return Refresh(plan, entries, vectors, embedding, orphans, broken)


def apply_plan(cfg: Settings, src: Source, ledger: Ledger, run: Refresh) -> None:
    """Give documents whose permissions alone changed their new readers, delete what left the source, index what
    is new or changed, and drop what vanished while it was read."""
    plan = run.plan
    if not (plan.deleted or plan.to_index or plan.regranted):
        return
    with ledger.writing():
        if plan.regranted:
            regranted = [r.to_dict() for r in plan.regranted]
            ids = [chunk_ids(run.entries, r["path"]) for r in regranted]
            set_readers(cfg.store_config(), run.embedding, quote(regranted), quote(ids))
        run.chunks_deleted = forget(cfg, run.embedding, src.source_id, plan.deleted, run.entries)
        run.done = index_documents(plan, src, cfg, run.embedding, run.entries)
        # A document deleted while the run read it: not a failure, and its old chunks go.
        run.plan = plan.vanish(run.done["vanished"])
        gone = [p for p in run.plan.vanished if p in run.entries]
        run.chunks_deleted += forget(cfg, run.embedding, src.source_id, gone, run.entries)


def record_refresh(cfg: Settings, src: Source, ledger: Ledger, run: Refresh) -> None:
    """Bring the keyword index up to date and record failures and the store's state in the ledger."""
    plan = run.plan
    changed = plan.deleted or plan.to_index or plan.regranted
    if changed or run.orphans or run.broken or not keyword.is_current(cfg.store_config()):
        # Not fatal: a process that answers makes the index itself when it finds none for the ledger's state.
        if update_keyword_index(cfg.store_config(), return_state=True).is_failed():
            get_run_logger().warning("The keyword index was not updated; the next question makes it (slower)")
    run.failed = {**plan.unreadable, **run.done["failed"]}
    ledger.record_failures(src.source_id, run.failed)
    ledger.clear_failures(src.source_id, keep=run.failed)
    ledger.set_meta("last_refresh", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    ledger.record_store_as_left(
        state_token(cfg.store_config(), cfg.embedding_model), run.vectors and run.vectors.embedding_record()
    )


def summarize(cfg: Settings, src: Source, run: Refresh, duration_s: float) -> tuple[IngestSummary, list[dict]]:
    """The run's summary, and the documents it changed (for the standing question sets)."""
    plan, failed = run.plan, run.failed
    summary = IngestSummary(
        source=src.describe(),
        store=str(cfg.store_dir),
        collection=cfg.collection,
        added=sum(r.path not in failed for r in plan.added),
        updated=sum(r.path not in failed for r in plan.changed + plan.repaired),
        deleted=len(plan.deleted),
        unchanged=len(plan.unchanged),
        repaired=len(run.broken),
        readers_changed=len(plan.regranted),
        chunks_written=run.done["written"],
        chunks_deleted=run.chunks_deleted + run.done["deleted"],
        duration_s=round(duration_s, 3),
        vanished=plan.vanished,
        failed=[{"path": p, "reason": failed[p]} for p in sorted(failed)],
        warnings=IngestSummary.warning_rows(run.done["warnings"]),
    )
    changes = [{"path": r.path, "change": "added"} for r in plan.added if r.path not in failed]
    changes += [{"path": r.path, "change": "edited"} for r in plan.changed + plan.repaired if r.path not in failed]
    changes += [{"path": p, "change": "deleted"} for p in plan.deleted + [p for p in plan.vanished if p in run.entries]]
    changes += [{"path": r.path, "change": "readers"} for r in plan.regranted]
    return summary, changes


def log_plan(plan: ChangePlan, orphans: int, source: Source) -> None:
    logger = get_run_logger()
    if orphans or plan.repaired:
        logger.info(
            "Repaired the store after an interrupted run: %d stray chunks removed, %d documents to re-index",
            orphans,
            len(plan.repaired),
        )
    logger.info(
        "Listed %s: %d new, %d changed, %d unchanged (%d with new readers), %d deleted, %d unreadable",
        source.describe(),
        len(plan.added),
        len(plan.changed),
        len(plan.unchanged),
        len(plan.regranted),
        len(plan.deleted),
        len(plan.unreadable),
    )
