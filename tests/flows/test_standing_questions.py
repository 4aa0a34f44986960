"""Standing question sets on real parts: the demo corpus, the real embedder and store, the bundled SmolLM2.

An answer is reused exactly when its question, its evidence and the model setup are unchanged: a re-run costs
retrieval only, a killed run resumes, and an edited document regenerates only the answers it touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import openpyxl
import pandas as pd
import pytest

from flows.answer import answer_flow
from flows.ingest import ingest_flow
from tasks.answer.cache import cache_path
from tests.conftest import KBFLOW

pytestmark = pytest.mark.slow

# A small standing set: English and Chinese, one question the corpus cannot answer (refused, never cached),
# and an analyst's own columns around kbflow's.
QUESTIONS = (
    "notes,id,question,expected_answer,owner\n"
    "check wording,en-03,How many fingerprints can the Starling Lock L2 store?,100 fingerprints,anna\n"
    ",en-07,How many people did Starling Home Robotics employ at the end of 2023?,412 people,ben\n"
    "年度复核,zh-02,在公司累计工作满3年的员工，每年有几天带薪年假？,10天,chen\n"
    ",none-01,What is the boiling point of tungsten?,,dora\n"
)
ANSWERABLE = {"en-03", "en-07", "zh-02"}


# Short answers: these tests are about which answers are generated or reused, not their wording.
SHORT = {"KBFLOW_MAX_TOKENS": "48"}


@pytest.fixture(autouse=True)
def _short_answers(monkeypatch):
    for key, value in SHORT.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def cli_env(cli_env) -> dict:
    return {**cli_env, **SHORT}


@pytest.fixture
def built(demo_kb, demo_corpus_restored):
    """The demo corpus as ingested once per test process (conftest's demo_kb): `corpus` and `store`. Each test
    copies the store; a test that edits the corpus (the store's source is its path) has it put back after it."""
    return demo_kb


@pytest.fixture
def kb(built, tmp_path):
    """A private copy of the ingested store, and the question file. The corpus is the module's own (the store's
    source is its path); a test that edits it puts it back."""
    shutil.copytree(built / "store", tmp_path / "store")
    (tmp_path / "questions.csv").write_text(QUESTIONS, encoding="utf-8")
    return tmp_path


def report(kb, out: str):
    """Reports go where `kbflow ask` puts them by default, so each run finds the previous one of the set."""
    return kb / "store" / "reports" / out


def ask(kb, out: str, **options) -> dict:
    return answer_flow(
        questions_path=str(kb / "questions.csv"), store_dir=str(kb / "store"), out_dir=str(report(kb, out)), **options
    )


def rows(kb, out: str) -> dict[str, dict]:
    lines = (report(kb, out) / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def cached_answers(kb) -> int:
    with sqlite3.connect(cache_path(kb / "store")) as db:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def answers_so_far(kb) -> int:
    """cached_answers while a run is writing: 0 until the cache file and its table exist (SQLite makes the file
    on connecting, a moment before the run creates the table)."""
    if not cache_path(kb / "store").exists():
        return 0
    try:
        return cached_answers(kb)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise


def test_a_rerun_reuses_every_answer_and_no_cache_generates_them_all_again(kb):
    first = ask(kb, "r1")
    assert (first["answers_generated"], first["answers_reused"]) == (3, 0)
    assert cached_answers(kb) == 3  # the refused question is not cached: it never reached the model
    second = ask(kb, "r2")
    assert (second["answers_generated"], second["answers_reused"]) == (0, 3)
    one, two = rows(kb, "r1"), rows(kb, "r2")
    assert {i: r["answer"] for i, r in one.items()} == {i: r["answer"] for i, r in two.items()}
    assert {i for i, r in two.items() if r["answer_source"] == "reused"} == ANSWERABLE
    assert all(two[i]["first_run"] == one[i]["first_run"] for i in ANSWERABLE)  # the run that made each answer
    table = pd.read_csv(report(kb, "r2") / "answers.csv", keep_default_na=False)
    assert dict(zip(table["id"], table["answer_source"])) == {
        "en-03": "reused",
        "en-07": "reused",
        "zh-02": "reused",
        "none-01": "",
    }
    page = (report(kb, "r2") / "report.html").read_text(encoding="utf-8")
    assert "reused from the answer cache" in page and "Trend of this question set" in page
    # --no-cache generates every answer again, and (the model is seeded) gives the same answers.
    third = ask(kb, "r3", use_cache=False)
    assert (third["answers_generated"], third["answers_reused"]) == (3, 0)
    assert {i: r["answer"] for i, r in rows(kb, "r3").items()} == {i: r["answer"] for i, r in one.items()}

    # The input file's own columns come back around kbflow's, in answers.csv and answers.xlsx.
    for out in ("r1", "r2"):
        table = pd.read_csv(report(kb, out) / "answers.csv", keep_default_na=False, dtype=str)
        assert list(table.columns[:5]) == ["notes", "id", "question", "expected_answer", "owner"]
        assert list(table["notes"]) == ["check wording", "", "年度复核", ""]
        assert list(table["owner"]) == ["anna", "ben", "chen", "dora"]
        assert "answer" in table.columns[5:] and "answer_source" in table.columns
        sheet = openpyxl.load_workbook(report(kb, out) / "answers.xlsx").worksheets[0]
        assert [c.value for c in sheet[1]][:5] == ["notes", "id", "question", "expected_answer", "owner"]
        assert sheet["E2"].value == "anna"
    # With a previous run of the set, the workbook gets a "Changes" sheet.
    assert openpyxl.load_workbook(report(kb, "r1") / "answers.xlsx").sheetnames == ["answers"]
    assert openpyxl.load_workbook(report(kb, "r2") / "answers.xlsx").sheetnames == ["answers", "Changes"]

    # A damaged cache is set aside, and the run completes by generating every answer again.
    cache_path(kb / "store").write_bytes(b"\0" * 9000)
    summary = ask(kb, "r4")
    assert (summary["answers_generated"], summary["answers_reused"]) == (3, 0)
    assert any("answer cache" in w and "damaged" in w for w in summary["warnings"])
    assert len(list((kb / "store").glob("answers.sqlite.damaged-*"))) == 1
    assert cached_answers(kb) == 3


def test_retrieval_only_runs_need_no_cache_and_report_no_reuse_figures(kb):
    summary = ask(kb, "r", retrieval_only=True)
    assert summary["answers_generated"] is None and summary["answers_reused"] is None
    assert not cache_path(kb / "store").exists()


def test_an_edited_document_regenerates_only_the_answers_whose_evidence_it_touched(kb, built):
    ask(kb, "before")
    before = rows(kb, "before")
    edited = "company/about_starling.txt"
    touched = {i for i, r in before.items() if any(e[2] == edited for e in r["evidence"] or [])}
    assert "en-07" in touched and touched < ANSWERABLE  # the edit matters to some answers, not all
    document = built / "corpus" / edited
    text = document.read_text(encoding="utf-8")
    assert "412" in text
    try:
        document.write_text(text.replace("412", "977") + "\nEdited.\n", encoding="utf-8")
        refresh = ingest_flow(source_path=str(built / "corpus"), store_dir=str(kb / "store"))
    finally:
        document.write_text(text, encoding="utf-8")
    assert (refresh["updated"], refresh["added"]) == (1, 0)

    summary = ask(kb, "after")
    after = rows(kb, "after")
    assert {i for i, r in after.items() if r["answer_source"] == "generated"} == touched
    assert summary["answers_generated"] == len(touched) and summary["answers_reused"] == 3 - len(touched)
    # Every changed answer names the edited document as the reason.
    changed = summary["comparison"]["answers_changed"]
    assert all(c["why"] == f"evidence changed: {edited} (edited)" for c in changed)
    if before["en-07"]["answer"] != after["en-07"]["answer"]:
        assert [c["id"] for c in changed if c["id"] == "en-07"] == ["en-07"]
    compare = subprocess.run(
        [KBFLOW, "reports", "compare", str(report(kb, "before")), str(report(kb, "after"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compare.returncode == 0 and compare.stdout.count(f"why: evidence changed: {edited} (edited)") == len(changed)


def test_a_prompt_change_makes_every_cached_answer_stale(kb):
    ask(kb, "sentence")
    short = ask(kb, "short", answer_style="short")
    assert (short["answers_generated"], short["answers_reused"]) == (3, 0)
    again = ask(kb, "short-again", answer_style="short")
    assert (again["answers_generated"], again["answers_reused"]) == (0, 3)


def kbflow(kb, *args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [KBFLOW, "ask", str(kb / "questions.csv"), "--store", str(kb / "store"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_two_runs_at_once_share_the_cache(kb, cli_env):
    procs = [kbflow(kb, "--out", str(report(kb, f"run{n}")), "--json", env=cli_env) for n in (1, 2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    for out, _ in outputs:
        summary = json.loads(out)
        assert summary["answers_generated"] + summary["answers_reused"] == 3 and summary["errors"] == 0
    with sqlite3.connect(cache_path(kb / "store")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3  # one row per key, however made
    third = ask(kb, "run3")
    assert (third["answers_generated"], third["answers_reused"]) == (0, 3)


def test_one_question_from_the_command_line_is_answered_and_printed_without_a_report(kb, cli_env):
    done = subprocess.run(
        [KBFLOW, "ask", "How many fingerprints can the Starling Lock L2 store?", "--store", str(kb / "store")],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    # The answer, then its citations (source, page) or, when the model cited nothing, the flag that says so.
    assert "100" in lines[0]
    # SmolLM2 may cite the passage or not; an answer with no mark is checked against the passages it was given.
    assert "[1] products/lock_l2_quickstart.md" in done.stdout or "the passages it was given" in done.stdout
    assert "1 question(s)" in done.stderr  # the estimate before the first question
    assert not (kb / "store" / "reports").exists()  # no report folder without --out
    again = subprocess.run(
        [
            KBFLOW,
            "ask",
            "--question",
            "How many fingerprints can the Starling Lock L2 store?",
            "--store",
            str(kb / "store"),
            "--json",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and json.loads(again.stdout)["answer_source"] == "reused"
    missing = subprocess.run(
        [KBFLOW, "ask", "no-such-file.csv", "--store", str(kb / "store")],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no-such-file.csv: no such file" in missing.stderr


def test_a_full_report_disk_stops_in_one_line_and_the_answers_stay_in_the_cache(kb, cli_env):
    """The report folder on a real full disk (a tmpfs filled up); the cache, in the store, keeps every answer."""
    from tests.flows.test_faults import mount_tmpfs, one_clear_line

    disk = kb / "disk"
    if not mount_tmpfs(disk, "256k"):
        pytest.fail("cannot mount a tmpfs here (this test needs root, as sessions and CI have)")
    try:
        (disk / "report").mkdir()
        with (disk / "filler").open("wb", buffering=0) as fh:  # fill it to the last byte
            try:
                while fh.write(b"\0" * 4096):
                    pass
            except OSError:
                pass
        full = kbflow(kb, "--out", str(disk / "report"), env=cli_env)
        _, err = full.communicate(timeout=600)
        assert full.returncode == 3, err[-3000:]
        assert f"no space left on {disk / 'report'}" in err and "free some space and run again" in err
        one_clear_line(err)
        assert cached_answers(kb) == len(ANSWERABLE)  # generated before the report was written, and kept

        (disk / "filler").unlink()
        again = kbflow(kb, "--out", str(disk / "report"), "--json", env=cli_env)
        out, err = again.communicate(timeout=600)
        assert again.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert (summary["answers_generated"], summary["answers_reused"]) == (0, len(ANSWERABLE))
        assert (disk / "report" / "report.html").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def run_cli(*args: str, env: dict) -> dict:
    """A kbflow command as a user runs it, with --json: its summary."""
    done = subprocess.run([KBFLOW, *args, "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_killed_resumed_set_answers_again_for_an_edited_document(kb, built, cli_env):
    """Issue 26: kill -9 part-way, resume with only the unanswered questions, an unchanged re-run; then the first
    question's gold document is replaced and the folder refreshed. That document's questions are generated again,
    and compare names the document."""
    store, questions = str(kb / "store"), str(kb / "questions.csv")

    def ask_cli(out: str) -> dict:
        return run_cli("ask", questions, "--store", store, "--out", str(report(kb, out)), env=cli_env)

    proc = kbflow(kb, "--out", str(report(kb, "killed")), env=cli_env, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and answers_so_far(kb) < 1:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = cached_answers(kb)
    assert 1 <= kept < 3
    assert not (report(kb, "killed") / "report.html").exists()  # a report is written only when a run finishes

    # The resume generates only the questions the killed run left unanswered.
    resumed = ask_cli("resumed")
    assert (resumed["answers_generated"], resumed["answers_reused"]) == (3 - kept, kept)
    # The resumed report equals an uninterrupted run's (the model is seeded).
    ask(kb, "uninterrupted", use_cache=False)
    assert {i: r["answer"] for i, r in rows(kb, "resumed").items()} == {
        i: r["answer"] for i, r in rows(kb, "uninterrupted").items()
    }
    unchanged = ask_cli("unchanged")
    assert (unchanged["answers_generated"], unchanged["answers_reused"]) == (0, 3)

    edited = "products/lock_l2_quickstart.md"  # the gold document of the first question, en-03
    before = rows(kb, "unchanged")
    touched = {i for i, r in before.items() if any(e[2] == edited for e in r["evidence"] or [])}
    assert "en-03" in touched
    document = built / "corpus" / edited
    text = document.read_text(encoding="utf-8")
    assert "up to 100 fingerprints" in text
    try:
        document.write_text(text.replace("up to 100 fingerprints", "up to 250 fingerprints"), encoding="utf-8")
        refresh = run_cli("ingest", str(built / "corpus"), "--store", store, env=cli_env)
    finally:
        document.write_text(text, encoding="utf-8")
    assert (refresh["updated"], refresh["added"], refresh["deleted"]) == (1, 0, 0)

    after = ask_cli("after")
    regenerated = {i for i, r in rows(kb, "after").items() if r["answer_source"] == "generated"}
    assert regenerated == touched
    assert (after["answers_generated"], after["answers_reused"]) == (len(touched), 3 - len(touched))
    assert rows(kb, "after")["en-03"]["answer"] != before["en-03"]["answer"]
    compare = subprocess.run(
        [KBFLOW, "reports", "compare", str(report(kb, "unchanged")), str(report(kb, "after"))],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compare.returncode == 0, compare.stderr[-3000:]
    assert f"why: evidence changed: {edited} (edited)" in compare.stdout
