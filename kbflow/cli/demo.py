"""`kbflow demo`: ingest the bundled demo corpus and answer the bundled questions."""

from __future__ import annotations

import argparse
from pathlib import Path

from kbflow.cli.ask import ask, print_answer_summary
from kbflow.cli.common import UsageError, print_json, setting_option
from kbflow.cli.ingest import ingest, ingest_summary, preload

DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo"


def run(args: argparse.Namespace) -> int:
    if not (DEMO / "corpus").is_dir():
        raise UsageError(f"the demo corpus is not at {DEMO / 'corpus'}; run the demo from a kbflow checkout")
    corpus, questions = str(DEMO / "corpus"), str(DEMO / "questions.csv")
    if args.json:
        ingested, code = ingest_summary(corpus, store=args.store, collection=args.collection, bar=False)
        summary, ask_code = ask(
            questions, store=args.store, collection=args.collection, llm_model=args.model, quiet=True
        )
        print_json({"ingest": ingested, "answers": summary})
        return max(code, ask_code)
    code = ingest(corpus, store=args.store, collection=args.collection)
    print()
    summary, ask_code = ask(questions, store=args.store, collection=args.collection, llm_model=args.model)
    print_answer_summary(summary)
    return max(code, ask_code)


def add_parser(sub) -> None:
    sp = sub.add_parser("demo", help="ingest the bundled demo corpus and answer the demo questions")
    setting_option(sp, "--store", "store_dir", dest="store")
    setting_option(sp, "--collection", "collection")
    setting_option(sp, "--model", "llm_model")
    sp.add_argument(
        "--json", action="store_true", help="print one JSON object: the ingest's and the answers' summaries"
    )
    sp.set_defaults(func=run, preload=preload, rebuild=False)
