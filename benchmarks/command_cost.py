"""The fixed cost of a command, from the shell: what a user waits for when there is little or no work.

    .venv/bin/python benchmarks/command_cost.py --files 848 --name command-cost

Builds a folder of N files (the CMRC paragraphs in Chinese plus English notes), ingests it once, then times
from the shell, as a user would, with no PREFECT_* setting (so each command uses the store's own Prefect):
- `kbflow --help` and `kbflow status`;
- a no-change `kbflow ingest` with KBFLOW_PREFECT=temporary (Prefect's temporary server per command, the old
  default) and with the background server (the first command starts it, the next ones reuse it);
- the same with warm starts off (KBFLOW_WARM=off: each command loads its modules itself), then with the warm process
  the first background command launched (waited for until ready, as it is seconds after a user's command);
- an ingest after one edited file (warm and not), and `kbflow ask "ONE QUESTION" --retrieval-only`, with the
  background server;
- a no-change `kbflow ingest` and `kbflow status` again after those asks.
Each figure is the median of --repeat runs (wall seconds). The background server is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import KBFLOW, run_kbflow, save, wait_warm, write_mixed_folder  # noqa: E402 - run as a script
from tasks.offline import OFFLINE_ENV  # noqa: E402


def shell_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KBFLOW_"))}
    return {**env, **OFFLINE_ENV, **extra}


def timed(*args: str, env: dict) -> float:
    return run_kbflow(*args, env=env)[0]


def median(n: int, *args: str, env: dict, before=None) -> dict:
    walls = []
    for _ in range(n):
        if before:
            before()
        walls.append(timed(*args, env=env))
    return {"median_s": round(statistics.median(walls), 2), "runs_s": [round(w, 2) for w in walls]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=848)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--name", default="command-cost")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbflow-cost-"))
    store, folder = work / "store", work / "docs"
    write_mixed_folder(folder, args.files)
    background, temporary = shell_env(), shell_env(KBFLOW_PREFECT="temporary")
    ingest = ("ingest", str(folder), "--store", str(store), "--json")
    try:
        result: dict = {"files": args.files, "repeat": args.repeat, "cpus": os.cpu_count()}
        result["first_ingest_temporary_s"] = round(timed(*ingest, env=temporary), 2)
        result["help"] = median(args.repeat, "--help", env=background)
        result["status"] = median(args.repeat, "status", "--store", str(store), env=background)
        result["nochange_ingest_temporary"] = median(args.repeat, *ingest, env=temporary)
        result["nochange_ingest_background_first_s"] = round(timed(*ingest, env=background), 2)
        cold = shell_env(KBFLOW_WARM="off")
        result["nochange_ingest_background_no_warm"] = median(args.repeat, *ingest, env=cold)
        result["warm_process_ready"] = wait_warm(store)
        result["nochange_ingest_background"] = median(args.repeat, *ingest, env=background)
        edited = folder / "en_0300.txt"
        original = edited.read_text(encoding="utf-8")

        def edit() -> None:
            edited.write_text(original + f" Edited at {time.time()}.", encoding="utf-8")

        result["one_edited_file_background_no_warm"] = median(args.repeat, *ingest, env=cold, before=edit)
        result["one_edited_file_background"] = median(args.repeat, *ingest, env=background, before=edit)
        result["ask_one_question_retrieval_only_background"] = median(
            args.repeat,
            "ask",
            "What does the service center repair?",
            "--store",
            str(store),
            "--retrieval-only",
            env=background,
        )
        # An ask opens Chroma (chromadb writes a row on opening): the next refresh must still find it as left.
        result["nochange_ingest_after_ask_background"] = median(args.repeat, *ingest, env=background)
        result["status_after_ask"] = median(args.repeat, "status", "--store", str(store), env=background)
        for name, value in result.items():
            print(f"{name}: {value}")
        print(f"saved {save(args.name, result)}")
    finally:
        subprocess.run([KBFLOW, "server", "stop", "--store", str(store)], env=background, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
