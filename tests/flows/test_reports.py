"""Reports an analyst can trust: run-to-run comparison, n/a where nothing was generated, one Prefect home."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pandas as pd
import pytest

from flows.answer import answer_flow
from flows.ingest import ingest_flow
from tests.conftest import KBFLOW, free_port
from tests.flows.test_prefect_server import PREFECT, base_env, start, stop, wait_healthy

pytestmark = pytest.mark.slow

QUESTIONS = (
    "id,question,expected_answer,expected_source\n"
    "zebra,When does the zebra enclosure open?,noon,zebra.txt\n"
    "penguin,When does the penguin pool close?,five,penguin.txt\n"
)


def test_a_second_run_is_compared_with_the_first(tmp_path, cli_env):
    docs, store = tmp_path / "docs", tmp_path / "store"
    docs.mkdir()
    (docs / "zebra.txt").write_text("The zebra enclosure opens at noon every day.")
    (docs / "penguin.txt").write_text("The penguin pool closes at five in the afternoon.")
    (docs / "otter.txt").write_text("The otter river is cleaned on Mondays.")
    questions = tmp_path / "checklist.csv"
    questions.write_text(QUESTIONS)
    ingest_flow(source_path=str(docs), store_dir=str(store))
    first = answer_flow(questions_path=str(questions), store_dir=str(store), mode="keyword", answer_style="short")
    assert "comparison" not in first

    # Between the runs: an edited document changes one answer, a deleted one leaves a question unanswerable.
    (docs / "zebra.txt").write_text("The zebra enclosure opens at nine in the morning every day.")
    (docs / "penguin.txt").unlink()
    ingest_flow(source_path=str(docs), store_dir=str(store))
    second = answer_flow(questions_path=str(questions), store_dir=str(store), mode="keyword", answer_style="short")

    cmp = second["comparison"]
    assert cmp["old"]["dir"] == first["report_dir"]
    assert [c["id"] for c in cmp["newly_refused"]] == ["penguin"]
    assert [c["id"] for c in cmp["hit_lost"]] == ["penguin"]
    changed = {c["id"]: c for c in cmp["answers_changed"]}
    assert set(changed) == {"zebra"} and changed["zebra"]["old"] != changed["zebra"]["new"]  # a refusal is listed apart
    was_correct = {r["id"]: r["correct"] for r in map(json.loads, open(f"{first['report_dir']}/rows.jsonl"))}
    assert ("penguin" in [c["id"] for c in cmp["correct_lost"]]) == was_correct["penguin"]
    html = (tmp_path / second["report_dir"] / "report.html").read_text(encoding="utf-8")
    assert html.index("Changes since") < html.index("Check these first")  # the changes lead the page
    saved = json.loads((tmp_path / second["report_dir"] / "summary.json").read_text(encoding="utf-8"))
    assert saved["comparison"]["newly_refused"][0]["id"] == "penguin"

    # The same comparison from the command line, for any two report folders.
    proc = subprocess.run(
        [KBFLOW, "reports", "compare", first["report_dir"], second["report_dir"], "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [c["id"] for c in json.loads(proc.stdout)["newly_refused"]] == ["penguin"]
    bad = subprocess.run(
        [KBFLOW, "reports", "compare", str(tmp_path), second["report_dir"]],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "no summary.json" in bad.stderr


def test_a_retrieval_only_run_shows_answer_metrics_as_na(tmp_path, cli_env):
    docs, store = tmp_path / "docs", tmp_path / "store"
    docs.mkdir()
    (docs / "zebra.txt").write_text("The zebra enclosure opens at noon every day.")
    questions = tmp_path / "q.csv"
    questions.write_text(QUESTIONS)
    ingest_flow(source_path=str(docs), store_dir=str(store))
    proc = subprocess.run(
        [KBFLOW, "ask", str(questions), "--store", str(store), "--retrieval-only"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "accuracy n/a" in proc.stdout and "exact match n/a, F1 n/a" in proc.stdout
    assert "recall@k 50.0%" in proc.stdout  # retrieval was measured: penguin.txt is not in the store
    report = proc.stdout.rsplit("report: ", 1)[1].strip()
    summary = json.loads((tmp_path / report).parent.joinpath("summary.json").read_text())
    assert summary["accuracy"] is None and summary["f1"] is None and summary["exact_match"] is None
    table = pd.read_csv((tmp_path / report).parent / "answers.csv", keep_default_na=False)
    assert set(table["correct"]) == {""} and set(table["hit"].astype(str)) == {"True", "False"}


@pytest.mark.integration
def test_cli_runs_land_in_the_store_prefect_home_that_make_server_serves(tmp_path):
    docs, store = tmp_path / "docs", tmp_path / "store"
    docs.mkdir()
    (docs / "zebra.txt").write_text("The zebra enclosure opens at noon every day.")
    env = base_env(tmp_path / "unused-home")
    del env["PREFECT_HOME"]  # as a newcomer's shell: neither PREFECT_HOME nor PREFECT_API_URL
    env["KBFLOW_PREFECT"] = "temporary"  # the first run in a temporary server (the background one has its own test)
    first = subprocess.run(
        [KBFLOW, "ingest", str(docs), "--store", str(store), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "started the Prefect server" not in first.stderr and not (store / "prefect" / "api_url").exists()
    home = store / "prefect" / "home"
    assert (home / "prefect.db").exists()

    # `make server` serves that home: the run and its artifacts are there.
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server_env = {**env, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false"}
    server = start(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        server_env,
        tmp_path / "server.log",
        cwd=tmp_path,
    )
    try:
        wait_healthy(api_url, server)
        (store / "prefect" / "api_url").write_text(api_url)  # what `make server` writes
        # While the server runs, a CLI run reports to it live.
        second = subprocess.run(
            [KBFLOW, "ingest", str(docs), "--store", str(store), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert second.returncode == 0, second.stderr[-2000:]
        assert "Starting temporary server" not in second.stderr
        runs = post(f"{api_url}/flow_runs/filter", {})
        names = sorted((r["name"], r["state_type"]) for r in runs if r["name"].startswith("refresh-"))
        assert names == [("refresh-docs", "COMPLETED"), ("refresh-docs", "COMPLETED")]
        keys = {a["key"] for a in post(f"{api_url}/artifacts/filter", {})}
        assert "ingest-summary-knowledge" in keys
    finally:
        stop(server)


def post(url: str, body: dict) -> list[dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with opener.open(req, timeout=30) as resp:
        return json.loads(resp.read())
