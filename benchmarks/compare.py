"""Side by side: the naive LangChain-tutorial pipeline (benchmarks/naive.py) against `kbflow ingest`.

    .venv/bin/python benchmarks/compare.py FOLDER [--name NAME] [--keep] [--kbflow-env KEY=VALUE ...]
        [--questions QUESTIONS.csv [--model qwen2.5-1.5b]]
    .venv/bin/python benchmarks/compare.py --build-cmrc-folder DIR [--cmrc PATH] [--cmrc-questions N]

With --questions, both then answer the question set from their own store: the naive side as LangChain's
RetrievalQA tutorial does (benchmarks/naive_answer.py: dense top 4, the "stuff" prompt, llama-cpp-python's
defaults), kbflow with `kbflow ask` and its defaults; the same GGUF, the same answer_correct.

Both run as subprocesses on one private copy of FOLDER, in the same offline environment, step by step:
a first ingest, a no-change re-run, and a re-run after one sentence is appended to one text-like file.
Each run is timed from spawn to exit; its main process's peak RSS comes from os.wait4. The process tree
is sampled meanwhile, which shows kbflow's temporary Prefect server (when PREFECT_API_URL is not set).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, save, write_cmrc_questions, write_mixed_folder
from tasks.offline import OFFLINE_ENV  # noqa: E402 - run as a script: the repository goes on sys.path first

VENV_PY = REPO / ".venv" / "bin" / "python"
KBFLOW = REPO / ".venv" / "bin" / "kbflow"
NAIVE = REPO / "benchmarks" / "naive.py"
TEXT_LIKE = (".txt", ".md", ".markdown", ".rst")
EDIT_SENTENCE = "\n\nThis sentence was appended by benchmarks/compare.py to test change detection.\n"
SAMPLE_EVERY_S = 0.05


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


class TreeSampler(threading.Thread):
    """Samples a process tree: each descendant's command, first/last sighting and peak RSS; a Prefect server's
    readiness."""

    def __init__(self, root: int, started: float):
        super().__init__(daemon=True)
        self.root, self.started, self.stop = root, started, threading.Event()
        self.procs: dict[int, dict] = {}
        self.main_hwm_kb = 0
        self.tree_peak_kb = 0

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.perf_counter() - self.started
            total, todo, seen = 0, _children(self.root), set()
            self.main_hwm_kb = max(self.main_hwm_kb, _status_kb(self.root).get("VmHWM", 0))
            total += _status_kb(self.root).get("VmRSS", 0)
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                todo += _children(pid)
                st = _status_kb(pid)
                p = self.procs.get(pid)
                if p is None:
                    cmd = _cmdline(pid)
                    p = self.procs[pid] = {
                        "pid": pid,
                        "cmdline": " ".join(cmd)[:400],
                        "first_seen_s": round(now, 2),
                        "peak_rss_mb": 0,
                        "port": _port(cmd),
                        "ready_s": None,
                    }
                p["last_seen_s"] = round(now, 2)
                p["peak_rss_mb"] = max(p["peak_rss_mb"], round(st.get("VmHWM", 0) / 1024))
                total += st.get("VmRSS", 0)
                if p["port"] and p["ready_s"] is None and _healthy(p["port"]):
                    p["ready_s"] = round(time.perf_counter() - self.started, 2)
            self.tree_peak_kb = max(self.tree_peak_kb, total)
            self.stop.wait(SAMPLE_EVERY_S)


def _port(cmd: list[str]) -> int | None:
    """The --port of a uvicorn/prefect server command line, if that is what it is."""
    joined = " ".join(cmd)
    if "uvicorn" not in joined and "prefect" not in joined:
        return None
    m = re.search(r"--port[ =](\d+)", joined)
    return int(m.group(1)) if m else None


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=0.3) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False


def run_measured(cmd: list[str], env: dict, cwd: Path, logs: Path, label: str) -> dict:
    """Run cmd to exit: wall time from spawn to exit, the main process's peak RSS (os.wait4), the sampled tree,
    stdout."""
    out_path, err_path = logs / f"{label}.stdout", logs / f"{label}.stderr"
    load_before = os.getloadavg()[0]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        sampler = TreeSampler(proc.pid, started)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        sampler.stop.set()
        sampler.join()
    main_cmd = " ".join(cmd)[:400]
    for p in sampler.procs.values():
        p["fork_of_main"] = p["cmdline"] == main_cmd  # forked copy (e.g. before an exec); its RSS is mostly shared
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    return {
        "cmd": cmd,
        "returncode": proc.returncode,
        "wall_s": round(wall, 2),
        # Linux's wait4 gives max(child, its reaped descendants): the child's own unless a reaped child grew larger.
        "peak_rss_mb_wait4": round(usage.ru_maxrss / 1024),
        "peak_rss_mb_sampled_main": round(sampler.main_hwm_kb / 1024),
        "peak_rss_mb_sampled_tree_sum": round(sampler.tree_peak_kb / 1024),
        # CPU of the child and its reaped descendants (the temporary Prefect server included).
        "user_cpu_s": round(usage.ru_utime, 2),
        "sys_cpu_s": round(usage.ru_stime, 2),
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "descendants": sorted(sampler.procs.values(), key=lambda p: p["first_seen_s"]),
        "stdout": stdout,
        "stderr_tail": stderr[-2000:],
    }


def _last_json(stdout: str) -> dict:
    """The JSON object a command printed: the last line for naive.py, the whole (indented) output for kbflow."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1])


def _hit_rate(rows: list[dict]) -> float | None:
    judged = [r for r in rows if r.get("hit") is not None]
    return round(sum(bool(r["hit"]) for r in judged) / len(judged), 3) if judged else None


def _check(r: dict, label: str, ok=(0,)) -> None:
    if r["returncode"] not in ok:
        raise SystemExit(f"{label} exited {r['returncode']}:\n{r['stderr_tail']}")


def run_naive(folder: Path, store: Path, env: dict, work: Path, label: str) -> dict:
    r = run_measured([str(VENV_PY), str(NAIVE), str(folder), str(store)], env, work, work / "logs", label)
    _check(r, label)
    r["result"] = _last_json(r.pop("stdout"))
    return r


def run_kbflow(folder: Path, store: Path, env: dict, work: Path, label: str) -> dict:
    r = run_measured(
        [str(KBFLOW), "ingest", str(folder), "--store", str(store), "--json"], env, work, work / "logs", label
    )
    _check(r, label, ok=(0, 1))  # 1: some documents failed, which the summary lists
    r["result"] = _last_json(r.pop("stdout"))
    servers = [p for p in r["descendants"] if p["port"]]
    srv = r["prefect_server"] = servers[0] if servers else None
    if srv and srv["ready_s"] is not None:
        srv["startup_s"] = round(srv["ready_s"] - srv["first_seen_s"], 2)  # spawn (as sampled) to /api/health answering
        srv["startup_share_of_wall"] = round(srv["startup_s"] / r["wall_s"], 3)
    # What the flow did not account for: imports, the temporary server's start and stop, process exit.
    r["outside_flow_s"] = round(r["wall_s"] - r["result"]["duration_s"], 2)
    status = subprocess.run(
        [str(KBFLOW), "status", "--store", str(store), "--json"], env=env, cwd=work, capture_output=True, text=True
    )
    r["collection_count_after"] = json.loads(status.stdout)["chunks"] if status.returncode == 0 else None
    return r


NAIVE_ANSWER = REPO / "benchmarks" / "naive_answer.py"


def model_file(model: str, env: dict) -> Path:
    """The GGUF file kbflow answers with for --model (a name it knows, or a path)."""
    code = (
        "import sys\nfrom tasks.settings import load_settings\nfrom tasks.answer.models import resolve_gguf\n"
        "llm = load_settings(llm_model=sys.argv[1]).llm_config()\n"
        "print(resolve_gguf(llm.model, __import__('pathlib').Path(llm.models_dir)))"
    )
    out = subprocess.run([str(VENV_PY), "-c", code, model], env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"no GGUF for --model {model}: {out.stderr[-1000:]} (run `kbflow models pull {model}`)")
    return Path(out.stdout.strip().splitlines()[-1])


def answer_both(questions: Path, model: str, work: Path, env: dict, kb_env: dict) -> dict:
    """Each side answers the question set from its own store: per-question seconds (after loading), accuracy,
    prompt tokens, and each command's wall time."""
    gguf = model_file(model, kb_env)
    naive = run_measured(
        [str(VENV_PY), str(NAIVE_ANSWER), str(work / "naive-store"), str(questions), str(gguf)],
        env,
        work,
        work / "logs",
        "naive-answer",
    )
    _check(naive, "naive-answer")
    naive_result = _last_json(naive.pop("stdout"))
    report = work / "kbflow-report"
    kb = run_measured(
        [
            str(KBFLOW),
            "ask",
            str(questions),
            "--store",
            str(work / "kbflow-store"),
            "--model",
            model,
            "--no-cache",
            "--out",
            str(report),
            "--json",
        ],
        kb_env,
        work,
        work / "logs",
        "kbflow-answer",
    )
    _check(kb, "kbflow-answer")
    summary = _last_json(kb.pop("stdout"))
    rows = [json.loads(line) for line in (report / "rows.jsonl").read_text(encoding="utf-8").splitlines() if line]
    seconds = [r["latency_ms"] / 1000 for r in rows if r.get("latency_ms") is not None]
    prompt = [r["prompt_tokens"] for r in rows if r.get("prompt_tokens")]
    kb_result = {
        "questions": len(rows),
        "accuracy": summary.get("accuracy"),
        "s_per_question_mean": round(sum(seconds) / len(seconds), 2) if seconds else None,
        "prompt_tokens_mean": round(sum(prompt) / len(prompt), 1) if prompt else None,
        "completion_tokens_mean": round(sum(r.get("completion_tokens") or 0 for r in rows) / max(1, len(prompt)), 1),
        "refused": summary.get("refused"),
        # The report's flags against the scored answers (the report's own figures), and retrieval across languages
        # (question ids with "-x", as our held-out sets name their cross-lingual questions).
        **{k: summary.get(k) for k in ("flag_recall", "flag_precision", "flagged", "flagged_wrong", "recall_at_k")},
        "crosslingual_recall_at_k": _hit_rate([r for r in rows if "-x" in str(r.get("id"))]),
        "rows": [
            {
                k: r.get(k)
                for k in (
                    "id",
                    "question",
                    "expected_answer",
                    "answer",
                    "correct",
                    "hit",
                    "unsupported",
                    "flag_reason",
                    "second_look",
                    "latency_ms",
                    "prompt_tokens",
                )
            }
            for r in rows
        ],
    }
    for r, res in ((naive, naive_result), (kb, kb_result)):
        res["command_wall_s"] = r["wall_s"]
        res["peak_rss_mb"] = r["peak_rss_mb_wait4"]
    ratio = (
        round(kb_result["s_per_question_mean"] / naive_result["s_per_question_mean"], 2)
        if kb_result["s_per_question_mean"] and naive_result["s_per_question_mean"]
        else None
    )
    return {
        "questions_file": str(questions),
        "model": model,
        "gguf": str(gguf),
        "naive": naive_result,
        "kbflow": kb_result,
        "seconds_per_question_ratio": ratio,
        "accuracy_gain": (
            round(kb_result["accuracy"] - naive_result["accuracy"], 3)
            if None not in (kb_result["accuracy"], naive_result["accuracy"])
            else None
        ),
    }


def edit_one_file(folder: Path) -> Path:
    """Append a sentence to the first text-like file (by path); the same edit both pipelines then see."""
    candidates = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_LIKE)
    if not candidates:
        raise SystemExit(f"no text-like file ({', '.join(TEXT_LIKE)}) in {folder} to edit")
    with open(candidates[0], "a", encoding="utf-8") as f:
        f.write(EDIT_SENTENCE)
    return candidates[0]


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(mem_kb / 2**20, 1),
        "platform": platform.platform(),
    }


def versions(env: dict) -> dict:
    """Versions in the interpreter the runs use (the venv), not necessarily this one."""
    code = (
        "import json, sys, importlib.metadata as m\n"
        "v = {'python': sys.version.split()[0]}\n"
        "for d in ['torch', 'sentence-transformers', 'chromadb', 'unstructured', 'langchain-text-splitters', "
        "'prefect', 'kbflow']:\n"
        "    try: v[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: v[d] = None\n"
        "print(json.dumps(v))"
    )
    out = subprocess.run([str(VENV_PY), "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    return str(v)


def _ratio(naive, kb) -> str:
    if not isinstance(naive, (int, float)) or not isinstance(kb, (int, float)) or naive == 0:
        return "–"
    return f"{kb / naive:.2f}"


def table(rows: list[tuple[str, object, object]]) -> str:
    lines = ["| step | naive | kbflow | ratio kbflow/naive |", "|---|---:|---:|---:|"]
    lines += [f"| {step} | {_fmt(n)} | {_fmt(k)} | {_ratio(n, k)} |" for step, n, k in rows]
    return "\n".join(lines)


def summary_rows(n: dict, k: dict) -> list[tuple[str, object, object]]:
    nf, nr, ne = (n[s]["result"] for s in ("first", "rerun", "edited"))
    kf, kr, ke = (k[s]["result"] for s in ("first", "rerun", "edited"))
    srv = k["first"]["prefect_server"]
    return [
        ("first ingest: wall, spawn to exit (s)", n["first"]["wall_s"], k["first"]["wall_s"]),
        (
            "first ingest: inside (naive: pipeline after imports; kbflow: flow duration_s) (s)",
            nf["pipeline_s"],
            kf["duration_s"],
        ),
        (
            "first ingest: peak RSS of main process, wait4 (MB)",
            n["first"]["peak_rss_mb_wait4"],
            k["first"]["peak_rss_mb_wait4"],
        ),
        (
            "first ingest: CPU user+sys, main + reaped children (s)",
            round(n["first"]["user_cpu_s"] + n["first"]["sys_cpu_s"], 2),
            round(k["first"]["user_cpu_s"] + k["first"]["sys_cpu_s"], 2),
        ),
        ("first ingest: chunks written", nf["chunks"], kf["chunks_written"]),
        (
            "first ingest: kbflow's temporary Prefect server: spawned at / healthy at (s)",
            None,
            f"{srv['first_seen_s']} / {srv['ready_s']}" if srv else "none",
        ),
        ("first ingest: kbflow's temporary Prefect server start-up (s)", None, srv.get("startup_s") if srv else None),
        ("first ingest: kbflow's temporary Prefect server peak RSS (MB)", None, srv["peak_rss_mb"] if srv else None),
        ("no-change re-run: wall (s)", n["rerun"]["wall_s"], k["rerun"]["wall_s"]),
        ("no-change re-run: inside (s)", nr["pipeline_s"], kr["duration_s"]),
        ("no-change re-run: chunks written", nr["chunks"], kr["chunks_written"]),
        (
            "no-change re-run: kbflow's Prefect server start-up (s)",
            None,
            (k["rerun"]["prefect_server"] or {}).get("startup_s"),
        ),
        (
            "no-change re-run: collection count before → after",
            f"{nr['count_before']} → {nr['count_after']}",
            f"{k['first']['collection_count_after']} → {k['rerun']['collection_count_after']}",
        ),
        ("one file edited: wall (s)", n["edited"]["wall_s"], k["edited"]["wall_s"]),
        ("one file edited: inside (s)", ne["pipeline_s"], ke["duration_s"]),
        ("one file edited: chunks written", ne["chunks"], ke["chunks_written"]),
        ("one file edited: collection count after", ne["count_after"], k["edited"]["collection_count_after"]),
    ]


def _redacted_kbflow_env() -> dict:
    secret = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.I)
    return {k: ("<set>" if secret.search(k) else v) for k, v in os.environ.items() if k.startswith("KBFLOW_")}


def compare(
    folder: Path, name: str, keep: bool, kbflow_env: dict[str, str], questions: Path | None = None, model: str = ""
) -> dict:
    env = {**os.environ, **OFFLINE_ENV}
    kb_env = {**env, **kbflow_env}
    work = Path(tempfile.mkdtemp(prefix="kbflow-compare-"))
    (work / "logs").mkdir()
    copy = work / "corpus"
    shutil.copytree(folder, copy)
    steps_n, steps_k = {}, {}
    try:
        # Untimed warm-up, so neither side pays for a cold page cache of the shared libraries.
        warm = time.perf_counter()
        subprocess.run(
            [
                str(VENV_PY),
                "-c",
                "import torch, sentence_transformers, chromadb, langchain_text_splitters, "
                "unstructured.partition.auto, prefect",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        warm_s = round(time.perf_counter() - warm, 2)
        # Interleaved, so a change of load on the machine hits both sides alike.
        for step in ("first", "rerun", "edited"):
            if step == "edited":
                edited = edit_one_file(copy)
                print(f"appended a sentence to {edited.relative_to(copy)}", file=sys.stderr)
            print(f"{step}: naive ...", file=sys.stderr)
            steps_n[step] = run_naive(copy, work / "naive-store", env, work, f"naive-{step}")
            print(f"{step}: kbflow ...", file=sys.stderr)
            steps_k[step] = run_kbflow(copy, work / "kbflow-store", kb_env, work, f"kbflow-{step}")
        answering = None
        if questions is not None:
            print("answering: naive, then kbflow ...", file=sys.stderr)
            answering = answer_both(questions.resolve(), model, work, env, kb_env)
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    n_files = sum(1 for p in folder.rglob("*") if p.is_file())
    srv = steps_k["first"]["prefect_server"]
    return {
        "name": name,
        "command": shlex.join([sys.executable, *sys.argv]),
        "folder": str(folder.resolve()),
        "files": n_files,
        "edited_file": str(edited.relative_to(copy)),
        "edit": EDIT_SENTENCE.strip(),
        "machine": machine(),
        "versions": versions(env),
        "environment": {
            "offline": OFFLINE_ENV,
            "prefect_api_url_set": bool(os.environ.get("PREFECT_API_URL")),
            "prefect_home": os.environ.get("PREFECT_HOME", str(Path.home() / ".prefect")),
            "kbflow_env_inherited": _redacted_kbflow_env(),
            "kbflow_env_extra": kbflow_env,
        },
        "warmup_import_s": warm_s,
        "kbflow_spawns_temporary_prefect_server": srv is not None,
        "notes": [
            "naive splits 500/50 characters; kbflow's defaults are 500/80 unless KBFLOW_CHUNK_* is set.",
            "naive 'inside' excludes its imports; kbflow's duration_s is the flow run (it may import lazily inside).",
            "naive joins each file's elements into one text before splitting; kbflow splits per section, so it makes "
            "more, shorter chunks.",
            "peak_rss_mb_wait4 is Linux's max(child, its reaped descendants); CPU times include reaped descendants.",
            "peak_rss_mb_sampled_tree_sum adds sampled RSS across the tree: shared pages (forks) count twice.",
            "Prefect server start-up is from its first sighting (50 ms sampling) to /api/health answering 200.",
            "loadavg_1min_* show how busy the machine was: other jobs on it slow every figure.",
        ],
        "naive": steps_n,
        "kbflow": steps_k,
        "table": [
            {"step": s, "naive": a, "kbflow": b, "ratio": _ratio(a, b)} for s, a, b in summary_rows(steps_n, steps_k)
        ],
        "table_markdown": table(summary_rows(steps_n, steps_k) + answer_rows(answering)),
        "answering": answering,
    }


def answer_rows(a: dict | None) -> list[tuple[str, object, object]]:
    if not a:
        return []
    n, k = a["naive"], a["kbflow"]
    return [
        ("answering: seconds per question (after loading)", n["s_per_question_mean"], k["s_per_question_mean"]),
        ("answering: accuracy (answer_correct)", n["accuracy"], k["accuracy"]),
        ("answering: prompt tokens per question", n["prompt_tokens_mean"], k["prompt_tokens_mean"]),
        ("answering: completion tokens per question", n["completion_tokens_mean"], k["completion_tokens_mean"]),
        ("answering: command wall, load included (s)", n["command_wall_s"], k["command_wall_s"]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="Folder of documents to ingest (a private copy is used).")
    ap.add_argument("--name", help="Result name: benchmarks/results/compare-NAME.json (default: the folder's name).")
    ap.add_argument("--keep", action="store_true", help="Keep the temp dir (copy, stores, logs).")
    ap.add_argument(
        "--kbflow-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra environment for the kbflow runs only, e.g. KBFLOW_EMBEDDING_BACKEND=onnx (repeatable).",
    )
    ap.add_argument(
        "--build-cmrc-folder",
        type=Path,
        metavar="DIR",
        help="Only build the 1,000-file folder benchmarks/ingest.py uses (CMRC paragraphs + English notes) in DIR.",
    )
    ap.add_argument(
        "--cmrc",
        type=Path,
        default=REPO.parent / "shared" / "data" / "cmrc2018_trial.json",
        help="CMRC 2018 trial JSON for --build-cmrc-folder (default: %(default)s).",
    )
    ap.add_argument("--questions", type=Path, help="Then answer this question set (CSV) on both sides.")
    ap.add_argument("--model", default="qwen2.5-1.5b", help="GGUF both sides answer with (default: %(default)s).")
    ap.add_argument(
        "--cmrc-questions",
        type=int,
        default=0,
        metavar="N",
        help="With --build-cmrc-folder: also write N of its CMRC questions to DIR.questions.csv.",
    )
    ap.add_argument(
        "--files", type=int, default=1000, help="Files in the --build-cmrc-folder folder (default: %(default)s)."
    )
    args = ap.parse_args()

    if args.build_cmrc_folder:
        if args.build_cmrc_folder.exists() and any(args.build_cmrc_folder.iterdir()):
            ap.error(f"{args.build_cmrc_folder} exists and is not empty")
        n = write_mixed_folder(args.build_cmrc_folder, args.files, cmrc=args.cmrc)
        print(f"wrote {n} files to {args.build_cmrc_folder}")
        if args.cmrc_questions:
            csv_path = args.build_cmrc_folder.with_name(args.build_cmrc_folder.name + ".questions.csv")
            write_cmrc_questions(csv_path, args.cmrc_questions, cmrc=args.cmrc)
            print(f"wrote {args.cmrc_questions} questions to {csv_path}")
        return
    if args.folder is None or not args.folder.is_dir():
        ap.error("give a FOLDER of documents (or --build-cmrc-folder DIR)")
    extra = {}
    for item in args.kbflow_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--kbflow-env takes KEY=VALUE, got {item!r}")
        extra[key] = value
    if not KBFLOW.exists():
        raise SystemExit(f"{KBFLOW} not found: run `make install` first")

    name = args.name or args.folder.resolve().name
    result = compare(args.folder, name, args.keep, extra, args.questions, args.model)
    print(result["table_markdown"])
    print(f"saved to {save(f'compare-{name}', result)}")


if __name__ == "__main__":
    main()
