"""The answer flow: answer a question set from the knowledge base, reusing every answer whose evidence is unchanged."""

from __future__ import annotations

import time
import uuid
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
from tasks import progress
from tasks.answer.adapters import checked_llm
from tasks.answer.backends import LLMConfig, make_backend
from tasks.answer.batch import AnswerJob, answer_batch
from tasks.answer.cache import AnswerCache, cache_path, prune_store_cache, setup_fingerprint
from tasks.answer.facts import ModelFacts, deterministic, generation_setup, model_facts
from tasks.answer.models import ModelError, model_languages
from tasks.answer.questions import Question, QuestionFileError, load_questions
from tasks.answer.retrieve import preload, recorded_embedding_model
from tasks.embed.embedder import EmbedderConfig
from tasks.report.compare import comparison_markdown, find_previous_report, history_of
from tasks.report.figures import summary_markdown
from tasks.report.links import report_link
from tasks.report.write import write_report
from tasks.settings import Settings, load_settings, timestamped_dir
from tasks.store.chroma import ChromaStore
from tasks.text import is_chinese

# Questions per task run: at least this many, and at most MAX_BATCHES task runs per flow run (a 10,000-question
# set makes 100), so Prefect's UI stays quick (it slows down past a few thousand task runs in one flow run).
MIN_BATCH, MAX_BATCHES = 25, 100


def _run_name() -> str:
    questions = flow_run.parameters.get("questions_path", "") or "question"
    return f"answer-{Path(str(questions)).stem}"


def load(questions_path: str | None, question: str | None) -> list[Question]:
    """The questions to answer: a question file, or one question given as text."""
    if question is not None:
        if not question.strip():
            raise ConfigError("the question is empty: give the text of a question")
        return [Question(id="q1", question=question.strip())]
    if not questions_path:
        raise ConfigError("no questions given: pass a question file (questions_path) or one question (question)")
    try:
        return load_questions(questions_path)
    except QuestionFileError as exc:
        raise ConfigError(str(exc)) from exc


def prepare(cfg: Settings, retrieval_only: bool) -> tuple[EmbedderConfig, LLMConfig | None, dict | None]:
    """Check the store and the model before the first question: the embedder, the LLM config and its adapter."""
    # Queries must use the embedding model the collection was built with. The ledger's record of it (no chromadb
    # needed) lets the model load in the background while chromadb is imported and the store opened.
    if cfg.mode != "all" and (recorded := recorded_embedding_model(cfg.store_config())):
        preload(cfg.embedder_config(model=recorded) if cfg.mode != "keyword" else None)
    embedder = cfg.embedder_config(model=ChromaStore.open_existing(cfg.store_config()).embedding_model)
    if cfg.mode != "all" and (note := model_change_note(cfg, embedder.model)):
        get_run_logger().warning("%s", note)
        progress.notice(f"note: {note}")
    if retrieval_only:
        return embedder, None, None
    llm = cfg.llm_config()
    if llm.lora and llm.backend != "llama-cpp":
        raise ConfigError(
            f"a LoRA adapter ({llm.lora}) applies to a GGUF model: use --backend llama-cpp, "
            "or load the adapter in the model server and leave KBFLOW_LLM_LORA empty"
        )
    try:
        llm, adapter = checked_llm(llm)
    except ModelError as exc:
        raise ConfigError(str(exc)) from exc
    return embedder, llm, adapter


def model_change_note(cfg: Settings, served: str) -> str | None:
    """What to tell the person asking when the embedding setting is not the model the store serves (None when it is):
    questions embed with the store's model until a refresh has embedded everything with the setting's."""
    if served == cfg.embedding_model:
        return None
    from tasks.ingest.ledger import Ledger

    with Ledger.of_store(cfg.store_dir, cfg.collection) as ledger:
        building = ledger.building() or {}
    when = (
        "is being built by a refresh, and serves once complete"
        if building.get("embedding_model") == cfg.embedding_model
        else "serves after the next `kbflow ingest` embeds the documents again"
    )
    return f"the store serves {served}; {cfg.embedding_model} (the setting) {when}. Questions embed with {served}"


def open_cache(cfg: Settings, llm: LLMConfig | None, use_cache: bool | None) -> AnswerCache | None:
    """The store's answer cache, or None: retrieval only, --no-cache, or KBFLOW_ANSWER_CACHE=off."""
    if llm is None or not (cfg.answer_cache == "on" if use_cache is None else use_cache):
        return None
    cache = AnswerCache.of_store(cfg.store_dir)
    if cache.warning:
        progress.notice(f"warning: {cache.warning}")
    return cache


def language_warnings(questions: list[Question], llm: LLMConfig | None, facts: ModelFacts | None) -> dict[str, str]:
    """A warning per Chinese question when the model is known not to write Chinese."""
    if llm is None or llm.backend != "llama-cpp":
        return {}
    languages = model_languages(llm.model, Path(llm.models_dir))
    if languages is None or "zh" in languages:
        return {}
    text = (
        f"a Chinese question answered by {facts.base_model}, which does not write Chinese: "
        "run `kbflow models pull qwen2.5-1.5b` (then the default model 'auto' uses it)"
    )
    return {q.id: text for q in questions if is_chinese(q.question)}


def estimate(questions: list[Question], cache: AnswerCache | None, setup: str) -> str:
    """Before the first question: how many, how many cached, about how long at the model's measured speed."""
    if cache is None:
        return f"{len(questions)} question(s), answer cache off"
    known = cache.known_questions([q.question for q in questions], setup)
    per_answer = cache.seconds_per_answer(setup)
    if per_answer is None:
        when = "time not known yet (no answer of this model measured)"
    else:
        when = f"about {max(1, round((len(questions) - known) * per_answer / 60))} min at {per_answer:.1f} s per answer"
    return f"{len(questions)} question(s), {known} cached if their evidence is unchanged; {when}"


def warm_up(embedder: EmbedderConfig, llm: LLMConfig | None, mode: str) -> None:
    """Load the models once, before the clock starts for the first question: the embedding model and jieba in a
    background thread (OpenVINO compiles outside the GIL) while llama.cpp maps the answering model here, and while
    the first question opens the store; that question waits for whichever is still loading."""
    started = time.perf_counter()
    if mode != "all":
        preload(embedder if mode != "keyword" else None)
    if llm is not None:
        try:
            make_backend(llm)
        except ModelError as exc:  # a damaged model file: one clear line, not a llama.cpp abort
            raise ConfigError(str(exc)) from None
        get_run_logger().info("Answering model ready in %.1f s", time.perf_counter() - started)


def answer_questions(questions: list[Question], job: AnswerJob) -> list[dict]:
    """Every question, in batches of task runs; rows stream to the job's JSONL, slim rows come back in order."""
    size = max(MIN_BATCH, -(-len(questions) // MAX_BATCHES))
    artifact = create_progress_artifact(
        progress=0.0, key="answer-progress", description=f"Questions answered of {len(questions)}"
    )
    progress.start(len(questions), "answering", unit="question")
    order = answering_order(questions)
    rows: list[dict] = []
    for start in range(0, len(order), size):
        batch = [{**questions[i].to_dict(), "index": i} for i in order[start : start + size]]
        rows += answer_batch(batch, job)
        if artifact:
            update_progress_artifact(artifact, progress=100.0 * len(rows) / len(questions))
    progress.finish()
    return sorted(rows, key=lambda r: r["index"])


def answering_order(questions: list[Question]) -> list[int]:
    """The questions' positions in the order they are answered: those in the first question's language first, then
    the others, each in file order. The prompt's instructions differ by language, and llama.cpp reuses only the
    prefix the last prompt shares: a question after one in the other language evaluates them again (about 110
    tokens, 0.6 s on 2 cores). Rows are reported in file order."""
    first = is_chinese(questions[0].question) if questions else False
    return sorted(range(len(questions)), key=lambda i: is_chinese(questions[i].question) != first)


def run_facts(
    rows: list[dict],
    llm: LLMConfig | None,
    facts: ModelFacts | None,
    setup: str,
    cache_used: bool,
    history: list[dict],
    extra_warnings: list[str],
) -> dict:
    """What summary.json records besides the figures: how the answers were made, and warnings."""
    warned = [r["id"] for r in rows if r.get("warning")]
    warnings = list(extra_warnings)
    if warned:
        warnings.append(
            f"{len(warned)} Chinese question(s) ({', '.join(warned[:5])}) were answered by a model that does not "
            "write Chinese: run `kbflow models pull qwen2.5-1.5b`"
        )
    reused = [r for r in rows if r.get("answer_source") == "reused"]
    if reused and (
        llm is not None and not deterministic(llm) or not all(r.get("reused_deterministic", True) for r in reused)
    ):
        warnings.append(
            f"{len(reused)} answer(s) were reused from an earlier generation of a backend that is not deterministic "
            "(temperature > 0 on a model server): a new generation could differ; run with --no-cache to redo them"
        )
    return {
        "answer_style": llm.answer_style if llm else None,
        "llm_backend": llm.backend if llm else None,
        "base_model": facts.base_model if facts else None,
        "lora": facts.lora if facts else None,
        "lora_scale": facts.lora_scale if facts and facts.lora else None,
        "answer_setup": setup or None,
        "answers_deterministic": deterministic(llm) if llm else None,
        "answer_cache": cache_used if llm else None,
        "history": history,
        "warnings": warnings,
    }


def publish(rows: list[dict], summary: dict, report_dir: Path, reports_dir: Path) -> None:
    """The results table, the headline figures and a link to the report, as artifacts of the run."""
    create_table_artifact(
        key="answer-results",
        table=[
            {
                "id": r["id"],
                "question": r["question"][:120],
                "answer": r["answer"][:300],
                "made": r.get("answer_source") or "",
                "refused": r["refused"],
                "top source": r["retrieved"][0]["source"] if r["retrieved"] else "",
                "error": r["error"] or "",
            }
            for r in rows[:1000]  # the first 1,000: the full table is answers.csv
        ],
        description=f"Answers for {summary['questions_file']}",
    )
    markdown = (
        f"# Answers for {summary['questions_file']}\n\n{summary_markdown(summary)}\n\n"
        f"Report: `{report_dir / 'report.html'}`"
    )
    create_markdown_artifact(
        key="answer-summary", markdown=markdown, description="Headline figures of the answer report"
    )
    if summary.get("comparison"):
        create_markdown_artifact(
            key="answer-changes",
            markdown=comparison_markdown(summary["comparison"]),
            description="What changed since the previous run of this question set",
        )
    link = report_link(reports_dir, report_dir)
    hint = (
        ""
        if link.startswith("http")
        else (
            " (browsers do not open file:// links from the UI: run `kbflow reports serve`, or open "
            f"{report_dir / 'report.html'})"
        )
    )
    create_link_artifact(
        key="answer-report", link=link, link_text="report.html", description="The full answer report" + hint
    )
    get_run_logger().info(
        "Report written to %s: %d questions, %d refused, %d errors",
        report_dir,
        summary["questions"],
        summary["refused"],
        summary["errors"],
    )


def read_rows(path: Path):
    """The run's full rows, streamed back from its JSONL in question order (they are written in answering order,
    answering_order): one pass notes where each row starts, then each is read in turn."""
    import json

    starts: list[tuple[int, int]] = []
    with path.open("rb") as fh:
        offset = 0
        for line in fh:
            index = json.loads(line).get("index")
            starts.append((index if isinstance(index, int) else len(starts), offset))
            offset += len(line)
        for _, offset in sorted(starts):
            fh.seek(offset)
            yield json.loads(fh.readline().decode("utf-8"))


@flow(name="kb-answer", flow_run_name=_run_name)
def answer_flow(
    questions_path: str | None = None,
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
    use_cache: bool | None = None,
    question: str | None = None,
    groups: list[str] | str | None = None,
    all_documents: bool = False,
) -> dict:
    """Answer a question set from the knowledge base with a local model, reusing every cached answer whose evidence is
    unchanged, and write answers.csv/xlsx, summary.json and report.html (one question: no report unless out_dir).
    Answers come from the documents readers of `groups` may read (and public ones); all_documents: every one."""
    cfg = load_settings(
        store_dir=store_dir,
        collection=collection,
        top_k=top_k,
        mode=mode,
        min_score=min_score,
        llm_model=llm_model,
        llm_backend=llm_backend,
        answer_style=answer_style,
        llm_lora=lora,
        llm_lora_scale=lora_scale,
        groups=groups,
    )
    options = cfg.retrieval_options(source_prefix, all_documents)
    questions = load(questions_path, question)
    embedder, llm, adapter = prepare(cfg, retrieval_only)
    cache = open_cache(cfg, llm, use_cache)
    facts = model_facts(llm, adapter, cache.file_sha256 if cache else None) if llm else None
    setup = setup_fingerprint(generation_setup(llm, facts, cfg.mode == "all")) if llm else ""
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    progress.notice(estimate(questions, cache, setup) if llm else f"{len(questions)} question(s), retrieval only")
    work = Path(cfg.store_dir) / "work"
    work.mkdir(parents=True, exist_ok=True)
    rows_file = work / f"answers-{run_id}.jsonl"
    job = AnswerJob(
        store=cfg.store_config(),
        embedder=embedder,
        options=options,
        llm=llm,
        min_score=cfg.min_score,
        keep_ratio=cfg.context_keep_ratio,
        window=cfg.context_window,
        concurrency=cfg.llm_concurrency if llm is not None and llm.backend == "openai" else 1,
        cache_file=str(cache_path(cfg.store_dir)) if cache else None,
        setup=setup,
        deterministic=deterministic(llm) if llm else True,
        run_id=run_id,
        rows_file=str(rows_file),
        language_warning=language_warnings(questions, llm, facts),
        other_language_look=cfg.other_language_look and llm is not None,
    )
    get_run_logger().info(
        "Answering %d questions for %s with %s retrieval (k=%d)%s",
        len(questions),
        options.audience(),
        cfg.mode,
        cfg.top_k,
        " - retrieval only" if llm is None else f" and {facts.label}",
    )
    warm_up(embedder, llm, cfg.mode)
    try:
        rows = answer_questions(questions, job)
        if question is not None and out_dir is None:
            return {
                "rows": list(read_rows(rows_file)),
                "answers_generated": sum(r.get("answer_source") == "generated" for r in rows),
                "answers_reused": sum(r.get("answer_source") == "reused" for r in rows),
            }
        name = questions_path or "question"
        report_dir = (Path(out_dir) if out_dir else timestamped_dir(cfg.reports_dir, Path(name).stem)).resolve()
        ids = [q.id for q in questions]
        summary = write_report(
            rows,
            report_dir,
            top_k=cfg.top_k,
            model="(retrieval only)" if llm is None else facts.label,
            embedding_model=embedder.model,
            mode=cfg.mode,
            generated=llm is not None,
            questions_file=str(name),
            previous=find_previous_report(cfg.reports_dir, report_dir, str(name), ids, options.audience()),
            extra={
                "report_dir": str(report_dir),
                "audience": options.audience(),
                "groups": list(options.for_groups),
                "all_documents": options.all_documents,
                **run_facts(
                    rows,
                    llm,
                    facts,
                    setup,
                    cache is not None,
                    history_of(cfg.reports_dir, report_dir, str(name), ids, options.audience()),
                    [cache.warning] if cache and cache.warning else [],
                ),
            },
            scored=True,
            details=lambda: read_rows(rows_file),
        )
    finally:
        rows_file.unlink(missing_ok=True)
        if cache is not None:
            # Answers whose passages left the knowledge base can never be reused: the cache does not grow unbounded.
            prune_store_cache(cfg.store_dir, cfg.collection, cache, only_if_changed=True)
            cache.close()
    publish(rows, summary, report_dir, cfg.reports_dir)
    if summary["errors"]:
        raise QuestionsFailed(summary)
    return summary
