"""`kbflow demo`: ingest the bundled demo corpus and answer the bundled questions."""

from __future__ import annotations

import argparse
from pathlib import Path

from kbflow.cli.ask import ask, print_answer_summary
from kbflow.cli.common import UsageError, setting_option
from kbflow.cli.ingest import ingest, preload

DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo"


def run(args: argparse.Namespace) -> int:
    if not (DEMO / "corpus").is_dir():
        raise UsageError(f"the demo corpus is not at {DEMO / 'corpus'}; run the demo from a kbflow checkout")
    code = ingest(str(DEMO / "corpus"), store=args.store, collection=args.collection)
    print()
    summary, ask_code = ask(
        str(DEMO / "questions.csv"), store=args.store, collection=args.collection, llm_model=args.model
    )
    print_answer_summary(summary)
    return max(code, ask_code)


def add_parser(sub) -> None:
    sp = sub.add_parser("demo", help="ingest the bundled demo corpus and answer the demo questions")
    setting_option(sp, "--store", "store_dir", dest="store")
    setting_option(sp, "--collection", "collection")
    setting_option(sp, "--model", "llm_model")
    sp.set_defaults(func=run, preload=preload, rebuild=False)
