"""The folder watcher with real watchdog events, real ingest runs, real Chroma and the real embedding model."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kbflow.cli.common import run_command
from kbflow.cli.watch import add_parser as add_watch_command
from kbflow.deployments import DEFAULT_DEPLOYMENT, DEPLOYMENT_ENV
from kbflow.watch import FolderWatcher
from tests.conftest import REPO, assert_store_matches_folder, stop_process

pytestmark = pytest.mark.slow

DEBOUNCE = 0.5


def write_docs(folder: Path, n: int, prefix: str = "doc") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{prefix}{i:03d}.txt").write_text(
            f"{prefix} number {i} is about topic {i * 7}. It has one sentence more."
        )
    return folder


@pytest.fixture
def make_watcher(store_dir):
    made: list[FolderWatcher] = []

    def make(folder: Path, **kw) -> FolderWatcher:
        kw.setdefault("debounce_seconds", DEBOUNCE)
        w = FolderWatcher(str(folder), store_dir=str(store_dir), **kw)
        w.start()
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop(timeout=60)


def total(runs: list[dict], key: str) -> int:
    return sum(r.get(key, 0) for r in runs)


def test_watcher_syncs_changes_ignores_temp_files_and_debounces_a_burst(docs_dir, store_dir, make_watcher, caplog):
    caplog.set_level(logging.INFO, logger="kbflow.watch")
    n_files = len(list(docs_dir.iterdir()))
    w = make_watcher(docs_dir)
    assert w.wait_idle(180)
    assert [(r["trigger"], r["status"], r["added"]) for r in w.runs] == [("startup", "ok", n_files)]
    assert_store_matches_folder(store_dir, docs_dir)

    # Swap, partial-download and Office lock files never trigger a run and never reach the store.
    (docs_dir / ".notes.txt.swp").write_bytes(b"vim swap")
    (docs_dir / "draft.txt.part").write_text("half of a download")
    (docs_dir / "~$policy.docx").write_bytes(b"office lock")
    assert w.wait_ignored({".notes.txt.swp", "draft.txt.part", "~$policy.docx"}, 10)
    assert w.wait_idle(10) and len(w.runs) == 1
    temp = ("draft.txt.part", "~$policy.docx")

    # Add, edit, rename and delete at once; one file can't be indexed (empty): a warning, and the watcher goes on.
    (docs_dir / "new.txt").write_text("The purple gadget is assembled in Porto.")
    (docs_dir / "notes.txt").write_text("Meeting notes. The green widget ships in October.\n")
    (docs_dir / "page.html").rename(docs_dir / "hours.html")
    (docs_dir / "guide.md").unlink()
    (docs_dir / "empty.txt").write_bytes(b"")
    assert w.wait_idle(60)
    step = w.runs[1:]
    assert 1 <= len(step) <= 2 and {r["trigger"] for r in step} == {"changes"}
    assert (total(step, "added"), total(step, "updated"), total(step, "deleted")) == (2, 1, 2)
    assert step[-1]["status"] == "partial" and [f["path"] for f in step[-1]["failed"]] == ["empty.txt"]
    assert any(r.levelno == logging.WARNING and "empty.txt" in r.getMessage() for r in caplog.records)
    state = assert_store_matches_folder(store_dir, docs_dir, expect_missing=temp + ("empty.txt",))
    assert "green widget" in state["by_source"]["notes.txt"][0]["text"]
    assert "Porto" in state["by_source"]["new.txt"][0]["text"]

    # A burst of 200 files gives a few runs, not 200.
    (docs_dir / "empty.txt").unlink()
    before = len(w.runs)
    started = time.monotonic()
    write_docs(docs_dir, 200, prefix="burst")
    assert w.wait_idle(180)
    burst = w.runs[before:]
    print(f"burst of 200 files: {len(burst)} run(s), synced in {time.monotonic() - started:.1f} s")
    assert 1 <= len(burst) <= 3 and {r["status"] for r in burst} == {"ok"}
    assert total(burst, "added") == 200
    state = assert_store_matches_folder(store_dir, docs_dir, expect_missing=temp)
    assert len([p for p in state["by_source"] if p.startswith("burst")]) == 200

    # One INFO line per run, none per event.
    ours = [r for r in caplog.records if r.name == "kbflow.watch" and r.getMessage().startswith("Synced")]
    assert len(ours) == len(w.runs)


def wait_runs(w: FolderWatcher, n: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while len(w.runs) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(w.runs) >= n and w.wait_idle(timeout)


def test_a_chmod_and_an_access_file_edit_each_sync_the_readers_without_embedding(tmp_path, store_dir, make_watcher):
    import os

    folder = write_docs(tmp_path / "docs", 2)
    w = make_watcher(folder)
    assert w.wait_idle(180) and w.runs[-1]["added"] == 2
    os.chmod(folder / "doc000.txt", 0o600)  # an attribute event: others may no longer read it
    assert wait_runs(w, 2)
    assert (w.runs[-1]["readers_changed"], w.runs[-1]["chunks_written"]) == (1, 0)
    (folder / ".kbflow-access").write_text("doc001.txt: hr\n")  # hidden, but it decides who reads doc001.txt
    assert wait_runs(w, 3)
    assert (w.runs[-1]["readers_changed"], w.runs[-1]["chunks_written"]) == (1, 0)


def test_a_file_still_being_written_is_ingested_once_complete(tmp_path, store_dir, make_watcher):
    folder = write_docs(tmp_path / "docs", 1)
    w = make_watcher(folder)
    assert w.wait_idle(120)
    parts = [
        f"Part {i} of the growing report names the city of {city}. "
        for i, city in enumerate(["Lyon", "Graz", "Turku", "Cork"])
    ]

    # A slow writer (these pauses are the scenario, not waits for a result).
    # Kept open, with pauses longer than the debounce and the stability interval: an open writer holds the run.
    with open(folder / "open.txt", "w") as fh:
        for part in parts:
            fh.write(part)
            fh.flush()
            time.sleep(1.2)
    # Reopened for each append, pauses longer than the debounce: the size/mtime check holds the run.
    for part in parts:
        with open(folder / "appended.txt", "a") as fh:
            fh.write(part)
        time.sleep(0.7)
    assert w.wait_idle(60)
    changes = w.runs[1:]
    assert len(changes) <= 2, changes
    assert total(changes, "added") == 2
    state = assert_store_matches_folder(store_dir, folder)
    for name in ("open.txt", "appended.txt"):
        text = " ".join(c["text"] for c in state["by_source"][name])
        assert all(p.strip() in text for p in parts), f"{name} was indexed before it was complete"
    # Each file was indexed once, complete: no run saw a partial version.
    assert total(changes, "updated") == 0


def test_watcher_runs_the_named_deployment_and_waits_for_it(tmp_path, store_dir, make_watcher, cli_env, caplog):
    from prefect.client.orchestration import get_client

    caplog.set_level(logging.INFO, logger="kbflow.watch")
    folder = write_docs(tmp_path / "docs", 2)
    (folder / "empty.txt").write_bytes(b"")
    code = "from flows.ingest import ingest_flow; ingest_flow.serve(name='kb-refresh', print_starting_message=False)"
    log = tmp_path / "runner.log"
    with open(log, "w") as out:
        runner = subprocess.Popen(
            [sys.executable, "-c", code],
            env={**cli_env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 60
            while True:
                assert runner.poll() is None, log.read_text()[-3000:]
                try:
                    client.read_deployment_by_name(DEFAULT_DEPLOYMENT)
                    break
                except Exception:  # noqa: BLE001 - not registered yet, whatever the API says
                    assert time.monotonic() < deadline, "the deployment was never created"
                    time.sleep(0.5)
        # The catch-up run goes to the deployment and waits for it. One file can't be indexed: a warning names it,
        # and the counts are read back from the run's summary artifact.
        w = make_watcher(folder, deployment=DEFAULT_DEPLOYMENT)
        assert w.wait_idle(180)
        assert [(r["trigger"], r["status"], r["state"], r["added"]) for r in w.runs] == [
            ("startup", "partial", "Failed", 2)
        ]
        assert [f["path"] for f in w.runs[0]["failed"]] == ["empty.txt"] and w.runs[0]["flow_run"]
        assert any(r.levelno == logging.WARNING and "empty.txt" in r.getMessage() for r in caplog.records)
        assert_store_matches_folder(store_dir, folder, expect_missing=("empty.txt",))
    finally:
        stop_process(runner)


def test_deployment_only_when_named(tmp_path, store_dir, monkeypatch):
    folder = write_docs(tmp_path / "docs", 1)
    # The session harness has a Prefect API configured: that alone keeps ingest in process.
    assert FolderWatcher(str(folder), store_dir=str(store_dir)).deployment is None
    assert FolderWatcher(str(folder), store_dir=str(store_dir), deployment="kb-ingest/x").deployment == "kb-ingest/x"
    monkeypatch.setenv(DEPLOYMENT_ENV, DEFAULT_DEPLOYMENT)
    w = FolderWatcher(str(folder), store_dir=str(store_dir))
    assert w.deployment == DEFAULT_DEPLOYMENT and w.max_wait == 30 and w.debounce == 2.0


def test_watch_command_usage_errors_exit_2(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="kbflow")
    add_watch_command(parser.add_subparsers(dest="command", required=True))
    for argv, message in [
        (["watch", str(tmp_path / "missing")], "is not a folder"),
        (["watch", str(tmp_path), "--collection", "x"], "collection"),
        (["watch", str(tmp_path), "--debounce", "-1"], "debounce_seconds"),
    ]:
        args = parser.parse_args(argv)
        assert run_command(args.func, args) == 2  # the one error-to-exit map every command uses
        assert message in capsys.readouterr().err
    assert parser.parse_args(["watch", str(tmp_path), "--deployment"]).deployment == DEFAULT_DEPLOYMENT


def test_watch_process_syncs_and_stops_on_sigterm(tmp_path, store_dir, cli_env):
    folder = write_docs(tmp_path / "docs", 2)
    code = (
        "import sys; from kbflow.cli.watch import watch; "
        "watch(sys.argv[1], store_dir=sys.argv[2], debounce_seconds=0.5, json_lines=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder), str(store_dir)],
        env=cli_env,
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()

    def wait_for(text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in lines):
            assert proc.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(lines)[-3000:]
            time.sleep(0.1)

    try:
        wait_for("Synced at startup", 180)
        (folder / "late.txt").write_text("Written while the watcher runs: the blue kettle is in Oslo.")
        wait_for("Synced after 1 change(s) (late.txt)", 60)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(lines)[-3000:]
        stopped_in = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    print(f"watch() stopped {stopped_in:.2f} s after SIGTERM")
    assert stopped_in < 5
    assert any("Stopped watching" in line for line in lines)
    assert_store_matches_folder(store_dir, folder)
    # `kbflow watch --json`: each sync's result as one JSON object a line on stdout, the log on stderr.
    records = [json.loads(line) for line in proc.stdout.read().splitlines()]
    assert [(r["trigger"], r["status"], r["added"]) for r in records] == [("startup", "ok", 2), ("changes", "ok", 1)]
    assert records[1]["paths"] == ["late.txt"]


def test_a_standing_question_set_is_answered_after_each_sync_that_changed_something(
    docs_dir, store_dir, make_watcher, tmp_path, monkeypatch
):
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "48")  # which answers are made or reused counts here, not their length
    questions = tmp_path / "questions.csv"
    questions.write_text("id,question\nq1,What is the daily meal allowance?\nq2,What does error code E42 mean?\n")
    w = make_watcher(docs_dir, questions=str(questions))
    assert w.wait_idle(300)
    first = w.runs[0]["answers"]
    assert first["answers_generated"] + first["answers_reused"] >= 1
    assert (Path(first["report_dir"]) / "report.html").exists()
    # An edit that changes one document: the set is answered again, the unaffected answers reused.
    (docs_dir / "notes.txt").write_text("The cafeteria opens at eight.")
    assert w.wait_idle(300) and len(w.runs) == 2
    second = w.runs[1]["answers"]
    assert second["answers_reused"] >= 1 and second["report_dir"] != first["report_dir"]
