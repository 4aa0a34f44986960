"""`kbflow watch PATH`: keep a knowledge base in sync with a folder until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from kbflow.cli.common import EXIT_OK, UsageError, print_json, setting_option, store_options
from kbflow.deployments import DEFAULT_DEPLOYMENT, DEPLOYMENT_ENV


def _enable_info_logging() -> None:
    import prefect  # noqa: F401 - configures the console handler on the root logger

    log = logging.getLogger("kbflow")
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    if not logging.getLogger().handlers and not log.handlers:
        logging.basicConfig(format="%(asctime)s | %(levelname)-7s | %(name)s - %(message)s")


def watch(
    source_path: str,
    *,
    store_dir: str | None = None,
    collection: str | None = None,
    debounce_seconds: float | None = None,
    deployment: str | None = None,
    questions: str | None = None,
    groups: str | None = None,
    json_lines: bool = False,
) -> None:
    """Watch a folder and keep its knowledge base in sync until Ctrl-C or SIGTERM; json_lines prints each run's
    record as one JSON line on stdout."""
    from kbflow.watch import FolderWatcher, logger

    _enable_info_logging()
    watcher = FolderWatcher(
        source_path,
        store_dir=store_dir,
        collection=collection,
        debounce_seconds=debounce_seconds,
        deployment=deployment,
        questions=questions,
        groups=groups,
        on_run=(lambda record: print_json(record, line=True)) if json_lines else None,
    )
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum, frame):
        logger.info(
            "Stopping (%s): waiting for a run in progress to finish; send it again to abort",
            signal.Signals(signum).name,
        )
        stop.set()
        # A second signal gets the default behaviour: Ctrl-C raises, SIGTERM ends the process.
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, on_signal)
    try:
        watcher.start()
        while not stop.wait(1.0):
            pass
    finally:
        watcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("Stopped watching %s", watcher.root)


def cmd_watch(args: argparse.Namespace) -> int:
    """`kbflow watch`: 0 on a clean stop; errors and a second Ctrl-C go through the one exit-code map."""
    if not Path(args.path).is_dir():
        raise UsageError(f"{args.path} is not a folder: give the folder of documents to watch")
    if args.questions and not Path(args.questions).is_file():
        raise UsageError(f"{args.questions}: no such file; give a question set (.csv, .xlsx, .jsonl or .txt)")
    watch(
        args.path,
        store_dir=args.store,
        collection=args.collection,
        debounce_seconds=args.debounce,
        deployment=args.deployment,
        questions=args.questions,
        groups=args.groups,
        json_lines=args.json,
    )
    return EXIT_OK


def add_parser(subparsers) -> None:
    """Register `kbflow watch PATH [--store] [--collection] [--debounce] [--questions FILE] [--deployment]`."""
    sp = subparsers.add_parser("watch", help="watch a folder and re-ingest it whenever its documents change")
    sp.add_argument("path", help="folder of documents to watch (recursively)")
    store_options(sp, json_flag=False)
    sp.add_argument(
        "--json",
        action="store_true",
        help="print each sync's result as one JSON object a line on stdout (the log stays on stderr)",
    )
    setting_option(sp, "--debounce", "debounce_seconds", metavar="SECONDS")
    sp.add_argument(
        "--questions",
        metavar="FILE",
        help="a standing question set, answered after each sync that changed something (unaffected answers reused)",
    )
    setting_option(sp, "--groups", "groups", metavar="GROUP,GROUP")
    sp.add_argument(
        "--deployment",
        nargs="?",
        const=DEFAULT_DEPLOYMENT,
        metavar="NAME",
        help=f"run this Prefect deployment instead of ingesting in process (default when given "
        f"without a name: {DEFAULT_DEPLOYMENT}; also {DEPLOYMENT_ENV})",
    )
    sp.set_defaults(func=cmd_watch)
