"""`kbflow ingest PATH`: index a folder or an S3 prefix and keep the collection in sync with it."""

from __future__ import annotations

import argparse
from pathlib import Path

from kbflow.cli.common import EXIT_OK, EXIT_PARTIAL, UsageError, print_json, settle_garbage_collector, store_options


def ingest(
    path: str,
    *,
    store: str | None = None,
    collection: str | None = None,
    rebuild: bool = False,
    json_output: bool = False,
    quiet: bool = False,
) -> int:
    """Run the ingest flow on PATH and print its summary; EXIT_PARTIAL when some documents failed."""
    summary, code = ingest_summary(
        path, store=store, collection=collection, rebuild=rebuild, bar=not (json_output or quiet)
    )
    if json_output:
        print_json(summary)
    else:
        from tasks.ingest.summary import IngestSummary

        print(IngestSummary.from_dict(summary).text())
    return code


def ingest_summary(
    path: str, *, store: str | None = None, collection: str | None = None, rebuild: bool = False, bar: bool = True
) -> tuple[dict, int]:
    """Run the ingest flow on PATH: its summary and the exit code (EXIT_PARTIAL when some documents failed)."""
    from connectors.base import SourceError, source_config_from_spec
    from flows.errors import DocumentsFailed
    from flows.ingest import ingest_flow

    settle_garbage_collector()
    try:
        spec = source_config_from_spec(path, [], [])
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    if spec["type"] == "local" and not Path(path).is_dir():
        raise UsageError(f"{path} is not a folder: give the folder of documents to index (or s3://BUCKET/PREFIX)")
    from kbflow import progress

    progress.enable_terminal_progress(bar=bar)  # notices (a healed store) go to stderr anyway
    try:
        summary, code = ingest_flow(source_path=path, store_dir=store, collection=collection, rebuild=rebuild), EXIT_OK
    except DocumentsFailed as exc:
        summary, code = exc.summary, EXIT_PARTIAL
    except SourceError as exc:  # the source could not be listed: a missing bucket, refused credentials
        raise UsageError(str(exc)) from None
    return summary, code


def preload(args: argparse.Namespace) -> list:
    """What a refresh loads first, to load while the store's Prefect server starts (kbflow.cli.main): the flow's
    modules; and for a new store, where every document is to be indexed, unstructured and the embedding model."""

    def flow_modules() -> None:
        import flows.ingest  # noqa: F401

    steps = [flow_modules]
    from tasks.ingest.ledger import ledger_path
    from tasks.settings import load_settings

    cfg = load_settings(store_dir=args.store)
    if not args.rebuild and ledger_path(cfg.store_dir).exists():
        return steps

    def unstructured() -> None:
        from tasks.ingest.partition import partition_document

        partition_document(b"Warm up. Two sentences.", "warm-up.txt")

    def embedder() -> None:
        from tasks.embed.embedder import get_embedder

        get_embedder(cfg.embedder_config())

    return [*steps, unstructured, embedder]


def run(args: argparse.Namespace) -> int:
    return ingest(
        args.path,
        store=args.store,
        collection=args.collection,
        rebuild=args.rebuild,
        json_output=args.json,
        quiet=args.quiet,
    )


def add_parser(sub) -> None:
    sp = sub.add_parser("ingest", help="index a folder or an S3 prefix and keep the collection in sync with it")
    sp.add_argument("path", help="folder of documents, or s3://BUCKET/PREFIX (endpoint: KBFLOW_S3_ENDPOINT_URL)")
    store_options(sp)
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bar: print the summary only")
    sp.add_argument("--rebuild", action="store_true", help="drop the collection and index everything again")
    sp.set_defaults(func=run, preload=preload)
