"""Per-machine measurements (answering threads, embedding precision): cached in the venv's share/kbflow folder,
keyed by what they depend on, because the fastest setting differs between CPUs of the same size."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger("kbflow.tasks.machine")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


def cpu_count() -> int:
    """The CPUs this process may run on (a container's limit, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def read_measured(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_measured(path: Path, entries: dict) -> None:
    """Atomically: two processes measuring at once leave one whole file. A read-only venv: measured again next
    time, nothing else lost."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        logger.info("Could not cache a measurement in %s: %s", path, exc)
