"""Check the third held-out set without running kbflow or any model on it.

For every question: the CSV parses, ids and row counts are as in the README, the question is in its file's language,
unanswerable rows have no answer and no source, the expected source exists and is in the question's language (or
mixed; the other language for cross-lingual rows), and at least one alternative of expected_answer is in the source
text (raw, and as whole tokens by tasks.text.contains_answer), and for cross-lingual rows in no document of the
question's own language. Prints how often each found alternative occurs in its source and in which other documents
it occurs. Run from the repository root:
    PYTHONPATH=. .venv/bin/python benchmarks/heldout3/check_set.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from tasks.text import contains_answer, is_chinese, normalize_answer, normalize_numbers

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
# Each document's language, as in the README's files table.
LANGUAGES = {
    "company/about_yunmo.txt": "en",
    "policies/eu_shop_terms.md": "en",
    "policies/returns_cn_zh.txt": "zh",
    "products/price_list.xlsx": "mixed",
    "products/product_specs.csv": "mixed",
    "products/spring_launch_2026_zh.pptx": "zh",
    "products/tea_brewing_storage_zh.docx": "zh",
    "hr/hamburg_staff_handbook.docx": "en",
    "hr/leave_attendance_zh.html": "zh",
    "logistics/warehouse_delivery_zh.md": "zh",
    "quality/food_safety_recall_zh.pdf": "zh",
    "sales/wholesale_terms.pdf": "en",
    "support/customer_service_zh.txt": "zh",
}
OTHER = {"en": "zh", "zh": "en"}
# Rows per file: total, same-language (or mixed) answers, cross-lingual answers, unanswerable.
SHAPE = {"en": (30, 22, 5, 3), "zh": (40, 32, 5, 3)}


_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+(?=[\u3000-\u9fff\uff00-\uffef])")


def text_of(path: Path) -> str:
    """The document's text: cells of every sheet for xlsx, paragraphs and table cells for docx, text frames of every
    slide for pptx, the text layer for pdf (pdfminer, which unstructured's fast strategy reads; line breaks inside
    Chinese text closed up), else the file."""
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True)
        return "\n".join(
            " ".join("" if v is None else str(v) for v in row) for ws in book for row in ws.iter_rows(values_only=True)
        )
    if path.suffix == ".docx":
        from docx import Document

        doc = Document(path)
        cells = [c.text for t in doc.tables for r in t.rows for c in r.cells]
        return "\n".join([p.text for p in doc.paragraphs] + cells)
    if path.suffix == ".pptx":
        from pptx import Presentation

        shapes = [shape for slide in Presentation(path).slides for shape in slide.shapes if shape.has_text_frame]
        return "\n".join(shape.text_frame.text for shape in shapes)
    if path.suffix == ".pdf":
        from pdfminer.high_level import extract_text

        return _CJK_GAP.sub("", re.sub(r"\s+", " ", extract_text(path)))
    return path.read_text(encoding="utf-8")


def count(text: str, alt: str) -> int:
    """Whole-token occurrences of alt in text after the scorer's normalization."""
    want = normalize_answer(normalize_numbers(alt))
    return len(re.findall(rf"(?<!\S){re.escape(want)}(?!\S)", normalize_answer(normalize_numbers(text))))


def check_row(row, lang: str, docs: dict[str, str]) -> int:
    """Print one answerable row's finding; return the number of problems in it."""
    source = docs.get(row.expected_source)
    if source is None:
        print(f"  {row.id}: missing source {row.expected_source}")
        return 1
    problems = 0
    cross = row.id.startswith(f"{lang}-x")
    want = LANGUAGES[row.expected_source]
    if (want != OTHER[lang]) if cross else (want not in {lang, "mixed"}):
        print(f"  {row.id}: source {row.expected_source} is {want}, which does not fit a {lang} question")
        problems += 1
    alts = [a.strip() for a in row.expected_answer.split(" | ")]
    found = [a for a in alts if a in source and contains_answer(source, a)]
    if not found:
        print(f"  {row.id}: no alternative of {row.expected_answer!r} in {row.expected_source}")
        return problems + 1
    counts = {a: count(source, a) for a in found}
    elsewhere = sorted({p for p, t in docs.items() if p != row.expected_source for a in found if count(t, a)})
    flag = "" if max(counts.values()) == 1 else "  <-- more than once"
    # A cross-lingual answer must not be readable in a document of the question's own language (or a mixed one).
    # A bare number ("12%" is the token 12 to the scorer) has no language and is in many documents, so it is left out.
    worded = [a for a in found if not normalize_answer(normalize_numbers(a)).replace(".", "").isdigit()]
    near = sorted({p for p, t in docs.items() if p != row.expected_source for a in worded if count(t, a)})
    near = [p for p in near if LANGUAGES[p] != OTHER[lang]] if cross else []
    if near:
        flag += f"  <-- cross-lingual answer also in {near}"
        problems += 1
    print(f"  {row.id}: {counts} in {row.expected_source}; also in {elsewhere or '-'}{flag}")
    return problems


def main() -> int:
    docs = {p.relative_to(CORPUS).as_posix(): text_of(p) for p in sorted(CORPUS.rglob("*")) if p.is_file()}
    assert set(docs) == set(LANGUAGES), sorted(set(docs) ^ set(LANGUAGES))
    problems = 0
    for lang, (total, same, cross, none) in SHAPE.items():
        name = f"questions_{lang}.csv"
        frame = pd.read_csv(HERE / name, dtype=str, keep_default_na=False)
        assert list(frame.columns) == ["id", "question", "expected_answer", "expected_source"], frame.columns
        assert frame["id"].is_unique
        ids = list(frame["id"])
        expected_ids = (
            [f"{lang}-{n:02d}" for n in range(1, same + 1)]
            + [f"{lang}-x{n:02d}" for n in range(1, cross + 1)]
            + [f"none-{lang}-{n:02d}" for n in range(1, none + 1)]
        )
        if len(frame) != total or ids != expected_ids:
            print(f"{name}: ids {ids} are not the expected {total}: {expected_ids}")
            problems += 1
        print(f"{name}: {len(frame)} rows")
        for row in frame.itertuples():
            if is_chinese(row.question) != (lang == "zh"):
                print(f"  {row.id}: the question is not in {lang}")
                problems += 1
            if row.id.startswith("none-"):
                if row.expected_answer or row.expected_source:
                    print(f"  {row.id}: an unanswerable row has an answer or a source")
                    problems += 1
                continue
            if not row.expected_answer or not row.expected_source:
                print(f"  {row.id}: answer or source missing")
                problems += 1
                continue
            problems += check_row(row, lang, docs)
    print("problems:", problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
