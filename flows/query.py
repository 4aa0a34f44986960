"""The query flow: answer a set of questions from the knowledge base and write a report an analyst can check."""

from __future__ import annotations

import contextvars
import re
import time
from concurrent.futures import ThreadPoolExecutor
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
from tasks.adapters import check_adapter, checked_llm
from tasks.generate import ContextTooLarge, GenerationError, LLMConfig, generate_answer, make_backend, refusal
from tasks.models import ModelError, model_languages, resolve_gguf
from tasks.text import is_chinese
from tasks.questions import Question, QuestionFileError, load_questions
from tasks.compare import comparison_markdown, find_previous_report
from tasks.report import summary_markdown, write_report
from tasks.retrieve import RetrievalOptions, retrieve_context, select_context
from tasks.store import ChromaStore, StoreError


def _run_name() -> str:
    questions = flow_run.parameters.get("questions_path", "") or "questions"
    return f"answer-{Path(str(questions)).stem}"


def default_report_dir(store_dir: Path, questions_path: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^\w.-]+", "-", Path(questions_path).stem)[:40]
    return Path(store_dir) / "reports" / f"{stamp}-{stem}"


def base_model_label(llm: LLMConfig) -> str:
    if llm.backend == "openai":
        return f"openai:{llm.openai_model}@{llm.openai_base_url}"
    try:
        return Path(str(resolve_gguf(llm.model, Path(llm.models_dir)))).name
    except ModelError:
        return llm.model


def adapter_facts(llm: LLMConfig | None) -> dict | None:
    """The LoRA adapter's name and sha256 (checked against the base model), or None without one."""
    if llm is None or not llm.lora or llm.backend != "llama-cpp":
        return None
    facts = check_adapter(llm.lora, resolve_gguf(llm.model, Path(llm.models_dir)))
    return {"name": facts["name"], "sha256": facts["sha256"]}


def model_label(llm: LLMConfig) -> str:
    lora = adapter_facts(llm) if llm.lora else None
    suffix = f" + LoRA {lora['name']} (sha256 {lora['sha256'][:12]}, scale {llm.lora_scale:g})" if lora else ""
    return base_model_label(llm) + suffix


def prepare(questions_path: str, cfg: Settings, retrieval_only: bool) -> tuple[list[Question], EmbedderConfig, LLMConfig | None]:
    """Check everything a run needs before the first question: the question file, the store, the model."""
    try:
        questions = load_questions(questions_path)
    except QuestionFileError as exc:
        raise ConfigError(str(exc)) from exc
    # Queries must use the embedding model the collection was built with.
    embedder = cfg.embedder_config(model=ChromaStore.open_existing(cfg.store_config()).embedding_model)
    llm = None if retrieval_only else cfg.llm_config()
    if llm is not None and llm.lora and llm.backend != "llama-cpp":
        raise ConfigError(f"a LoRA adapter ({llm.lora}) applies to a GGUF model: use --backend llama-cpp, "
                          "or load the adapter in the model server and leave KBFLOW_LLM_LORA empty")
    if llm is not None:
        try:
            llm = checked_llm(llm)
        except ModelError as exc:
            raise ConfigError(str(exc)) from exc
    return questions, embedder, llm


def warm_up(embedder: EmbedderConfig, llm: LLMConfig | None, mode: str) -> None:
    """Load the models once, before the clock starts for the first question."""
    started = time.perf_counter()
    if mode not in ("keyword", "all"):
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
    return (f"a Chinese question answered by {base_model_label(llm)}, which does not write Chinese: "
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
        relevant = select_context(got["passages"], cfg.min_score, cfg.context_keep_ratio)
        if not relevant:
            row["refused"], row["answer"] = True, refusal(q.question)
        elif llm is not None:
            row["warning"] = language_warning(q.question, llm)
            out = generate(q.question, relevant, llm, whole=options.mode == "all")
            row.update({k: out[k] for k in ("answer", "citations", "prompt_tokens", "completion_tokens", "generation_ms")})
    except ContextTooLarge as exc:
        # Never a silent cut of the knowledge base: the question is refused, and the row says why.
        row["refused"], row["error"] = True, str(exc)
        get_run_logger().warning("Question %s refused: %s", q.id, row["error"])
    except (GenerationError, ModelError, StoreError, OSError, RuntimeError, ValueError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"[:500]
        get_run_logger().warning("Question %s failed: %s", q.id, row["error"])
    row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return row


def answer_all(questions: list[Question], cfg: Settings, embedder: EmbedderConfig, options: RetrievalOptions,
               llm: LLMConfig | None, progress) -> list[dict]:
    """One row per question, in question order. Against a model server (the openai backend), up to
    KBFLOW_LLM_CONCURRENCY questions are in flight at once; each row keeps its own latency."""
    concurrency = cfg.llm_concurrency if llm is not None and llm.backend == "openai" else 1
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        # Each question runs in a copy of the flow's context, so its task runs belong to this flow run.
        futures = [pool.submit(contextvars.copy_context().run, answer_one, q, cfg, embedder, options, llm)
                   for q in questions]
        rows = []
        for n, future in enumerate(futures, start=1):
            rows.append(future.result())
            if progress:
                update_progress_artifact(progress, progress=100.0 * n / len(questions))
    return rows


def run_facts(rows: list[dict], llm: LLMConfig | None, report_dir: Path) -> dict:
    """What summary.json records besides the figures: how the answers were made, and warnings."""
    warned = [r["id"] for r in rows if r.get("warning")]
    warnings = [f"{len(warned)} Chinese question(s) ({', '.join(warned[:5])}) were answered by a model that does not "
                "write Chinese: run `kbflow models pull qwen2.5-1.5b`"] if warned else []
    lora = adapter_facts(llm)
    return {"report_dir": str(report_dir), "answer_style": llm.answer_style if llm else None,
            "llm_backend": llm.backend if llm else None, "base_model": base_model_label(llm) if llm else None,
            "lora": lora, "lora_scale": llm.lora_scale if lora else None, "warnings": warnings}


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
    lora: str | None = None,
    lora_scale: float | None = None,
) -> dict:
    """Answer a question set from the knowledge base with a local model and write answers.csv/xlsx, summary.json and report.html."""
    cfg = load_settings(store_dir=store_dir, collection=collection, top_k=top_k, mode=mode, min_score=min_score,
                        llm_model=llm_model, llm_backend=llm_backend, answer_style=answer_style, llm_lora=lora,
                        llm_lora_scale=lora_scale)
    questions, embedder, llm = prepare(questions_path, cfg, retrieval_only)
    options = cfg.retrieval_options(source_prefix)
    report_dir = (Path(out_dir) if out_dir else default_report_dir(cfg.store_dir, questions_path)).resolve()
    get_run_logger().info("Answering %d questions from %s with %s retrieval (k=%d)%s", len(questions), questions_path,
                          cfg.mode, cfg.top_k, " - retrieval only" if llm is None else f" and {model_label(llm)}")
    warm_up(embedder, llm, cfg.mode)
    progress = create_progress_artifact(progress=0.0, key="answer-progress", description=f"Questions answered of {len(questions)}")
    rows = answer_all(questions, cfg, embedder, options, llm, progress)
    previous = find_previous_report(cfg.reports_dir, report_dir, str(questions_path), [q.id for q in questions])
    summary = write_report(rows, report_dir, top_k=cfg.top_k, model="(retrieval only)" if llm is None else model_label(llm),
                           embedding_model=embedder.model, mode=cfg.mode, generated=llm is not None,
                           questions_file=str(questions_path), previous=previous, extra=run_facts(rows, llm, report_dir))
    publish(rows, summary, report_dir, cfg.reports_dir)
    if summary["errors"]:
        raise QuestionsFailed(summary)
    return summary
