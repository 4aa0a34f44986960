"""Crash repair: make the store and the ledger agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.store.base import VectorStore

if TYPE_CHECKING:
    from tasks.ingest.ledger import Ledger


def reconcile(store: VectorStore, ledger: Ledger) -> tuple[int, set[tuple[str, str]]]:
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
