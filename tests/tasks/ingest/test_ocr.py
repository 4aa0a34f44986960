"""OCR on images and scanned PDFs that the tests render themselves, in Chinese and English, with the real RapidOCR."""

from __future__ import annotations

import difflib
import io
import struct
import zlib

import pytest

from tasks.ingest.ocr import OcrLine, OcrPage, join_lines
from tasks.ingest.partition import PartitionError, partition_document
from tests.conftest import cjk_font_path

ZH_1 = "差旅报销政策：出差住宿标准为每晚五百元。"
ZH_2 = "发票须在三十天内提交财务部。"
EN_1 = "The hotel limit is 500 yuan per night."
EN_2 = "Scanned manual: error code E42 means the lens is dirty."
EN_3 = "Parts order 7731: twelve spare propellers for the DS-40."


def render(lines: list[str], width: int = 760, size: int = 26):
    """A white page with black lines of text, as a scanner would give it; an empty string is a blank line (a new
    paragraph)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(cjk_font_path()), size)
    step = size * 3 // 2
    image = Image.new("RGB", (width, 40 + len(lines) * step), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((24, 20 + i * step), line, font=font, fill="black")
    return image


def encode(image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def matched(expected: str, got: str) -> float:
    """Share of the expected characters found in order in the OCR text (spaces ignored)."""
    a, b = "".join(expected.split()), "".join(got.split())
    return sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()) / len(a)


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid 1-bit PNG of width x height pixels: 112 MB of zeros that compress to about 110 KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- pure logic: how recognized lines become paragraphs ---------------------------------------------------------


@pytest.mark.unit
def test_chinese_lines_join_without_spaces_and_english_with_them():
    lines = [
        OcrLine("出差住宿标准", 10, 10, 200, 40, 0.99),
        OcrLine("为每晚五百元。", 10, 50, 220, 80, 0.99),
        OcrLine("The hotel limit", 10, 130, 240, 160, 0.98),
        OcrLine("is 500 yuan.", 10, 170, 200, 200, 0.98),
    ]
    assert join_lines(lines) == "出差住宿标准为每晚五百元。\n\nThe hotel limit is 500 yuan."


@pytest.mark.unit
def test_reading_order_is_top_to_bottom_then_left_to_right_and_spaces_inside_chinese_are_dropped():
    lines = [
        OcrLine("right part", 300, 12, 450, 40, 0.9),  # same row as "left part", listed first
        OcrLine("second row", 10, 50, 200, 80, 0.9),
        OcrLine("left part", 10, 10, 150, 40, 0.9),
        OcrLine("财 务 部", 10, 90, 120, 120, 0.9),
    ]
    assert join_lines(lines) == "left part right part second row财务部"


@pytest.mark.unit
def test_a_word_hyphenated_at_a_line_end_is_rejoined():
    lines = [OcrLine("the infor-", 10, 10, 200, 40, 0.9), OcrLine("mation desk", 10, 50, 200, 80, 0.9)]
    assert join_lines(lines) == "the information desk"


@pytest.mark.unit
def test_low_confidence_pages_are_warned_about_with_their_page_number(monkeypatch):
    import tasks.ingest.ocr as ocr
    from tasks.ingest.partition import _ocr_sections

    scores = {1: 0.97, 2: 0.55}
    monkeypatch.setattr(ocr, "ocr_page", lambda image: OcrPage(f"text of page {image}", scores[image], 3))
    warnings: list[str] = []
    sections = _ocr_sections([(1, 1), (2, 2)], warnings)
    assert [(s.page, s.text) for s in sections] == [(1, "text of page 1"), (2, "text of page 2")]
    assert warnings == ["low OCR confidence (0.55) on page 2: check its text"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.png", b"", "empty file (0 bytes)"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a readable png image"),
        ("notes.jpg", b"this is text, not a JPEG", "not a readable jpg image"),
        ("photo.heic", b"\x00\x00\x00\x18ftypheic" + bytes(100), "not a readable heic image"),
        ("bomb.png", png_bomb, "900 megapixels, over the limit of 60 megapixels: an image bomb"),
        ("big.png", lambda: png_bomb(10_000, 7_000), "is 10000 x 7000 pixels (70 megapixels), over the limit"),
    ],
)
def test_bad_images_fail_with_a_reason_before_any_model_loads(name, data, reason):
    with pytest.raises(PartitionError) as info:
        partition_document(data() if callable(data) else data, name)
    assert reason in str(info.value)


# --- the real model ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_png_of_chinese_and_english_is_read_in_order():
    image = render([ZH_1, ZH_2, "", EN_1])
    sections = partition_document(encode(image, "PNG"), "travel_scan.png")
    assert len(sections) == 1 and sections[0].page is None
    text = sections[0].text
    # Two lines of one Chinese paragraph join without a space; the blank line starts a new paragraph.
    assert "出差住宿标准为每晚五百元。发票须在三十天内提交财务部。\n\nThe hotel limit is 500 yuan per night." in text
    assert matched(ZH_1 + ZH_2 + EN_1, text) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, fmt, options",
    [
        ("scan.jpg", "JPEG", {"quality": 80}),
        ("scan.tiff", "TIFF", {"compression": "tiff_lzw"}),
        ("scan.bmp", "BMP", {}),
        ("scan.webp", "WEBP", {"quality": 80}),
    ],
)
def test_every_image_type_is_read(name, fmt, options):
    sections = partition_document(encode(render([EN_2], width=720), fmt, **options), name)
    assert "error code E42 means the lens is dirty" in sections[0].text


@pytest.mark.slow
def test_a_heic_photo_is_read():
    """The HEIC is written with pillow-heif (a dev dependency: its wheel has an HEVC encoder, pi-heif's only a
    decoder) and read as kbflow reads one, through pi-heif."""
    import pillow_heif

    heic = io.BytesIO()
    pillow_heif.from_pillow(render([EN_2], width=720).convert("RGB")).save(heic, format="HEIF", quality=90)
    assert heic.getvalue()[4:12] == b"ftypheic"
    sections = partition_document(heic.getvalue(), "photo.heic")
    assert "error code E42 means the lens is dirty" in sections[0].text


@pytest.mark.slow
def test_multi_page_tiff_keeps_page_numbers():
    pages = [render([EN_1], width=600), render([ZH_2], width=600)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    sections = partition_document(data, "fax.tif")
    assert [s.page for s in sections] == [1, 2]
    assert "hotel limit" in sections[0].text and "三十天内提交财务部" in sections[1].text


def scanned_pdf(tmp_path, pages: list) -> bytes:
    """A PDF of small pages: a str is a text-layer page, an image a scanned page with no text layer."""
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format=(180, 70))
    pdf.set_auto_page_break(False)
    for i, page in enumerate(pages):
        pdf.add_page()
        if isinstance(page, str):
            pdf.set_font("helvetica", size=14)
            pdf.text(10, 20, page)
        else:
            path = tmp_path / f"page{i}.png"
            page.save(path)
            pdf.image(str(path), x=0, y=0, w=180)
    return bytes(pdf.output())


@pytest.mark.unit
def test_a_pdf_read_from_its_path_renders_the_same_pages_as_from_its_bytes(tmp_path):
    from PIL import ImageChops

    from tasks.ingest.scan import pdf_pages_without_text

    blank = render([""], width=900)
    data = scanned_pdf(tmp_path, ["A text page.", render([EN_1], width=900), blank, render([ZH_2], width=900)])
    path = tmp_path / "contract_scan.pdf"
    path.write_bytes(data)
    from_bytes = list(pdf_pages_without_text(data, {1}))
    from_path = list(pdf_pages_without_text(path, {1}))
    assert [n for n, _ in from_path] == [n for n, _ in from_bytes] == [2, 4]  # page 1 has text, page 3 is blank
    for (_, a), (_, b) in zip(from_path, from_bytes, strict=True):
        assert a.size == b.size and ImageChops.difference(a, b).getbbox() is None


@pytest.mark.unit
def test_a_local_pdf_is_handed_to_partitioning_by_its_path_and_other_files_as_bytes(tmp_path):
    from connectors.base import DocumentVanished
    from connectors.local import LocalSource, LocalSourceConfig
    from tasks.ingest.index import read_document

    (tmp_path / "scan.pdf").write_bytes(scanned_pdf(tmp_path, ["A text page."]))
    (tmp_path / "notes.txt").write_text("The office opens at nine.")
    source = LocalSource(LocalSourceConfig(root=str(tmp_path)))
    refs = {r.path: r for r in source.list({}).refs}
    assert read_document(source, refs["scan.pdf"]) == tmp_path.resolve() / "scan.pdf"
    assert read_document(source, refs["notes.txt"]) == b"The office opens at nine."
    (tmp_path / "scan.pdf").unlink()
    with pytest.raises(DocumentVanished):
        read_document(source, refs["scan.pdf"])


@pytest.mark.slow
def test_pdf_with_a_text_page_and_a_scanned_page_gives_both_with_their_page_numbers(tmp_path):
    data = scanned_pdf(tmp_path, ["Manual page one. Charge it for two hours.", render([ZH_1, EN_2], width=900)])
    warnings: list[str] = []
    sections = partition_document(data, "scanned_policy.pdf", warnings)
    by_page = {s.page: s.text for s in sections}
    assert sorted(by_page) == [1, 2]
    assert "Charge it for two hours" in by_page[1]
    assert "出差住宿标准为每晚五百元" in by_page[2] and "E42 means the lens is dirty" in by_page[2]
    assert warnings == []


@pytest.mark.slow
def test_an_image_only_pdf_of_two_pages_is_read_page_by_page(tmp_path):
    data = scanned_pdf(tmp_path, [render([EN_1], width=900), render([ZH_2], width=900)])
    sections = partition_document(data, "contract_scan.pdf")
    assert [s.page for s in sections] == [1, 2]
    assert "hotel limit is 500 yuan" in sections[0].text and "三十天内提交财务部" in sections[1].text


@pytest.mark.slow
def test_scans_are_indexed_and_found_by_retrieval_while_bad_images_fail_by_name(tmp_path):
    from flows.errors import DocumentsFailed
    from flows.ingest import ingest_flow
    from tasks.answer.options import RetrievalOptions
    from tasks.answer.retrieve import retrieve_context
    from tasks.embed.embedder import EmbedderConfig
    from tasks.store.base import StoreConfig

    docs = tmp_path / "docs"
    docs.mkdir()
    render([ZH_1, ZH_2]).save(docs / "travel_scan.png")
    render([EN_2], width=720).save(docs / "manual_scan.jpg", quality=85)
    (docs / "notes.txt").write_text("The office opens at nine.")
    (docs / "parts_order_scan.pdf").write_bytes(scanned_pdf(tmp_path, [render([EN_3], width=900)]))
    (docs / "empty.png").write_bytes(b"")
    (docs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (docs / "bomb.png").write_bytes(png_bomb())
    with pytest.raises(DocumentsFailed) as info:
        ingest_flow(source_path=str(docs), store_dir=str(tmp_path / "store"))
    summary = info.value.summary
    reasons = {f["path"]: f["reason"] for f in summary["failed"]}
    assert sorted(reasons) == ["bomb.png", "corrupt.png", "empty.png"]
    assert "image bomb" in reasons["bomb.png"] and "not a readable png image" in reasons["corrupt.png"]
    assert summary["added"] == 4

    def top_source(question: str) -> str:
        got = retrieve_context.fn(
            question,
            StoreConfig(store_dir=str(tmp_path / "store"), collection="knowledge"),
            EmbedderConfig(),
            RetrievalOptions(top_k=5),
        )
        return got["passages"][0]["source"]

    assert top_source("出差住宿标准是每晚多少钱？") == "travel_scan.png"
    assert top_source("What does error code E42 mean?") == "manual_scan.jpg"
    assert top_source("How many spare propellers were ordered?") == "parts_order_scan.pdf"


@pytest.mark.unit
def test_the_summary_shows_ocr_warnings_and_reads_them_back_from_its_table():
    from tasks.ingest.summary import IngestSummary

    warnings = {"scan.pdf": ["low OCR confidence (0.61) on page 3: check its text"]}
    s = IngestSummary(source="docs", store="store", collection="knowledge", added=1)
    s.warnings = IngestSummary.warning_rows(warnings)
    assert "  WARNING scan.pdf: low OCR confidence (0.61) on page 3: check its text" in s.text().splitlines()
    assert IngestSummary.from_table(s.table(), source="docs", store="store", collection="knowledge") == s


def test_two_threads_asking_for_the_engine_at_once_share_one_load():
    """An ingest run's batches read pages in threads: their first pages at once must load RapidOCR once (two loads
    imported rapidocr in two threads at the same time), and both threads then read with it."""
    import threading

    from tasks.ingest import ocr

    ocr._load_engine.cache_clear()
    engines, start = [], threading.Barrier(3)

    def ask():
        start.wait()
        engines.append(ocr.get_engine(1))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(engines) == 3 and len({id(e) for e in engines}) == 1
    assert ocr._load_engine.cache_info().misses == 1
    page = ocr.recognize_lines(render([EN_1]), threads=1)
    assert matched(EN_1, " ".join(line.text for line in page)) >= 0.9
