"""Links to a report: over HTTP when `kbflow reports serve` runs for its folder, else a file:// URL."""

from __future__ import annotations

import json
import socket
from pathlib import Path

SERVE_FILE = ".serving.json"  # written while a reports server runs: where it listens, for the answer flow's link


def serving_url(reports_dir: Path) -> str | None:
    """The base URL of a running `kbflow reports serve` for this folder, if one answers."""
    try:
        info = json.loads((Path(reports_dir) / SERVE_FILE).read_text(encoding="utf-8"))
        with socket.create_connection((info["host"], int(info["port"])), timeout=0.5):
            return info["url"]
    except (OSError, ValueError, KeyError):
        return None


def report_link(reports_dir: Path, report_dir: Path) -> str:
    """An http:// link to a report when the reports server runs, else its file:// URL (copy the path)."""
    base = serving_url(reports_dir)
    try:
        rel = Path(report_dir).resolve().relative_to(Path(reports_dir).resolve())
    except ValueError:
        base = None
    if base:
        return f"{base.rstrip('/')}/{rel.as_posix()}/report.html"
    return (Path(report_dir).resolve() / "report.html").as_uri()
