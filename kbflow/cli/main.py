"""The `kbflow` entry point: the parser of every command, the store's Prefect home, the one exit-code map."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

from kbflow import __version__
from kbflow.cli import ask, cache, dataset, demo, finetune, ingest, models, reports, server, status, watch
from kbflow.cli.common import EXIT_FAULT, run_command
from tasks.offline import apply_offline_env

COMMANDS = [ingest, status, ask, cache, models, demo, watch, dataset, finetune, reports, server]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kbflow", description="Keep a knowledge base in sync with your documents and answer question sets from it."
    )
    p.add_argument("--verbose", "-v", action="store_true", help="show Prefect's flow and task-run log lines")
    p.add_argument("--version", action="version", version=f"kbflow {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


# The commands that run a flow, and so need a Prefect API.
FLOW_COMMANDS = {"ingest", "ask", "demo", "watch", "dataset", "finetune"}


def _use_store_prefect(store: str | None, command: str | None):
    """Set this command's Prefect environment; the settings when it uses the store's background server."""
    from tasks.settings import load_settings, prefect_env

    prefect, background = prefect_env(store), None
    if "PREFECT_HOME" in prefect and command in FLOW_COMMANDS:
        settings = load_settings(store_dir=store)
        if "PREFECT_API_URL" not in prefect:
            _room_for_prefect(Path(prefect["PREFECT_HOME"]), settings.min_free_mb)
            if settings.prefect == "background":
                prefect.pop("KBFLOW_PREFECT_SERVER_DOWN", None)
                prefect.update(_background_server(settings.store_dir.resolve(), settings.prefect_idle_minutes))
        elif settings.prefect == "background":  # the store's server already answers: held while this command runs
            from kbflow import prefect_server

            prefect_server.hold(settings.store_dir.resolve())
        if settings.prefect == "background" and "PREFECT_API_URL" in prefect:
            background = settings
    if down := prefect.pop("KBFLOW_PREFECT_SERVER_DOWN", None):
        print(
            f"kbflow: note: the project's Prefect server does not answer ({down}); this run goes to "
            f"{prefect['PREFECT_HOME']} and shows in the UI once `make server` runs",
            file=sys.stderr,
        )
    if "PREFECT_HOME" in prefect:
        home = Path(prefect["PREFECT_HOME"])
        home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
        if "PREFECT_API_URL" not in prefect:  # a temporary server will open it (a running one holds it open)
            set_aside_damaged_prefect_db(home / "prefect.db")
    os.environ.update(prefect)
    return background


class PrefectHomeFull(Exception):
    """The disk of the store's Prefect home is full: its server could not start, so no run could."""


def _room_for_prefect(home: Path, min_free_mb: int) -> None:
    """Stop at once when Prefect's database has no room: its server would time out after 90 s instead."""
    from tasks.faults import free_bytes

    free_mb = free_bytes(home) / 2**20
    if free_mb < max(min_free_mb, 5):
        raise PrefectHomeFull(
            f"no space left on {home} (Prefect's database): {free_mb:.1f} MB free, kbflow keeps {min_free_mb} MB "
            "(KBFLOW_MIN_FREE_MB); free some space and run again"
        )


# The background server this command started (or found starting): (store, api), waited for before the first flow
# run, so that the command imports what it needs while the server starts on the other core.
_starting: list[tuple[Path, str]] = []


def _background_server(store: Path, idle_minutes: float) -> dict[str, str]:
    """The store's background Prefect server (started if none answers), held by this command until it exits."""
    from kbflow import prefect_server

    db = prefect_server.state_dir(store) / "home" / "prefect.db"
    try:
        api, started = prefect_server.ensure_server(
            store, idle_minutes, lambda: set_aside_damaged_prefect_db(db), wait=False
        )
    except (RuntimeError, OSError) as exc:
        print(f"kbflow: note: {exc}; this run uses a temporary Prefect server", file=sys.stderr)
        return {}
    prefect_server.hold(store)
    if started or not prefect_server.answering(api):
        _starting.append((store, api))
    if started:
        print(
            f"kbflow: started the Prefect server for {store} in the background: UI at {api.removesuffix('/api')}; "
            f"it stops after {idle_minutes:g} idle minutes, or now with `kbflow server stop`",
            file=sys.stderr,
        )
    return {"PREFECT_API_URL": api}


@contextmanager
def _server_ready(args: argparse.Namespace):
    """Wait for the background server this command is starting, importing the command's own modules meanwhile
    (its `preload`); when the server fails, the command runs on a temporary one instead, as before."""
    if not _starting:
        yield
        return
    from kbflow import prefect_server

    store, api = _starting.pop()
    for step in args.preload(args) if hasattr(args, "preload") else []:
        if prefect_server.answering(api, timeout=0.2):
            break
        try:
            step()
        except Exception:  # noqa: BLE001 - only a head start: the command meets the same error and reports it
            break
    try:
        log = prefect_server.state_dir(store) / "background.log"
        prefect_server.wait_ready(api, prefect_server.supervisor_pid(store), log)
    except RuntimeError as exc:
        print(f"kbflow: note: {exc}; this run uses a temporary Prefect server", file=sys.stderr)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: None}):
            yield
        return
    yield


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
    early, rest = pre.parse_known_args(argv)
    command = next((a for a in rest if not a.startswith("-")), None)
    if "-h" in rest or "--help" in rest:
        command = None  # `kbflow ask --help` prints and exits: no Prefect server for it
    try:
        background = _use_store_prefect(early.store, command)
    except PrefectHomeFull as exc:
        print(f"kbflow: error: {exc}", file=sys.stderr)
        return EXIT_FAULT
    if not early.verbose:
        # Flow and task-run lines still reach the Prefect API (the UI); the terminal gets kbflow's own lines
        # (a failure is one line from run_command; its traceback goes to the log). The watcher shows warnings.
        quiet = "WARNING" if "watch" in (argv if argv is not None else sys.argv[1:]) else "CRITICAL"
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", quiet)
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", quiet)
    if background is not None and command in WARM_COMMANDS and not os.environ.get("KBFLOW_WARM_CHILD"):
        from kbflow import warm

        if background.warm:
            env, cwd = dict(os.environ), os.getcwd()
            if (
                not _starting
                and (code := warm.run_warm(list(sys.argv[1:] if argv is None else argv), env, cwd)) is not None
            ):
                return code
            atexit.register(_launch_warm, background, env, cwd)
    args = build_parser().parse_args(argv)
    with ExitStack() as stack:
        if command in FLOW_COMMANDS:
            stack.enter_context(_server_ready(args))
            stack.enter_context(no_heartbeats())
        return run_command(args.func, args)


# The commands a warm process may run (kbflow.warm): what loads Prefect, chromadb and unstructured.
WARM_COMMANDS = {"ingest", "ask", "demo", "dataset"}


def _launch_warm(settings, env: dict, cwd: str) -> None:
    """After this command: a warm process for the next one, with this command's environment."""
    from kbflow import warm

    try:
        warm.launch(env, cwd, settings.store_dir.resolve(), settings.prefect_idle_minutes * 60)
    except OSError:
        pass


HEARTBEAT_SETTINGS = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


@contextmanager
def no_heartbeats():
    """Flow runs of this command send no heartbeat events, unless PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set.

    Prefect's heartbeat thread sleeps in 1-second steps and every flow run waits for it to wake before it ends:
    half a second a command on average, a sixth of a no-change refresh. Heartbeats only feed an automation that
    marks silent runs as crashed, which kbflow does not create; set the variable if you add one.
    """
    if any(os.environ.get(name) for name in HEARTBEAT_SETTINGS):
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


if __name__ == "__main__":
    sys.exit(main())
