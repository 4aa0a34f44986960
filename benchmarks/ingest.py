"""Ingest throughput: the demo corpus, a 1,000-file folder, and a no-change re-run over it.

.venv/bin/python benchmarks/ingest.py            # all three; each phase in its own process for peak memory
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, peak_rss_mb, save, write_mixed_folder  # noqa: E402 - run as a script: the repository goes on sys.path first


def phase(source: str, store: str) -> dict:
    """One ingest run in this process: its summary, wall time and peak RSS."""
    from flows.ingest import ingest_flow

    started = time.perf_counter()
    summary = ingest_flow(source_path=source, store_dir=store)
    wall = time.perf_counter() - started
    docs = summary["added"] + summary["updated"]
    return {
        "documents": docs + summary["unchanged"],
        "indexed": docs,
        "unchanged": summary["unchanged"],
        "chunks": summary["chunks_written"],
        "wall_s": round(wall, 2),
        "flow_s": summary["duration_s"],
        "docs_per_s": round(docs / wall, 2) if docs else None,
        "chunks_per_s": round(summary["chunks_written"] / wall, 2) if docs else None,
        "peak_rss_mb": round(peak_rss_mb()),
    }


def run_phase(source: Path, store: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", str(source), str(store)], capture_output=True, text=True, cwd=REPO
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="kbflow-bench-"))
    try:
        demo = run_phase(REPO / "docs" / "demo" / "corpus", work / "demo-store")
        folder = work / "mixed"
        write_mixed_folder(folder, 1000)
        first = run_phase(folder, work / "mixed-store")
        again = run_phase(folder, work / "mixed-store")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"demo_corpus": demo, "folder_1000_files": first, "no_change_rerun_1000_files": again}
    print(json.dumps(result, indent=2))
    print(f"saved to {save('ingest', result)}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--phase":
        import logging

        logging.disable(logging.INFO)
        print(json.dumps(phase(sys.argv[2], sys.argv[3])))
    else:
        main()
