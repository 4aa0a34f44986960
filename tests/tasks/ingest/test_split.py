import pytest

from tasks.ingest.partition import Section
from tasks.ingest.split import chunk_id, split_sections

pytestmark = pytest.mark.unit

ZH = "星灵公司成立于二零一五年。" * 10 + "总部位于深圳！" * 10 + "员工超过三百人？" * 10


def _split(sections, size=60, overlap=10):
    return split_sections(
        sections, source="a.txt", source_id="local:/x", doc_sha256="abc", chunk_size=size, chunk_overlap=overlap
    )


def test_chinese_text_splits_at_full_width_sentence_ends():
    chunks = _split([Section(text=ZH, page=None, section="")])
    assert len(chunks) > 3
    assert all(len(c.text) <= 60 for c in chunks)
    assert all(c.text[-1] in "。！？" for c in chunks)


def test_english_text_splits_at_sentence_ends():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = _split([Section(text=text)], size=100, overlap=0)
    assert len(chunks) > 5 and all(c.text.endswith(".") for c in chunks)


def test_metadata_carries_source_page_section_index_and_hash():
    chunks = _split(
        [Section(text="Alpha. " * 30, page=2, section="Intro"), Section(text="Beta.", page=3, section="Next")]
    )
    meta = [c.metadata() for c in chunks]
    assert [m["chunk_index"] for m in meta] == list(range(len(chunks)))
    assert meta[0] == {
        **meta[0],
        "source": "a.txt",
        "page": 2,
        "section": "Intro",
        "doc_sha256": "abc",
        "source_id": "local:/x",
    }
    assert meta[-1]["page"] == 3 and meta[-1]["section"] == "Next"


def test_chunk_ids_are_deterministic_and_version_specific():
    a = _split([Section(text="Alpha. " * 30)])
    b = _split([Section(text="Alpha. " * 30)])
    assert [c.id for c in a] == [c.id for c in b]
    assert chunk_id("s", "p", "v1", 0, "t") != chunk_id("s", "p", "v2", 0, "t")
    assert len({c.id for c in a}) == len(a)
