"""Tables keep their header: every chunk of a csv, xlsx, docx, html or pptx table carries its column names."""

from __future__ import annotations

import io

import pytest

from tasks.ingest.partition import Section, partition_document
from tasks.ingest.split import split_sections
from tasks.ingest.tables import html_table_rows, markdown_table, split_table

HEADER = ["Model", "Region", "Price"]
ROWS = [[f"D{i}", region, f"{100 + i * 7} EUR"] for i in range(1, 31) for region in ("EU", "US")]
MD_HEADER = "| Model | Region | Price |\n|---|---|---|"


def chunks_of(sections, size=200):
    return split_sections(sections, source="t", source_id="s", doc_sha256="h", chunk_size=size, chunk_overlap=40)


@pytest.mark.unit
def test_html_table_becomes_markdown_with_its_header():
    html = "<table><tr><th>Model</th><th>Price</th></tr><tr><td>D3</td><td>1|2 <br/>EUR</td></tr><tr></tr></table>"
    rows = html_table_rows(html)
    assert rows == [["Model", "Price"], ["D3", "1|2 EUR"]]
    assert markdown_table(rows) == ("| Model | Price |\n|---|---|", ["| D3 | 1\\|2 EUR |"])


@pytest.mark.unit
def test_every_piece_of_a_long_table_starts_with_the_header_and_no_row_is_cut_or_lost():
    header, body = markdown_table([HEADER, *ROWS])
    pieces = split_table(header, body, 200)
    assert len(pieces) > 5 and all(p.startswith(MD_HEADER + "\n") and len(p) <= 200 for p in pieces)
    assert [line for p in pieces for line in p.split("\n")[2:]] == body


@pytest.mark.unit
def test_a_table_section_is_chunked_by_rows_under_its_header_and_text_around_it_as_usual():
    header, body = markdown_table([HEADER, *ROWS])
    sections = [
        Section(text="Price list. " * 30, section="Prices"),
        Section(text="\n".join([header, *body]), page=2, section="Prices", table_header=header),
    ]
    chunks = chunks_of(sections)
    table_chunks = [c for c in chunks if c.page == 2]
    # Every table chunk: the table's title (its section), then the header row.
    assert table_chunks and all(c.text.startswith("Prices\n" + MD_HEADER) for c in table_chunks)
    assert not any(c.text.startswith("|") for c in chunks if c.page is None)
    (d3_eu,) = [c for c in table_chunks if "| D3 | EU | 121 EUR |" in c.text]
    assert d3_eu.section == "Prices"


def _csv() -> bytes:
    return "\n".join(",".join(r) for r in [HEADER, *ROWS]).encode()


def _xlsx() -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(ROWS, columns=HEADER).to_excel(buf, sheet_name="EU price list", index=False)
    return buf.getvalue()


def _docx() -> bytes:
    import docx

    doc = docx.Document()
    doc.add_heading("Price list", level=1)
    table = doc.add_table(rows=0, cols=3)
    for row in [HEADER, *ROWS]:
        cells = table.add_row().cells
        for cell, value in zip(cells, row):
            cell.text = value
    doc.add_paragraph("Prices include VAT.")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _html() -> bytes:
    head = "".join(f"<th>{c}</th>" for c in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in ROWS)
    return f"<html><body><h1>Price list</h1><table><tr>{head}</tr>{body}</table></body></html>".encode()


def _pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Price list"
    table = slide.shapes.add_table(len(ROWS) + 1, 3, Inches(0.5), Inches(1.5), Inches(8), Inches(5)).table
    for i, row in enumerate([HEADER, *ROWS]):
        for j, value in enumerate(row):
            table.cell(i, j).text = value
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, make",
    [
        ("prices.csv", _csv),
        ("prices.xlsx", _xlsx),
        ("prices.docx", _docx),
        ("prices.html", _html),
        ("prices.pptx", _pptx),
    ],
)
def test_table_chunks_carry_their_header(name, make):
    chunks = chunks_of(partition_document(make(), name))
    table_chunks = [c for c in chunks if MD_HEADER + "\n" in c.text]
    assert len(table_chunks) > 5, [c.text[:80] for c in chunks]
    # Each: at most the table's title (its heading, where the format has one) on one line, then the header row.
    titles = {c.text.split(MD_HEADER)[0] for c in table_chunks}
    assert len(titles) == 1 and titles.pop().count("\n") <= 1
    # "What does the D3 cost in the EU?": the row is found together with its column names.
    (d3_eu,) = [c for c in table_chunks if "| D3 | EU | 121 EUR |" in c.text]
    assert MD_HEADER in d3_eu.text
    rows = [line for c in table_chunks for line in c.text.split(MD_HEADER + "\n")[1].split("\n")]
    assert len(rows) == len(ROWS)


@pytest.mark.unit
def test_a_heading_alone_over_its_table_is_not_a_chunk_of_its_own():
    header, body = markdown_table([HEADER, *ROWS])
    sections = [
        Section(text="二、住宿标准（每晚上限）", section="二、住宿标准（每晚上限）"),
        Section(text="\n".join([header, *body]), section="二、住宿标准（每晚上限）", table_header=header),
        Section(text="三、餐费补贴", section="三、餐费补贴"),  # a heading over text: kept as it was
    ]
    texts = [c.text for c in chunks_of(sections)]
    assert texts[0].startswith("二、住宿标准（每晚上限）\n" + MD_HEADER)
    assert "二、住宿标准（每晚上限）" not in texts and texts[-1] == "三、餐费补贴"
