"""How the cost grows with the knowledge base: ingest, refresh and retrieval at N chunks, with real embeddings.

    .venv/bin/python benchmarks/scale.py --chunks 10000 --name scale-10k
    .venv/bin/python benchmarks/scale.py --chunks 100000 --name scale-100k
    .venv/bin/python benchmarks/scale.py --chunks 1000000 --stand-in --name scale-1m
    .venv/bin/python benchmarks/scale.py --chunks 100000 --stand-in --readers 20 --baseline ../main \
        --name scale-100k-readers
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

With --stand-in (for 1,000,000 chunks: 2 cores embed about 50-120 chunks/s, so real vectors would take days of
this machine) the same documents' chunks are written straight into the store and the ledger, with their real
keyword tokens and stand-in vectors: each chunk's hashed tokens projected to 384 dimensions (similar texts get
similar vectors, as with a real model, but the question is embedded by the real model, so the dense ranking is
meaningless: only its cost is measured). Then the keyword index is made, and retrieval is measured as above.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402 - run as a script
    KBFLOW,
    REPO,
    RESULTS,
    demo_sentences,
    load_cmrc,
    run_kbflow,
    save,
    timed_ingest,
    wait_warm,
)  # noqa: E402 - run as a script
from tasks.offline import OFFLINE_ENV  # noqa: E402


def material() -> tuple[list[str], list[str]]:
    """The Chinese paragraphs (CMRC 2018) and English sentences (the demo corpus) the documents are made of."""
    paragraphs, _ = load_cmrc()
    return list(paragraphs.values()), demo_sentences()


def build_folder(folder: Path, chunks: int, seed: int = 11) -> int:
    """Documents until about `chunks` chunks (500-character chunks); the number of documents."""
    chinese, sentences = material()
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


def texts(chunks: int, seed: int = 11):
    """The chunk texts build_folder's documents would give, one per document (for --stand-in), about 245 characters."""
    chinese, sentences = material()
    rng = random.Random(seed)
    for n in range(chunks):
        if n % 2 == 0:
            para = chinese[(n // 2) % len(chinese)]
            start = rng.randrange(max(1, len(para) - 240))
            yield f"zh_{n:07d}.txt", f"第{n}号文档。" + para[start : start + 240]
        else:
            yield f"en_{n:07d}.txt", f"Note {n}. " + " ".join(rng.choice(sentences) for _ in range(rng.randint(1, 3)))


BUCKETS = 1 << 15


@lru_cache(maxsize=1)
def projection(dim: int):
    import numpy as np

    return np.random.default_rng(7).standard_normal((BUCKETS, dim)).astype(np.float32)


def stand_in_vectors(terms: list[list[str]], dim: int = 384):
    """Unit vectors from hashed tokens through a fixed random projection (a cheap stand-in for an embedding model)."""
    import zlib

    import numpy as np
    import scipy.sparse as sp

    buckets = BUCKETS
    rows = np.repeat(np.arange(len(terms)), [len(t) for t in terms])
    cols = np.array([zlib.crc32(t.encode()) % buckets for ts in terms for t in ts], dtype=np.int64)
    bag = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(terms), buckets))
    vectors = bag @ projection(dim) + 1e-3
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def stand_in_readers(n: int, groups: int) -> tuple[str, ...]:
    """Document n's readers: public without --readers; with it, one of `groups` groups (g00, g01, ...)."""
    return ("*",) if not groups else (f"g{n % groups:02d}",)


def stand_in_store(store: Path, chunks: int, batch: int = 5000, groups: int = 0) -> dict:
    """Write `chunks` chunks with real tokens and stand-in vectors into a new store; timings of each part."""
    import time

    from connectors.base import DocumentRef
    from tasks.ingest.ledger import DocumentWrite, Ledger
    from tasks.ingest.split import Chunk, chunk_id
    from tasks.settings import load_settings
    from tasks.store import keyword
    from tasks.store.chroma import ChromaStore
    from tasks.text import tokenize

    cfg = load_settings(store_dir=str(store))
    config = cfg.store_config()
    from tasks.embed.embedder import get_embedder

    dim = get_embedder(cfg.embedder_config()).dimension  # the questions are embedded by the real model
    vectors_store = ChromaStore.open_for_writing(config, cfg.embedding_model, dim, "stand-in")
    took = {"tokenize_s": 0.0, "vectors_s": 0.0, "chroma_upsert_s": 0.0, "ledger_s": 0.0}
    pending: list[tuple[str, str]] = []

    pool = multiprocessing.get_context("fork").Pool(os.cpu_count() or 1)  # jieba is the slow part: all cores

    def flush() -> None:
        t = time.perf_counter()
        terms = pool.map(tokenize, [text for _, text in pending], chunksize=250)
        took["tokenize_s"] += time.perf_counter() - t
        t = time.perf_counter()
        vectors = stand_in_vectors(terms, dim).tolist()
        took["vectors_s"] += time.perf_counter() - t
        objs, writes, readers = [], [], {}
        for (path, text), toks in zip(pending, terms):
            sha = f"{hash(text) & (2**64 - 1):016x}"
            cid = chunk_id("local:/scale", path, sha, 0, text)
            objs.append(Chunk(cid, text, path, "local:/scale", None, "", 0, sha))
            readers[path] = stand_in_readers(int(path[3:10]), groups)
            ref = DocumentRef("local:/scale", path, len(text), 0.0, sha, readers[path])
            writes.append(DocumentWrite(ref, [cid], [toks]))
        t = time.perf_counter()
        vectors_store.upsert(objs, vectors, readers)
        took["chroma_upsert_s"] += time.perf_counter() - t
        t = time.perf_counter()
        with Ledger.of_store(store, config.collection) as ledger:
            ledger.commit_documents(writes)
        took["ledger_s"] += time.perf_counter() - t
        pending.clear()

    for i, item in enumerate(texts(chunks), start=1):
        pending.append(item)
        if len(pending) == batch:
            flush()
        if i % 100_000 == 0:
            print(f"{i} chunks written", file=sys.stderr, flush=True)
    if pending:
        flush()
    pool.close()
    t = time.perf_counter()
    index, _ = keyword.refresh(config)
    took["keyword_index_build_s"] = time.perf_counter() - t
    took["keyword_index_mb"] = disk_mb(keyword.index_home(store, config.collection))
    return {k: round(v, 1) for k, v in took.items()} | {"chunks": index.n}


def measure_stand_in(chunks: int, groups: int = 0, baseline: Path | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="kbflow-scale-"))
    store = work / "store"
    try:
        built = stand_in_store(store, chunks, groups=groups)
        _, cmrc = load_cmrc()
        questions = [q["question"] for q in random.Random(5).sample(cmrc, 51)]
        if groups:  # readers over `groups` groups: asked for 2 of them, for all (an administrator), and, with the
            # code before readers were kept (--baseline REPO), as it was
            asked = {"KBFLOW_GROUPS": "g00,g01"}
            readers = {
                "groups": groups,
                "asked_for": asked["KBFLOW_GROUPS"],
                "retrieval_hybrid_for_2_groups": retrieval(store, questions, asked),
                "retrieval_hybrid_all_documents": retrieval(store, questions, {"KBFLOW_BENCH_ALL_DOCUMENTS": "1"}),
            }
            if baseline:
                readers["retrieval_hybrid_before_readers"] = retrieval(store, questions, {}, cwd=baseline)
                readers["baseline_repo"] = str(baseline)
            return {"chunks": built["chunks"], "written": built, "readers": readers}
        return {
            "chunks": built["chunks"],
            "vectors": "stand-in (hashed tokens, random projection); real keyword tokens",
            "written": built,
            "retrieval_hybrid": retrieval(store, questions),
            "ask_from_the_shell": shell_ask(store, questions[0]),
            "store_mb": disk_mb(store / "chroma"),
            "keyword_index_mb": disk_mb(store / "keyword"),
            "ledger_mb": round(
                disk_mb(store) - disk_mb(store / "chroma") - disk_mb(store / "prefect") - disk_mb(store / "keyword"), 1
            ),
        }
    finally:
        subprocess.run([KBFLOW, "server", "stop", "--store", str(store)], env=shell_env(), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def shell_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, **OFFLINE_ENV}


def ingest(folder: Path, store: Path) -> tuple[float, dict]:
    wall, summary = timed_ingest(folder, store, shell_env())
    return round(wall, 2), summary


RETRIEVE = """
import json, resource, statistics, sys, time
started = time.perf_counter()
from tasks.settings import load_settings
from tasks.answer.retrieve import retrieve_context
import os
cfg = load_settings(store_dir=sys.argv[1])
questions = json.loads(sys.argv[2])
# An administrator's question (no readers' filter), where the code has readers (benchmarks/scale.py --readers).
everything = bool(os.environ.get("KBFLOW_BENCH_ALL_DOCUMENTS"))
options = cfg.retrieval_options(all_documents=True) if everything else cfg.retrieval_options()
times = []
first = None
for q in questions:
    t = time.perf_counter()
    # .fn: as `kbflow ask` retrieves, inside its batch task (not one Prefect task run per question)
    retrieve_context.fn(q, cfg.store_config(), cfg.embedder_config(), options)
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


def retrieval(store: Path, questions: list[str], env: dict | None = None, cwd: Path = REPO) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", RETRIEVE, str(store), json.dumps(questions, ensure_ascii=False)],
        capture_output=True,
        text=True,
        env={**shell_env(), **(env or {})},
        cwd=cwd,
    )
    if proc.returncode != 0:
        sys.exit(f"retrieval failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def shell_ask(store: Path, question: str, repeat: int = 3) -> dict:
    """`kbflow ask QUESTION --retrieval-only` from the shell: the first command (it starts the store's Prefect
    server when none runs), then, once the warm process it launched is ready, the median of `repeat` more."""
    args = ("ask", question, "--store", str(store), "--retrieval-only", "--json")
    first, _ = run_kbflow(*args, env=shell_env())
    ready = wait_warm(store)
    walls = sorted(run_kbflow(*args, env=shell_env())[0] for _ in range(repeat))
    return {
        "first_command_s": round(first, 2),
        "warm_process_ready": ready,
        "median_s": round(walls[len(walls) // 2], 2),
        "runs_s": [round(w, 2) for w in walls],
    }


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
            "ask_from_the_shell": shell_ask(store, questions[0]),
            "store_mb": disk_mb(store / "chroma"),
            "keyword_index_mb": disk_mb(store / "keyword"),
            "ledger_mb": round(
                disk_mb(store) - disk_mb(store / "chroma") - disk_mb(store / "prefect") - disk_mb(store / "keyword"), 1
            ),
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
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    series = [
        (
            "seconds (wall)",
            [
                ("first ingest", "first_ingest", "wall_s"),
                ("no-change refresh", "nochange_refresh", "wall_s"),
                ("one edited file", "one_edited_file", "wall_s"),
                ("first retrieved question", "retrieval_hybrid", "first_question_s"),
            ],
        ),
        (
            "milliseconds",
            [
                ("hybrid retrieval p50", "retrieval_hybrid", "p50_ms"),
                ("hybrid retrieval p95", "retrieval_hybrid", "p95_ms"),
            ],
        ),
        (
            "MB",
            [
                ("retrieval process peak RSS", "retrieval_hybrid", "peak_rss_mb"),
                ("Chroma on disk", "store_mb", None),
                ("keyword index on disk", "keyword_index_mb", None),
            ],
        ),
    ]
    for ax, (unit, lines) in zip(axes, series):
        for label, part, key in lines:
            points = [
                (
                    r["result"]["chunks"],
                    r["result"][part] if key is None else r["result"][part][key],
                    "vectors" in r["result"],
                )
                for r in runs
                if part in r["result"] and (key is None or key in r["result"][part])
            ]
            if not points:
                continue
            line = ax.plot([x for x, _, _ in points], [y for _, y, _ in points], marker="o", label=label)[0]
            stand_in = [(x, y) for x, y, s in points if s]
            if stand_in:  # hollow markers: stand-in vectors
                ax.plot(*zip(*stand_in), "o", mfc="white", color=line.get_color())
        ax.set_xscale("log")
        if unit.startswith("seconds"):
            ax.set_yscale("log")  # a first ingest takes an hour where a refresh takes seconds
        ax.set_xlabel("chunks (hollow: stand-in vectors)")
        ax.set_ylabel(unit)
        ax.legend(fontsize=7)
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
    ap.add_argument("--stand-in", action="store_true", help="store and retrieval only, with stand-in vectors")
    ap.add_argument("--plot", action="store_true", help="only draw benchmarks/results/scale.png")
    ap.add_argument(
        "--readers",
        type=int,
        default=0,
        metavar="GROUPS",
        help="with --stand-in: each document readable by one of "
        "GROUPS groups; retrieval is measured for 2 of them and for all documents",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="with --readers: also measure retrieval with the code of this "
        "checkout (one from before readers were kept)",
    )
    args = ap.parse_args()
    if args.plot:
        print(f"saved {plot()}")
        return
    if args.stand_in:
        result = measure_stand_in(args.chunks, args.readers, args.baseline)
    else:
        result = measure(args.chunks)
    print(json.dumps(result, indent=2))
    print(f"saved {save(args.name or f'scale-{args.chunks}', {'cpus': os.cpu_count(), 'result': result})}")


if __name__ == "__main__":
    main()
