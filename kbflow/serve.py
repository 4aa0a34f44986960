"""`kbflow reports serve`: the reports folder over read-only HTTP, so the Prefect UI can link to report.html."""

from __future__ import annotations

import json
import os
import socket
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tasks.report.links import SERVE_FILE


class _ReadOnlyHandler(SimpleHTTPRequestHandler):
    """GET and HEAD only (SimpleHTTPRequestHandler has nothing else); dot-files are not served."""

    def send_head(self):
        if any(part.startswith(".") for part in self.path.split("?")[0].split("/") if part):
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def log_message(self, format, *args):  # no line per request
        pass


def serve_reports(reports_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> int:
    """Serve reports_dir until interrupted; record where, so new reports link to it."""
    reports_dir = Path(reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), partial(_ReadOnlyHandler, directory=str(reports_dir)))
    shown_host = host if host not in ("0.0.0.0", "") else socket.gethostname()
    url = f"http://{shown_host}:{server.server_address[1]}/"
    marker = reports_dir / SERVE_FILE
    marker.write_text(
        json.dumps(
            {
                "host": "127.0.0.1" if host in ("0.0.0.0", "") else host,
                "port": server.server_address[1],
                "url": url,
                "pid": os.getpid(),
            }
        ),
        encoding="utf-8",
    )
    print(f"Serving {reports_dir} read-only at {url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        marker.unlink(missing_ok=True)
    return 0
