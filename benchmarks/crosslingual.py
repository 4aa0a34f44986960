"""Retrieval across languages: English questions over Chinese documents, Chinese over Chinese, per embedding model.

    .venv/bin/python benchmarks/crosslingual.py [--models multilingual-use-v3,all-MiniLM-L6-v2] [--zh 200]

The 256 CMRC 2018 trial paragraphs become one document each and are ingested once per embedding model. Scored:
the 30 English questions of ../shared/data/crosslingual_en_questions.json (EN->ZH) and the first --zh Chinese CMRC
questions (ZH->ZH); a hit is the question's own paragraph among the sources of the top 5 (recall@5) or the first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CMRC, load_cmrc, save, write_cmrc_folder  # noqa: E402 - run as a script
from benchmarks.retrieval import score  # noqa: E402

CROSS = CMRC.parent / "crosslingual_en_questions.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="multilingual-use-v3,all-MiniLM-L6-v2")
    ap.add_argument("--modes", default="hybrid,dense")
    ap.add_argument("--zh", type=int, default=200, help="Chinese CMRC questions scored (0: all)")
    ap.add_argument("--name", default="crosslingual")
    args = ap.parse_args()

    import logging

    logging.disable(logging.INFO)
    from flows.ingest import ingest_flow
    from tasks.answer.options import RetrievalOptions
    from tasks.answer.retrieve import retrieve_context
    from tasks.settings import load_settings

    _, zh = load_cmrc(CMRC)
    zh = zh[: args.zh] if args.zh else zh
    en = [
        {"question": q["question"], "source": f"{q['paragraph_id']}.txt"}
        for q in json.loads(CROSS.read_text(encoding="utf-8"))
    ]
    work = Path(tempfile.mkdtemp(prefix="kbflow-xling-"))
    result: dict = {"en_to_zh_questions": len(en), "zh_questions": len(zh), "models": {}}
    try:
        folder = work / "cmrc"
        write_cmrc_folder(folder, CMRC)
        for model in args.models.split(","):
            os.environ["KBFLOW_EMBEDDING_MODEL"] = model
            store = work / f"store-{model}"
            t = time.perf_counter()
            summary = ingest_flow(source_path=str(folder), store_dir=str(store))
            got: dict = {"ingest_s": round(time.perf_counter() - t, 1), "chunks": summary["chunks_written"]}
            cfg = load_settings(store_dir=str(store))
            for mode in args.modes.split(","):
                for label, questions in (("en_to_zh", en), ("zh_to_zh", zh)):
                    r1 = r5 = 0.0
                    times, best = [], []
                    for q in questions:
                        options = RetrievalOptions(top_k=5, mode=mode)
                        out = retrieve_context.fn(q["question"], cfg.store_config(), cfg.embedder_config(), options)
                        times.append(out["retrieval_ms"])
                        best.append(max((p["score"] for p in out["passages"]), default=0.0))
                        sources = list(dict.fromkeys(p["source"] for p in out["passages"]))
                        a, b, _ = score(sources, q["source"])
                        r1, r5 = r1 + a, r5 + b
                    n = len(questions)
                    got[f"{mode}:{label}"] = {
                        "recall@1": round(r1 / n, 3),
                        "recall@5": round(r5 / n, 3),
                        "ms_p50": round(statistics.median(times), 1),
                        "best_score_p10": round(sorted(best)[len(best) // 10], 3),
                    }
                    print(model, mode, label, got[f"{mode}:{label}"], flush=True)
            result["models"][model] = got
        print(save(args.name, result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
