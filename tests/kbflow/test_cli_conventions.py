"""What a user of any Unix tool expects: `kbflow --version`, `kbflow ask -` reading standard input, and
`kbflow server status` exiting 3 when no server runs (as `systemctl status` does)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from tasks.answer.questions import load_questions, piped_suffix
from tests.conftest import KBFLOW, NO_MODELS, REPO


def user_env() -> dict:
    """A user's shell with no Prefect or kbflow settings, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KBFLOW_"))}
    env["KBFLOW_MODELS_DIR"] = str(NO_MODELS)
    return env


def kbflow(*args, env, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KBFLOW, *args], env=env, input=stdin, capture_output=True, text=True, timeout=600)


def test_version_is_the_one_in_pyproject_for_the_command_and_the_package():
    import kbflow as package

    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    shown = kbflow("--version", env=user_env())
    assert shown.returncode == 0 and shown.stdout == f"kbflow {declared}\n"
    assert package.__version__ == declared


def test_server_status_exits_3_and_says_so_when_no_server_runs(tmp_path):
    store = tmp_path / "store"
    plain = kbflow("server", "status", "--store", str(store), env=user_env())
    assert plain.returncode == 3 and plain.stdout.startswith(f"No Prefect server for {store}")
    as_json = kbflow("server", "--store", str(store), "--json", env=user_env())
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["running"] is False
    helped = kbflow("server", "--help", env=user_env())
    assert helped.returncode == 0 and "3 when it is not running" in " ".join(helped.stdout.split())


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("How long is the warranty?\nWhere is the hub?\n", ".txt"),
        ("\n id , Question ,expected_answer\n1,Why?,Because\n", ".csv"),
        ('"question","notes"\n"A, with a comma?",x\n', ".csv"),
        ("question time is over?\n", ".txt"),  # a header is a cell that is exactly 'question'
        ('"unclosed quote\n', ".txt"),
    ],
)
def test_piped_questions_are_csv_only_with_a_question_header(text, suffix):
    assert piped_suffix(text) == suffix


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, prefect_harness):
    """Two small documents, ingested once for this module."""
    from flows.ingest import ingest_flow

    root = tmp_path_factory.mktemp("tiny")
    docs = root / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("Meeting notes. The blue widget ships in March.\n", encoding="utf-8")
    (docs / "guide.md").write_text("# Install guide\n\nPlug the hub into port 4 first.\n", encoding="utf-8")
    summary = ingest_flow(source_path=str(docs), store_dir=str(root / "store"))
    assert summary["failed"] == []
    return root / "store"


def answered(report_dir: str) -> list[dict]:
    with open(os.path.join(report_dir, "answers.csv"), encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_ask_dash_reads_questions_from_standard_input_one_a_line_or_csv(tiny_store, cli_env):
    lines = "When does the blue widget ship?\nWhich port does the hub go into?\n"
    proc = kbflow("ask", "-", "--store", str(tiny_store), "--retrieval-only", "--json", env=cli_env, stdin=lines)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    kept = json.loads((Path(summary["report_dir"]) / "summary.json").read_text())["questions_file"]
    assert kept.startswith(str(tiny_store / "questions" / "stdin-")) and kept.endswith(".txt")
    assert [q.question for q in load_questions(kept)] == lines.splitlines()
    rows = answered(summary["report_dir"])
    assert [(r["id"], r["question"]) for r in rows] == [
        ("q001", "When does the blue widget ship?"),
        ("q002", "Which port does the hub go into?"),
    ]

    table = 'id,question,expected_source\nw1,"When, exactly, does the blue widget ship?",notes.txt\n'
    proc = kbflow("ask", "-", "--store", str(tiny_store), "--retrieval-only", "--json", env=cli_env, stdin=table)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    kept = json.loads((Path(summary["report_dir"]) / "summary.json").read_text())["questions_file"]
    assert kept.endswith(".csv") and summary["recall_at_k"] == 1.0
    rows = answered(summary["report_dir"])
    assert [(r["id"], r["question"], r["expected_source"]) for r in rows] == [
        ("w1", "When, exactly, does the blue widget ship?", "notes.txt")
    ]

    empty = kbflow("ask", "-", "--store", str(tiny_store), env=cli_env, stdin="\n \n")
    assert empty.returncode == 2 and "standard input is empty" in empty.stderr


def test_models_list_prints_json_with_the_bundled_model_first():
    proc = kbflow("models", "list", "--json", env=user_env())
    assert proc.returncode == 0, proc.stderr
    models = json.loads(proc.stdout)
    assert models[0]["name"] == "smollm2" and models[0]["state"] == "bundled"
    assert models[0]["path"].endswith(".gguf") and os.path.isfile(models[0]["path"])
    assert {m["state"] for m in models[1:]} == {"not pulled"}  # the tests' models folder is empty
