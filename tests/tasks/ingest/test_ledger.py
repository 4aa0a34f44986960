"""The SQLite ledger on a real file."""

from __future__ import annotations

import pytest

from connectors.base import DocumentRef
from tasks.ingest.ledger import DocumentWrite, Ledger

pytestmark = pytest.mark.unit


def write(path: str, sha: str, ids: list[str]) -> DocumentWrite:
    return DocumentWrite(DocumentRef("local:/d", path, 5, 2.0, sha), ids, [["word", path] for _ in ids])


def test_commit_read_forget_and_generation(tmp_path):
    with Ledger.of_store(tmp_path, "kb") as ledger:
        assert ledger.generation() == 0 and ledger.counts() == (0, 0)
        ledger.commit_documents([write("a.txt", "1", ["c1", "c2"]), write("b.txt", "2", ["c3"])])
        assert ledger.generation() == 1
        docs = ledger.documents("local:/d")
        assert docs["a.txt"].chunk_ids == ["c1", "c2"] and docs["b.txt"].ref.sha256 == "2"
        assert ledger.all_chunk_ids() == {"c1", "c2", "c3"}
        ids, terms = ledger.chunk_terms()
        assert ids == ["c1", "c2", "c3"] and terms[2] == ["word", "b.txt"]
        # A new version replaces the old chunk ids in one transaction.
        ledger.commit_documents([write("a.txt", "9", ["c9"])])
        assert ledger.all_chunk_ids() == {"c9", "c3"} and ledger.generation() == 2
        ledger.forget_documents("local:/d", ["b.txt"])
        assert ledger.counts() == (1, 1) and ledger.generation() == 3
    # Reopened from disk, in another collection nothing is visible.
    with Ledger.of_store(tmp_path, "kb") as again, Ledger.of_store(tmp_path, "other") as other:
        assert set(again.documents("local:/d")) == {"a.txt"} and other.counts() == (0, 0)


def test_failures_are_recorded_cleared_and_dropped_with_a_new_version(tmp_path):
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.record_failures("local:/d", {"bad.pdf": "corrupt PDF", "x.stl": "unsupported file type .stl"})
        ledger.clear_failures("local:/d", keep={"bad.pdf"})
        assert ledger.failures() == {"bad.pdf": "corrupt PDF"}
        ledger.commit_documents([write("bad.pdf", "fixed", ["p1"])])  # it was repaired and indexed
        assert ledger.failures() == {}


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.commit_documents([write("a.txt", "1", ["c1"])])
        with pytest.raises(RuntimeError):
            with ledger.transaction() as db:
                db.execute("DELETE FROM documents")
                raise RuntimeError("crash in the middle")
        assert set(ledger.documents("local:/d")) == {"a.txt"}


class MemoryStore:
    """The VectorStore calls reconcile makes, over a set of ids; counts how often every id is read."""

    def __init__(self, ids):
        self.ids, self.full_reads = set(ids), 0

    def all_ids(self):
        self.full_reads += 1
        return set(self.ids)

    def count(self):
        return len(self.ids)

    def delete(self, ids):
        self.ids -= set(ids)
        return len(ids)


def test_reconcile_skips_the_id_comparison_only_after_a_finished_run(tmp_path):
    from tasks.store.reconcile import reconcile

    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.commit_documents([write("a.txt", "1", ["c1", "c2"]), write("b.txt", "2", ["c3"])])
        store = MemoryStore({"c1", "c2", "c3"})
        assert reconcile(store, ledger) == (0, set()) and store.full_reads == 0
        # A run killed while writing: the mark stays, and the next run compares every id.
        with pytest.raises(KeyboardInterrupt), ledger.writing():
            store.ids.add("stray")
            store.ids.discard("c3")
            raise KeyboardInterrupt
        assert ledger.interrupted()
        assert reconcile(store, ledger) == (1, {("local:/d", "b.txt")}) and store.full_reads == 1
        assert store.ids == {"c1", "c2"} and set(ledger.documents("local:/d")) == {"a.txt"}
        assert not ledger.interrupted() and reconcile(store, ledger) == (0, set()) and store.full_reads == 1
        # Chunks lost behind the ledger's back still show in the counts.
        store.ids.discard("c2")
        assert reconcile(store, ledger) == (0, {("local:/d", "a.txt")}) and store.full_reads == 2


def test_readers_are_kept_per_document_and_a_ledger_from_before_them_gets_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "ledger.sqlite"
    old = sqlite3.connect(path)  # the documents table as it was before readers were kept
    old.execute(
        "CREATE TABLE documents (collection TEXT NOT NULL, source_id TEXT NOT NULL, path TEXT NOT NULL, "
        "size INTEGER NOT NULL, mtime REAL NOT NULL, sha256 TEXT NOT NULL, chunk_ids TEXT NOT NULL, "
        "indexed_at REAL NOT NULL, PRIMARY KEY (collection, source_id, path))"
    )
    old.execute("INSERT INTO documents VALUES ('kb', 'local:/d', 'a.txt', 1, 1.0, 'x', '[\"c1\"]', 0)")
    old.commit()
    old.close()
    with Ledger(path, "kb") as ledger:
        assert ledger.documents("local:/d")["a.txt"].ref.readers is None  # not known: the next refresh records it
        ref = DocumentRef("local:/d", "b.txt", 1, 1.0, "y", ("hr", "user:ann"))
        ledger.commit_documents([DocumentWrite(ref, ["c2"], [["t"]])])
        generation = ledger.generation()
        ledger.set_readers([DocumentRef("local:/d", "b.txt", 1, 1.0, "y", ("*",))])
        assert ledger.documents("local:/d")["b.txt"].ref.readers == ("*",)
        assert ledger.generation() == generation + 1  # indexes made from the ledger see the change
        assert ledger.chunk_readers() == (["c2"], [("*",)])
