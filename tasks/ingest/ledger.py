"""The ledger: per document, the version indexed and its chunk ids; per chunk, its keyword tokens.

It is a SQLite file beside the Chroma store. Writes to Chroma and to the ledger cannot share a
transaction, so the order is fixed and every run starts by reconciling the two (see
`tasks.store.reconcile`): new chunks are written to Chroma first, then the ledger commits the document's
new version and chunk ids in one transaction, then the old chunks are deleted. Whatever point a
run is killed at, Chroma holds at most some chunks the ledger does not know (deleted at the next
reconcile) and the ledger never claims chunks that were not written.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors.base import DocumentRef

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL, source_id TEXT NOT NULL, path TEXT NOT NULL,
    size INTEGER NOT NULL, mtime REAL NOT NULL, sha256 TEXT NOT NULL,
    chunk_ids TEXT NOT NULL, indexed_at REAL NOT NULL, readers TEXT,
    PRIMARY KEY (collection, source_id, path)
);
CREATE TABLE IF NOT EXISTS chunk_terms (
    collection TEXT NOT NULL, chunk_id TEXT NOT NULL, source_id TEXT NOT NULL, path TEXT NOT NULL,
    terms TEXT NOT NULL,
    PRIMARY KEY (collection, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunk_terms_doc ON chunk_terms (collection, source_id, path);
CREATE TABLE IF NOT EXISTS failures (
    collection TEXT NOT NULL, source_id TEXT NOT NULL, path TEXT NOT NULL,
    reason TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (collection, source_id, path)
);
CREATE TABLE IF NOT EXISTS meta (
    collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (collection, key)
);
"""


class LedgerEntry:
    """One indexed document: its ref, and its chunk ids (parsed only when asked for: a no-change refresh never needs
    them)."""

    __slots__ = ("ref", "_ids", "_raw")

    def __init__(self, ref: DocumentRef, raw_ids: str):
        self.ref, self._ids, self._raw = ref, None, raw_ids

    @property
    def chunk_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = json.loads(self._raw)
        return self._ids


@dataclass
class DocumentWrite:
    """A document version to commit: its ref, its chunk ids and each chunk's keyword tokens."""

    ref: DocumentRef
    chunk_ids: list[str]
    terms: list[list[str]]


def _readers(raw: str | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(json.loads(raw))


def ledger_path(store_dir: Path) -> Path:
    """Where a store keeps its ledger."""
    return Path(store_dir) / "ledger.sqlite"


class Ledger:
    """Per-collection record of indexed document versions, their chunk ids and keyword tokens."""

    def __init__(self, path: Path, collection: str):
        self.path = Path(path)
        self.collection = collection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
        if "readers" not in columns:
            # A ledger from before readers were recorded: NULL is "not known", so the next refresh records each
            # document's readers (in Chroma too) without embedding anything; until then nothing is visible.
            self._db.execute("ALTER TABLE documents ADD COLUMN readers TEXT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def of_store(cls, store_dir: Path, collection: str) -> Ledger:
        """The ledger of a store folder (use it in a `with` block)."""
        return cls(ledger_path(store_dir), collection)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every read inside sees one state of the ledger, whatever a writer commits meanwhile."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    # Reads
    def documents(self, source_id: str | None = None) -> dict[str, LedgerEntry]:
        """Indexed documents by path (of one source, or all sources keyed by 'source_id|path')."""
        query = "SELECT source_id, path, size, mtime, sha256, chunk_ids, readers FROM documents WHERE collection=?"
        args: list = [self.collection]
        if source_id is not None:
            query += " AND source_id=?"
            args.append(source_id)
        out: dict[str, LedgerEntry] = {}
        for sid, path, size, mtime, sha, ids, readers in self._db.execute(query, args):
            key = path if source_id is not None else f"{sid}|{path}"
            out[key] = LedgerEntry(DocumentRef(sid, path, size, mtime, sha, _readers(readers)), ids)
        return out

    def chunk_readers(self) -> tuple[list[str], list[tuple[str, ...] | None]]:
        """Every chunk id with its document's readers (None: not recorded yet), for the keyword index's mask."""
        rows = self._db.execute(
            "SELECT c.chunk_id, d.readers FROM chunk_terms c JOIN documents d "
            "ON d.collection = c.collection AND d.source_id = c.source_id AND d.path = c.path WHERE c.collection=?",
            (self.collection,),
        ).fetchall()
        return [r[0] for r in rows], [_readers(r[1]) for r in rows]

    def all_chunk_ids(self) -> set[str]:
        rows = self._db.execute("SELECT chunk_id FROM chunk_terms WHERE collection=?", (self.collection,))
        return {r[0] for r in rows}

    def chunk_terms(self) -> tuple[list[str], list[list[str]]]:
        """Every chunk id with its keyword tokens, in a stable order."""
        rows = self._db.execute(
            "SELECT chunk_id, terms FROM chunk_terms WHERE collection=? ORDER BY chunk_id", (self.collection,)
        ).fetchall()
        return [r[0] for r in rows], [json.loads(r[1]) for r in rows]

    def terms_of(self, chunk_ids: list[str], page: int = 500) -> dict[str, list[str]]:
        """The keyword tokens of these chunks (those the ledger holds)."""
        out: dict[str, list[str]] = {}
        for start in range(0, len(chunk_ids), page):
            part = chunk_ids[start : start + page]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT chunk_id, terms FROM chunk_terms WHERE collection=? AND chunk_id IN ({marks})",
                (self.collection, *part),
            )
            out.update((cid, json.loads(terms)) for cid, terms in rows)
        return out

    def counts(self) -> tuple[int, int]:
        docs = self._db.execute("SELECT COUNT(*) FROM documents WHERE collection=?", (self.collection,)).fetchone()[0]
        chunks = self._db.execute("SELECT COUNT(*) FROM chunk_terms WHERE collection=?", (self.collection,)).fetchone()[
            0
        ]
        return docs, chunks

    def failures(self) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT path, reason FROM failures WHERE collection=? ORDER BY path", (self.collection,)
        )
        return {p: r for p, r in rows}

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE collection=? AND key=?", (self.collection, key)).fetchone()
        return row[0] if row else default

    def interrupted(self) -> bool:
        """Whether a run began writing and never finished (killed, or stopped by an error): reconcile in full."""
        return self.get_meta("writing", "0") != "0"

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Mark the collection as being written; the mark stays if the block does not finish."""
        self.set_meta("writing", "1")
        yield
        self.mark_consistent()

    def mark_consistent(self) -> None:
        """The store and the ledger agree (a run finished writing, or reconcile compared them in full)."""
        self.set_meta("writing", "0")

    def store_as_left(self, token: str) -> bool:
        """Whether the vector store is exactly as the last finished run left it (token: chroma.state_token, empty
        when it cannot be told) and no run was interrupted since: then it holds what the ledger lists."""
        return bool(token) and not self.interrupted() and self.get_meta("store_as_left") == token

    def record_store_as_left(self, token: str, embedding: dict | None) -> None:
        """At the end of a run: the store's state token, and the collection's embedding (model, dim, backend) when
        the run opened it."""
        self.set_meta("store_as_left", token)
        if embedding is not None:
            self.set_meta("embedding", json.dumps(embedding, sort_keys=True))

    def recorded_embedding(self) -> dict | None:
        """The embedding of the collection that serves: model, dim, backend and the Chroma collection's name (none
        in a ledger from before a model change could move it: then it is the knowledge base's own name)."""
        recorded = self.get_meta("embedding")
        return json.loads(recorded) if recorded else None

    def building(self) -> dict | None:
        """The collection a refresh is embedding with another model (collection, embedding_model), if any: it
        serves only once complete (switch_embedding)."""
        recorded = self.get_meta("building")
        return json.loads(recorded) if recorded else None

    def start_building(self, record: dict) -> None:
        self.set_meta("building", json.dumps(record, sort_keys=True))

    def retired(self) -> list[str]:
        """Collections that served before the last model change: dropped by the next refresh (a question that
        picked one just before the switch still finds it)."""
        return json.loads(self.get_meta("retired") or "[]")

    def set_retired(self, names: list[str]) -> None:
        self.set_meta("retired", json.dumps(sorted(names)))

    def abandon_building(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM meta WHERE collection=? AND key='building'", (self.collection,))

    def switch_embedding(self, record: dict, retired: str) -> None:
        """One transaction: the collection `record` names serves from now on, embedded with its model; the one that
        served is retired; the generation moves, so readers open the store again (reopen_if_moved). The chunks, and
        so the keyword index, are the same in both collections."""
        with self.transaction() as db:
            put = "INSERT OR REPLACE INTO meta VALUES (?,?,?)"
            db.execute(put, (self.collection, "embedding", json.dumps(record, sort_keys=True)))
            old = sorted({*self.retired(), retired} - {record["collection"]})
            db.execute(put, (self.collection, "retired", json.dumps(old)))
            db.execute("DELETE FROM meta WHERE collection=? AND key='building'", (self.collection,))
            self._bump(db)

    def generation(self) -> int:
        """A number that changes whenever the indexed chunks change (keys keyword-index caches)."""
        return int(self.get_meta("generation", "0") or 0)

    def index_key(self) -> str:
        """Names the ledger's state for indexes derived from it: its epoch (new with a new or dropped ledger) and its
        generation."""
        return f"{self.get_meta('epoch', '0')}-{self.generation()}"

    # Writes
    def commit_documents(self, writes: Iterable[DocumentWrite]) -> None:
        """Record new document versions, their chunk ids and tokens, in one transaction."""
        now = time.time()
        with self.transaction() as db:
            for w in writes:
                r = w.ref
                db.execute(
                    "DELETE FROM chunk_terms WHERE collection=? AND source_id=? AND path=?",
                    (self.collection, r.source_id, r.path),
                )
                db.execute(
                    "INSERT OR REPLACE INTO documents "
                    "(collection, source_id, path, size, mtime, sha256, chunk_ids, indexed_at, readers) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        self.collection,
                        r.source_id,
                        r.path,
                        r.size,
                        r.mtime,
                        r.sha256,
                        json.dumps(w.chunk_ids),
                        now,
                        None if r.readers is None else json.dumps(list(r.readers)),
                    ),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO chunk_terms VALUES (?,?,?,?,?)",
                    [
                        (self.collection, cid, r.source_id, r.path, json.dumps(t, ensure_ascii=False))
                        for cid, t in zip(w.chunk_ids, w.terms)
                    ],
                )
                db.execute(
                    "DELETE FROM failures WHERE collection=? AND source_id=? AND path=?",
                    (self.collection, r.source_id, r.path),
                )
            self._bump(db)

    def set_readers(self, refs: Iterable[DocumentRef]) -> None:
        """Record new readers of indexed documents (a permission change: their chunks stay as they are)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE documents SET readers=?, size=?, mtime=? WHERE collection=? AND source_id=? AND path=?",
                [
                    (json.dumps(list(r.readers or ())), r.size, r.mtime, self.collection, r.source_id, r.path)
                    for r in refs
                ],
            )
            self._bump(db)

    def forget_documents(self, source_id: str, paths: Iterable[str]) -> None:
        """Remove documents (deleted, or to be re-indexed) and their chunks from the ledger."""
        with self.transaction() as db:
            for path in paths:
                args = (self.collection, source_id, path)
                db.execute("DELETE FROM documents WHERE collection=? AND source_id=? AND path=?", args)
                db.execute("DELETE FROM chunk_terms WHERE collection=? AND source_id=? AND path=?", args)
                db.execute("DELETE FROM failures WHERE collection=? AND source_id=? AND path=?", args)
            self._bump(db)

    def record_failures(self, source_id: str, failures: dict[str, str]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?)",
                [(self.collection, source_id, p, reason, now) for p, reason in failures.items()],
            )

    def clear_failures(self, source_id: str, keep: Iterable[str]) -> None:
        keep = set(keep)
        with self.transaction() as db:
            rows = db.execute(
                "SELECT path FROM failures WHERE collection=? AND source_id=?", (self.collection, source_id)
            ).fetchall()
            for (path,) in rows:
                if path not in keep:
                    db.execute(
                        "DELETE FROM failures WHERE collection=? AND source_id=? AND path=?",
                        (self.collection, source_id, path),
                    )

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?,?,?)", (self.collection, key, value))

    def drop_collection(self) -> None:
        with self.transaction() as db:
            for table in ("documents", "chunk_terms", "failures", "meta"):
                db.execute(f"DELETE FROM {table} WHERE collection=?", (self.collection,))

    def _bump(self, db: sqlite3.Connection) -> None:
        db.execute("INSERT OR IGNORE INTO meta VALUES (?, 'epoch', ?)", (self.collection, f"{time.time_ns():x}"))
        db.execute(
            "INSERT INTO meta VALUES (?, 'generation', '1') ON CONFLICT(collection, key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (self.collection,),
        )
