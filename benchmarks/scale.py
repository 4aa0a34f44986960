"""How the cost grows with the knowledge base: ingest, refresh and retrieval at N chunks, with real embeddings.

    .venv/bin/python benchmarks/scale.py --chunks 10000 --name scale-10k
    .venv/bin/python benchmarks/scale.py --chunks 100000 --name scale-100k
    .venv/bin/python benchmarks/scale.py --plot        # benchmarks/results/scale.png from every scale-*.json

Builds a folder of documents of about 1 to 2 chunks each, half Chinese (CMRC 2018 paragraphs, each copy made
distinct by a numbered heading) and half English (demo-corpus sentences), until it holds about N chunks. Then,
from the shell as a user would (the store's background Prefect server, started by the first command):
- the first `kbflow ingest` (wall and chunks/s), a no-change refresh, and a refresh after one edited file
  (wall, and the flow's own duration_s);
then in one warm process, as `kbflow ask` retrieves:
- the time to the first retrieved question (the store opened, the embedder and the keyword index loaded);
- hybrid retrieval p50 and p95 over 50 CMRC questions;
- that process's peak RSS;
and the store's size on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import KBFLOW, REPO, RESULTS, load_cmrc, save, timed_ingest  # noqa: E402 - run as a script
from flows.settings import OFFLINE_ENV  # noqa: E402


def build_folder(folder: Path, chunks: int, seed: int = 11) -> int:
    """Documents until about `chunks` chunks (500-character chunks); the number of documents."""
    paragraphs, _ = load_cmrc()
    chinese = list(paragraphs.values())
    sentences = []
    for p in (REPO / "docs" / "demo" / "corpus").rglob("*"):
        if p.suffix in {".txt", ".md"}:
            sentences += [s.strip() + "." for s in p.read_text(encoding="utf-8").split(".") if len(s.strip()) > 30]
    rng = random.Random(seed)
    total_chars, n = 0, 0
    # Measured: a target of 10,000 at 420 characters a chunk gave 17,205 chunks (Chinese chunks end at sentence
    # ends, well short of 500 characters): about 245 characters a chunk on this mix.
    target_chars = chunks * 245
    while total_chars < target_chars:
        sub = folder / f"part{n // 1000:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        if n % 2 == 0:
            text = f"第{n}号文档。" + chinese[(n // 2) % len(chinese)]
            (sub / f"zh_{n:07d}.txt").write_text(text, encoding="utf-8")
        else:
            text = f"Note {n}. " + " ".join(rng.choice(sentences) for _ in range(rng.randint(4, 14)))
            (sub / f"en_{n:07d}.txt").write_text(text, encoding="utf-8")
        total_chars += len(text)
        n += 1
    return n


def shell_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, **OFFLINE_ENV}


def ingest(folder: Path, store: Path) -> tuple[float, dict]:
    wall, summary = timed_ingest(folder, store, shell_env())
    return round(wall, 2), summary


RETRIEVE = """
import json, resource, statistics, sys, time
started = time.perf_counter()
from flows.settings import load_settings
from tasks.answer.retrieve import retrieve_context
cfg = load_settings(store_dir=sys.argv[1])
questions = json.loads(sys.argv[2])
times = []
first = None
for q in questions:
    t = time.perf_counter()
    retrieve_context(q, cfg.store_config(), cfg.embedder_config(), cfg.retrieval_options())
    times.append((time.perf_counter() - t) * 1000)
    if first is None:
        first = time.perf_counter() - started
warm = sorted(times[1:])
print(json.dumps({
    "first_question_s": round(first, 2),
    "p50_ms": round(statistics.median(warm), 1),
    "p95_ms": round(warm[int(0.95 * (len(warm) - 1))], 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
}))
"""


def retrieval(store: Path, questions: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", RETRIEVE, str(store), json.dumps(questions, ensure_ascii=False)],
        capture_output=True,
        text=True,
        env=shell_env(),
        cwd=REPO,
    )
    if proc.returncode != 0:
        sys.exit(f"retrieval failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def disk_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def measure(chunks: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="kbflow-scale-"))
    folder, store = work / "docs", work / "store"
    try:
        documents = build_folder(folder, chunks)
        first_wall, first = ingest(folder, store)
        nochange_wall, nochange = ingest(folder, store)
        edited = next(folder.rglob("en_*.txt"))
        edited.write_text(edited.read_text(encoding="utf-8") + " Edited for the benchmark.", encoding="utf-8")
        edit_wall, edit = ingest(folder, store)
        _, cmrc = load_cmrc()
        questions = [q["question"] for q in random.Random(5).sample(cmrc, 51)]
        return {
            "chunks": first["chunks_written"],
            "documents": documents,
            "first_ingest": {
                "wall_s": first_wall,
                "flow_s": first["duration_s"],
                "chunks_per_s": round(first["chunks_written"] / first_wall, 1),
            },
            "nochange_refresh": {"wall_s": nochange_wall, "flow_s": nochange["duration_s"]},
            "one_edited_file": {"wall_s": edit_wall, "flow_s": edit["duration_s"]},
            "retrieval_hybrid": retrieval(store, questions),
            "store_mb": disk_mb(store / "chroma"),
            "ledger_mb": disk_mb(store) - disk_mb(store / "chroma") - disk_mb(store / "prefect"),
        }
    finally:
        subprocess.run([KBFLOW, "server", "stop", "--store", str(store)], env=shell_env(), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def plot() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(
        (json.loads(p.read_text()) for p in RESULTS.glob("scale-*.json")), key=lambda r: r["result"]["chunks"]
    )
    xs = [r["result"]["chunks"] for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    series = [
        (
            "seconds (wall)",
            [
                ("first ingest", "first_ingest", "wall_s"),
                ("no-change refresh", "nochange_refresh", "wall_s"),
                ("one edited file", "one_edited_file", "wall_s"),
            ],
        ),
        (
            "milliseconds",
            [
                ("hybrid retrieval p50", "retrieval_hybrid", "p50_ms"),
                ("hybrid retrieval p95", "retrieval_hybrid", "p95_ms"),
            ],
        ),
        ("MB", [("retrieval process peak RSS", "retrieval_hybrid", "peak_rss_mb")]),
    ]
    for ax, (unit, lines) in zip(axes, series):
        for label, part, key in lines:
            ax.plot(xs, [r["result"][part][key] for r in runs], marker="o", label=label)
        ax.plot(
            xs, [r["result"]["store_mb"] for r in runs], marker="s", label="Chroma on disk"
        ) if unit == "MB" else None
        ax.set_xscale("log")
        ax.set_xlabel("chunks (real all-MiniLM-L6-v2 embeddings)")
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("kbflow at scale, 2 cores (benchmarks/scale.py)")
    fig.tight_layout()
    out = RESULTS / "scale.png"
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10000)
    ap.add_argument("--name")
    ap.add_argument("--plot", action="store_true", help="only draw benchmarks/results/scale.png")
    args = ap.parse_args()
    if args.plot:
        print(f"saved {plot()}")
        return
    result = measure(args.chunks)
    print(json.dumps(result, indent=2))
    print(f"saved {save(args.name or f'scale-{args.chunks}', {'cpus': os.cpu_count(), 'result': result})}")


if __name__ == "__main__":
    main()
