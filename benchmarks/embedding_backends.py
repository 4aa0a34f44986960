"""Speed and agreement of the all-MiniLM-L6-v2 backends: sentence-transformers on torch against the ONNX export.

    .venv/bin/python benchmarks/embedding_backends.py [--chunks 256] [--questions 200] [--threads 2]

Speed: chunks/s for ~500-character English prose and ~300-character Chinese text, at one batch size.
Agreement with torch: cosine per vector (min and mean over every text embedded) and, on CMRC 2018 trial
questions against all 256 paragraphs, the overlap of each question's top-5 paragraph set with torch's.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, load_cmrc, save  # noqa: E402 - run as a script: the repository goes on sys.path first

CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def english_chunks(n: int, size: int = 500, seed: int = 7) -> list[str]:
    """n chunks of about `size` characters of English prose: sentences of the demo corpus and the project docs."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    files += [p for p in sorted((REPO / "docs" / "demo" / "corpus").rglob("*")) if p.suffix in {".txt", ".md"}]
    sentences = []
    for path in files:
        text = re.sub(r"[`#*|>\[\]()_]", " ", path.read_text(encoding="utf-8"))
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            sentence = " ".join(sentence.split())
            if len(sentence) > 40 and not CJK.search(sentence):
                sentences.append(sentence)
    rng = random.Random(seed)
    chunks = []
    for _ in range(n):
        text = ""
        while len(text) < size:
            text += rng.choice(sentences) + " "
        chunks.append(text[:size].rsplit(" ", 1)[0])
    return chunks


def chinese_chunks(paragraphs: list[str], n: int, size: int = 300) -> list[str]:
    """n chunks of `size` characters cut from the CMRC paragraphs (their start and their end)."""
    pieces = [p[:size] for p in paragraphs] + [p[-size:] for p in paragraphs if len(p) > size * 1.5]
    return pieces[:n]


def chunks_per_second(encode, texts: list[str], batch_size: int) -> float:
    """One timed run over all texts, after one warm-up batch."""
    encode(texts[:batch_size], batch_size)
    started = time.perf_counter()
    encode(texts, batch_size)
    return len(texts) / (time.perf_counter() - started)


def top5(queries, passages):
    import numpy as np

    return np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :5]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=256, help="chunks per language for the speed runs")
    ap.add_argument("--questions", type=int, default=200, help="CMRC questions for the top-5 agreement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="timing rounds over all backends; the best run counts")
    ap.add_argument("--backends", default="torch,onnxruntime-f32,openvino-f32,openvino-default")
    ap.add_argument("--export-dir", default="", help="reuse this ONNX export (default: a fresh one in a temp folder)")
    ap.add_argument("--name", default="embedding-backends", help="results file: benchmarks/results/NAME.json")
    args = ap.parse_args()

    import logging

    import numpy as np

    from tasks.offline import apply_offline_env

    apply_offline_env()
    logging.disable(logging.WARNING)
    import torch
    from sentence_transformers import SentenceTransformer

    from tasks.embed.exported import OnnxEmbedder, bundled_model_dir, export_onnx

    torch.set_num_threads(args.threads)
    paragraphs_by_id, questions = load_cmrc()
    paragraph_ids = list(paragraphs_by_id)
    paragraphs = [paragraphs_by_id[i] for i in paragraph_ids]
    questions = questions[: args.questions]
    gold = np.array([paragraph_ids.index(q["source"].removesuffix(".txt")) for q in questions])
    texts = {"en": english_chunks(args.chunks), "zh": chinese_chunks(paragraphs, args.chunks)}
    question_texts = [q["question"] for q in questions]

    model_dir = bundled_model_dir()
    export_dir = Path(args.export_dir or tempfile.mkdtemp(prefix="kbflow-onnx-"))
    started = time.perf_counter()
    export_onnx(model_dir, export_dir)
    export_seconds = time.perf_counter() - started

    result: dict = {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "texts": {
            "en": len(texts["en"]),
            "zh": len(texts["zh"]),
            "questions": len(questions),
            "paragraphs": len(paragraphs),
        },
        "mean_chars": {k: round(sum(map(len, v)) / len(v)) for k, v in texts.items()},
        "export_seconds": round(export_seconds, 1),
        "torch": torch.__version__,
        "backends": {},
    }
    encoders: dict = {}
    for name in [b for b in args.backends.split(",") if b]:
        started = time.perf_counter()
        if name == "torch":
            model = SentenceTransformer(str(model_dir), device="cpu")

            def encode(batch, batch_size, model=model):
                return model.encode(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )

            precision = "f32"
        else:
            runtime, precision = name.rsplit("-", 1)
            embedder = OnnxEmbedder(export_dir, runtime, args.threads, precision=precision)
            encode, precision = embedder.encode, embedder.inference_precision
        encoders[name] = encode
        result["backends"][name] = {"precision": precision, "load_seconds": round(time.perf_counter() - started, 2)}

    # Rounds over all backends, best of each: other jobs on the machine then slow every backend alike.
    speed = {(name, lang): 0.0 for name in encoders for lang in texts}
    for _ in range(args.repeats):
        for name, encode in encoders.items():
            for lang, chunk_texts in texts.items():
                speed[name, lang] = max(speed[name, lang], chunks_per_second(encode, chunk_texts, args.batch_size))

    reference: dict = {}
    for name, encode in encoders.items():
        row = result["backends"][name]
        for lang in texts:
            row[f"{lang}_chunks_per_s"] = round(speed[name, lang], 1)
        vectors = {lang: encode(t, args.batch_size) for lang, t in texts.items()}
        vectors["questions"] = encode(question_texts, args.batch_size)
        vectors["paragraphs"] = encode(paragraphs, args.batch_size)
        ranked = top5(vectors["questions"], vectors["paragraphs"])
        row["recall@5"] = round(float(np.mean([g in r for g, r in zip(gold, ranked)])), 3)
        if name == "torch":
            reference = {"vectors": vectors, "ranked": ranked}
        elif reference:
            cos = np.concatenate([(vectors[k] * reference["vectors"][k]).sum(axis=1) for k in vectors])
            overlap = [len(set(a) & set(b)) / 5 for a, b in zip(ranked, reference["ranked"])]
            row.update(
                {
                    "cosine_min": round(float(cos.min()), 6),
                    "cosine_mean": round(float(cos.mean()), 6),
                    "top5_overlap": round(float(np.mean(overlap)), 4),
                }
            )
        print(name, row, flush=True)

    base = result["backends"].get("torch", {})
    print(
        f"\n{'backend':<18} {'precision':<9} {'en/s':>7} {'zh/s':>7} {'x torch':>8} {'cos min':>9} {'cos mean':>9} "
        f"{'top5':>6} {'R@5':>6}"
    )
    for name, row in result["backends"].items():
        speedup = row["en_chunks_per_s"] / base["en_chunks_per_s"] if base else float("nan")
        print(
            f"{name:<18} {row['precision']:<9} {row['en_chunks_per_s']:>7} {row['zh_chunks_per_s']:>7} {speedup:>8.2f} "
            f"{row.get('cosine_min', '-'):>9} {row.get('cosine_mean', '-'):>9} {row.get('top5_overlap', '-'):>6} "
            f"{row['recall@5']:>6}"
        )
    print(f"\nsaved to {save(args.name, result)}")


if __name__ == "__main__":
    main()
