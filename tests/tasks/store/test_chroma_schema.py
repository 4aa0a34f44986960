"""content_fingerprint reads Chroma's internal SQLite tables, which are no public API: this test fails, naming what
changed, as soon as a chromadb release moves them, before a refresh silently takes the long way on every run."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from tasks.store.base import StoreConfig
from tasks.store.chroma import CHROMA_MIGRATIONS_CHECKED, CHROMA_TABLES_READ, ChromaStore, content_fingerprint
from tests.tasks.store.test_chroma_state import chunk

pytestmark = pytest.mark.unit


def test_the_chroma_tables_and_columns_the_fingerprint_reads_are_there_and_no_migration_is_new(tmp_path):
    import chromadb

    config = StoreConfig(store_dir=str(tmp_path / "store"), collection="knowledge")
    (tmp_path / "store").mkdir()
    store = ChromaStore.open_for_writing(config, "m", 3, "test")
    store.upsert([chunk("a"), chunk("b")], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with closing(sqlite3.connect(tmp_path / "store" / "chroma" / "chroma.sqlite3")) as db:
        columns = {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")} for table in CHROMA_TABLES_READ}
        migrations = dict(db.execute("SELECT dir, MAX(version) FROM migrations GROUP BY dir").fetchall())
    missing = {t: sorted(set(cols) - columns[t]) for t, cols in CHROMA_TABLES_READ.items() if set(cols) - columns[t]}
    assert not missing, (
        f"chromadb {chromadb.__version__} changed the SQLite schema tasks/store/chroma.py reads: missing {missing}"
    )
    assert migrations == CHROMA_MIGRATIONS_CHECKED, (
        f"chromadb {chromadb.__version__} has other SQLite migrations ({migrations}) than the release "
        f"content_fingerprint was checked with ({CHROMA_MIGRATIONS_CHECKED}): check its queries, then update both"
    )
    assert content_fingerprint(config) is not None
