"""Heal a store whose ledger or Chroma database is damaged or missing, or say exactly what to run.

- Ledger damaged (not a database, or a failed integrity check) or missing, Chroma intact: the damaged file
  is set aside (`ledger.sqlite.damaged-<time>`, never deleted) and the ledger is rebuilt from what Chroma
  holds (each chunk's id, source, path, document hash and text), so nothing is embedded again.
- Chroma damaged or missing, ledger intact: nothing can be rebuilt without embedding again, so the run
  stops with a message that names the folder and `--rebuild`.
- `--rebuild` works however damaged the store is: it sets the damaged parts aside and indexes again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from tasks.store.base import StoreConfig, StoreError

logger = logging.getLogger("kbflow.tasks.store.recover")


class StoreDamaged(StoreError):
    """A part of the store cannot be read; the message names it and what to run."""


def set_aside(path: Path) -> Path:
    """Move a damaged file or folder (with a SQLite file's -wal and -shm) to `<name>.damaged-<time>`."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            os.replace(part, Path(str(aside) + suffix))
    return aside


def sqlite_problem(path: Path, thorough: bool = False) -> str | None:
    """Why a SQLite file cannot be used, None when it is sound.

    By default a cheap check that costs the same at any size (every refresh runs it): the header and the
    schema can be read. thorough (`--rebuild`): SQLite's quick_check reads every page.
    """
    try:
        with path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return "file is not a database"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            result = db.execute("PRAGMA quick_check").fetchone()[0] if thorough else "ok"
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if result == "ok" else f"integrity check failed: {result}"


def chroma_problem(config: StoreConfig, thorough: bool = False) -> str | None:
    """Why the embedded Chroma database cannot be used, None when it opens (or a Chroma server is used)."""
    if config.chroma_host:
        return None
    db = Path(config.chroma_dir) / "chroma.sqlite3"
    if not db.exists():
        return "missing"
    if db.stat().st_size == 0:
        return "empty"
    return sqlite_problem(db, thorough)


def serving_in_chroma(config: StoreConfig) -> str | None:
    """The collection a ledger made again is read from: the one the ledger names (or the knowledge base's own name),
    else the knowledge base's only collection (a ledger lost after a change of embedding model); None if none."""
    from tasks.store.chroma import ChromaStore, collection_name

    name, present = collection_name(config), ChromaStore.collections_of(config)
    if name in present:
        return name
    return next(iter(present)) if len(present) == 1 else None


def ledger_documents_in_chroma(config: StoreConfig) -> int | None:
    """How many chunks the collection holds, or None when it cannot be opened."""
    try:
        name = serving_in_chroma(config)
        if name is None:
            return 0
        from tasks.store.chroma import _client

        return int(
            _client(config.chroma_dir, config.chroma_host, config.chroma_token)
            .get_collection(name, embedding_function=None)
            .count()
        )
    except Exception:  # noqa: BLE001 - any failure to read the collection means it cannot be trusted
        return None


def rebuild_ledger_from_chroma(config: StoreConfig) -> int:
    """Write a new ledger from the collection's chunks: documents, chunk ids in order, keyword tokens. Returns the
    documents recorded. Sizes and mtimes are unknown, so the next listing hashes each file once again."""
    from connectors.base import DocumentRef
    from tasks.ingest.ledger import DocumentWrite, Ledger
    from tasks.store.chroma import ChromaStore, _client, pinned
    from tasks.text import tokenize

    name = serving_in_chroma(config) or config.collection
    coll = _client(config.chroma_dir, config.chroma_host, config.chroma_token).get_collection(
        name, embedding_function=None
    )
    docs: dict[tuple[str, str], dict] = {}
    offset, page = 0, 2000
    while True:
        got = coll.get(include=["metadatas", "documents"], limit=page, offset=offset)
        for cid, meta, text in zip(got["ids"], got["metadatas"], got["documents"]):
            meta = meta or {}
            key = (str(meta.get("source_id") or ""), str(meta.get("source") or ""))
            readers = meta.get("readers")  # kept in Chroma too: a ledger made again keeps who may read what
            doc = docs.setdefault(
                key,
                {
                    "sha256": str(meta.get("doc_sha256") or ""),
                    "readers": tuple(readers) if isinstance(readers, list) else None,
                    "chunks": [],
                },
            )
            doc["chunks"].append((int(meta.get("chunk_index") or 0), cid, tokenize(text or "")))
        if len(got["ids"]) < page:
            break
        offset += page
    writes = []
    for (source_id, path), doc in docs.items():
        chunks = sorted(doc["chunks"])
        ref = DocumentRef(source_id, path, -1, 0.0, doc["sha256"], doc["readers"])
        writes.append(DocumentWrite(ref, [c[1] for c in chunks], [c[2] for c in chunks]))
    with Ledger.of_store(Path(config.store_dir), config.collection) as ledger:
        ledger.commit_documents(writes)
        # Which collection serves, with its model: it may not bear the knowledge base's own name.
        ledger.record_store_as_left("", ChromaStore(pinned(config, name), coll).embedding_record())
        ledger.mark_consistent()
    return len(writes)


def heal_store(config: StoreConfig, rebuild: bool) -> list[str]:
    """Check the ledger and the Chroma database before a run; heal what can be healed. Returns what was done,
    in words; raises StoreDamaged (naming the folder and --rebuild) when only a re-index can help."""
    from tasks.ingest.ledger import ledger_path

    store_dir = Path(config.store_dir)
    ledger = ledger_path(store_dir)
    said: list[str] = []
    # --rebuild reads every page: it must work however damaged the store is; a refresh checks cheaply.
    ledger_bad = sqlite_problem(ledger, thorough=rebuild) if ledger.exists() and ledger.stat().st_size else None
    chroma_bad = chroma_problem(config, thorough=rebuild)
    if chroma_bad == "missing" and not ledger.exists():
        return said  # a new store
    if rebuild:
        for path, why in (
            (ledger, ledger_bad),
            (Path(config.chroma_dir), chroma_bad if chroma_bad != "missing" else None),
        ):
            if why:
                aside = set_aside(path)
                said.append(f"{path} was damaged ({why}): set aside as {aside.name}; indexing everything again")
        return said
    if chroma_bad and chroma_bad != "missing" or (chroma_bad == "missing" and ledger_has_documents(ledger)):
        raise StoreDamaged(
            f"the Chroma database in {config.chroma_dir} is {'missing' if chroma_bad == 'missing' else 'damaged'}"
            f"{'' if chroma_bad == 'missing' else f' ({chroma_bad})'} while the ledger lists indexed documents: "
            f"run `kbflow ingest PATH --store {store_dir} --rebuild` to set it aside and index everything again"
        )
    if ledger_bad or not ledger.exists() or ledger.stat().st_size == 0:
        why = f"damaged ({ledger_bad})" if ledger_bad else ("missing" if not ledger.exists() else "empty")
        aside = set_aside(ledger) if ledger.exists() else None
        chunks = ledger_documents_in_chroma(config)
        logger.info("Ledger %s: %s; Chroma holds %s chunks", ledger, why, chunks)
        if chunks:
            docs = rebuild_ledger_from_chroma(config)
            said.append(
                f"the ledger {ledger} was {why}"
                + (f" (set aside as {aside.name})" if aside else "")
                + f"; rebuilt from the {chunks} chunks Chroma holds: {docs} documents, nothing embedded again"
            )
        elif aside is not None:
            said.append(
                f"the ledger {ledger} was {why} (set aside as {aside.name}); the collection is empty, so "
                "everything is indexed again"
            )
    elif not ledger_has_documents(ledger, config.collection) and (chunks := ledger_documents_in_chroma(config)):
        # A ledger that knows nothing of chunks Chroma holds (a restored or replaced file): rebuild it rather
        # than let reconcile treat every chunk as a stray and embed the whole folder again.
        docs = rebuild_ledger_from_chroma(config)
        said.append(
            f"the ledger {ledger} had no record of the {chunks} chunks Chroma holds; rebuilt from them: "
            f"{docs} documents, nothing embedded again"
        )
    return said


def ledger_has_documents(ledger: Path, collection: str | None = None) -> bool:
    """Whether the ledger records any indexed document (of this collection)."""
    if not ledger.exists() or not ledger.stat().st_size:
        return False
    query, args = "SELECT COUNT(*) FROM documents", ()
    if collection is not None:
        query, args = query + " WHERE collection = ?", (collection,)
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            return db.execute(query, args).fetchone()[0] > 0
    except sqlite3.DatabaseError:
        return False


def check_readable(config: StoreConfig) -> None:
    """Raise StoreDamaged, in words, when the ledger or the Chroma database cannot be read (`kbflow status`)."""
    from tasks.ingest.ledger import ledger_path

    store_dir = Path(config.store_dir)
    ledger = ledger_path(store_dir)
    chroma_bad = chroma_problem(config)
    if chroma_bad and chroma_bad != "missing":
        raise StoreDamaged(
            f"the Chroma database in {config.chroma_dir} is damaged ({chroma_bad}): run "
            f"`kbflow ingest PATH --store {store_dir} --rebuild` to set it aside and index everything again"
        )
    why = sqlite_problem(ledger) if ledger.exists() and ledger.stat().st_size else None
    if why:
        raise StoreDamaged(
            f"the ledger {ledger} is damaged ({why}): the next `kbflow ingest PATH --store {store_dir}` sets it "
            "aside and rebuilds it from what Chroma holds, embedding nothing again"
        )
    if ledger.exists() and not ledger.stat().st_size:
        raise StoreDamaged(
            f"the ledger {ledger} is empty (0 bytes): the next `kbflow ingest PATH --store {store_dir}` rebuilds "
            "it from what Chroma holds, embedding nothing again"
        )
    if chroma_bad == "missing" and ledger_has_documents(ledger):
        raise StoreDamaged(
            f"the Chroma database in {config.chroma_dir} is missing while the ledger lists indexed documents: run "
            f"`kbflow ingest PATH --store {store_dir} --rebuild` to index everything again"
        )
