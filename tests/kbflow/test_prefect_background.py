"""The store's Prefect server in the background: started by the first command, reused by the next, stopped by
`kbflow server stop`. (`KBFLOW_PREFECT=temporary`, a temporary server per command, runs in test_reports and
test_faults.)"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from kbflow.prefect_server import answering
from tests.conftest import KBFLOW, NO_MODELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def no_prefect_env() -> dict:
    """A user's shell: no PREFECT_* settings at all (so commands use the store's own Prefect), offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KBFLOW_"))}
    env.update({"KBFLOW_MODELS_DIR": str(NO_MODELS), "PREFECT_LOGGING_LEVEL": "WARNING"})
    return env


def kbflow(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([KBFLOW, *args], env=env, capture_output=True, text=True, timeout=600)


def flow_runs(api: str) -> list[str]:
    """The names of the flow runs the server recorded."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(
        f"{api}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"}, method="POST"
    )
    with opener.open(req, timeout=10) as resp:
        return sorted(r["name"] for r in json.loads(resp.read()))


@pytest.fixture
def store(tmp_path):
    """A store folder whose background server, if a failing test left one, is stopped at the end."""
    from kbflow.prefect_server import stop_server

    yield tmp_path / "store"
    stop_server(tmp_path / "store")


def test_the_first_command_starts_the_server_the_next_reuses_it_and_server_stop_stops_it(docs_dir, store):
    env = no_prefect_env()
    state = store / "prefect"
    # Help runs no flow: it starts no server (it did, for `kbflow ask --help`).
    helped = kbflow("ask", "--help", "--store", str(store), env=env)
    assert helped.returncode == 0 and "questions" in helped.stdout
    assert "Prefect server" not in helped.stderr and not (state / "background.pid").exists()
    first = kbflow("ingest", str(docs_dir), "--store", str(store), "--json", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "started the Prefect server" in first.stderr and "kbflow server stop" in first.stderr
    api, pid = (state / "api_url").read_text().strip(), int((state / "background.pid").read_text())
    assert api.startswith("http://127.0.0.1:") and answering(api)
    assert flow_runs(api) == ["refresh-docs"]

    second = kbflow("ingest", str(docs_dir), "--store", str(store), "--json", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout)["unchanged"] == len(list(docs_dir.iterdir()))
    assert "started the Prefect server" not in second.stderr
    assert int((state / "background.pid").read_text()) == pid and flow_runs(api) == ["refresh-docs"] * 2

    running = kbflow("server", "--store", str(store), "--json", env=env)
    assert running.returncode == 0  # systemctl's convention: 0 running, 3 not running
    assert json.loads(running.stdout) == {"running": True, "api_url": api, "pid": pid, "started": False}

    stop = kbflow("server", "stop", "--store", str(store), env=env)
    assert stop.returncode == 0 and f"pid {pid}" in stop.stdout
    assert not answering(api) and not (state / "api_url").exists()
    assert kbflow("server", "status", "--store", str(store), env=env).returncode == 3
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    # A damaged database under a stopped server: set aside, and a fresh server started on a new one.
    db = state / "home" / "prefect.db"
    for extra in ("prefect.db-wal", "prefect.db-shm"):
        (db.parent / extra).unlink(missing_ok=True)
    with db.open("r+b") as fh:
        fh.write(b"\xde\xad" * 4096)
    healed = kbflow("ingest", str(docs_dir), "--store", str(store), "--json", env=env)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert "Prefect's database" in healed.stderr and "was damaged" in healed.stderr
    assert "started the Prefect server" in healed.stderr and len(list(db.parent.glob("prefect.db.damaged-*"))) == 1
    assert flow_runs((state / "api_url").read_text().strip()) == ["refresh-docs"]
    assert kbflow("server", "stop", "--store", str(store), env=env).returncode == 0


def wait_for(predicate, timeout: float = 90.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_warm_process_runs_the_next_commands_as_the_shell_would_and_stops_with_the_server(docs_dir, store):
    env = no_prefect_env()
    log = store / "prefect" / "warm.log"

    def warm_lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    first = kbflow("ingest", str(docs_dir), "--store", str(store), "--json", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    # After a command on the background server, a warm process loads kbflow's modules for the next one.
    assert wait_for(lambda: any("ready in" in line for line in warm_lines())), warm_lines()

    (docs_dir / "notes.txt").write_text("Meeting notes. The green widget ships in October.\n")
    edited = kbflow("ingest", str(docs_dir), "--store", str(store), "--json", env=env)
    assert edited.returncode == 0, edited.stderr[-3000:]
    assert json.loads(edited.stdout)["updated"] == 1
    assert sum("child" in line for line in warm_lines()) == 1  # the warm process ran it

    asked = kbflow(
        "ask", "When does the green widget ship?", "--store", str(store), "--retrieval-only", "--json", env=env
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert json.loads(asked.stdout)["retrieved"][0]["source"] == "notes.txt"
    assert sum("child" in line for line in warm_lines()) == 2

    # The command's own exit code and error line come back from the warm process.
    missing = kbflow("ingest", str(docs_dir / "no-such-folder"), "--store", str(store), env=env)
    assert missing.returncode == 2 and "no-such-folder is not a folder" in missing.stderr

    socket_files = [line.rsplit(" at ", 1)[1] for line in warm_lines() if "ready in" in line]
    assert kbflow("server", "stop", "--store", str(store), env=env).returncode == 0
    assert wait_for(lambda: any("its Prefect server stopped" in line for line in warm_lines()), 30), warm_lines()
    assert not any(os.path.exists(path) for path in socket_files)

    # With no server, the next command runs in its own process again (and starts both anew).
    again = kbflow("ingest", str(docs_dir), "--store", str(store), "--json", env={**env, "KBFLOW_WARM": "off"})
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] == len(list(docs_dir.iterdir()))
    assert sum("child" in line for line in warm_lines()) == 3  # the missing-folder command, not this one


def _gone(pid: int) -> bool:
    """The process has exited (a zombie its parent has not reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
    except OSError:
        return True


def test_a_killed_warm_command_ends_its_child_at_once_and_the_same_command_resumes(store, tmp_path, demo_kb):
    """kill -9 of a command served by the warm process: its forked child (which answers) ends within 2 s, no answer
    lands in the cache after the kill, and the same command run again reuses what was answered and does the rest."""
    import shutil
    import signal
    import sqlite3
    import time

    from tasks.answer.cache import cache_path

    # Short answers: the test is about which answers land in the cache, not their wording (48 tokens, as the
    # standing-set tests use).
    env = {**no_prefect_env(), "KBFLOW_MAX_TOKENS": "48"}
    # The demo store as ingested once per test process: the first command below finds every document unchanged,
    # and starts the background server and the warm process as any first command does.
    corpus = demo_kb / "corpus"
    shutil.copytree(demo_kb / "store", store)
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "id,question\n"
        "q1,How many fingerprints can the Starling Lock L2 store?\n"
        "q2,How many people did Starling Home Robotics employ at the end of 2023?\n"
        "q3,在公司累计工作满3年的员工，每年有几天带薪年假？\n"
        "q4,What is the warranty period of the Starling Lock L2?\n"
        "q5,How long does a customer have to return a product?\n"
        "q6,Who do I call for support?\n",
        encoding="utf-8",
    )
    log = store / "prefect" / "warm.log"

    def warm_lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    def cached() -> int:
        try:
            with sqlite3.connect(cache_path(store)) as db:
                return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        except sqlite3.OperationalError:  # the file or its table is not made yet
            return 0

    first = kbflow("ingest", str(corpus), "--store", str(store), "--json", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert wait_for(lambda: any("ready in" in line for line in warm_lines())), warm_lines()

    args = [KBFLOW, "ask", str(questions), "--store", str(store), "--json"]
    client = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: cached() >= 1 or client.poll() is not None, 300)
    assert client.poll() is None, "the command finished before it could be killed"
    children = [int(line.rsplit(" ", 1)[1]) for line in warm_lines() if "warm: child" in line]
    assert len(children) == 1  # the warm process runs the command
    client.send_signal(signal.SIGKILL)  # the client only, as a CI timeout or the OOM killer would
    client.wait()
    killed_at = time.monotonic()
    assert wait_for(lambda: _gone(children[0]), 5)
    assert time.monotonic() - killed_at < 2.0
    kept = cached()
    time.sleep(3)
    assert cached() == kept, "an answer landed in the cache after the kill"
    assert 1 <= kept < 6

    again = kbflow("ask", str(questions), "--store", str(store), "--json", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["answers_reused"] == kept
    assert summary["answers_reused"] + summary["answers_generated"] + summary["refused"] == 6
