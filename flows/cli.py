"""The `kbflow` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from flows.settings import apply_offline_env

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _quiet_prefect(json_output: bool) -> None:
    # Prefect logs go to stderr; keep them to warnings when stdout is meant for a machine.
    if json_output:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _print_ingest_summary(s: dict) -> None:
    print(f"Ingested {s['source']} into collection {s['collection']!r} ({s['store']}) in {s['duration_s']:.1f} s")
    print(
        f"  added {s['added']}, updated {s['updated']}, deleted {s['deleted']}, unchanged {s['unchanged']}, "
        f"failed {len(s['failed'])}"
    )
    print(f"  chunks written {s['chunks_written']}, chunks deleted {s['chunks_deleted']}")
    for f in s["failed"]:
        print(f"  FAILED {f['path']}: {f['reason']}")


def cmd_ingest(args) -> int:
    _quiet_prefect(args.json)
    from flows.ingest import DocumentsFailed, ingest_flow

    if not Path(args.path).is_dir():
        raise UsageError(f"{args.path} is not a folder: give the folder of documents to index")
    try:
        summary, code = ingest_flow(
            source_path=args.path, store_dir=args.store, collection=args.collection, rebuild=args.rebuild
        ), EXIT_OK
    except DocumentsFailed as exc:
        summary, code = exc.summary, EXIT_PARTIAL
    if args.json:
        _print_json(summary)
    else:
        _print_ingest_summary(summary)
    return code


def store_status(settings) -> dict:
    """Documents, chunks, embedding model and last refresh of a collection."""
    from flows.ingest import ledger_path
    from tasks.ledger import Ledger
    from tasks.store import META_DIM, META_MODEL, get_client

    lpath = ledger_path(settings.store_dir)
    if not lpath.exists():
        raise UsageError(f"no knowledge base in {settings.store_dir}: run `kbflow ingest PATH` first (or set --store)")
    client = get_client(str(settings.chroma_dir), settings.chroma_host)
    try:
        coll = client.get_collection(settings.collection, embedding_function=None)
    except Exception:
        raise UsageError(f"collection {settings.collection!r} does not exist in {settings.store_dir}") from None
    ledger = Ledger(lpath, settings.collection)
    try:
        docs, _ = ledger.counts()
        failures = ledger.failures()
        last = ledger.get_meta("last_refresh")
    finally:
        ledger.close()
    meta = coll.metadata or {}
    return {
        "store": str(settings.store_dir),
        "collection": settings.collection,
        "documents": docs,
        "chunks": coll.count(),
        "embedding_model": meta.get(META_MODEL),
        "embedding_dim": meta.get(META_DIM),
        "last_refresh": last,
        "failed": [{"path": p, "reason": r} for p, r in failures.items()],
    }


def cmd_status(args) -> int:
    from flows.settings import load_settings

    status = store_status(load_settings(store_dir=args.store, collection=args.collection))
    if args.json:
        _print_json(status)
    else:
        print(f"Collection {status['collection']!r} in {status['store']}")
        print(f"  documents {status['documents']}, chunks {status['chunks']}")
        print(f"  embedding model {status['embedding_model']} ({status['embedding_dim']}-d)")
        print(f"  last refresh {status['last_refresh'] or 'never'}")
        for f in status["failed"]:
            print(f"  FAILED {f['path']}: {f['reason']}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kbflow", description="Keep a knowledge base in sync with your documents and answer question sets from it.")
    sub = p.add_subparsers(dest="command", required=True)

    def store_args(sp):
        sp.add_argument("--store", help="store folder (KBFLOW_STORE_DIR, default .kbflow)")
        sp.add_argument("--collection", help="collection name (KBFLOW_COLLECTION, default knowledge)")
        sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = sub.add_parser("ingest", help="index a folder and keep the collection in sync with it")
    sp.add_argument("path")
    store_args(sp)
    sp.add_argument("--rebuild", action="store_true", help="drop the collection and index everything again")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("status", help="documents, chunks, model and last refresh of a collection")
    store_args(sp)
    sp.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    from pydantic import ValidationError

    from flows.ingest import ConfigError
    from tasks.store import StoreError

    try:
        return args.func(args)
    except (UsageError, ConfigError, StoreError) as exc:
        print(f"kbflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"kbflow: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
