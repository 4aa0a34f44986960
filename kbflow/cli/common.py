"""What every command shares: exit codes, the one error-to-exit map, options derived from the settings."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import typing
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 130


class UsageError(Exception):
    """The command line asks for something that cannot be done; the message says what to give instead."""


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command; every error a user can fix becomes one line on stderr and its exit code."""
    from pydantic import ValidationError

    from flows.errors import ConfigError
    from tasks.store.base import StoreError

    try:
        return func(args)
    except (UsageError, ConfigError, StoreError) as exc:
        print(f"kbflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"kbflow: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # e.g. a second Ctrl-C while the watcher finished a run
        print("kbflow: aborted; the next run repairs what this one left", file=sys.stderr)
        return EXIT_ABORTED


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


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
        from flows.settings import Settings

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
    parser.add_argument(flag, default=None, **kwargs)


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
