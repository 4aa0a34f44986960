"""Answer a batch of questions in one task run: retrieve, refuse, reuse a cached answer or generate, score.

A 10,000-question set is a few hundred task runs, not 20,000 (Prefect's UI slows down past a few thousand
in one flow run). Each row is written to the run's JSONL as soon as it is made, and each generated answer
is kept in the answer cache at once, so a killed run loses at most the question in hand.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict

from tasks import progress
from tasks.answer.backends import ContextTooLarge, GenerationError, LLMConfig
from tasks.answer.cache import KEPT, AnswerCache, answer_key, evidence_of
from tasks.answer.crossing import (
    LOOK_PASSAGES,
    LOOK_RETRIEVAL,
    hesitated,
    in_other_language,
    look_kept,
    other_language,
    wants_look,
    worth_a_look,
)
from tasks.answer.evidence import narrow, select_context
from tasks.answer.generate import generate_answer
from tasks.answer.models import ModelError
from tasks.answer.options import RetrievalOptions
from tasks.answer.prompts import refusal
from tasks.answer.retrieve import english_reading, retrieve_context
from tasks.embed.embedder import EmbedderConfig
from tasks.report.grounding import check_grounding
from tasks.report.metrics import score_rows
from tasks.report.tables import without_text
from tasks.store.base import StoreConfig, StoreError
from tasks.store.chroma import ChromaStore

logger = logging.getLogger("kbflow.tasks.answer.batch")

_write_lock = threading.Lock()


class AnswerJob(BaseModel, frozen=True):
    """Everything a batch needs, as plain values: where to retrieve, how to answer, where rows and answers go."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: StoreConfig
    embedder: EmbedderConfig
    options: RetrievalOptions
    llm: LLMConfig | None
    min_score: float
    keep_ratio: float
    window: int = 0  # sentences each side of the best-matching ones (0: whole passages)
    concurrency: int = 1
    cache_file: str | None = None  # None: no answer cache (--no-cache, or retrieval only)
    setup: str = ""  # the generation setup's fingerprint (part of the cache key)
    deterministic: bool = True
    run_id: str = ""
    rows_file: str = ""  # the run's JSONL of scored rows, appended as they are made
    language_warning: dict[str, str] = {}  # question id -> warning (a Chinese question, a model without Chinese)
    other_language_look: bool = False  # a flagged answer asked again over the other language's passages


def answer_one(q: dict, job: AnswerJob, cache: AnswerCache | None) -> dict:
    """One scored report row: retrieve, refuse, reuse or generate; an error is recorded in the row, not raised."""
    started = time.perf_counter()
    row = {
        **q,
        "answer": "",
        "refused": False,
        "citations": [],
        "retrieved": [],
        "error": None,
        "warning": job.language_warning.get(q["id"]),
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "retrieval_ms": 0.0,
        "generation_ms": 0.0,
        "second_look": False,  # asked again over the passages' key sentences, and that answer kept
        "year_look": None,  # the question's years, when the answer was asked again over the passages stating them
        "name_look": None,  # the same for the names it spells out in brackets (桂花糕（10枚装）)
        "hesitation": None,  # the figure the model was least sure of, and how sure (tasks/answer/confidence.py)
        "name_hesitation": None,  # the same for the names it wrote
        "answer_source": None,  # generated / reused (None: refused or retrieval only)
        "evidence": None,  # the passages given to the model: [chunk id, text hash, source], in order
        "first_run": None,
        "other_language_look": None,  # the other language's passages a flagged answer was asked again over, and kept
    }
    try:
        got = retrieve_context.fn(q["question"], job.store, job.embedder, job.options)
        row["retrieved"], row["retrieval_ms"] = got["passages"], got["retrieval_ms"]
        if job.llm is not None and job.options.mode != "all":
            english_reading(q["question"], got["passages"], job.embedder)  # the cut below reads it
        relevant = select_context(got["passages"], job.min_score, job.keep_ratio, q["question"])
        if job.options.mode != "all":  # the whole knowledge base is given uncut, or the question refused
            relevant = narrow(relevant, q["question"], job.window, got.get("term_weights"))
        if not relevant:
            row["refused"], row["answer"], row["warning"] = True, refusal(q["question"]), None
        elif job.llm is not None:
            evidence = evidence_of(relevant)
            row["evidence"] = evidence
            key = answer_key(q["question"], job.setup, evidence)
            cached = cache.get(key) if cache is not None else None
            if cached is not None:
                row.update(cached.output)
                row.update(
                    answer_source="reused",
                    first_run=cached.run_id,
                    generation_ms=0.0,
                    reused_deterministic=cached.deterministic,
                )
            else:
                # A model server's passing failure is retried inside its backend; EndpointRefused ends the run.
                out = generate_answer.fn(q["question"], relevant, job.llm, whole=job.options.mode == "all")
                row.update({k: out.get(k) for k in KEPT})  # what the cache keeps too
                row.update(answer_source="generated", first_run=job.run_id)
                if cache is not None:
                    cache.put(key, q["question"], job.setup, evidence, out, job.run_id, job.deterministic)
            if job.other_language_look and job.options.mode != "all" and _flagged(row, job.store):
                try:
                    other_language_look(q["question"], relevant, row, job, cache)
                except (ContextTooLarge, GenerationError, ModelError, StoreError, OSError, RuntimeError) as exc:
                    # A refinement, not the answer: the first answer stays, and the row says why the look failed.
                    row["other_language_look"] = {"passages": 0, "kept": False, "error": f"{exc}"[:300]}
                    logger.warning("Question %s: the other-language look failed: %s", q["id"], exc)
    except ContextTooLarge as exc:
        # Never a silent cut of the knowledge base: the question is refused, and the row says why.
        row["refused"], row["error"] = True, str(exc)
        logger.warning("Question %s refused: %s", q["id"], row["error"])
    except (GenerationError, ModelError, StoreError, OSError, RuntimeError, ValueError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("Question %s failed: %s", q["id"], row["error"])
    row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return score_rows([row], generated=job.llm is not None)[0]


def _flagged(row: dict, store: StoreConfig) -> bool:
    """Whether an answer row wants the other-language look (crossing.wants_look), and the store holds both languages
    (read once per store). The cheap conditions first: the report's checks, which score_rows runs again for the
    row, are read only for an answer the model hesitated over."""
    hesitation, name_hesitation = row.get("hesitation"), row.get("name_hesitation")
    return (
        hesitated(hesitation, name_hesitation)
        and other_language(row["question"]) in store_languages(store)
        and wants_look(check_grounding(row)["flag_reason"], hesitation, name_hesitation)
    )


# The languages each store's chunks are written in, by (store dir, collection, chunk count): read once a run.
_languages: dict[tuple[str, str, int], frozenset[str]] = {}


def store_languages(store: StoreConfig) -> frozenset[str]:
    """The languages a store's chunks are written in ("zh", "en"), read once per store and chunk count."""
    vectors = ChromaStore.open_existing(store)
    key = (str(store.store_dir), store.collection, vectors.count())
    if key not in _languages:
        _languages[key] = vectors.languages()
    return _languages[key]


def other_language_look(
    question: str, relevant: list[dict], row: dict, job: AnswerJob, cache: AnswerCache | None
) -> None:
    """Ask the question again over the passages of the other language closest to it (tasks/answer/crossing.py), when
    the best of them is close enough, and keep that answer in the row if the report would not flag it; the row
    records the look and its cost either way. The look's answer is an answer to its own evidence: the answer cache
    keeps and reuses it under that evidence, so an unchanged knowledge base answers it again at no cost."""
    # The embedder reads both languages; the keyword index and the fusion favour the question's own.
    got = retrieve_context.fn(question, job.store, job.embedder, job.options.model_copy(update=LOOK_RETRIEVAL))
    row["retrieval_ms"] += got["retrieval_ms"]
    shown = {p.get("chunk_id") for p in relevant}
    other = in_other_language(question, got["passages"])
    chosen = [p for p in other if p["chunk_id"] not in shown][:LOOK_PASSAGES]
    look = row["other_language_look"] = {"passages": 0, "kept": False}
    if not chosen or not worth_a_look(other, got["passages"], job.keep_ratio):
        return
    look["passages"] = len(chosen)
    evidence = evidence_of(chosen)
    key = answer_key(question, job.setup, evidence)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        out, look["answer_source"] = cached.output, "reused"
    else:
        out, look["answer_source"] = generate_answer.fn(question, chosen, job.llm), "generated"
        if cache is not None:
            cache.put(key, question, job.setup, evidence, out, job.run_id, job.deterministic)
        row["prompt_tokens"] += out["prompt_tokens"]
        row["completion_tokens"] += out["completion_tokens"]
        row["generation_ms"] += out["generation_ms"]
    answer = {k: out.get(k) for k in KEPT if k not in ("prompt_tokens", "completion_tokens", "generation_ms")}
    look["answer"] = answer["answer"]
    # Judged as the report will judge it: over every passage given, the first prompt's and the look's.
    judged = check_grounding({**row, **answer, "look_passages": chosen})
    if look_kept(str(answer["answer"]), answer["citations"], judged["flag_reason"], str(row.get("answer") or "")):
        row.update(answer, evidence=evidence, look_passages=chosen)
        look["kept"] = True


@task(name="answer-batch", cache_policy=NONE)
def answer_batch(questions: list[dict], job: AnswerJob) -> list[dict]:
    """Answer a batch of questions in order; each scored row goes to the run's JSONL at once. Returns slim rows."""
    cache = AnswerCache(Path(job.cache_file)) if job.cache_file else None
    slim = []

    def keep(row: dict) -> None:
        with _write_lock, open(job.rows_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        slim.append(without_text(row))  # what the flow keeps in memory
        progress.advance(1, row.get("answer_source") or "")

    try:
        if job.concurrency <= 1:
            # In this thread: a termination signal (SIGTERM, SIGINT, a closed warm client) raises here, between
            # two tokens, and ends the run; no worker thread goes on answering and writing the cache.
            for q in questions:
                keep(answer_one(q, job, cache))
            return slim
        pool = ThreadPoolExecutor(max_workers=job.concurrency)
        try:
            # Each question runs in a copy of this task's context, so its logs belong to this task run.
            futures = [pool.submit(contextvars.copy_context().run, answer_one, q, job, cache) for q in questions]
            for future in futures:
                keep(future.result())
        except BaseException:
            # A signal is never one question's error: the questions not started are dropped, and the run ends.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    finally:
        if cache is not None:
            cache.close()
    return slim
