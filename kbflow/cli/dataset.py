"""`kbflow dataset export`: fine-tuning data built from the knowledge base."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kbflow.cli.common import EXIT_OK, EXIT_PARTIAL, readers_options, setting_option, store_options
from tasks.dataset.options import DatasetOptions


def run(args: argparse.Namespace) -> int:
    """Run the flow, print its summary; exit 1 when chunks failed or nothing survived."""
    from flows.dataset import DatasetFailed, dataset_flow

    try:
        summary, code = (
            dataset_flow(
                store_dir=args.store,
                collection=args.collection,
                out_dir=args.out,
                chunks=args.chunks,
                pairs_per_chunk=args.pairs,
                distractors=args.distractors,
                no_gold_share=args.no_gold_share,
                cross_lingual_share=args.cross_lingual_share,
                eval_share=args.eval_share,
                format=args.format,
                seed=args.seed,
                source_prefix=args.source_prefix,
                llm_model=args.model,
                llm_backend=args.backend,
                groups=args.groups,
                all_documents=args.all_documents,
            ),
            EXIT_OK,
        )
    except DatasetFailed as exc:
        summary, code = exc.summary, EXIT_PARTIAL
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return code
    print(
        f"Wrote {summary['examples']} examples ({summary['train']} train, {summary['eval']} eval, "
        f"{summary['without_gold']} without the gold chunk, {summary['cross_lingual']} asked in the other "
        f"language) in {summary['format']} format to {summary['out_dir']}"
    )
    print(
        f"  {summary['chunks_sampled']} chunks sampled, {summary['pairs_generated']} pairs written by the model "
        f"({summary['replies_asked_again_held']} asked again under the JSON schema, "
        f"{summary['replies_not_json']} replies not valid JSON); dropped: {summary['dropped_unparsed_reply']} "
        f"replies with no readable pair, {summary['dropped_answer_not_in_chunk']} answer not in its chunk, "
        f"{summary['dropped_answer_too_long']} answer too long, {summary['dropped_answer_in_question']} answer given "
        f"in the question, {summary['dropped_question_not_standalone']} question not standalone, "
        f"{summary['dropped_duplicate_question']} near-duplicate question"
    )
    print(
        "  evaluate a fine-tuned model on the held-out documents: kbflow ask "
        f"{Path(summary['out_dir']) / 'questions.csv'}"
    )
    for failure in summary["failures"]:
        print(f"  FAILED {failure['source']} ({failure['chunk_id'][:12]}): {failure['reason']}")
    if not summary["examples"]:
        print("  no example survived: try more --chunks, or a stronger --model")
    return code


def add_parser(subparsers) -> None:
    """Register `kbflow dataset export ...`."""
    sp = subparsers.add_parser("dataset", help="export fine-tuning data built from the knowledge base")
    dsub = sp.add_subparsers(dest="action", required=True)
    ex = dsub.add_parser(
        "export", help="model-written question/answer pairs as RAFT examples (openai, alpaca or sharegpt)"
    )
    store_options(ex, json_flag=False)
    ex.add_argument("--out", help="dataset folder (default: a timestamped folder under STORE/datasets)")
    setting_option(ex, "--chunks", "chunks", DatasetOptions, dest="chunks")
    ex.add_argument("--limit", type=int, dest="chunks", default=None, help="the same as --chunks")
    setting_option(ex, "--pairs", "pairs_per_chunk", DatasetOptions, dest="pairs")
    ex.add_argument("--per-chunk", type=int, dest="pairs", default=None, help="the same as --pairs")
    setting_option(ex, "--distractors", "distractors", DatasetOptions)
    setting_option(ex, "--no-gold-share", "no_gold_share", DatasetOptions)
    setting_option(ex, "--cross-lingual-share", "cross_lingual_share", DatasetOptions)
    setting_option(ex, "--eval-share", "eval_share", DatasetOptions)
    setting_option(ex, "--format", "format", DatasetOptions)
    setting_option(ex, "--seed", "seed", DatasetOptions)
    ex.add_argument("--source-prefix", help="only chunks of documents whose path starts with this")
    readers_options(ex)
    ex.add_argument(
        "--model", help="GGUF that writes the pairs (default KBFLOW_LLM_MODEL); a stronger model writes better pairs"
    )
    setting_option(ex, "--backend", "llm_backend")
    ex.add_argument("--json", action="store_true", help="print summary.json")
    sp.set_defaults(func=run)
