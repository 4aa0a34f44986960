"""Faults survived, through the CLI as a user meets them: damaged and missing databases, a full disk, a damaged model.

Each test checks the message (one or two lines, no traceback), the exit code, and the store after recovery: the
documents and chunks of a clean ingest, and no duplicates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.answer.models import bundled_gguf
from tests.conftest import DATA, KBFLOW, assert_store_matches_folder, kbflow_env, store_state

pytestmark = pytest.mark.slow


def kbflow(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([KBFLOW, *args], env=env, capture_output=True, text=True, timeout=600)


def damage(path: Path) -> None:
    """A bad sector, a cut-off copy, a sync tool: the first 8 KB overwritten."""
    with path.open("r+b") as fh:
        fh.write(b"\xde\xad" * 4096)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, prefect_harness):
    """The test documents indexed once through the CLI; each test damages its own copy of the store."""
    root = tmp_path_factory.mktemp("faults")
    docs = shutil.copytree(DATA / "docs", root / "docs")
    done = kbflow("ingest", str(docs), "--store", str(root / "store"), "--json", env=kbflow_env())
    assert done.returncode == 0, done.stderr[-2000:]
    return docs, root / "store", json.loads(done.stdout)


@pytest.fixture
def indexed(pristine, tmp_path):
    docs, store, first = pristine
    return docs, shutil.copytree(store, tmp_path / "store"), first


def one_clear_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len([line for line in stderr.splitlines() if line.startswith("kbflow: error")]) == 1


@pytest.mark.parametrize("fault", ["damaged", "missing", "empty"])
def test_a_damaged_or_missing_ledger_is_rebuilt_from_chroma_without_embedding_again(indexed, cli_env, fault):
    docs, store, first = indexed
    ledger = store / "ledger.sqlite"
    for extra in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
        (store / extra).unlink(missing_ok=True)
    if fault == "damaged":
        damage(ledger)
    elif fault == "missing":
        ledger.unlink()
    else:
        ledger.write_bytes(b"")
    status = kbflow("status", "--store", str(store), env=cli_env)
    if fault != "missing":  # reported in words, exit 2, and nothing written
        assert status.returncode == 2 and f"is {fault}" in status.stderr and "rebuilds it" in status.stderr
        one_clear_line(status.stderr)
    again = kbflow("ingest", str(docs), "--store", str(store), "--json", env=cli_env)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout)
    # Rebuilt from what Chroma holds: nothing embedded again, nothing missing.
    assert (summary["added"], summary["updated"], summary["chunks_written"]) == (0, 0, 0)
    assert summary["unchanged"] == first["added"]
    assert f"the ledger {ledger} was {fault}" in again.stderr and "nothing embedded again" in again.stderr
    if fault == "damaged":
        (aside,) = store.glob("ledger.sqlite.damaged-*")
        assert aside.read_bytes().startswith(b"\xde\xad")  # set aside, never deleted
    assert_store_matches_folder(store, docs)
    assert kbflow("status", "--store", str(store), env=cli_env).returncode == 0


@pytest.mark.parametrize("fault", ["damaged", "missing"])
def test_a_damaged_or_missing_chroma_stops_with_rebuild_and_rebuild_heals_it(indexed, cli_env, fault):
    docs, store, first = indexed
    chroma = store / "chroma"
    if fault == "damaged":
        damage(chroma / "chroma.sqlite3")
    else:
        shutil.rmtree(chroma)
    stopped = kbflow("ingest", str(docs), "--store", str(store), env=cli_env)
    assert stopped.returncode == 2, stopped.stderr[-2000:]
    assert f"the Chroma database in {chroma} is {fault}" in stopped.stderr and "--rebuild" in stopped.stderr
    one_clear_line(stopped.stderr)
    status = kbflow("status", "--store", str(store), env=cli_env)
    assert status.returncode == 2 and "--rebuild" in status.stderr
    one_clear_line(status.stderr)

    rebuilt = kbflow("ingest", str(docs), "--store", str(store), "--rebuild", "--json", env=cli_env)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert json.loads(rebuilt.stdout)["added"] == first["added"]
    if fault == "damaged":
        assert len(list(store.glob("chroma.damaged-*"))) == 1
    assert_store_matches_folder(store, docs)


def test_rebuild_works_however_damaged_the_store_is(indexed, cli_env):
    docs, store, first = indexed
    damage(store / "ledger.sqlite")
    damage(store / "chroma" / "chroma.sqlite3")
    rebuilt = kbflow("ingest", str(docs), "--store", str(store), "--rebuild", "--json", env=cli_env)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert json.loads(rebuilt.stdout)["added"] == first["added"]
    assert_store_matches_folder(store, docs)


def test_a_damaged_prefect_database_is_set_aside_and_the_refresh_runs(docs_dir, store_dir, cli_env):
    env = {k: v for k, v in cli_env.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}  # the store's own home
    env["KBFLOW_PREFECT"] = "temporary"  # a server that holds the database open is not what this test damages
    first = kbflow("ingest", str(docs_dir), "--store", str(store_dir), "--json", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    db = store_dir / "prefect" / "home" / "prefect.db"
    for extra in ("prefect.db-wal", "prefect.db-shm"):
        (db.parent / extra).unlink(missing_ok=True)
    damage(db)
    again = kbflow("ingest", str(docs_dir), "--store", str(store_dir), "--json", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Prefect's database" in again.stderr and "was damaged" in again.stderr and "Traceback" not in again.stderr
    assert json.loads(again.stdout)["unchanged"] == json.loads(first.stdout)["added"]
    assert len(list(db.parent.glob("prefect.db.damaged-*"))) == 1
    assert_store_matches_folder(store_dir, docs_dir)


def test_a_truncated_model_file_is_refused_naming_the_file(indexed, cli_env, tmp_path):
    docs, store, _ = indexed
    data = bundled_gguf().read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    questions = tmp_path / "q.txt"
    questions.write_text("What is the daily meal allowance?\n")
    done = kbflow("ask", str(questions), "--store", str(store), "--model", str(cut), env=cli_env)
    assert done.returncode == 2 and f"llama.cpp cannot load {cut}" in done.stderr
    one_clear_line(done.stderr)


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


def test_a_full_disk_stops_with_one_line_and_the_next_run_completes_the_store(tmp_path, cli_env):
    """A real full disk: the store on a 6 MB tmpfs (sessions and CI run as root), grown after the failure.

    kbflow stops a write that would leave less than KBFLOW_MIN_FREE_MB (1 MB here) on the store's disk: Chroma's
    embedded engine meeting ENOSPC itself was seen to hang. 150 notes need about 6.3 MB."""
    from tests.flows.test_ingest_processes import ledger_docs

    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "6m"):
        pytest.fail("cannot mount a tmpfs here (this test needs root, as sessions and CI have)")
    try:
        docs = tmp_path / "docs"
        docs.mkdir()
        words = "The service center repairs robots and answers questions about warranty and spare parts. "
        for i in range(150):
            (docs / f"note_{i:03d}.txt").write_text(f"Note {i}. " + words * 25)
        store = disk / "store"
        env = {**cli_env, "KBFLOW_MIN_FREE_MB": "1", "KBFLOW_INGEST_BATCH_DOCS": "20"}
        full = kbflow("ingest", str(docs), "--store", str(store), "--json", env=env)
        assert full.returncode == 3, full.stderr[-2000:]
        assert f"no space left on {store} (" in full.stderr and "KBFLOW_MIN_FREE_MB" in full.stderr
        assert "free some space and run again" in full.stderr
        one_clear_line(full.stderr)
        done = ledger_docs(store)
        assert 0 < done < 150, "the disk did not fill in the middle of the run"
        state = store_state(store)  # what was written is consistent: Chroma holds exactly the ledger's chunks
        assert state["ids"] == state["ledger_ids"] and len(state["by_source"]) == done

        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)
        healed = kbflow("ingest", str(docs), "--store", str(store), "--json", env=env)
        assert healed.returncode == 0, healed.stderr[-2000:]
        summary = json.loads(healed.stdout)
        assert (summary["unchanged"], summary["added"]) == (done, 150 - done)
        assert_store_matches_folder(store, docs)
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_a_full_disk_under_prefects_home_stops_before_its_server_would_time_out(tmp_path, cli_env):
    """Without a Prefect API the store's Prefect home holds Prefect's database: on a full disk its server cannot
    start, and a temporary one would time out after 90 s. kbflow says so at once."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "2m"):
        pytest.fail("cannot mount a tmpfs here (this test needs root, as sessions and CI have)")
    try:
        env = {k: v for k, v in cli_env.items() if not k.startswith("PREFECT_")}
        store = disk / "store"
        full = kbflow("ingest", str(DATA / "docs"), "--store", str(store), env=env)
        assert full.returncode == 3, full.stderr[-2000:]
        assert f"no space left on {store / 'prefect' / 'home'} (Prefect's database)" in full.stderr
        one_clear_line(full.stderr)
        assert not (store / "ledger.sqlite").exists()  # nothing was started, nothing half-written
    finally:
        subprocess.run(["umount", "-l", str(disk)])
