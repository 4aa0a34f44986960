"""`kbflow status`: documents, chunks, embedding model and last refresh of a collection."""

from __future__ import annotations

import argparse

from kbflow.cli.cache import cache_stats
from kbflow.cli.common import EXIT_OK, print_json, store_options


def store_status(settings) -> dict:
    """Documents, chunks, embedding model and last refresh of a collection."""
    from tasks.ingest.ledger import Ledger, ledger_path
    from tasks.store.chroma import ChromaStore, state_token
    from tasks.store.recover import check_readable

    check_readable(settings.store_config())  # a damaged store is reported in words (exit 2), never a traceback
    if not ledger_path(settings.store_dir).exists():
        ChromaStore.open_existing(settings.store_config())  # says what to run; status never makes a ledger
    with Ledger.of_store(settings.store_dir, settings.collection) as ledger:
        docs, chunks = ledger.counts()
        failures = ledger.failures()
        last = ledger.get_meta("last_refresh")
        embedding = ledger.recorded_embedding()
        building = (ledger.building() or {}).get("embedding_model")
        token = state_token(settings.store_config(), embedding["embedding_model"]) if embedding else ""
        as_left = ledger.store_as_left(token)
    if not as_left:  # changed since the last run (or a Chroma server): ask Chroma itself
        store = ChromaStore.open_existing(settings.store_config())
        chunks, embedding = store.count(), store.embedding_record()
    return {
        "store": str(settings.store_dir),
        "collection": settings.collection,
        "documents": docs,
        "chunks": chunks,
        "embedding_model": embedding["embedding_model"],
        "embedding_dim": embedding["dim"],
        "embedding_backend": embedding["backend"],
        "embedding_building": building,
        "last_refresh": last,
        "failed": [{"path": p, "reason": r} for p, r in failures.items()],
        "answer_cache": cache_stats(settings.store_dir),
    }


def run(args: argparse.Namespace) -> int:
    from tasks.settings import load_settings

    status = store_status(load_settings(store_dir=args.store, collection=args.collection))
    if args.json:
        print_json(status)
    else:
        print(f"Collection {status['collection']!r} in {status['store']}")
        print(f"  documents {status['documents']}, chunks {status['chunks']}")
        print(f"  embedding model {status['embedding_model']} ({status['embedding_dim']}-d)")
        if status["embedding_building"]:
            print(f"  embedding again with {status['embedding_building']}: it serves once a refresh completes it")
        print(f"  last refresh {status['last_refresh'] or 'never'}")
        cache = status["answer_cache"]
        if cache is not None:
            print(f"  answer cache {cache['answers']} answer(s), {cache['bytes'] / 1e6:.1f} MB")
        for f in status["failed"]:
            print(f"  FAILED {f['path']}: {f['reason']}")
    return EXIT_OK


def add_parser(sub) -> None:
    sp = sub.add_parser("status", help="documents, chunks, model and last refresh of a collection")
    store_options(sp)
    sp.set_defaults(func=run)
