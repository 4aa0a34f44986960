"""Prefect as operators run it: a real server, `prefect deploy --all`, a process worker, both deployments run through
the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.offline import OFFLINE_ENV
from tests.conftest import NO_MODELS, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "kbflow-pool"
COLLECTION = "server-e2e"
# A flow-run process imports torch and loads the embedding model before it does anything.
RUN_TIMEOUT = 300
WORKER_TOP_K = 2
QUESTIONS = (
    "id,question,expected_answer,expected_source\n"
    "q1,What is the daily meal allowance?,45 euros,policy.docx\n"
    "q2,What does error code E42 mean?,The lens is dirty,manual.pdf\n"
)


@dataclass
class Stack:
    api_url: str
    root: Path
    env: dict
    logs: dict[str, Path]

    def tail(self, name: str, n: int = 4000) -> str:
        path = self.logs.get(name)
        text = path.read_text(errors="replace") if path and path.exists() else ""
        return f"--- {name} log (tail) ---\n{text[-n:]}"


def base_env(home: Path) -> dict:
    """A clean environment for Prefect processes: no inherited PREFECT_*/KBFLOW_* settings, offline, own
    PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KBFLOW_"))}
    env.update(OFFLINE_ENV)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
        }
    )
    return env


def start(cmd: list[str], env: dict, log: Path, cwd: Path) -> subprocess.Popen:
    # Its own session, so teardown can stop the process with everything it spawned (flow-run processes).
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    # A temporary server and worker need no graceful exit (their database is thrown away): 5 s, then SIGKILL.
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_healthy(api_url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode}")
        try:
            with opener.open(f"{api_url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server did not answer {api_url}/health within {timeout} s")


def run_cli(args: list[str], stack_env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PREFECT, *args], env=stack_env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@contextmanager
def api(stack: Stack):
    """A sync client for our server (the session's test harness points PREFECT_API_URL elsewhere)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
        with get_client(sync_client=True) as client:
            yield client


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Server on a free loopback port, the work pool, `prefect deploy --all` from the repo root, and a worker."""
    root = tmp_path_factory.mktemp("prefect-stack")
    logs = {"server": root / "server.log", "worker": root / "worker.log"}
    server_env = base_env(root / "server-home")
    server_env.update(
        {
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{root / 'prefect.db'}",
            "PREFECT_UI_ENABLED": "false",
            # The scheduler looks every 2 s instead of 60 s. kb-refresh's interval counts from deploy time,
            # so its first scheduled run is 15 minutes away: the worker never starts one during the test.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        }
    )

    server = worker = None
    try:
        # The free port may be taken again before the server binds it: then the server exits, and we retry.
        for attempt in range(3):
            port = free_port()
            api_url = f"http://127.0.0.1:{port}/api"
            server = start(
                [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                server_env,
                logs["server"],
                cwd=root,
            )
            try:
                wait_healthy(api_url, server)
                break
            except RuntimeError as exc:  # the server exited
                if attempt == 2:
                    pytest.fail(f"{exc}\n{Stack(api_url, root, {}, logs).tail('server')}")
            except TimeoutError as exc:
                pytest.fail(f"{exc}\n{Stack(api_url, root, {}, logs).tail('server')}")

        client_env = base_env(root / "client-home")
        client_env.update({"PREFECT_API_URL": api_url, "PREFECT_WORKER_QUERY_SECONDS": "1"})
        stack = Stack(api_url=api_url, root=root, env=client_env, logs=logs)

        pool = run_cli(["work-pool", "create", POOL, "--type", "process"], client_env, cwd=root)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        deploy = run_cli(["--no-prompt", "deploy", "--all"], client_env, cwd=REPO)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

        # The worker's own settings: deployment runs that pass no top_k take this one (prefect.yaml passes none);
        # no pulled models, so 'auto' is the bundled SmolLM2 on every machine.
        # Short answers (48 tokens): the triggered kb-answer run answers the 15 demo questions, and these tests
        # check which runs happen and with what parameters, not the answers' wording.
        worker_env = {
            **client_env,
            "KBFLOW_TOP_K": str(WORKER_TOP_K),
            "KBFLOW_MODELS_DIR": str(NO_MODELS),
            "KBFLOW_MAX_TOKENS": "48",
        }
        worker = start([PREFECT, "worker", "start", "--pool", POOL], worker_env, logs["worker"], cwd=root)
        yield stack
    finally:
        stop(worker)
        stop(server)


def wait_for_run(stack: Stack, run_id, timeout: float = RUN_TIMEOUT):
    deadline = time.monotonic() + timeout
    with api(stack) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                pytest.fail(
                    f"flow run {run.name} still {run.state.type if run.state else None} after {timeout} s\n"
                    f"{stack.tail('worker')}"
                )
            time.sleep(0.5)


def run_deployment(stack: Stack, name: str, parameters: dict):
    with api(stack) as client:
        deployment = client.read_deployment_by_name(name)
        run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    final = wait_for_run(stack, run.id)
    assert final.state.is_completed(), f"{name}: {final.state.type} {final.state.message}\n{stack.tail('worker')}"
    return final


def artifacts_of(stack: Stack, run_id) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with api(stack) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key: a for a in found}


def table(artifact) -> list[dict]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_deploy_registers_both_deployments_from_prefect_yaml(stack):
    with api(stack) as client:
        refresh = client.read_deployment_by_name("kb-ingest/kb-refresh")
        answer = client.read_deployment_by_name("kb-answer/kb-answer")
    assert refresh.work_pool_name == POOL and answer.work_pool_name == POOL
    assert refresh.entrypoint == "flows/ingest.py:ingest_flow" and answer.entrypoint == "flows/answer.py:answer_flow"
    assert refresh.parameters == {"store_dir": ".kbflow", "collection": "knowledge", "source_path": "docs/demo/corpus"}
    assert answer.parameters == {
        "store_dir": ".kbflow",
        "collection": "knowledge",
        "questions_path": "docs/demo/questions.csv",
        "out_dir": None,
        "groups": None,  # the worker's KBFLOW_GROUPS, else public documents only
        "all_documents": False,
    }  # top_k, mode, ...: none, so the worker's KBFLOW_* settings decide (test below)
    assert [s.schedule.interval.total_seconds() for s in refresh.schedules] == [900]
    assert refresh.schedules[0].active
    assert answer.schedules == []
    # The pull step holds the absolute project folder, written at deploy time.
    (step,) = refresh.pull_steps
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert os.path.realpath(directory) == os.path.realpath(REPO)
    assert refresh.description and answer.description
    with api(stack) as client:
        dataset = client.read_deployment_by_name("kb-dataset/kb-dataset")
    assert dataset.entrypoint == "flows/dataset.py:dataset_flow" and dataset.work_pool_name == POOL
    assert dataset.schedules == [] and dataset.parameters == {
        "store_dir": ".kbflow",
        "collection": "knowledge",
        "out_dir": None,
    }


def test_the_refresh_schedule_creates_runs_with_the_default_parameters(stack):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    def scheduled(client, deployment_id):
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        )

    with api(stack) as client:
        refresh = client.read_deployment_by_name("kb-ingest/kb-refresh")
        deadline = time.monotonic() + 60
        while not (runs := scheduled(client, refresh.id)) and time.monotonic() < deadline:
            time.sleep(1)
        assert runs, f"the scheduler created no run for kb-refresh\n{stack.tail('server')}"
        starts = sorted(r.expected_start_time for r in runs)
        assert all(b - a == timedelta(seconds=900) for a, b in zip(starts, starts[1:]))
        assert starts[0] > datetime.now(UTC) + timedelta(minutes=10)
        assert all(r.parameters == refresh.parameters for r in runs)
        # Pausing the schedule withdraws the runs it had created.
        client.update_deployment_schedule(refresh.id, refresh.schedules[0].id, active=False)
        assert scheduled(client, refresh.id) == []


def test_refresh_then_answer_run_on_the_worker_and_publish_artifacts(stack, docs_dir, tmp_path):
    store = tmp_path / "store"
    started = time.monotonic()
    ingest = run_deployment(
        stack, "kb-ingest/kb-refresh", {"source_path": str(docs_dir), "store_dir": str(store), "collection": COLLECTION}
    )
    ingest_s = time.monotonic() - started
    assert ingest.name == f"refresh-{docs_dir.name}"

    arts = artifacts_of(stack, ingest.id)
    summary = {row["item"]: row["value"] for row in table(arts[f"ingest-summary-{COLLECTION}"])}
    n = len([p for p in docs_dir.iterdir() if p.is_file()])
    assert summary["added"] == str(n) and summary["failed"] == "0", summary
    assert int(summary["chunks_written"]) >= n
    assert arts[f"ingest-progress-{COLLECTION}"].type == "progress"
    assert float(arts[f"ingest-progress-{COLLECTION}"].data) == 100.0

    questions = tmp_path / "questions.csv"
    questions.write_text(QUESTIONS, encoding="utf-8")
    out = tmp_path / "report"
    started = time.monotonic()
    answer = run_deployment(
        stack,
        "kb-answer/kb-answer",
        {
            "questions_path": str(questions),
            "store_dir": str(store),
            "collection": COLLECTION,
            "out_dir": str(out),
            "top_k": 3,
            "mode": "hybrid",
            "retrieval_only": True,
        },
    )
    answer_s = time.monotonic() - started
    assert answer.name == "answer-questions"

    arts = artifacts_of(stack, answer.id)
    assert {"answer-progress", "answer-results", "answer-summary", "answer-report"} <= set(arts)
    rows = table(arts["answer-results"])
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert [r["top source"] for r in rows] == ["policy.docx", "manual.pdf"]
    assert all(not r["error"] for r in rows)
    assert float(arts["answer-progress"].data) == 100.0
    assert arts["answer-summary"].type == "markdown" and "| questions | 2 |" in arts["answer-summary"].data
    # Prefect stores a link artifact as markdown: "[report.html](file:///...)".
    assert f"[report.html]({(out / 'report.html').resolve().as_uri()})" == arts["answer-report"].data
    assert (out / "report.html").exists()
    print(f"kb-refresh run {ingest_s:.0f} s, kb-answer run {answer_s:.0f} s")


def answer_runs_for(stack: Stack, store: Path) -> list:
    """The kb-answer flow runs whose store_dir is this store (started by the trigger or by hand)."""
    with api(stack) as client:
        answer = client.read_deployment_by_name("kb-answer/kb-answer")
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[answer.id])))
    return [r for r in runs if r.parameters.get("store_dir") == str(store.resolve())]


def test_a_refresh_that_changes_the_knowledge_base_triggers_the_standing_question_set(stack, docs_dir, tmp_path):
    store = tmp_path / "store"
    params = {"source_path": str(docs_dir), "store_dir": str(store), "collection": COLLECTION}
    run_deployment(stack, "kb-ingest/kb-refresh", params)
    refreshed = time.monotonic()
    deadline = refreshed + 90
    while not (runs := answer_runs_for(stack, store)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(runs) == 1, f"the refresh that added documents triggered no kb-answer run\n{stack.tail('server')}"
    trigger_s = time.monotonic() - refreshed
    triggered = wait_for_run(stack, runs[0].id)
    assert triggered.state.is_completed(), f"{triggered.state.type} {triggered.state.message}\n{stack.tail('worker')}"
    # The trigger passes the event's store and collection on: the run answered from the store that changed.
    assert triggered.parameters["collection"] == COLLECTION
    assert triggered.parameters["questions_path"] == "docs/demo/questions.csv"
    reports = list((store / "reports").glob("*/summary.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["questions"] == 15

    # A refresh that changes nothing triggers nothing: no run after three times as long as the trigger above
    # took to fire (at least 8 s).
    run_deployment(stack, "kb-ingest/kb-refresh", params)
    quiet_s = max(8.0, 3 * trigger_s)
    time.sleep(quiet_s)
    assert len(answer_runs_for(stack, store)) == 1
    print(f"the trigger fired {trigger_s:.1f} s after the refresh; no run {quiet_s:.0f} s after the unchanged one")


def test_a_deployment_run_takes_top_k_from_the_workers_settings(stack, docs_dir, tmp_path):
    store = tmp_path / "store"
    run_deployment(
        stack,
        "kb-ingest/kb-refresh",
        {"source_path": str(docs_dir), "store_dir": str(store), "collection": "topk-settings"},
    )
    questions = tmp_path / "questions.csv"
    questions.write_text(QUESTIONS, encoding="utf-8")
    out = tmp_path / "report"
    run_deployment(
        stack,
        "kb-answer/kb-answer",
        {
            "questions_path": str(questions),
            "store_dir": str(store),
            "collection": "topk-settings",
            "out_dir": str(out),
            "retrieval_only": True,
        },
    )
    summary = json.loads((out / "summary.json").read_text())
    # prefect.yaml passes no top_k, so the worker's KBFLOW_TOP_K (2) decides, not the default 5.
    assert summary["top_k"] == WORKER_TOP_K
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert all(len(r["retrieved"]) == WORKER_TOP_K for r in rows)
