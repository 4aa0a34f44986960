"""What every command shares: exit codes, the one error-to-exit map, options derived from the settings."""

from __future__ import annotations

import argparse
import errno
import gc
import json
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

# 3: the run stopped on a fault (a full disk, a server gone, an unexpected error); the log has the details.
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_FAULT, EXIT_ABORTED = 0, 1, 2, 3, 130
# `kbflow server status` as `systemctl status`: 0 when the server answers, 3 when it is not running.
EXIT_NOT_RUNNING = 3


class UsageError(Exception):
    """The command line asks for something that cannot be done; the message says what to give instead."""


def disk_full(exc: BaseException) -> tuple[str, str] | None:
    """Where a run hit a full disk ('' when it cannot tell) and what kbflow's own check said about it ('' for a
    plain ENOSPC); None when that is not what happened."""
    from tasks.faults import exception_chain

    for e in exception_chain(exc):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            said = str(e.strerror or "").partition(": ")[2]
            return str(e.filename or ""), said
        if "No space left on device" in str(e) or "database or disk is full" in str(e):
            return "", ""
    return None


def write_details(exc: BaseException, store: str | None) -> str:
    """The traceback, appended to STORE/logs/kbflow-errors.log (or the temp folder when the store is not writable)."""
    text = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} kbflow {' '.join(sys.argv[1:])}\n" + "".join(
        traceback.format_exception(exc)
    )
    for folder in (Path(store or ".kbflow") / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / "kbflow-errors.log").open("a", encoding="utf-8") as fh:
                fh.write(text)
            return str(folder / "kbflow-errors.log")
        except OSError:
            continue
    return "not written: no folder could take it"


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command; every error becomes one line on stderr and its exit code (tracebacks go to the log)."""
    from pydantic import ValidationError

    from flows.errors import ConfigError
    from tasks.answer.backends import EndpointRefused
    from tasks.answer.cache import CacheError
    from tasks.store.base import StoreError, StoreUnavailable

    try:
        return func(args)
    except StoreUnavailable as exc:  # a server gone: a fault (exit 3), said in one line
        write_details(exc, getattr(args, "store", None))
        print(f"kbflow: error: {exc}", file=sys.stderr)
        return EXIT_FAULT
    except (UsageError, ConfigError, StoreError, CacheError, EndpointRefused) as exc:
        print(f"kbflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"kbflow: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # e.g. a second Ctrl-C while the watcher finished a run
        print("kbflow: aborted; the next run repairs what this one left", file=sys.stderr)
        return EXIT_ABORTED
    except Exception as exc:  # noqa: BLE001 - the last resort: one line on the terminal, the traceback in the log
        store = getattr(args, "store", None)
        log = write_details(exc, store)
        full = disk_full(exc)
        if full is not None:
            where, said = full
            place = Path(where).parent if where else Path(store or ".kbflow").resolve()
            print(
                f"kbflow: error: no space left on {place}{f' ({said})' if said else ''}: free some space and run "
                f"again (details: {log})",
                file=sys.stderr,
            )
        else:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            print(
                f"kbflow: error: {type(exc).__name__}: {first} (details: {log}; --verbose prints them)", file=sys.stderr
            )
        if getattr(args, "verbose", False):
            traceback.print_exception(exc)
        return EXIT_FAULT


def print_json(data: Any, *, line: bool = False) -> None:
    """A command's result as JSON on stdout: indented, or one object per line (line=True) for a stream of results."""
    print(json.dumps(data, ensure_ascii=False, indent=None if line else 2), flush=line)


def settle_garbage_collector() -> None:
    """Call once the heavy imports are done. What they built lives as long as the process: the
    collector stops rescanning it (freeze), and runs less often on the many small objects a run
    allocates. A no-change refresh of 20,000 files spent half its listing time in collections."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _field(model: type, name: str):
    return model.model_fields[name]


def setting_option(parser: argparse.ArgumentParser, flag: str, name: str, model: type | None = None, **kwargs) -> None:
    """An option whose type, choices and help come from where the setting is declared (Settings, or a config model).

    Its default is None, so an option not given leaves the setting (KBFLOW_* or its declared default) in force.
    """
    if model is None:
        from tasks.settings import Settings

        model = Settings
    info = _field(model, name)
    annotation = info.annotation
    if typing.get_origin(annotation) is typing.Literal:
        kwargs.setdefault("choices", list(typing.get_args(annotation)))
    elif annotation in (int, float):
        kwargs.setdefault("type", annotation)
    default = info.get_default(call_default_factory=True)
    shown = f"default {default}" if default not in (None, "") else "default none"
    env = f"KBFLOW_{name.upper()}, " if model.__name__ == "Settings" else ""
    kwargs.setdefault("help", f"{(info.description or '').rstrip('.')} ({env}{shown})")
    kwargs.setdefault("default", None)
    parser.add_argument(flag, **kwargs)


def store_options(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    """--store, --collection (and --json, --verbose) for a command that works on one knowledge base."""
    setting_option(parser, "--store", "store_dir", dest="store")
    setting_option(parser, "--collection", "collection")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show Prefect's flow and task-run log lines",
    )


def readers_options(parser: argparse.ArgumentParser) -> None:
    """--groups and --all-documents: for whom a command reads the knowledge base."""
    setting_option(parser, "--groups", "groups", metavar="GROUP,GROUP")
    parser.add_argument(
        "--all-documents",
        action="store_true",
        help="an administrator's run: read every document whatever its readers (never set by a variable; the "
        "report says so)",
    )
