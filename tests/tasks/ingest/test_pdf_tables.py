"""Tables in text-layer PDFs keep their header: PDFs the tests write themselves (fpdf2), ruled and unruled, English and
Chinese, read by the real unstructured and pdfplumber, chunked and indexed like every other document."""

from __future__ import annotations

import io

import pytest

from tasks.ingest.partition import group_sections, partition_document
from tasks.ingest.pdf_tables import with_pdf_tables
from tasks.ingest.split import split_sections
from tasks.ingest.table_grid import (
    Box,
    aligned_tables,
    cell_text,
    clean_rows,
    has_column_boxes,
    is_table,
    word_segments,
)
from tests.conftest import cjk_font_path

EN_HEAD = ["Model", "EU price", "US price"]
EN_ROWS = [[f"D{i}", f"{100 + 17 * i} EUR", f"{90 + 23 * i} USD"] for i in range(1, 5)]
ZH_HEAD = ["型号", "欧盟价格", "美国价格"]
ZH_ROWS = [[f"D{i}", f"{100 + 17 * i} 欧元", f"{90 + 23 * i} 美元"] for i in range(1, 5)]
EN_MD = "| Model | EU price | US price |\n|---|---|---|"
ZH_MD = "| 型号 | 欧盟价格 | 美国价格 |\n|---|---|---|"
BEFORE = "The price list below is valid from March 2026 and includes shipping to the customer's site."
AFTER = "Discounts for orders of more than ten units are agreed with the sales team."
ZH_BEFORE = "下表列出各型号在欧盟和美国的价格，自二〇二六年三月起生效。"
ZH_AFTER = "价格每季度调整一次，订购十台以上可与销售部商定折扣。"


def table_pdf(head, rows, before=BEFORE, after=AFTER, *, ruled=True, repeat_header=True, tight=False, glued=False):
    """An A4 text-layer PDF: a title, a paragraph, the table (ruled, or columns without lines; tight: rows so close
    that pdfminer reads each column as one box), a paragraph (glued: no space around the table, so that pdfminer
    joins the paragraphs' lines with the first and last rows' first cells)."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4")
    for style in ("", "B"):
        pdf.add_font("wqy", style=style, fname=str(cjk_font_path()))
    pdf.add_page()
    pdf.set_font("wqy", size=16)
    pdf.cell(0, 10, "Price list", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("wqy", size=11)
    pdf.multi_cell(0, 5 if glued else 6, before, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(0 if glued else 4)
    style = {} if ruled else {"borders_layout": "NONE", "headings_style": FontFace(emphasis="")}
    if tight or glued:
        style.update(line_height=5, padding=0.5 if glued else 0)
    if glued:
        style.update(first_row_as_headings=False)
    with pdf.table(col_widths=(30, 40, 40), width=110, align="LEFT", repeat_headings=int(repeat_header), **style) as t:
        for values in [head, *rows]:
            row = t.row()
            for value in values:
                row.cell(value)
    pdf.ln(0 if glued else 4)
    pdf.multi_cell(0, 5 if glued else 6, after, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def prose_pdf() -> bytes:
    """Prose only: English paragraphs, a Chinese paragraph, a numbered list, a ruled line under the title."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("wqy", fname=str(cjk_font_path()))
    pdf.add_page()
    pdf.set_font("wqy", size=16)
    pdf.cell(0, 10, "Travel policy", new_x="LMARGIN", new_y="NEXT")
    pdf.line(10, 22, 200, 22)
    pdf.set_font("wqy", size=11)
    for n in range(1, 4):
        text = f"Rule {n}. Employees book hotels through the portal and keep every receipt for {30 * n} days. " * 4
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    zh = "差旅报销政策：出差住宿标准为每晚五百元，发票须在三十天内提交财务部。" * 5
    pdf.multi_cell(0, 6, zh, new_x="LMARGIN", new_y="NEXT")
    for step in ("1. Open the lid.", "2. Press the red button.", "3. Wait for the green light.", "4. Close it."):
        pdf.cell(0, 6, step, new_x="LMARGIN", new_y="NEXT")
    # A page in two columns, then three: tall boxes side by side, as a tight table's columns are.
    pdf.add_page()
    for columns, top in ((2, 20), (3, 150)):
        width = 190 / columns - 5
        for c in range(columns):
            pdf.set_xy(10 + c * (width + 5), top)
            text = f"Column {c + 1}. The manager approves every trip abroad in writing before tickets are bought. " * 4
            pdf.multi_cell(width, 5, text)
    return bytes(pdf.output())


def chunks_of(sections, size=120):
    return split_sections(sections, source="t.pdf", source_id="s", doc_sha256="h", chunk_size=size, chunk_overlap=0)


@pytest.mark.unit
def test_short_boxes_aligned_in_rows_and_columns_are_a_table_and_lines_of_prose_are_not():
    cells = [["Model", "EU price", "US price"], ["D1", "117 EUR", "113 USD"], ["D2", "134 EUR", "136 USD"]]
    boxes, texts = {0: Box(30, 40, 560, 52)}, {0: "A paragraph above the table, as wide as the page. " * 2}
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            i = len(boxes)
            # The numbers right-aligned: boxes of one column differ in width but overlap.
            boxes[i], texts[i] = Box(30 + 90 * c + (0 if r == 0 else 5), 70 + 20 * r, 70 + 90 * c, 80 + 20 * r), text
    boxes[10], texts[10] = Box(30, 150, 500, 162), "A paragraph below it."
    (table,) = aligned_tables(boxes, texts)
    assert table.rows == cells
    assert table.replaced == set(range(1, 10))
    prose = {i: Box(30, 40 + 14 * i, 560, 52 + 14 * i) for i in range(8)}
    assert aligned_tables(prose, {i: f"Line {i} of a paragraph that fills the page." for i in prose}) == []
    # Two rows of two boxes are not enough (a header and one row could be a caption beside a figure).
    assert aligned_tables({i: boxes[i] for i in range(1, 7)}, texts) == []


@pytest.mark.unit
def test_words_are_cut_into_cells_at_column_gaps_and_tall_boxes_side_by_side_mark_a_tight_table():
    def word(text, x0, top):
        return {"text": text, "x0": x0, "x1": x0 + 5.5 * len(text), "top": top, "bottom": top + 11}

    words = [word("Model", 31, 70), word("EU", 116, 70), word("price", 131, 70), word("D1", 31, 82)]
    words += [word("117", 116, 82.5), word("EUR", 136, 82.5), word("D2", 31, 94), word("134", 116, 94)]
    words += [word("EUR", 136, 94), word("A", 31, 120), word("sentence", 40, 120), word("below.", 88, 120)]
    boxes, texts = word_segments(words)
    assert set(texts.values()) == {"Model", "EU price", "D1", "117 EUR", "D2", "134 EUR", "A sentence below."}
    (table,) = aligned_tables(boxes, texts)
    assert table.rows == [["Model", "EU price"], ["D1", "117 EUR"], ["D2", "134 EUR"]]
    line = Box(30, 40, 560, 52)
    columns = {0: line, 1: Box(30, 60, 60, 130), 2: Box(116, 60, 160, 130), 3: Box(230, 60, 275, 130)}
    assert has_column_boxes(columns)
    assert not has_column_boxes({0: line, 1: Box(30, 60, 560, 130), 2: Box(30, 140, 560, 152)})


@pytest.mark.unit
def test_cells_join_their_lines_and_a_frame_around_prose_is_not_a_table():
    assert cell_text("Ships in two\nweeks") == "Ships in two weeks"
    assert cell_text("欧盟\n价格") == "欧盟价格"
    assert cell_text(None) == ""
    assert clean_rows([["Model", None, "Price"], [None, None, None], ["D1", "", "9 EUR"]]) == [
        ["Model", "Price"],
        ["D1", "9 EUR"],
    ]
    assert not is_table([["A whole page of prose in one box"], ["and a footer box"]])
    assert not is_table([["Model", "Price"]])
    assert is_table([["Model", "Price"], ["D1", "9 EUR"]])


def _check_price_table(data: bytes, name: str, md_header: str, rows, before: str, after: str) -> None:
    sections = partition_document(data, name)
    assert all(s.page == 1 for s in sections)
    (table,) = [s for s in sections if s.table_header]
    assert table.table_header == md_header
    # In its place: after the paragraph before it, before the paragraph after it.
    texts = [s.text for s in sections]
    where = {what: next(k for k, t in enumerate(texts) if what in t) for what in (before, after)}
    assert where[before] < sections.index(table) < where[after]
    chunks = chunks_of(sections)
    table_chunks = [c for c in chunks if "|---|" in c.text]
    assert len(table_chunks) >= 2, [c.text for c in chunks]
    # Every chunk of the table: at most its title on one line, then the header row, then whole rows.
    assert all(c.text.split(md_header)[0].count("\n") <= 1 and md_header + "\n" in c.text for c in table_chunks)
    lines = [line for c in table_chunks for line in c.text.split(md_header + "\n")[1].split("\n")]
    assert lines == ["| " + " | ".join(row) + " |" for row in rows]
    # The cells are not also loose text, and the paragraphs are there once each (unstructured may take a short
    # paragraph, as it does the Chinese one, for a title: every chunk of the table below it then starts with it).
    loose = "\n".join(c.text for c in chunks if c not in table_chunks)
    assert not any(cell in loose for row in rows for cell in row[1:])
    assert sum(s.text.count(before) for s in sections) == 1 and sum(s.text.count(after) for s in sections) == 1
    assert loose.count(after) == 1 and "\n".join(c.text for c in chunks).count(after) == 1
    assert loose.count(before) == 1 or all(c.text.startswith(before + "\n" + md_header) for c in table_chunks)


@pytest.mark.slow
@pytest.mark.parametrize("glued", [False, True], ids=["spaced", "glued"])
def test_a_ruled_price_table_in_a_pdf_is_chunked_with_its_header_between_its_paragraphs(glued):
    _check_price_table(table_pdf(EN_HEAD, EN_ROWS, glued=glued), "prices.pdf", EN_MD, EN_ROWS, BEFORE, AFTER)


@pytest.mark.slow
def test_a_chinese_ruled_price_table_keeps_its_chinese_header():
    data = table_pdf(ZH_HEAD, ZH_ROWS, ZH_BEFORE, ZH_AFTER)
    _check_price_table(data, "价格表.pdf", ZH_MD, ZH_ROWS, ZH_BEFORE, ZH_AFTER)


@pytest.mark.slow
@pytest.mark.parametrize("tight", [False, True], ids=["spaced", "tight"])
def test_a_table_without_lines_is_found_by_its_aligned_columns(tight):
    data = table_pdf(EN_HEAD, EN_ROWS, ruled=False, tight=tight)
    _check_price_table(data, "prices.pdf", EN_MD, EN_ROWS, BEFORE, AFTER)


@pytest.mark.slow
@pytest.mark.parametrize("ruled", [True, False], ids=["ruled", "unruled"])
def test_a_table_over_a_page_break_without_its_header_repeated_gets_the_header_on_the_next_page(ruled):
    rows = [[f"D{i}", f"{100 + 17 * i} EUR", f"{90 + 23 * i} USD"] for i in range(1, 61)]
    sections = partition_document(table_pdf(EN_HEAD, rows, ruled=ruled, repeat_header=False), "long.pdf")
    tables = [s for s in sections if s.table_header]
    assert [s.page for s in tables] == [1, 2] and all(s.table_header == EN_MD for s in tables)
    chunks = [c for c in chunks_of(sections, size=300) if "|---|" in c.text]
    assert {c.page for c in chunks} == {1, 2} and all(EN_MD + "\n" in c.text for c in chunks)
    lines = [line for c in chunks for line in c.text.split(EN_MD + "\n")[1].split("\n")]
    assert lines == ["| " + " | ".join(row) + " |" for row in rows]
    assert sections[-1].page == 2 and sections[-1].text == AFTER


@pytest.mark.slow
def test_a_pdf_of_prose_and_a_list_is_read_exactly_as_before():
    from unstructured.partition.pdf import partition_pdf

    data = prose_pdf()
    sections = partition_document(data, "policy.pdf")
    assert not any(s.table_header for s in sections)
    assert {s.page for s in sections} == {1, 2}
    assert sections == group_sections(partition_pdf(file=io.BytesIO(data), strategy="fast"))
    assert "2. Press the red button." in "\n".join(s.text for s in sections)


@pytest.mark.slow
def test_the_eu_price_of_the_d3_is_retrieved_with_the_table_header(tmp_path):
    from flows.ingest import ingest_flow
    from tasks.answer.options import RetrievalOptions
    from tasks.answer.retrieve import retrieve_context
    from tasks.embed.embedder import EmbedderConfig
    from tasks.store.base import StoreConfig

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "prices.pdf").write_bytes(table_pdf(EN_HEAD, EN_ROWS))
    (docs / "价格表.pdf").write_bytes(table_pdf(ZH_HEAD, ZH_ROWS, ZH_BEFORE, ZH_AFTER))
    (docs / "shipping.txt").write_text("Orders to the US ship from Boston; orders in the EU ship from Hamburg.")
    summary = ingest_flow(source_path=str(docs), store_dir=str(tmp_path / "store"))
    assert summary["failed"] == [] and summary["added"] == 3

    got = retrieve_context.fn(
        "What does the D3 cost in the EU price list?",
        StoreConfig(store_dir=str(tmp_path / "store"), collection="knowledge"),
        EmbedderConfig(),
        RetrievalOptions(top_k=5),
    )
    top = got["passages"][0]
    assert top["source"] == "prices.pdf" and top["page"] == 1
    assert EN_MD in top["text"] and "| D3 | 151 EUR | 159 USD |" in top["text"]


@pytest.mark.unit
def test_a_pdf_whose_tables_cannot_be_read_keeps_its_text_and_says_why():
    from unstructured.documents.coordinates import PixelSpace
    from unstructured.documents.elements import Text

    corners = ((31, 130), (31, 141), (45, 141), (45, 130))
    cell = Text(text="D1", coordinates=corners, coordinate_system=PixelSpace(595, 842))
    cell.metadata.page_number = 1
    warnings: list[str] = []
    assert with_pdf_tables(b"%PDF-1.4 cut short", [cell], warnings) == [cell]
    reason = "PdfiumError: Failed to load document (PDFium: Data format error)."
    assert warnings == [f"tables not read, their cells are kept as plain text: {reason}"]
