"""What finding tables adds to reading a text-layer PDF: partition_document with and without the table step, per
page, on generated PDFs (prose only; one ruled and one unruled 16-row table a page) and on any PDFs given.

    .venv/bin/python benchmarks/pdf_tables.py [more.pdf ...]

Best of 5 runs each, after a warm-up (imports): partition_document without the table step, and the table step
alone on the same elements. Prints ms per page and the table sections found; writes
benchmarks/results/pdf_tables.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402 - run as a script: the repository goes on sys.path first

PROSE = "Employees book hotels through the portal and keep every receipt for thirty days; the manager approves trips. "


def prose_pdf(pages: int) -> bytes:
    """Pages of six paragraphs each."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=11)
    for n in range(pages):
        pdf.add_page()
        for k in range(6):
            pdf.multi_cell(0, 6, f"Page {n + 1}, rule {k + 1}. " + PROSE * 3, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    return bytes(pdf.output())


def table_pdf(pages: int, ruled: bool) -> bytes:
    """Pages of a paragraph, a 16-row price table (ruled, or without lines) and a paragraph."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=11)
    rows = [["Model", "EU price", "US price"]]
    rows += [[f"D{i}", f"{100 + 17 * i} EUR", f"{90 + 23 * i} USD"] for i in range(1, 16)]
    for _ in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, PROSE * 3, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        style = {} if ruled else {"borders_layout": "NONE", "headings_style": FontFace(emphasis="")}
        with pdf.table(col_widths=(30, 40, 40), width=110, align="LEFT", **style) as table:
            for values in rows:
                row = table.row()
                for value in values:
                    row.cell(value)
        pdf.ln(3)
        pdf.multi_cell(0, 6, PROSE * 2, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def best_of(data: bytes, runs: int) -> tuple[float, float, int]:
    """(best seconds of partition_document without the table step, best seconds of the table step alone on the
    same elements, table sections found)."""
    import tasks.ingest.partition as partition
    from tasks.ingest.pdf_tables import with_pdf_tables

    partition._configure_unstructured()
    elements = partition._elements(data, "bench.pdf", ".pdf")
    partition.with_pdf_tables = lambda data, elements, warnings: elements
    try:
        read = min(_seconds(lambda: partition.partition_document(data, "bench.pdf")) for _ in range(runs))
    finally:
        partition.with_pdf_tables = with_pdf_tables
    tables = min(_seconds(lambda: with_pdf_tables(data, elements, [])) for _ in range(runs))
    found = partition.group_sections(with_pdf_tables(data, elements, []))
    return read, tables, sum(1 for s in found if s.table_header)


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", type=Path, help="more text-layer PDFs to time")
    args = parser.parse_args()
    from tasks.ingest.scan import pdf_page_count
    from tasks.offline import apply_offline_env

    apply_offline_env()
    docs = [
        ("generated prose", prose_pdf(40)),
        ("generated, one ruled table a page", table_pdf(20, ruled=True)),
        ("generated, one unruled table a page", table_pdf(20, ruled=False)),
    ] + [(p.name, p.read_bytes()) for p in args.pdfs]
    best_of(docs[0][1], runs=1)  # imports and first-call set-up
    results = []
    for label, data in docs:
        pages = pdf_page_count(data)
        read, tables, found = best_of(data, runs=5)
        row = {
            "document": label,
            "pages": pages,
            "partition_ms_per_page": round(read / pages * 1000, 1),
            "tables_ms_per_page": round(tables / pages * 1000, 1),
            "table_sections": found,
        }
        results.append(row)
        print(
            f"{label}: {pages} pages, partition {row['partition_ms_per_page']} ms/page, "
            f"tables add {row['tables_ms_per_page']} ms/page, {found} table sections"
        )
    print(f"wrote {save('pdf_tables', {'runs': 5, 'documents': results})}")


if __name__ == "__main__":
    main()
