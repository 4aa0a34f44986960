"""Ingest as users run it: the `kbflow` CLI in real processes, killed, run twice at once, without permissions."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import KBFLOW, assert_store_matches_folder

pytestmark = pytest.mark.slow


def make_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(f"Document {i} paragraph {j} talks about topic {i * 7 + j}." for j in range(40))
        (folder / f"doc{i:03d}.txt").write_text(body)
    return folder


def kbflow(*args, env, check=None, **kw):
    proc = subprocess.run([KBFLOW, *args], env=env, capture_output=True, text=True, timeout=600, **kw)
    if check is not None:
        assert proc.returncode == check, proc.stderr[-3000:]
    return proc


def ledger_docs(store: Path) -> int:
    path = store / "ledger.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_cli_json_summary_and_status(docs_dir, store_dir, cli_env):
    out = kbflow("ingest", str(docs_dir), "--store", str(store_dir), "--json", env=cli_env, check=0)
    summary = json.loads(out.stdout)
    n = len(list(docs_dir.iterdir()))
    assert {k: summary[k] for k in ("added", "updated", "deleted", "unchanged", "failed", "chunks_deleted")} == {
        "added": n,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "failed": [],
        "chunks_deleted": 0,
    }
    assert summary["chunks_written"] >= n
    status = json.loads(kbflow("status", "--store", str(store_dir), "--json", env=cli_env, check=0).stdout)
    assert status["documents"] == n and status["chunks"] == summary["chunks_written"]
    assert status["embedding_model"] == "multilingual-use-v3" and status["embedding_dim"] == 512
    assert status["last_refresh"]
    text = kbflow("status", "--store", str(store_dir), env=cli_env, check=0).stdout
    assert f"documents {n}" in text

    # A command costs what its work costs: none of these loads a model, a parser, an ML runtime or Chroma's client.
    for args in (
        ["--help"],
        ["status", "--store", str(store_dir)],
        ["ingest", str(docs_dir), "--store", str(store_dir)],
    ):
        assert heavy_modules_loaded_by(args, cli_env) == [], args
    # An edited text file's refresh partitions it with unstructured (spaCy inside), embeds it and tokenizes it for
    # the keyword index: spaCy's backend would import torch for layers it never uses.
    edited = sorted(p for p in docs_dir.iterdir() if p.suffix == ".txt")[0]
    edited.write_text(edited.read_text() + "\nEdited: the warranty now lasts three years.\n")
    loaded = set(heavy_modules_loaded_by(["ingest", str(docs_dir), "--store", str(store_dir)], cli_env))
    assert "unstructured" in loaded and loaded <= {
        "unstructured",
        "openvino",
        "onnxruntime",
        "jieba",
        "pandas",
        "chromadb",
    }
    # A question answered from retrieval alone loads its embedder's runtime and jieba, and nothing it does not need.
    retrieval_only = ["ask", "--question", "How long is the warranty?", "--retrieval-only", "--store", str(store_dir)]
    assert set(heavy_modules_loaded_by(retrieval_only, cli_env)) <= {
        "openvino",
        "onnxruntime",
        "jieba",
        "pandas",
        "chromadb",
    }


HEAVY = (
    "torch",
    "transformers",
    "openvino",
    "onnxruntime",
    "llama_cpp",
    "unstructured",
    "sentence_transformers",
    "jieba",
    "pandas",
    "chromadb",  # status and a no-change refresh read the ledger while Chroma is as the last run left it
)


def heavy_modules_loaded_by(args: list[str], env: dict) -> list[str]:
    """The heavy modules a kbflow command imports (run in a fresh interpreter)."""
    code = (
        "import sys\nfrom kbflow.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"import json\nprint('HEAVY', json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("HEAVY ")]
    assert line, proc.stderr[-2000:]
    return json.loads(line[-1].removeprefix("HEAVY "))


def test_cli_usage_errors_exit_2_with_what_to_fix(tmp_path, store_dir, cli_env):
    proc = kbflow("ingest", str(tmp_path / "missing"), "--store", str(store_dir), env=cli_env, check=2)
    assert "is not a folder" in proc.stderr
    proc = kbflow("status", "--store", str(tmp_path / "empty"), env=cli_env, check=2)
    assert "kbflow ingest" in proc.stderr
    proc = kbflow("ingest", str(tmp_path), "--collection", "x", env=cli_env, check=2)
    assert "collection" in proc.stderr


def kill_ingest_midway(src, store_dir, env: dict) -> int:
    """Start `kbflow ingest` in batches of 2, SIGKILL it once 6 documents are in the ledger; the documents done then."""
    proc = subprocess.Popen(
        [KBFLOW, "ingest", str(src), "--store", str(store_dir)],
        env={**env, "KBFLOW_INGEST_BATCH_DOCS": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while ledger_docs(store_dir) < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return ledger_docs(store_dir)


def test_a_run_killed_with_sigkill_is_repaired_by_the_next(tmp_path, store_dir, cli_env):
    src = make_folder(tmp_path / "many", 40)
    done_before = kill_ingest_midway(src, store_dir, cli_env)
    assert 0 < done_before < 40, "the run was not killed in the middle"

    # Meanwhile the folder changes: one indexed file edited, one deleted.
    (src / "doc000.txt").write_text("Edited after the crash: the answer is forty-two.")
    (src / "doc001.txt").unlink()
    out = json.loads(kbflow("ingest", str(src), "--store", str(store_dir), "--json", env=cli_env, check=0).stdout)
    assert out["failed"] == [] and out["deleted"] == 1
    assert out["added"] + out["updated"] + out["unchanged"] == 39
    state = assert_store_matches_folder(store_dir, src)
    assert "forty-two" in state["by_source"]["doc000.txt"][0]["text"]


def test_two_simultaneous_runs_leave_a_correct_store(tmp_path, store_dir, cli_env):
    src = make_folder(tmp_path / "many", 20)
    procs = [
        subprocess.Popen(
            [KBFLOW, "ingest", str(src), "--store", str(store_dir), "--json"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    summaries = [json.loads(r[0]) for r in results]
    # One run indexed everything; the other waited for the lock and found nothing left to do.
    assert sorted(s["added"] for s in summaries) == [0, 20]
    assert sorted(s["unchanged"] for s in summaries) == [0, 20]
    assert_store_matches_folder(store_dir, src)


def test_a_second_run_refuses_when_the_lock_wait_runs_out(tmp_path, store_dir, cli_env):
    from filelock import FileLock

    src = make_folder(tmp_path / "few", 2)
    store_dir.mkdir(parents=True)
    with FileLock(str(store_dir / "ingest.lock")):
        proc = kbflow(
            "ingest", str(src), "--store", str(store_dir), env={**cli_env, "KBFLOW_LOCK_TIMEOUT": "1"}, check=2
        )
    assert "another ingest is writing" in proc.stderr and "KBFLOW_LOCK_TIMEOUT" in proc.stderr


def _drop_dac_override() -> None:
    """In the child before exec: lose root's power to read any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_file_is_reported_and_the_rest_indexed(tmp_path, store_dir, cli_env):
    """CI runs as root, who reads everything; the CLI runs without that power to meet a real permission error."""
    src = make_folder(tmp_path / "docs", 3)
    (src / "secret.txt").write_text("nobody may read this")
    os.chmod(src / "secret.txt", 0o000)
    kw = {"preexec_fn": _drop_dac_override} if os.geteuid() == 0 else {}
    proc = kbflow("ingest", str(src), "--store", str(store_dir), "--json", env=cli_env, **kw)
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["failed"] == [{"path": "secret.txt", "reason": "cannot read file: Permission denied"}]
    assert summary["added"] == 3
    assert_store_matches_folder(store_dir, src, expect_missing=["secret.txt"])
