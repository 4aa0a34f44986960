"""The query flow: answer a set of questions from the knowledge base and write a report an analyst can check."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from flows.ingest import ConfigError
from flows.settings import Settings, load_settings
from tasks.embed import embed_texts, load_embedder, unknown_token_share
from tasks.generate import GenerationError, answer_question, make_backend, refusal
from tasks.ledger import Ledger, ledger_path
from tasks.models import ModelError, resolve_gguf
from tasks.questions import QuestionFileError, load_questions
from tasks.report import write_report
from tasks.retrieve import load_keyword_index, retrieve
from tasks.store import META_MODEL, StoreError, existing_collection, get_client


class QuestionsFailed(Exception):
    """Some questions could not be answered (recorded in their rows); carries the summary (CLI exit code 1)."""

    def __init__(self, summary: dict):
        self.summary = summary
        super().__init__(f"{summary['errors']} of {summary['questions']} question(s) failed; see {summary['report_dir']}")


def _run_name() -> str:
    questions = flow_run.parameters.get("questions_path", "") or "questions"
    return f"answer-{Path(str(questions)).stem}"


def default_report_dir(store_dir: Path, questions_path: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^\w.-]+", "-", Path(questions_path).stem)[:40]
    return Path(store_dir) / "reports" / f"{stamp}-{stem}"


def _open_for_query(cfg: Settings):
    """The collection and the embedding model it was built with (queries must use the same one)."""
    coll = existing_collection(cfg.store_dir, cfg.collection, cfg.chroma_host)
    return coll, (coll.metadata or {}).get(META_MODEL) or cfg.embedding_model


@task(name="retrieve-context")
def retrieve_context(
    question: str, store_dir: str, collection: str, chroma_host: str, embedding_model: str,
    embedding_backend: str, top_k: int, mode: str, source_prefix: str | None = None,
) -> dict:
    """Retrieve the top passages for one question (dense, keyword or hybrid)."""
    started = time.perf_counter()
    coll = get_client(str(Path(store_dir) / "chroma"), chroma_host).get_collection(collection, embedding_function=None)
    ledger = Ledger(ledger_path(Path(store_dir)), collection)
    try:
        generation = ledger.generation()
    finally:
        ledger.close()
    index = load_keyword_index(str(ledger_path(Path(store_dir))), collection, generation)
    query_vec = None
    unk = 0.0
    if mode in ("dense", "hybrid"):
        query_vec = embed_texts([question], model=embedding_model, backend=embedding_backend)[0]
        unk = unknown_token_share(question, embedding_model, embedding_backend)
    passages = retrieve(
        question, coll=coll, keyword_index=index, query_embedding=query_vec, top_k=top_k, mode=mode,
        unknown_share=unk, source_prefix=source_prefix,
    )
    return {"passages": [p.to_dict() for p in passages], "retrieval_ms": round((time.perf_counter() - started) * 1000, 1)}


@task(name="generate-answer")
def generate_answer(question: str, passages: list[dict], backend: str, model: str, models_dir: str, n_ctx: int,
                    threads: int, max_tokens: int, temperature: float, openai_base_url: str, openai_model: str,
                    openai_api_key_env: str) -> dict:
    """Generate one answer from its passages with the configured model (loaded once per process)."""
    llm = make_backend(backend, model, models_dir=models_dir, n_ctx=n_ctx, threads=threads,
                       openai_base_url=openai_base_url, openai_model=openai_model, openai_api_key_env=openai_api_key_env)
    return answer_question(llm, question, passages, max_tokens=max_tokens, temperature=temperature)


def _model_label(cfg: Settings) -> str:
    if cfg.llm_backend == "openai":
        return f"openai:{cfg.openai_model}@{cfg.openai_base_url}"
    try:
        return Path(str(resolve_gguf(cfg.llm_model, cfg.models_dir))).name
    except ModelError:
        return cfg.llm_model


def _markdown(summary: dict, report_dir: Path) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [
        f"# Answers for {summary.get('questions_file', '')}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| questions | {summary['questions']} |",
        f"| refused (nothing relevant found) | {summary['refused']} |",
        f"| errors | {summary['errors']} |",
        f"| recall@{summary['top_k']} | {pct(summary.get('recall_at_k'))} |",
        f"| MRR | {'n/a' if summary.get('mrr') is None else round(summary['mrr'], 3)} |",
        f"| exact match | {pct(summary.get('exact_match'))} |",
        f"| F1 | {pct(summary.get('f1'))} |",
        f"| latency p50 / p95 | {summary.get('latency_ms_p50', 0):.0f} / {summary.get('latency_ms_p95', 0):.0f} ms |",
        f"| model | {summary.get('model')} |",
        f"| embedding model | {summary.get('embedding_model')} |",
        "",
        f"Report: `{report_dir / 'report.html'}`",
    ]
    return "\n".join(lines)


@flow(name="kb-answer", flow_run_name=_run_name)
def query_flow(
    questions_path: str,
    store_dir: str | None = None,
    collection: str | None = None,
    out_dir: str | None = None,
    top_k: int | None = None,
    mode: str | None = None,
    retrieval_only: bool = False,
    min_score: float | None = None,
    source_prefix: str | None = None,
    llm_model: str | None = None,
    llm_backend: str | None = None,
) -> dict:
    """Answer a question set from the knowledge base with a local model and write answers.csv/xlsx, summary.json and report.html."""
    logger = get_run_logger()
    cfg = load_settings(store_dir=store_dir, collection=collection, top_k=top_k, mode=mode, min_score=min_score,
                        llm_model=llm_model, llm_backend=llm_backend)
    try:
        questions = load_questions(questions_path)
    except QuestionFileError as exc:
        raise ConfigError(str(exc)) from exc
    coll, embedding_model = _open_for_query(cfg)
    if not retrieval_only and cfg.llm_backend == "llama-cpp":
        try:
            resolve_gguf(cfg.llm_model, cfg.models_dir)
        except ModelError as exc:
            raise ConfigError(str(exc)) from exc
    report_dir = Path(out_dir) if out_dir else default_report_dir(cfg.store_dir, questions_path)
    logger.info("Answering %d questions from %s with %s retrieval (k=%d)%s", len(questions), questions_path,
                cfg.mode, cfg.top_k, " - retrieval only" if retrieval_only else f" and {_model_label(cfg)}")

    # Load the models once, before the clock starts for the first question.
    started = time.perf_counter()
    if cfg.mode != "keyword":
        load_embedder(embedding_model, cfg.embedding_backend)
    if not retrieval_only:
        make_backend(cfg.llm_backend, cfg.llm_model, models_dir=str(cfg.models_dir), n_ctx=cfg.n_ctx, threads=cfg.threads,
                     openai_base_url=cfg.openai_base_url, openai_model=cfg.openai_model,
                     openai_api_key_env=cfg.openai_api_key_env)
    logger.info("Models ready in %.1f s", time.perf_counter() - started)

    progress_id = create_progress_artifact(progress=0.0, key="answer-progress",
                                           description=f"Questions answered of {len(questions)}")
    gen_task = generate_answer.with_options(retries=2, retry_delay_seconds=[2, 10]) if cfg.llm_backend == "openai" else generate_answer
    rows: list[dict] = []
    for n, q in enumerate(questions, start=1):
        started = time.perf_counter()
        row = {**q.to_dict(), "answer": "", "refused": False, "citations": [], "retrieved": [], "error": None,
               "prompt_tokens": 0, "completion_tokens": 0, "retrieval_ms": 0.0, "generation_ms": 0.0}
        try:
            got = retrieve_context(q.question, str(cfg.store_dir), cfg.collection, cfg.chroma_host, embedding_model,
                                   cfg.embedding_backend, cfg.top_k, cfg.mode, source_prefix)
            row["retrieved"], row["retrieval_ms"] = got["passages"], got["retrieval_ms"]
            relevant = [p for p in got["passages"] if p["score"] >= cfg.min_score]
            if not relevant:
                row["refused"], row["answer"] = True, refusal(q.question)
            elif not retrieval_only:
                out = gen_task(q.question, relevant, cfg.llm_backend, cfg.llm_model, str(cfg.models_dir), cfg.n_ctx,
                               cfg.threads, cfg.max_tokens, cfg.temperature, cfg.openai_base_url, cfg.openai_model,
                               cfg.openai_api_key_env)
                row.update({k: out[k] for k in ("answer", "citations", "prompt_tokens", "completion_tokens", "generation_ms")})
        except (GenerationError, ModelError, StoreError, OSError, RuntimeError, ValueError) as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
            logger.warning("Question %s failed: %s", q.id, row["error"])
        row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        rows.append(row)
        if progress_id:
            update_progress_artifact(progress_id, progress=100.0 * n / len(questions))

    summary = write_report(rows, report_dir, top_k=cfg.top_k, model="(retrieval only)" if retrieval_only else _model_label(cfg),
                           embedding_model=embedding_model, mode=cfg.mode)
    summary["report_dir"] = str(report_dir.resolve())
    summary["questions_file"] = str(questions_path)
    create_table_artifact(
        key="answer-results",
        table=[{"id": r["id"], "question": r["question"][:120], "answer": r["answer"][:300], "refused": r["refused"],
                "top source": r["retrieved"][0]["source"] if r["retrieved"] else "", "error": r["error"] or ""}
               for r in rows],
        description=f"Answers for {questions_path}",
    )
    create_markdown_artifact(key="answer-summary", markdown=_markdown(summary, report_dir.resolve()),
                             description="Headline figures of the answer report")
    create_link_artifact(key="answer-report", link=(report_dir.resolve() / "report.html").as_uri(),
                         link_text="report.html", description="The full answer report")
    logger.info("Report written to %s: %d questions, %d refused, %d errors", report_dir, summary["questions"],
                summary["refused"], summary["errors"])
    if summary["errors"]:
        raise QuestionsFailed(summary)
    return summary
