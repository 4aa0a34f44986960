"""The knowledge base in a real Chroma server (`chroma run` on 127.0.0.1): ingest, sync, crash repair, retrieval,
token."""

from __future__ import annotations

import http.client
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DATA, KBFLOW, assert_store_matches_folder, free_port, stop_process
from tests.flows.test_ingest_processes import ledger_docs, make_folder

pytestmark = [pytest.mark.slow, pytest.mark.integration]

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start_chroma(data: Path, port: int, log: Path) -> subprocess.Popen:
    """`chroma run` on 127.0.0.1:PORT with its data in DATA, once it answers its heartbeat."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "chroma"),
                "run",
                "--path",
                str(data),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 60
    while True:
        try:
            with NO_PROXY.open(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop_process(proc)
            pytest.fail("chroma run did not answer its heartbeat:\n" + log.read_text(errors="replace")[-2000:])
        time.sleep(0.2)


class ChromaServer:
    """A real `chroma run` that a test can stop and start again, on the same port and data."""

    def __init__(self, tmp_path: Path):
        self.port, self.data, self.log = free_port(), tmp_path / "chroma-server", tmp_path / "chroma-server.log"
        self.host = f"127.0.0.1:{self.port}"
        self.proc = start_chroma(self.data, self.port, self.log)

    def stop(self) -> None:
        stop_process(self.proc)

    def start(self) -> None:
        self.proc = start_chroma(self.data, self.port, self.log)


@pytest.fixture
def server(tmp_path):
    running = ChromaServer(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def chroma_server(server) -> str:
    """host:port of a `chroma run` on a free port of 127.0.0.1, with its data in a folder of its own."""
    return server.host


def assert_server_matches_folder(host: str, store: Path, folder: Path) -> dict:
    """The server holds exactly the current version's chunks of every file, as the ledger says; nothing is embedded
    locally."""
    state = assert_store_matches_folder(store, folder, chroma_host=host)
    assert not (store / "chroma").exists(), "chunks went to an embedded store, not to the server"
    return state


def test_ingest_rerun_edit_and_delete_through_a_chroma_server(docs_dir, store_dir, chroma_server, monkeypatch):
    from flows.ingest import ingest_flow

    monkeypatch.setenv("KBFLOW_CHROMA_HOST", chroma_server)
    n = len(list(docs_dir.iterdir()))
    first = ingest_flow(source_path=str(docs_dir), store_dir=str(store_dir))
    assert first["added"] == n and first["failed"] == [] and first["chunks_written"] >= n
    state = assert_server_matches_folder(chroma_server, store_dir, docs_dir)
    assert any("45 euros" in c["text"] for c in state["by_source"]["policy.docx"])

    second = ingest_flow(source_path=str(docs_dir), store_dir=str(store_dir))
    assert second["unchanged"] == n and second["chunks_written"] == 0
    assert second["added"] == second["updated"] == second["deleted"] == second["chunks_deleted"] == 0

    (docs_dir / "notes.txt").write_text("Meeting notes. The orange widget ships in November.\n")
    (docs_dir / "guide.md").unlink()
    third = ingest_flow(source_path=str(docs_dir), store_dir=str(store_dir))
    assert (third["added"], third["updated"], third["deleted"], third["unchanged"]) == (0, 1, 1, n - 2)
    after = assert_server_matches_folder(chroma_server, store_dir, docs_dir)
    assert not {c["id"] for c in state["by_source"]["guide.md"]} & after["ids"]
    assert ["orange widget" in c["text"] for c in after["by_source"]["notes.txt"]] == [True]


def test_a_server_stopped_mid_ingest_fails_in_one_line_and_the_next_run_repairs_the_store(
    tmp_path, store_dir, server, cli_env
):
    src = make_folder(tmp_path / "many", 40)
    for name in ("notes.txt", "guide.md", "policy.docx", "manual.pdf"):
        shutil.copy(DATA / "docs" / name, src / name)
    total = len(list(src.iterdir()))
    env = {**cli_env, "KBFLOW_CHROMA_HOST": server.host}
    run = subprocess.Popen(
        [KBFLOW, "ingest", str(src), "--store", str(store_dir)],
        env={**env, "KBFLOW_INGEST_BATCH_DOCS": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while ledger_docs(store_dir) < 6 and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    server.stop()
    out, err = run.communicate(timeout=300)
    done_before = ledger_docs(store_dir)
    assert 0 < done_before < total, "the server was not stopped in the middle of the run"
    assert run.returncode == 3, err[-3000:]
    assert f"the Chroma server at {server.host} stopped answering" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("kbflow: error")]) == 1

    server.start()
    (src / "doc000.txt").write_text("Edited after the crash: the answer is forty-two.")
    (src / "doc001.txt").unlink()
    run = subprocess.run(
        [KBFLOW, "ingest", str(src), "--store", str(store_dir), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["failed"] == [] and out["deleted"] == 1
    assert out["added"] + out["updated"] + out["unchanged"] == total - 1
    state = assert_server_matches_folder(server.host, store_dir, src)
    assert "forty-two" in state["by_source"]["doc000.txt"][0]["text"]

    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {"question": "What is the daily meal allowance?", "expected_source": "policy.docx"},
                {"question": "How long must the reset pin be held?", "expected_source": "guide.md"},
                {"question": "When does the blue widget ship?", "expected_source": "notes.txt"},
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    ask = subprocess.run(
        [KBFLOW, "ask", str(questions), "--store", str(store_dir), "--retrieval-only", "--json", "--top-k", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ask.returncode == 0, ask.stderr[-3000:]
    summary = json.loads(ask.stdout)
    assert summary["questions"] == 3 and summary["recall_at_k"] == 1.0


class _TokenProxy(http.server.ThreadingHTTPServer):
    """A reverse proxy that lets through only requests with `Authorization: Bearer TOKEN`, like the nginx snippet in
    docs."""

    def __init__(self, upstream: str, token: str):
        self.upstream, self.token, self.seen = upstream, token, []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    def _forward(self):
        server: _TokenProxy = self.server  # type: ignore[assignment]
        auth = self.headers.get("Authorization")
        server.seen.append(auth)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if auth != f"Bearer {server.token}":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        host, _, port = server.upstream.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "authorization")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

    def log_message(self, *args):
        pass


def test_the_token_reaches_a_proxy_that_checks_it(tmp_path, store_dir, chroma_server, monkeypatch):
    from flows.ingest import ingest_flow
    from tasks.store.base import StoreError

    proxy = _TokenProxy(chroma_server, "s3cret-token")
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            NO_PROXY.open(f"http://127.0.0.1:{proxy.server_address[1]}/api/v2/heartbeat", timeout=5)
        assert refused.value.code == 401

        src = make_folder(tmp_path / "few", 2)
        host = f"127.0.0.1:{proxy.server_address[1]}"
        monkeypatch.setenv("KBFLOW_CHROMA_HOST", host)
        monkeypatch.setenv("KBFLOW_CHROMA_TOKEN", "wrong-token")
        with pytest.raises(StoreError) as wrong:
            ingest_flow(source_path=str(src), store_dir=str(store_dir))
        assert f"cannot use the Chroma server at {host}" in str(wrong.value) and "wrong-token" not in str(wrong.value)

        proxy.seen.clear()
        monkeypatch.setenv("KBFLOW_CHROMA_TOKEN", "s3cret-token")
        summary = ingest_flow(source_path=str(src), store_dir=str(store_dir))
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert summary["added"] == 2 and summary["failed"] == []
    assert proxy.seen and set(proxy.seen) == {"Bearer s3cret-token"}
    assert_server_matches_folder(chroma_server, store_dir, src)
