"""The `kbflow` entry point: the parser of every command, the store's Prefect home, the one exit-code map."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flows.settings import apply_offline_env
from kbflow.cli import ask, cache, dataset, demo, ingest, models, reports, status, watch
from kbflow.cli.common import run_command

COMMANDS = [ingest, status, ask, cache, models, demo, watch, dataset, reports]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kbflow", description="Keep a knowledge base in sync with your documents and answer question sets from it."
    )
    p.add_argument("--verbose", "-v", action="store_true", help="show Prefect's flow and task-run log lines")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _use_store_prefect(store: str | None) -> None:
    from flows.settings import prefect_env

    prefect = prefect_env(store)
    if down := prefect.pop("KBFLOW_PREFECT_SERVER_DOWN", None):
        print(
            f"kbflow: note: the project's Prefect server does not answer ({down}); this run goes to "
            f"{prefect['PREFECT_HOME']} and shows in the UI once `make server` runs",
            file=sys.stderr,
        )
    if "PREFECT_HOME" in prefect:
        home = Path(prefect["PREFECT_HOME"])
        home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
        set_aside_damaged_prefect_db(home / "prefect.db")
    os.environ.update(prefect)


def set_aside_damaged_prefect_db(db: Path) -> None:
    """Prefect's database holds run history only: a damaged one is set aside with a warning, and a fresh one
    started, so the refresh still runs."""
    from tasks.store.recover import set_aside, sqlite_problem

    if db.exists() and db.stat().st_size and (why := sqlite_problem(db)):
        aside = set_aside(db)
        print(
            f"kbflow: warning: Prefect's database {db} was damaged ({why}); set aside as {aside.name}, and a new "
            "one started: the run history before it is in the old file",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    # Before Prefect is imported: runs land in the store's Prefect home, or report to the project's server when it runs.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--store")
    pre.add_argument("--verbose", "-v", action="store_true")
    early = pre.parse_known_args(argv)[0]
    _use_store_prefect(early.store)
    if not early.verbose:
        # Flow and task-run lines still reach the Prefect API (the UI); the terminal gets kbflow's own lines
        # (a failure is one line from run_command; its traceback goes to the log). The watcher shows warnings.
        quiet = "WARNING" if "watch" in (argv if argv is not None else sys.argv[1:]) else "CRITICAL"
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", quiet)
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", quiet)
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
