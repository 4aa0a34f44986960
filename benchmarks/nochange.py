"""A no-change refresh of a large folder: how long the flow takes when nothing changed.

    .venv/bin/python benchmarks/nochange.py --files 20000 --name nochange-20k

Builds N small text files, ingests them once, then times three more `kbflow ingest` runs (no-change
refreshes; the first right after the ingest is the figure): whole process (wall) and inside the flow (duration_s). Both
runs use the CLI as a user
would; PREFECT_API_URL is passed through if set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save, timed_ingest
from tasks.offline import OFFLINE_ENV  # noqa: E402 - run as a script: the repository goes on sys.path first


def run(folder: Path, store: Path) -> tuple[float, dict]:
    return timed_ingest(folder, store, {**os.environ, **OFFLINE_ENV})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--name", default="nochange")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbflow-nochange-"))
    try:
        folder = work / "docs"
        for i in range(args.files):
            sub = folder / f"d{i // 1000:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"note_{i:05d}.txt").write_text(f"Note {i}: the widget batch {i % 97} ships from dock {i % 13}.\n")
        first_wall, first = run(folder, work / "store")
        again = [run(folder, work / "store") for _ in range(3)]
        for _, second in again:
            assert second["unchanged"] == args.files and second["chunks_written"] == 0, second
        second_wall, second = again[0]
        result = {
            "files": args.files,
            "command": f"benchmarks/nochange.py --files {args.files}",
            "first_ingest": {
                "wall_s": round(first_wall, 1),
                "in_flow_s": first["duration_s"],
                "chunks": first["chunks_written"],
            },
            "no_change": {
                "wall_s": round(second_wall, 1),
                "in_flow_s": second["duration_s"],
                "in_flow_s_three_runs": [s["duration_s"] for _, s in again],
            },
            "prefect_api_url_set": bool(os.environ.get("PREFECT_API_URL")),
        }
        print(json.dumps(result, indent=2))
        print(f"saved to {save(args.name, result)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
