"""Retrieval quality per mode on CMRC 2018 (trial), and answering speed with retrieval and generation apart.

    .venv/bin/python benchmarks/retrieval.py [--answer-sample 20] [--models smollm2,qwen2.5-1.5b]
    KBFLOW_THREADS=2 .venv/bin/python benchmarks/retrieval.py --modes hybrid --name answering-2-threads

Each CMRC paragraph becomes one document; a question's gold source is its own paragraph's file.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CMRC, load_cmrc, save, write_cmrc_folder  # noqa: E402 - run as a script: the repository goes on sys.path first


def score(ranked: list[str], gold: str) -> tuple[float, float, float]:
    """recall@1, recall@5, reciprocal rank of the gold source in a ranking."""
    rank = ranked.index(gold) + 1 if gold in ranked else 0
    return float(rank == 1), float(0 < rank <= 5), (1.0 / rank if rank else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answer-sample", type=int, default=20, help="questions answered per model for speed and F1")
    ap.add_argument("--models", default="smollm2,qwen2.5-1.5b")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N questions (0 = all)")
    ap.add_argument("--modes", default="dense,keyword,hybrid", help="retrieval modes to score")
    ap.add_argument("--name", default="retrieval", help="results file: benchmarks/results/NAME.json")
    ap.add_argument("--cmrc", type=Path, default=CMRC, help="the CMRC 2018 trial file (default: ../shared/data)")
    args = ap.parse_args()

    import logging

    logging.disable(logging.INFO)
    from flows.ingest import ingest_flow
    from tasks.answer.backends import make_backend
    from tasks.answer.generate import answer_question
    from tasks.answer.models import ModelError, resolve_gguf
    from tasks.answer.options import RetrievalOptions
    from tasks.answer.retrieve import retrieve_context
    from tasks.report.metrics import exact_match, f1_score
    from tasks.settings import load_settings

    _, questions = load_cmrc(args.cmrc)
    if args.limit:
        questions = questions[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="kbflow-cmrc-"))
    result: dict = {"questions": len(questions)}
    try:
        folder = work / "cmrc"
        result["documents"] = write_cmrc_folder(folder, args.cmrc)
        store = work / "store"
        t = time.perf_counter()
        summary = ingest_flow(source_path=str(folder), store_dir=str(store))
        result["ingest"] = {"chunks": summary["chunks_written"], "seconds": round(time.perf_counter() - t, 1)}
        cfg = load_settings(store_dir=str(store))
        result["chunk_size"], result["chunk_overlap"] = cfg.chunk_size, cfg.chunk_overlap

        def ranked(q: str, mode: str, k: int = 5) -> tuple[list[dict], float]:
            got = retrieve_context.fn(
                q, cfg.store_config(), cfg.embedder_config(), RetrievalOptions(top_k=k, mode=mode)
            )
            return got["passages"], got["retrieval_ms"]

        result["retrieval"] = {}
        for mode in [m for m in args.modes.split(",") if m]:
            r1 = r5 = mrr = 0.0
            times = []
            for q in questions:
                passages, ms = ranked(q["question"], mode)
                sources = list(dict.fromkeys(p["source"] for p in passages))
                a, b, c = score(sources, q["source"])
                r1, r5, mrr = r1 + a, r5 + b, mrr + c
                times.append(ms)
            n = len(questions)
            result["retrieval"][mode] = {
                "recall@1": round(r1 / n, 3),
                "recall@5": round(r5 / n, 3),
                "mrr": round(mrr / n, 3),
                "ms_per_question_p50": round(statistics.median(times), 1),
            }
            print(mode, result["retrieval"][mode], flush=True)

        sample = questions[:: max(1, len(questions) // args.answer_sample)][: args.answer_sample]
        result["answering"] = {}
        for model in [m for m in args.models.split(",") if m]:
            try:
                resolve_gguf(model, cfg.models_dir)
            except ModelError as exc:
                result["answering"][model] = {"skipped": str(exc)}
                continue
            backend = make_backend(cfg.llm_config().model_copy(update={"model": model}))
            ret_s, gen_s, ems, f1s = [], [], [], []
            for q in sample:
                t = time.perf_counter()
                passages, _ = ranked(q["question"], "hybrid", 3)
                ret_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                out = answer_question(backend, q["question"], passages, max_tokens=cfg.max_tokens, temperature=0.0)
                gen_s.append(time.perf_counter() - t)
                ems.append(exact_match(out["answer"], q["answers"]))
                f1s.append(f1_score(out["answer"], q["answers"]))
            result["answering"][model] = {
                "questions": len(sample),
                "retrieval_s_per_question": round(statistics.mean(ret_s), 3),
                "generation_s_per_question": round(statistics.mean(gen_s), 2),
                "exact_match": round(statistics.mean(ems), 3),
                "f1": round(statistics.mean(f1s), 3),
                "threads": cfg.threads,
            }
            print(model, result["answering"][model], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"saved to {save(args.name, result)}")


if __name__ == "__main__":
    main()
