"""Shared pieces of the benchmarks: the CMRC 2018 trial set as a folder of documents and questions."""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cjk_font_path() -> Path:
    """WenQuanYi Micro Hei from the paperang-p2-fonts-cjk wheel (a dev dependency): no CJK font is on the system."""
    import importlib.util

    spec = importlib.util.find_spec("paperang_p2_fonts_cjk")
    assert spec is not None, "paperang-p2-fonts-cjk (dev dependency) is not installed: run make install"
    return Path(spec.submodule_search_locations[0]) / "fonts" / "wqy-microhei.ttc"
# The evaluation data lives beside the repository, never in it (benchmarks take --cmrc to point elsewhere).
CMRC = REPO.parent / "shared" / "data" / "cmrc2018_trial.json"
RESULTS = REPO / "benchmarks" / "results"
KBFLOW = str(Path(sys.executable).parent / "kbflow")


def run_kbflow(*args: str, env: dict) -> tuple[float, str]:
    """A `kbflow` command from the shell, as a user runs it: its wall seconds and stdout; the benchmark stops,
    with the command's stderr, if it fails."""
    started = time.perf_counter()
    proc = subprocess.run([KBFLOW, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"kbflow {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc.stdout


def wait_warm(store: Path, timeout: float = 120.0) -> bool:
    """Wait until the warm process that the first background command launched is ready (as it is a few seconds
    after a user's command); whether it got ready."""
    log = store / "prefect" / "warm.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "ready in" in log.read_text(encoding="utf-8"):
            return True
        time.sleep(0.5)
    return False


def timed_ingest(folder: Path, store: Path, env: dict) -> tuple[float, dict]:
    """`kbflow ingest FOLDER --store STORE --json`: wall seconds and its summary."""
    wall, out = run_kbflow("ingest", str(folder), "--store", str(store), "--json", env=env)
    return wall, json.loads(out)


def load_cmrc(path: Path = CMRC) -> tuple[dict[str, str], list[dict]]:
    """Paragraphs by id, and questions with their gold paragraph and answers."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    paragraphs, questions = {}, []
    for item in data:
        para = item["paragraphs"][0]
        paragraphs[item["id"]] = para["context"]
        for qa in para["qas"]:
            questions.append(
                {
                    "id": qa["id"],
                    "question": qa["question"],
                    "source": f"{item['id']}.txt",
                    "answers": [a["text"] for a in qa["answers"]],
                }
            )
    return paragraphs, questions


def write_cmrc_folder(folder: Path, cmrc: Path = CMRC) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs, _ = load_cmrc(cmrc)
    for pid, text in paragraphs.items():
        (folder / f"{pid}.txt").write_text(text, encoding="utf-8")
    return len(paragraphs)


def demo_sentences() -> list[str]:
    """The English sentences of the demo corpus's text files (the material of the benchmarks' English notes)."""
    sentences = []
    for p in (REPO / "docs" / "demo" / "corpus").rglob("*"):
        if p.suffix in {".txt", ".md"}:
            sentences += [s.strip() + "." for s in p.read_text(encoding="utf-8").split(".") if len(s.strip()) > 30]
    return sentences


def write_cmrc_questions(path: Path, limit: int, seed: int = 7, cmrc: Path = CMRC) -> int:
    """A question set (CSV: question, expected_answer, expected_source) of `limit` CMRC questions drawn with a seed;
    a question's reference answers are joined with " | " (kbflow accepts any of them)."""
    import csv

    _, questions = load_cmrc(cmrc)
    picked = random.Random(seed).sample([q for q in questions if q["question"].strip()], limit)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "expected_answer", "expected_source"])
        for q in picked:
            writer.writerow([q["question"], " | ".join(dict.fromkeys(q["answers"])), q["source"]])
    return len(picked)


def write_mixed_folder(folder: Path, n: int, seed: int = 7, cmrc: Path = CMRC) -> int:
    """n text files: the CMRC paragraphs (Chinese) plus English files made of demo-corpus sentences."""
    count = write_cmrc_folder(folder, cmrc)
    sentences = demo_sentences()
    rng = random.Random(seed)
    for i in range(count, n):
        body = " ".join(rng.choice(sentences) for _ in range(rng.randint(4, 14)))
        (folder / f"en_{i:04d}.txt").write_text(f"Note {i}. {body}", encoding="utf-8")
    return n


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
