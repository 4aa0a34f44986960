"""The dataset flow: turn the knowledge base into fine-tuning data (RAFT examples in kbflow's own prompt)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.errors import ConfigError
from tasks.answer.adapters import checked_llm
from tasks.answer.backends import LLMConfig
from tasks.answer.evidence import narrow
from tasks.answer.models import ModelError, resolve_gguf
from tasks.answer.options import RetrievalOptions
from tasks.answer.retrieve import retrieve_context
from tasks.dataset.options import DatasetOptions
from tasks.dataset.pairs import (
    MODEL_FAILURES,
    failure,
    filter_pairs,
    gold_flags,
    raft_example,
    sample_chunks,
    split_by_source,
    translate_questions,
    write_answer_sentences,
    write_dataset,
    write_qa_pairs,
)
from tasks.embed.embedder import EmbedderConfig
from tasks.settings import Settings, load_settings, timestamped_dir
from tasks.store.chroma import ChromaStore
from tasks.text import contains_answer

# Free replies that are not JSON before a run asks every remaining chunk under the schema from the start.
HELD_AFTER = 2


class DatasetFailed(Exception):
    """The dataset was written, but some chunks or answer sentences failed, or no example survived; carries the
    summary (CLI exit code 1)."""

    def __init__(self, summary: dict):
        self.summary = summary
        super().__init__(
            f"{len(summary['failures'])} chunk(s) or answer sentence(s) failed, "
            f"{summary['examples']} example(s) written; see {summary['out_dir']}"
        )


def _run_name() -> str:
    return f"dataset-{flow_run.parameters.get('collection') or 'knowledge'}"


def default_dataset_dir(store_dir: Path, collection: str) -> Path:
    return timestamped_dir(Path(store_dir) / "datasets", collection)


def model_name(llm: LLMConfig) -> str:
    if llm.backend == "openai":
        return f"openai:{llm.openai_model}"
    return Path(str(resolve_gguf(llm.model, Path(llm.models_dir)))).name + (
        f" + LoRA {Path(llm.lora).name}" if llm.lora else ""
    )


def check_llm(cfg: Settings) -> LLMConfig:
    """The model that writes the pairs, checked before the first chunk (a configuration error otherwise)."""
    try:
        return checked_llm(cfg.llm_config())[0]
    except ModelError as exc:
        raise ConfigError(str(exc)) from exc


def ask_for_pairs(
    sampled: list[dict], options: DatasetOptions, llm: LLMConfig
) -> tuple[list[dict], Counter, list[dict]]:
    """Pairs the model writes for each sampled chunk, filtered: answer found in the chunk, question not a
    near-duplicate."""
    kept: list[dict] = []
    counts: Counter = Counter()
    failures: list[dict] = []
    seen: list[frozenset[str]] = []
    # The schema's grammar costs llama.cpp a pass over the whole vocabulary at every token (Qwen's export 11% slower),
    # and a model that writes JSON unaided does not need it: each chunk is asked freely first, a reply that is not
    # JSON is asked again under the schema, and after HELD_AFTER such replies the run asks under it from the start.
    held = False
    for chunk in sampled:
        try:
            got = write_qa_pairs(chunk, options.pairs_per_chunk, llm, held)
            if not held and not got["parsed"]:
                counts["replies_asked_again_held"] += 1
                held = counts["replies_asked_again_held"] >= HELD_AFTER
                seconds = got["seconds"]
                got = write_qa_pairs(chunk, options.pairs_per_chunk, llm, True)
                got["seconds"] += seconds
        except MODEL_FAILURES as exc:
            failures.append(failure(chunk, exc))
            continue
        counts["pairs_generated"] += len(got["pairs"])
        counts["replies_without_pairs"] += not got["pairs"]
        # Not JSON: cut by the token cap, or from a server that ignored the schema; its complete pairs still count.
        counts["replies_not_json"] += not got["parsed"]
        counts["dropped_unparsed_reply"] += not got["parsed"] and not got["pairs"]
        counts["completion_tokens"] += got["completion_tokens"]
        counts["generation_ms"] += round(got["seconds"] * 1000)
        pairs, dropped = filter_pairs(
            got["pairs"], chunk["text"], seen, options.duplicate_similarity, options.max_answer_tokens
        )
        counts.update({f"dropped_{k}": v for k, v in dropped.items()})
        kept.extend({**p, "gold": chunk} for p in pairs)
    return kept, counts, failures


def build_examples(
    pairs: list[dict], options: DatasetOptions, cfg: Settings, embedder: EmbedderConfig, readers: RetrievalOptions
) -> list[dict]:
    """One RAFT example per pair, its distractors retrieved for its question as `kbflow ask` would retrieve them
    (from the documents the export's readers may read)."""
    rng = random.Random(options.seed)
    retrieval = readers.model_copy(
        update={"top_k": options.distractors + 5, "mode": "hybrid" if cfg.mode == "all" else cfg.mode}
    )
    examples = []
    for pair, with_gold in zip(pairs, gold_flags(len(pairs), options.no_gold_share, rng)):
        got = (
            retrieve_context(pair["question"], cfg.store_config(), embedder, retrieval)
            if options.distractors or pair.get("cross_lingual")
            else {"passages": []}
        )
        if pair.get("cross_lingual") and pair["gold"]["chunk_id"] not in {p["chunk_id"] for p in got["passages"]}:
            # A translation that does not retrieve its own passage has lost what it asks about (a name turned into
            # another place's): the pair is asked as it was written.
            pair = {**pair, "question": pair["written_as"], "cross_lingual": False}
            got = (
                retrieve_context(pair["question"], cfg.store_config(), embedder, retrieval)
                if options.distractors
                else {"passages": []}
            )
        # Each passage cut as `kbflow ask` cuts it (KBFLOW_CONTEXT_WINDOW: the sentences around what the question
        # asks), so the adapter learns from the prompts it will be given; a gold chunk whose cut loses the answer
        # stays whole.
        *candidates, gold = narrow(
            [*got["passages"], pair["gold"]], pair["question"], cfg.context_window, got.get("term_weights")
        )
        if not contains_answer(gold["text"], pair["answer"]):
            gold = pair["gold"]
        examples.append(
            raft_example(
                pair,
                gold,
                candidates,
                n_distractors=options.distractors,
                with_gold=with_gold,
                rng=rng,
                style=cfg.answer_style,
            )
        )
    return examples


def dataset_markdown(summary: dict) -> str:
    rows = [
        ("examples (train / eval)", f"{summary['examples']} ({summary['train']} / {summary['eval']})"),
        ("without the gold chunk", summary["without_gold"]),
        ("asked in the other language", summary.get("cross_lingual", 0)),
        ("chunks sampled", f"{summary['chunks_sampled']} of {summary['chunks_available']}"),
        ("pairs written by the model", summary["pairs_generated"]),
        ("free replies not JSON, asked again under the schema", summary["replies_asked_again_held"]),
        ("replies not valid JSON (pairs read from the complete objects)", summary["replies_not_json"]),
        ("dropped: reply with no readable pair", summary["dropped_unparsed_reply"]),
        ("dropped: answer not in chunk", summary["dropped_answer_not_in_chunk"]),
        ("dropped: answer too long", summary["dropped_answer_too_long"]),
        ("dropped: answer given in the question", summary["dropped_answer_in_question"]),
        ("dropped: question not standalone", summary["dropped_question_not_standalone"]),
        ("dropped: near-duplicate question", summary["dropped_duplicate_question"]),
        (
            "questions translated (kept as written: failed its check, did not retrieve its passage)",
            f"{summary.get('questions_translated', 0)} ({summary.get('translations_unchecked', 0)}, "
            f"{summary.get('translations_not_retrieving', 0)})",
        ),
        ("answers written as sentences by the model", summary.get("sentences_written", 0)),
        ("dropped: sentence without the answer", summary.get("dropped_sentence_unchecked", 0)),
        ("failed chunks or answer sentences", len(summary["failures"])),
        ("format", summary["format"]),
        ("model", summary["model"]),
    ]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


@flow(name="kb-dataset", flow_run_name=_run_name)
def dataset_flow(
    store_dir: str | None = None,
    collection: str | None = None,
    out_dir: str | None = None,
    chunks: int | None = None,
    pairs_per_chunk: int | None = None,
    distractors: int | None = None,
    no_gold_share: float | None = None,
    cross_lingual_share: float | None = None,
    eval_share: float | None = None,
    format: str | None = None,
    seed: int | None = None,
    source_prefix: str | None = None,
    llm_model: str | None = None,
    llm_backend: str | None = None,
    groups: list[str] | str | None = None,
    all_documents: bool = False,
) -> dict:
    """Export a fine-tuning dataset from the knowledge base: model-written question/answer pairs as RAFT examples,
    split by document; only from documents readers of `groups` may read (and public ones), or all_documents."""
    cfg = load_settings(
        store_dir=store_dir, collection=collection, llm_model=llm_model, llm_backend=llm_backend, groups=groups
    )
    readers = cfg.retrieval_options(source_prefix, all_documents)
    # None: DatasetOptions' declared default.
    given = dict(
        chunks=chunks,
        pairs_per_chunk=pairs_per_chunk,
        distractors=distractors,
        no_gold_share=no_gold_share,
        cross_lingual_share=cross_lingual_share,
        eval_share=eval_share,
        format=format,
        seed=seed,
    )
    options = DatasetOptions(**{k: v for k, v in given.items() if v is not None})
    embedder = cfg.embedder_config(model=ChromaStore.open_existing(cfg.store_config()).embedding_model)
    llm = check_llm(cfg)
    out = (Path(out_dir) if out_dir else default_dataset_dir(cfg.store_dir, cfg.collection)).resolve()
    everything = retrieve_context("", cfg.store_config(), embedder, readers.model_copy(update={"mode": "all"}))[
        "passages"
    ]
    if not everything:
        raise ConfigError(
            f"no chunks in collection {cfg.collection!r} of {cfg.store_dir}"
            + (f" under {source_prefix!r}" if source_prefix else "")
            + ": run `kbflow ingest PATH` first"
        )
    sampled = sample_chunks(everything, options.chunks, options.seed, options.min_chunk_chars)
    logger = get_run_logger()
    logger.info(
        "Writing %d question(s) for each of %d chunk(s) with %s", options.pairs_per_chunk, len(sampled), model_name(llm)
    )
    pairs, counts, failures = ask_for_pairs(sampled, options, llm)
    crossed = {"questions_translated": 0, "translations_unchecked": 0}
    if options.cross_lingual_share and pairs:
        share = options.cross_lingual_share
        logger.info("Asking %.0f%% of %d question(s) in the other language", 100 * share, len(pairs))
        pairs, crossed, failed = translate_questions(pairs, share, options.seed, llm)
        failures.extend(failed)
    examples = build_examples(pairs, options, cfg, embedder, readers)
    crossed["translations_not_retrieving"] = sum(1 for p in pairs if p.get("cross_lingual")) - sum(
        1 for e in examples if e["cross_lingual"]
    )
    sentences: dict[str, int] = {"sentences_written": 0, "dropped_sentence_unchecked": 0, "sentence_tokens": 0}
    if cfg.answer_style == "sentence" and any(e["with_gold"] for e in examples):
        logger.info("Writing the answer sentences of %d example(s)", sum(e["with_gold"] for e in examples))
        examples, sentences, failed = write_answer_sentences(examples, llm)
        failures.extend(failed)
    train, held_out = split_by_source(examples, options.eval_share, options.seed)
    files = write_dataset(train, held_out, out, options.format)
    summary = {
        "out_dir": str(out),
        "collection": cfg.collection,
        "store_dir": str(Path(cfg.store_dir).resolve()),
        "format": options.format,
        "files": files,
        "examples": len(examples),
        "train": len(train),
        "eval": len(held_out),
        "without_gold": sum(1 for e in examples if not e["with_gold"]),
        "cross_lingual": sum(1 for e in examples if e["cross_lingual"]),
        "train_sources": sorted({e["source"] for e in train}),
        "eval_sources": sorted({e["source"] for e in held_out}),
        "chunks_available": len(everything),
        "chunks_sampled": len(sampled),
        "pairs_generated": counts["pairs_generated"],
        "replies_without_pairs": counts["replies_without_pairs"],
        "replies_not_json": counts["replies_not_json"],
        "replies_asked_again_held": counts["replies_asked_again_held"],
        "dropped_unparsed_reply": counts["dropped_unparsed_reply"],
        "dropped_answer_not_in_chunk": counts["dropped_answer_not_in_chunk"],
        "dropped_answer_too_long": counts["dropped_answer_too_long"],
        "dropped_answer_in_question": counts["dropped_answer_in_question"],
        "dropped_question_not_standalone": counts["dropped_question_not_standalone"],
        "dropped_duplicate_question": counts["dropped_duplicate_question"],
        **crossed,
        **sentences,
        "failures": failures,
        "completion_tokens": counts["completion_tokens"],
        "generation_s": round(counts["generation_ms"] / 1000, 1),
        "model": model_name(llm),
        "answer_style": cfg.answer_style,
        "audience": readers.audience(),
        "options": options.model_dump(),
    }
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    create_markdown_artifact(
        key="dataset-summary",
        markdown=f"# Dataset in `{out}`\n\n{dataset_markdown(summary)}",
        description="What the dataset export wrote",
    )
    logger.info("Dataset written to %s: %d examples (%d train, %d eval)", out, len(examples), len(train), len(held_out))
    if failures or not examples:
        raise DatasetFailed(summary)
    return summary
