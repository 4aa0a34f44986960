"""Training data from the demo knowledge base, checked the way a person preparing a fine-tune would.

    .venv/bin/python benchmarks/dataset_export.py --model qwen2.5-1.5b --name dataset-export-demo

Ingests the bundled demo corpus into a fresh store, then runs
`kbflow dataset export --limit 30 --per-chunk 2 --format F` for each format (openai, alpaca,
sharegpt) and checks what it wrote:
- every line of train.jsonl and eval.jsonl is valid JSON with that format's fields;
- every kept answer is in its gold chunk (read back from the store, kbflow's own normalization);
- the exported questions.csv (held-out documents) through `kbflow ask --retrieval-only --top-k 5`
  finds each question's own document: recall@5. The same for every exported question (train too).
Records the time per example (whole export process / examples written), the replies that were not JSON (and those
no pair could be read from), and, where the export's summary has them, the tokens generated and their rate.

    .venv/bin/python benchmarks/dataset_export.py --model smollm2 --formats openai --name dataset-export-grammar-smollm2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, save  # noqa: E402 - run as a script: the repository goes on sys.path first
from tasks.offline import OFFLINE_ENV  # noqa: E402 - the same

KBFLOW = str(Path(sys.executable).parent / "kbflow")
FIELDS = {
    "openai": {"messages"},
    "alpaca": {"instruction", "input", "output", "system"},
    "sharegpt": {"conversations", "system"},
}


def kbflow(*args: str, ok=(0,)) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([KBFLOW, *args], capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV})
    if proc.returncode not in ok:
        sys.exit(f"kbflow {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - started, proc.stdout


def check_format(out: Path, fmt: str) -> int:
    """Lines checked; exits on a line that is not valid JSON with the format's fields."""
    lines = 0
    for name in ("train.jsonl", "eval.jsonl"):
        for n, line in enumerate((out / name).read_text(encoding="utf-8").splitlines(), start=1):
            record = json.loads(line)
            if not FIELDS[fmt] <= set(record):
                sys.exit(f"{out / name} line {n}: {sorted(record)} lacks {sorted(FIELDS[fmt] - set(record))}")
            lines += 1
    return lines


def recall_at_5(store: Path, questions: Path, out: Path) -> float | None:
    _, stdout = kbflow(
        "ask",
        str(questions),
        "--store",
        str(store),
        "--retrieval-only",
        "--top-k",
        "5",
        "--out",
        str(out),
        "--json",
        ok=(0, 1),
    )
    return json.loads(stdout).get("recall_at_k")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--per-chunk", type=int, default=2)
    ap.add_argument("--formats", default="openai,alpaca,sharegpt")
    ap.add_argument("--name", default="dataset-export-demo")
    args = ap.parse_args()

    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from tasks.text import contains_answer

    work = Path(tempfile.mkdtemp(prefix="kbflow-dataset-bench-"))
    store = work / "store"
    try:
        kbflow("ingest", str(REPO / "docs" / "demo" / "corpus"), "--store", str(store), "--quiet")
        coll = chromadb.PersistentClient(
            str(store / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        ).get_collection("knowledge", embedding_function=None)
        result = {
            "model": args.model,
            "corpus": "docs/demo/corpus",
            "limit": args.limit,
            "per_chunk": args.per_chunk,
            "command": "benchmarks/dataset_export.py " + " ".join(sys.argv[1:]),
            "formats": {},
        }
        for fmt in args.formats.split(","):
            out = work / f"dataset-{fmt}"
            seconds, stdout = kbflow(
                "dataset",
                "export",
                "--store",
                str(store),
                "--out",
                str(out),
                "--limit",
                str(args.limit),
                "--per-chunk",
                str(args.per_chunk),
                "--format",
                fmt,
                "--model",
                args.model,
                "--json",
                ok=(0, 1),
            )
            summary = json.loads(stdout)
            lines = check_format(out, fmt)
            examples = [json.loads(line) for line in (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()]
            ids = sorted({e["chunk_id"] for e in examples})
            got = coll.get(ids=ids, include=["documents"]) if ids else {"ids": [], "documents": []}
            texts = dict(zip(got["ids"], got["documents"]))
            in_gold = [contains_answer(texts.get(e["chunk_id"], ""), e["answer"]) for e in examples]
            everything = work / f"all-questions-{fmt}.csv"
            with everything.open("w", encoding="utf-8-sig", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["id", "question", "expected_source"])
                writer.writerows([f"q{n:03d}", e["question"], e["source"]] for n, e in enumerate(examples, start=1))
            figures = {
                "examples": summary["examples"],
                "train": summary["train"],
                "eval": summary["eval"],
                "without_gold": summary["without_gold"],
                "pairs_generated": summary["pairs_generated"],
                "chunks_sampled": summary["chunks_sampled"],
                "chunks_available": summary["chunks_available"],
                "dropped_answer_not_in_chunk": summary["dropped_answer_not_in_chunk"],
                "dropped_answer_too_long": summary["dropped_answer_too_long"],
                "dropped_answer_in_question": summary["dropped_answer_in_question"],
                "dropped_question_not_standalone": summary["dropped_question_not_standalone"],
                "dropped_duplicate_question": summary["dropped_duplicate_question"],
                "replies_without_pairs": summary.get("replies_without_pairs"),
                "replies_not_json": summary.get("replies_not_json"),
                "dropped_unparsed_reply": summary.get("dropped_unparsed_reply"),
                "failures": len(summary["failures"]),
                "jsonl_lines_valid": lines,
                "answers_in_gold_chunk": f"{sum(in_gold)} of {len(in_gold)}",
                "recall_at_5_questions_csv": recall_at_5(store, out / "questions.csv", work / f"ask-{fmt}")
                if summary["eval"]
                else None,
                "recall_at_5_all_questions": recall_at_5(store, everything, work / f"ask-all-{fmt}")
                if examples
                else None,
                "export_s": round(seconds, 1),
                "s_per_example": round(seconds / summary["examples"], 1) if summary["examples"] else None,
                "s_per_chunk": round(seconds / summary["chunks_sampled"], 1) if summary["chunks_sampled"] else None,
                "completion_tokens": summary.get("completion_tokens"),
                "generation_s": summary.get("generation_s"),
                "tokens_per_s": round(summary["completion_tokens"] / summary["generation_s"], 1)
                if summary.get("generation_s")
                else None,
            }
            result["formats"][fmt] = figures
            print(fmt, figures, flush=True)
        print(f"saved to {save(args.name, result)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
