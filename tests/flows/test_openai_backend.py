"""The openai backend against llama-cpp-python's own OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest

from flows.answer import answer_flow
from flows.ingest import ingest_flow
from tasks.answer.models import bundled_gguf
from tests.conftest import KBFLOW, free_port, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(bundled_gguf()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
            "--model_alias",
            "smollm2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,  # llama.cpp is chatty: a pipe would fill and block it
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not start within 120 s")
        yield base
    finally:
        stop_process(proc)
        log.close()


def test_query_flow_answers_through_an_openai_compatible_server(llama_server, docs_dir, tmp_path, monkeypatch):
    store = tmp_path / "store"
    ingest_flow(source_path=str(docs_dir), store_dir=str(store))
    monkeypatch.setenv("KBFLOW_OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("KBFLOW_OPENAI_MODEL", "smollm2")
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "48")
    qs = tmp_path / "q.csv"
    pd.DataFrame(
        [
            {"id": "meal", "question": "What is the daily meal allowance?", "expected_source": "policy.docx"},
            {"id": "none", "question": "Who painted the Mona Lisa?"},
        ]
    ).to_csv(qs, index=False)
    summary = answer_flow(
        questions_path=str(qs), store_dir=str(store), out_dir=str(tmp_path / "r"), llm_backend="openai"
    )
    assert summary["model"] == f"openai:smollm2@{llama_server}" and summary["errors"] == 0
    table = pd.read_csv(tmp_path / "r" / "answers.csv", keep_default_na=False)
    meal = table.set_index("id").loc["meal"]
    assert meal["answer"].strip() and int(meal["completion_tokens"]) > 0 and int(meal["prompt_tokens"]) > 50
    assert json.loads(meal["retrieved"])[0]["source"] == "policy.docx"
    assert table.set_index("id").loc["none", "refused"] in (True, "True")


def test_an_unreachable_endpoint_is_an_error_in_the_row_not_a_crash(docs_dir, tmp_path, monkeypatch):
    import tasks.answer.backends as backends_mod
    from flows.errors import QuestionsFailed

    monkeypatch.setattr(backends_mod, "RETRY_DELAYS", (0.01, 0.01))
    store = tmp_path / "store"
    ingest_flow(source_path=str(docs_dir), store_dir=str(store))
    monkeypatch.setenv("KBFLOW_OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    qs = tmp_path / "q.txt"
    qs.write_text("What is the daily meal allowance?\n")
    with pytest.raises(QuestionsFailed):
        answer_flow(questions_path=str(qs), store_dir=str(store), out_dir=str(tmp_path / "r"), llm_backend="openai")
    table = pd.read_csv(tmp_path / "r" / "answers.csv", keep_default_na=False)
    assert "cannot reach" in table.loc[0, "error"]


def test_concurrent_answering_keeps_question_order_and_records_a_failing_question(
    llama_server, docs_dir, tmp_path, monkeypatch
):
    import tasks.answer.backends as backends_mod

    store = tmp_path / "store"
    ingest_flow(source_path=str(docs_dir), store_dir=str(store))
    monkeypatch.setenv("KBFLOW_OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("KBFLOW_OPENAI_MODEL", "smollm2")
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "24")
    monkeypatch.setenv("KBFLOW_LLM_CONCURRENCY", "3")
    monkeypatch.setattr(backends_mod, "RETRY_DELAYS", (0.01, 0.01))
    real_complete, calls = backends_mod.OpenAIBackend._complete, []

    def complete(self, body):
        calls.append(body["messages"][-1]["content"])
        if "E42" in body["messages"][-1]["content"]:  # the server fails on this question, every time
            raise backends_mod.ServerBusy(f"{self.base_url} answered HTTP 500 Internal Server Error: boom")
        return real_complete(self, body)

    monkeypatch.setattr(backends_mod.OpenAIBackend, "_complete", complete)
    qs = tmp_path / "q.csv"
    ids = ["meal", "lens", "hours", "guide", "notes"]
    pd.DataFrame(
        {
            "id": ids,
            "question": [
                "What is the daily meal allowance?",
                "What does error code E42 mean?",
                "When is the office open?",
                "What does the guide describe?",
                "What is in the meeting notes?",
            ],
        }
    ).to_csv(qs, index=False)
    from flows.errors import QuestionsFailed

    with pytest.raises(QuestionsFailed) as info:
        answer_flow(questions_path=str(qs), store_dir=str(store), out_dir=str(tmp_path / "r"), llm_backend="openai")
    assert info.value.summary["errors"] == 1
    table = pd.read_csv(tmp_path / "r" / "answers.csv", keep_default_na=False)
    assert list(table["id"]) == ids  # rows stay in question order
    failed = table.set_index("id").loc["lens"]
    assert "HTTP 500" in failed["error"] and sum("E42" in c for c in calls) == 3  # tried, then retried twice
    ok = table[table["id"] != "lens"]
    assert (ok["error"] == "").all() and (ok["latency_ms"].astype(float) > 0).all()


def test_a_refused_api_key_stops_the_run_with_one_line_naming_endpoint_and_status(docs_dir, tmp_path, cli_env):
    from tests.tasks.answer.test_openai_errors import ModelServer

    store = tmp_path / "store"
    ingest_flow(source_path=str(docs_dir), store_dir=str(store))
    server = ModelServer([(401, {}, {"error": {"message": "Incorrect API key provided: sk-wrong"}}, 0.0)] * 5)
    qs = tmp_path / "q.txt"
    qs.write_text("What is the daily meal allowance?\nWhen is the office open?\nWhat does the guide describe?\n")
    env = {**cli_env, "KBFLOW_OPENAI_BASE_URL": server.url, "KBFLOW_OPENAI_API_KEY": "sk-wrong"}
    try:
        proc = subprocess.run(
            [KBFLOW, "ask", str(qs), "--store", str(store), "--backend", "openai"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.close()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("kbflow: error:")]
    assert proc.returncode == 2 and errors == [
        f"kbflow: error: the model server {server.url}/chat/completions answered HTTP 401 Unauthorized, as it would "
        "to every request: check KBFLOW_OPENAI_API_KEY"
    ], proc.stderr[-3000:]
    assert len(server.ports) == 1 and "sk-wrong" not in proc.stderr  # asked once, the server's text not repeated


def test_dataset_export_through_the_server_gets_replies_held_to_the_schema(
    llama_server, demo_kb, tmp_path, monkeypatch
):
    """llama-cpp-python's server knows response_format json_object with a schema, not OpenAI's json_schema: the
    backend falls back to it once, and every reply of SmolLM2 is then the schema's JSON."""
    from flows.dataset import DatasetFailed, dataset_flow
    from tasks.answer.backends import make_backend
    from tasks.settings import load_settings
    from tests.conftest import demo_store_copy

    store = demo_store_copy(demo_kb, tmp_path / "store")
    monkeypatch.setenv("KBFLOW_OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("KBFLOW_OPENAI_MODEL", "smollm2")
    out = tmp_path / "ds"
    try:
        summary = dataset_flow(
            store_dir=str(store), out_dir=str(out), chunks=4, pairs_per_chunk=2, distractors=1, llm_backend="openai"
        )
    except DatasetFailed as failed:
        summary = failed.summary
    assert summary["failures"] == [] and summary["model"] == "openai:smollm2"
    # The server's grammar holds every reply to the schema; only the token cap can cut one (at most one of four).
    assert summary["dropped_unparsed_reply"] <= summary["replies_not_json"] <= 1
    assert summary["pairs_generated"] >= 4 and summary["completion_tokens"] > 0
    backend = make_backend(load_settings(llm_backend="openai").llm_config())
    assert backend.json_form == "json_object"
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (written["replies_not_json"], written["dropped_unparsed_reply"]) == (
        summary["replies_not_json"],
        summary["dropped_unparsed_reply"],
    )
