"""`kbflow cache [stats|prune]`: the store's answer cache, its size, and pruning answers no run can reuse."""

from __future__ import annotations

import argparse

from kbflow.cli.common import EXIT_OK, print_json, store_options


def cache_stats(store_dir) -> dict | None:
    """Answers, setups and bytes of a store's answer cache; None when the store has none yet."""
    from tasks.answer.cache import AnswerCache, cache_path

    if not cache_path(store_dir).exists():
        return None
    with AnswerCache.of_store(store_dir) as cache:
        return cache.stats()


def run(args: argparse.Namespace) -> int:
    from tasks.answer.cache import prune_store_cache
    from tasks.settings import load_settings

    cfg = load_settings(store_dir=args.store, collection=args.collection)
    pruned = prune_store_cache(cfg.store_dir, cfg.collection) if args.action == "prune" else None
    stats = cache_stats(cfg.store_dir)
    if args.json:
        print_json({"pruned": pruned, "cache": stats})
        return EXIT_OK
    if pruned is not None:
        print(f"Pruned {pruned} answer(s) whose evidence is no longer in the knowledge base")
    if stats is None:
        print(f"No answer cache in {cfg.store_dir} yet: `kbflow ask` makes one")
    else:
        print(
            f"Answer cache {stats['path']}: {stats['answers']} answer(s) for {stats['setups']} model setup(s), "
            f"{stats['bytes'] / 1e6:.1f} MB"
        )
    return EXIT_OK


def add_parser(sub) -> None:
    sp = sub.add_parser("cache", help="the answer cache: its size, or prune answers whose evidence is gone")
    sp.add_argument(
        "action",
        nargs="?",
        choices=["stats", "prune"],
        default="stats",
        help="stats (the default), or prune: drop answers whose passages left the knowledge base",
    )
    store_options(sp)
    sp.set_defaults(func=run)
