"""`kbflow reports serve`: the reports folder over read-only HTTP, so the Prefect UI can link to report.html."""

from __future__ import annotations

import json
import os
import socket
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SERVE_FILE = ".serving.json"  # written while a server runs: where it listens, for the query flow's link


class _ReadOnlyHandler(SimpleHTTPRequestHandler):
    """GET and HEAD only (SimpleHTTPRequestHandler has nothing else); dot-files are not served."""

    def send_head(self):
        if any(part.startswith(".") for part in self.path.split("?")[0].split("/") if part):
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def log_message(self, format, *args):  # no line per request
        pass


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


def serve_reports(reports_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> int:
    """Serve reports_dir until interrupted; record where, so new reports link to it."""
    reports_dir = Path(reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), partial(_ReadOnlyHandler, directory=str(reports_dir)))
    shown_host = host if host not in ("0.0.0.0", "") else socket.gethostname()
    url = f"http://{shown_host}:{server.server_address[1]}/"
    marker = reports_dir / SERVE_FILE
    marker.write_text(json.dumps({"host": "127.0.0.1" if host in ("0.0.0.0", "") else host,
                                  "port": server.server_address[1], "url": url, "pid": os.getpid()}), encoding="utf-8")
    print(f"Serving {reports_dir} read-only at {url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        marker.unlink(missing_ok=True)
    return 0
