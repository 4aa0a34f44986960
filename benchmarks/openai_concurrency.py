"""The `openai` backend at KBFLOW_LLM_CONCURRENCY 1 and 4, against local llama-cpp-python servers.

    .venv/bin/python benchmarks/openai_concurrency.py --model qwen2.5-1.5b --limit 24 --name openai-concurrency

Starts `python -m llama_cpp.server` on 127.0.0.1 and answers the same CMRC trial questions with
`kbflow ask --backend openai` at each concurrency, one after the other: whole-process wall time,
seconds per question as the user sees it (wall / questions), each answer's latency (request to
reply, so it grows when requests queue), and whether the answers are the same
(temperature 0).

llama_cpp.server answers one request at a time (one model, one lock): on its own, concurrency only
overlaps retrieval and HTTP with generation. `--servers 2` starts two single-slot servers, each with
half the threads, behind a round-robin proxy in this script: what a server with two parallel slots
(llama.cpp's `llama-server -np 2`, vLLM) gives on the same cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CMRC, load_cmrc, save, write_cmrc_folder  # noqa: E402 - run as a script: the repository goes on sys.path first

KBFLOW = str(Path(sys.executable).parent / "kbflow")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, threads: int, n_ctx: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
            "--model_alias",
            "bench",
        ],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("llama_cpp.server did not start within 180 s")


def round_robin_proxy(backends: list[str]) -> tuple[ThreadingHTTPServer, str]:
    """A loopback proxy that sends each POST to the next backend: several single-slot servers as one with parallel
    slots."""
    turn = itertools.cycle(backends)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _forward(self, method: str) -> None:
            with lock:
                target = next(turn)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            resp = httpx.request(
                method,
                target + self.path,
                content=body,
                timeout=600,
                headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
            )
            self.send_response(resp.status_code)
            self.send_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(resp.content)))
            self.end_headers()
            self.wfile.write(resp.content)

        def do_GET(self):  # noqa: N802 - http.server's method name
            self._forward("GET")

        def do_POST(self):  # noqa: N802 - http.server's method name
            self._forward("POST")

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def ask(questions: Path, store: Path, base: str, concurrency: int, out: Path) -> tuple[float, dict]:
    env = {
        **os.environ,
        "KBFLOW_OPENAI_BASE_URL": base + "/v1",
        "KBFLOW_OPENAI_MODEL": "bench",
        "KBFLOW_LLM_CONCURRENCY": str(concurrency),
        "KBFLOW_TEMPERATURE": "0",
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [
            KBFLOW,
            "ask",
            str(questions),
            "--store",
            str(store),
            "--backend",
            "openai",
            "--top-k",
            "3",
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"kbflow ask failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-1.5b", help="a pulled model name, smollm2, or a .gguf path")
    ap.add_argument("--limit", type=int, default=24, help="CMRC trial questions (a fixed shuffle)")
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--servers", type=int, default=1, help="single-slot servers behind a round-robin proxy")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="threads in all, shared by the servers")
    ap.add_argument("--store", default="/tmp/kbflow-bench-cmrc", help="where the CMRC store is built once and kept")
    ap.add_argument("--cmrc", type=Path, default=CMRC)
    ap.add_argument("--name", default="openai-concurrency")
    args = ap.parse_args()

    from tasks.answer.models import resolve_gguf
    from tasks.settings import load_settings

    store = Path(args.store)
    if not (store / "ledger.sqlite").exists():
        folder = store.parent / (store.name + "-docs")
        write_cmrc_folder(folder, args.cmrc)
        subprocess.run([KBFLOW, "ingest", str(folder), "--store", str(store), "--quiet"], check=True)
    _, questions = load_cmrc(args.cmrc)
    random.Random(7).shuffle(questions)
    questions = questions[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="kbflow-openai-bench-"))
    qfile = work / "questions.jsonl"
    qfile.write_text(
        "".join(
            json.dumps({"id": q["id"], "question": q["question"], "expected_answer": q["answers"]}, ensure_ascii=False)
            + "\n"
            for q in questions
        ),
        encoding="utf-8",
    )
    model = resolve_gguf(args.model, Path(load_settings().models_dir))
    per_server = max(1, args.threads // args.servers)
    servers = [start_server(model, per_server, 2048, work / f"server{i}.log") for i in range(args.servers)]
    proxy = None
    try:
        base = servers[0][1]
        if args.servers > 1:
            proxy, base = round_robin_proxy([b for _, b in servers])
        ask(qfile, store, base, 1, work / "warm")  # model pages in, prompt caches warm: not timed
        runs, answers = {}, {}
        for c in [int(x) for x in args.concurrency.split(",")]:
            wall, summary = ask(qfile, store, base, c, work / f"c{c}")
            rows = [
                json.loads(line) for line in (work / f"c{c}" / "rows.jsonl").read_text(encoding="utf-8").splitlines()
            ]
            answers[c] = [r.get("answer") for r in rows]
            latency = sorted(r["generation_ms"] / 1000 for r in rows if r.get("generation_ms") is not None)
            runs[str(c)] = {
                "wall_s": round(wall, 1),
                "s_per_question": round(wall / len(questions), 2),
                "answer_latency_p50_s": round(statistics.median(latency), 2) if latency else None,
                "accuracy": summary.get("accuracy"),
                "errors": summary.get("errors"),
            }
            print(c, runs[str(c)], flush=True)
        first = next(iter(answers.values()))
        result = {
            "model": args.model,
            "questions": len(questions),
            "servers": args.servers,
            "threads_per_server": per_server,
            "command": f"benchmarks/openai_concurrency.py --model {args.model} --limit {args.limit} --servers "
            f"{args.servers}",
            "runs": runs,
            "same_answers": all(a == first for a in answers.values()),
        }
        print(json.dumps(result, indent=2, ensure_ascii=False))
        print(f"saved to {save(args.name, result)}")
    finally:
        if proxy:
            proxy.shutdown()
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
