"""The store's content fingerprint: a refresh trusts Chroma without opening it only while nobody wrote to it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks.ingest.split import Chunk
from tasks.store.base import StoreConfig
from tasks.store.chroma import ChromaStore, content_fingerprint, state_token
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def chunk(cid: str) -> Chunk:
    return Chunk(cid, f"text of {cid}", "a.txt", "local:/x", None, "", 0, "sha")


def open_and_read_in_another_process(config: StoreConfig) -> int:
    """What `kbflow ask` or `kbflow status` does to the store: open it in a new process, count and query."""
    code = (
        "import sys\nsys.path.insert(0, sys.argv[1])\nfrom tasks.store.base import StoreConfig\n"
        "from tasks.store.chroma import ChromaStore\n"
        "store = ChromaStore.open_existing(StoreConfig(store_dir=sys.argv[2], collection='knowledge'))\n"
        "store.query([1.0, 0.0, 0.0], 2)\nprint(store.count())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(REPO), config.store_dir], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.strip().splitlines()[-1])


def test_the_fingerprint_moves_with_every_write_and_not_with_opening_or_reading(tmp_path):
    config = StoreConfig(store_dir=str(tmp_path / "store"), collection="knowledge")
    assert content_fingerprint(config) is None  # no database yet: the caller takes the long way
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "ledger.sqlite").touch()  # open_existing wants an ingested store
    store = ChromaStore.open_for_writing(config, "m", 3, "test")
    store.upsert([chunk("a"), chunk("b")], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    written = content_fingerprint(config)
    assert written

    # chromadb writes a row into its SQLite file every time a process opens it: that is not a change.
    assert open_and_read_in_another_process(config) == 2
    assert content_fingerprint(config) == written
    assert state_token(config, "m") == f"m|{written}" and state_token(config, "other") != state_token(config, "m")

    store.delete(["a"])
    deleted = content_fingerprint(config)
    assert deleted not in (None, written)
    store.upsert([chunk("b")], [[0.0, 0.0, 1.0]])  # the same id again, another vector
    assert content_fingerprint(config) not in (None, written, deleted)


def test_no_fingerprint_for_a_chroma_server_or_an_unreadable_database(tmp_path):
    assert (
        content_fingerprint(StoreConfig(store_dir=str(tmp_path), collection="k", chroma_host="127.0.0.1:8000")) is None
    )
    (tmp_path / "chroma").mkdir()
    (tmp_path / "chroma" / "chroma.sqlite3").write_bytes(b"not a database")
    assert content_fingerprint(StoreConfig(store_dir=str(tmp_path), collection="k")) is None
    assert state_token(StoreConfig(store_dir=str(tmp_path), collection="k"), "m") == ""


def test_a_query_for_more_chunks_than_the_collection_holds_returns_them_all_best_first(tmp_path):
    config = StoreConfig(store_dir=str(tmp_path / "store"), collection="knowledge")
    (tmp_path / "store").mkdir()
    store = ChromaStore.open_for_writing(config, "m", 3, "test")
    assert store.query([1.0, 0.0, 0.0], 5) == []  # an empty collection: nothing, no error
    store.upsert([chunk("a"), chunk("b")], [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    got = store.query([1.0, 0.0, 0.0], 5)
    assert [cid for cid, _ in got] == ["a", "b"]
    assert got[0][1] == pytest.approx(1.0, abs=1e-4) and got[1][1] == pytest.approx(0.6, abs=1e-3)
    assert store.query([1.0, 0.0, 0.0], 5, sources=set()) == []
