"""Question sets from RGB (Chen et al., AAAI 2024), pooled into one corpus per language.

    .venv/bin/python benchmarks/rgb_sets.py RGB_DATA_DIR OUT_DIR

RGB_DATA_DIR: the `data/` folder of github.com/chen700564/RGB (commit 65ec39e): `en_fact.json` (English: its
`positive` passages are the true ones) and `zh_refine.json` (Chinese). Not copied into this repository.

For each language, OUT_DIR/rgb-LANG/ gets corpus/ (each question's first 4 positive and first 6 negative passages,
one .txt file each: qNNN_pJ.txt, qNNN_nJ.txt) and two question sets, dev.csv and held.csv (alternate questions).
Only questions with a single expected answer are kept (RGB's lists of several required items are not). Every
question's passages share one corpus, as a knowledge base would: the negatives of one question are distractors for
the others (Wimbledon 2019 beside 2021), which RGB's own per-question setting does not have.

Then, for example:
    .venv/bin/python benchmarks/compare.py OUT_DIR/rgb-zh/corpus --name rgb-zh-dev --questions OUT_DIR/rgb-zh/dev.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

POSITIVES, NEGATIVES = 4, 6
ZH_QUESTIONS = 80


def _english_answer(row: dict) -> str | None:
    return row["answer"] if isinstance(row["answer"], str) else None


def _chinese_answer(row: dict) -> str | None:
    answer = row["answer"]
    if not (isinstance(answer, list) and len(answer) == 1):
        return None
    one = answer[0]
    return " | ".join(one) if isinstance(one, list) else one


def build(out: Path, name: str, rows: list[dict], answer_of) -> tuple[int, int]:
    """Write out/name/{corpus, dev.csv, held.csv}; return (questions, files)."""
    base = out / name
    (base / "corpus").mkdir(parents=True, exist_ok=True)
    questions = files = 0
    with (base / "dev.csv").open("w", newline="", encoding="utf-8") as dev, (base / "held.csv").open(
        "w", newline="", encoding="utf-8"
    ) as held:
        writers = [csv.writer(dev), csv.writer(held)]
        for w in writers:
            w.writerow(["id", "question", "expected_answer", "expected_source"])
        for row in rows:
            answer = answer_of(row)
            if answer is None:
                continue
            for kind, passages in (("p", row["positive"][:POSITIVES]), ("n", row["negative"][:NEGATIVES])):
                for j, text in enumerate(passages):
                    (base / "corpus" / f"q{row['id']:03d}_{kind}{j}.txt").write_text(text, encoding="utf-8")
                    files += 1
            writers[questions % 2].writerow([f"{name}-{row['id']}", row["query"], answer, ""])
            questions += 1
    return questions, files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rgb_data", type=Path, help="RGB's data/ folder (en_fact.json, zh_refine.json)")
    ap.add_argument("out", type=Path, help="where rgb-en/ and rgb-zh/ are written")
    args = ap.parse_args()

    def read(name: str) -> list[dict]:
        return [json.loads(line) for line in (args.rgb_data / name).read_text(encoding="utf-8").splitlines() if line]

    english = read("en_fact.json")
    chinese = [r for r in read("zh_refine.json") if _chinese_answer(r)][:ZH_QUESTIONS]
    for name, rows, answer_of in (("rgb-en", english, _english_answer), ("rgb-zh", chinese, _chinese_answer)):
        questions, files = build(args.out, name, rows, answer_of)
        print(f"{name}: {questions} questions ({questions - questions // 2} dev, {questions // 2} held), {files} files")


if __name__ == "__main__":
    main()
