"""The query flow: answer a set of questions from the knowledge base and write a report an analyst can check."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from flows.errors import ConfigError, QuestionsFailed
from flows.serve import report_link
from flows.settings import Settings, load_settings
from tasks.embed import EmbedderConfig, get_embedder
from tasks.generate import GenerationError, LLMConfig, generate_answer, make_backend, refusal
from tasks.models import ModelError, model_languages, resolve_gguf
from tasks.text import is_chinese
from tasks.questions import Question, QuestionFileError, load_questions
from tasks.compare import comparison_markdown, find_previous_report
from tasks.report import summary_markdown, write_report
from tasks.retrieve import RetrievalOptions, retrieve_context
from tasks.store import ChromaStore, StoreError


def _run_name() -> str:
    questions = flow_run.parameters.get("questions_path", "") or "questions"
    return f"answer-{Path(str(questions)).stem}"


def default_report_dir(store_dir: Path, questions_path: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^\w.-]+", "-", Path(questions_path).stem)[:40]
    return Path(store_dir) / "reports" / f"{stamp}-{stem}"


def model_label(llm: LLMConfig) -> str:
    if llm.backend == "openai":
        return f"openai:{llm.openai_model}@{llm.openai_base_url}"
    try:
        return Path(str(resolve_gguf(llm.model, Path(llm.models_dir)))).name
    except ModelError:
        return llm.model


def prepare(questions_path: str, cfg: Settings, retrieval_only: bool) -> tuple[list[Question], EmbedderConfig, LLMConfig | None]:
    """Check everything a run needs before the first question: the question file, the store, the model."""
    try:
        questions = load_questions(questions_path)
    except QuestionFileError as exc:
        raise ConfigError(str(exc)) from exc
    # Queries must use the embedding model the collection was built with.
    embedder = cfg.embedder_config(model=ChromaStore.open_existing(cfg.store_config()).embedding_model)
    llm = None if retrieval_only else cfg.llm_config()
    if llm is not None and llm.backend == "llama-cpp":
        try:
            resolve_gguf(llm.model, Path(llm.models_dir))
        except ModelError as exc:
            raise ConfigError(str(exc)) from exc
    return questions, embedder, llm


def warm_up(embedder: EmbedderConfig, llm: LLMConfig | None, mode: str) -> None:
    """Load the models once, before the clock starts for the first question."""
    started = time.perf_counter()
    if mode != "keyword":
        get_embedder(embedder)
    if llm is not None:
        make_backend(llm)
    get_run_logger().info("Models ready in %.1f s", time.perf_counter() - started)


def language_warning(question: str, llm: LLMConfig | None) -> str | None:
    """A warning when a Chinese question goes to a model known not to write Chinese."""
    if llm is None or llm.backend != "llama-cpp" or not is_chinese(question):
        return None
    languages = model_languages(llm.model, Path(llm.models_dir))
    if languages is None or "zh" in languages:
        return None
    return (f"a Chinese question answered by {model_label(llm)}, which does not write Chinese: "
            "run `kbflow models pull qwen2.5-1.5b` (then the default model 'auto' uses it)")


def answer_one(q: Question, cfg: Settings, embedder: EmbedderConfig, options: RetrievalOptions, llm: LLMConfig | None) -> dict:
    """One report row: retrieve, refuse or generate; an error is recorded in the row, not raised."""
    started = time.perf_counter()
    row = {**q.to_dict(), "answer": "", "refused": False, "citations": [], "retrieved": [], "error": None,
           "warning": None, "prompt_tokens": 0, "completion_tokens": 0, "retrieval_ms": 0.0, "generation_ms": 0.0}
    # Only a model server can fail for a moment: retry its calls, not a local model's.
    generate = generate_answer.with_options(retries=2, retry_delay_seconds=[2, 10]) if llm and llm.backend == "openai" else generate_answer
    try:
        got = retrieve_context(q.question, cfg.store_config(), embedder, options)
        row["retrieved"], row["retrieval_ms"] = got["passages"], got["retrieval_ms"]
        relevant = [p for p in got["passages"] if p["score"] >= cfg.min_score]
        if not relevant:
            row["refused"], row["answer"] = True, refusal(q.question)
        elif llm is not None:
            row["warning"] = language_warning(q.question, llm)
            out = generate(q.question, relevant, llm)
            row.update({k: out[k] for k in ("answer", "citations", "prompt_tokens", "completion_tokens", "generation_ms")})
    except (GenerationError, ModelError, StoreError, OSError, RuntimeError, ValueError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"[:500]
        get_run_logger().warning("Question %s failed: %s", q.id, row["error"])
    row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return row


def run_facts(rows: list[dict], llm: LLMConfig | None, report_dir: Path) -> dict:
    """What summary.json records besides the figures: how the answers were made, and warnings."""
    warned = [r["id"] for r in rows if r.get("warning")]
    warnings = [f"{len(warned)} Chinese question(s) ({', '.join(warned[:5])}) were answered by a model that does not "
                "write Chinese: run `kbflow models pull qwen2.5-1.5b`"] if warned else []
    return {"report_dir": str(report_dir), "answer_style": llm.answer_style if llm else None,
            "llm_backend": llm.backend if llm else None, "warnings": warnings}


def publish(rows: list[dict], summary: dict, report_dir: Path, reports_dir: Path) -> None:
    """The results table, the headline figures and a link to the report, as artifacts of the run."""
    create_table_artifact(
        key="answer-results",
        table=[{"id": r["id"], "question": r["question"][:120], "answer": r["answer"][:300], "refused": r["refused"],
                "top source": r["retrieved"][0]["source"] if r["retrieved"] else "", "error": r["error"] or ""}
               for r in rows],
        description=f"Answers for {summary['questions_file']}",
    )
    markdown = f"# Answers for {summary['questions_file']}\n\n{summary_markdown(summary)}\n\nReport: `{report_dir / 'report.html'}`"
    create_markdown_artifact(key="answer-summary", markdown=markdown, description="Headline figures of the answer report")
    if summary.get("comparison"):
        create_markdown_artifact(key="answer-changes", markdown=comparison_markdown(summary["comparison"]),
                                 description="What changed since the previous run of this question set")
    link = report_link(reports_dir, report_dir)
    create_link_artifact(key="answer-report", link=link, link_text="report.html",
                         description="The full answer report" + ("" if link.startswith("http") else
                         f" (browsers do not open file:// links from the UI: run `kbflow reports serve`, or open {report_dir / 'report.html'})"))
    get_run_logger().info("Report written to %s: %d questions, %d refused, %d errors", report_dir,
                          summary["questions"], summary["refused"], summary["errors"])


@flow(name="kb-answer", flow_run_name=_run_name)
def query_flow(
    questions_path: str,
    store_dir: str | None = None,
    collection: str | None = None,
    out_dir: str | None = None,
    top_k: int | None = None,
    mode: str | None = None,
    retrieval_only: bool = False,
    answer_style: str | None = None,
    min_score: float | None = None,
    source_prefix: str | None = None,
    llm_model: str | None = None,
    llm_backend: str | None = None,
) -> dict:
    """Answer a question set from the knowledge base with a local model and write answers.csv/xlsx, summary.json and report.html."""
    cfg = load_settings(store_dir=store_dir, collection=collection, top_k=top_k, mode=mode, min_score=min_score,
                        llm_model=llm_model, llm_backend=llm_backend, answer_style=answer_style)
    questions, embedder, llm = prepare(questions_path, cfg, retrieval_only)
    options = cfg.retrieval_options(source_prefix)
    report_dir = (Path(out_dir) if out_dir else default_report_dir(cfg.store_dir, questions_path)).resolve()
    get_run_logger().info("Answering %d questions from %s with %s retrieval (k=%d)%s", len(questions), questions_path,
                          cfg.mode, cfg.top_k, " - retrieval only" if llm is None else f" and {model_label(llm)}")
    warm_up(embedder, llm, cfg.mode)
    progress = create_progress_artifact(progress=0.0, key="answer-progress", description=f"Questions answered of {len(questions)}")
    rows = []
    for n, q in enumerate(questions, start=1):
        rows.append(answer_one(q, cfg, embedder, options, llm))
        if progress:
            update_progress_artifact(progress, progress=100.0 * n / len(questions))
    previous = find_previous_report(cfg.reports_dir, report_dir, str(questions_path), [q.id for q in questions])
    summary = write_report(rows, report_dir, top_k=cfg.top_k, model="(retrieval only)" if llm is None else model_label(llm),
                           embedding_model=embedder.model, mode=cfg.mode, generated=llm is not None,
                           questions_file=str(questions_path), previous=previous, extra=run_facts(rows, llm, report_dir))
    publish(rows, summary, report_dir, cfg.reports_dir)
    if summary["errors"]:
        raise QuestionsFailed(summary)
    return summary
