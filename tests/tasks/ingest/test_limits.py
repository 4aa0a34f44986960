"""File limits: a file too large, an Office file that unpacks to too much, a document with too many chunks,
each refused with its reason, while the other documents of the run are indexed."""

from __future__ import annotations

import io
import zipfile

import pytest

from connectors.local import LocalSource, LocalSourceConfig
from flows.errors import DocumentsFailed
from flows.ingest import ingest_flow
from tasks.ingest.index import prepare_document
from tasks.ingest.partition import PartitionError
from tasks.ingest.split import SplitOptions

pytestmark = pytest.mark.slow


def refs_of(folder):
    source = LocalSource(LocalSourceConfig(root=str(folder)))
    return source, {r.path: r for r in source.list({}).refs}


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "big.txt").write_text("word " * 500_000)  # about 2.4 MB
    source, refs = refs_of(tmp_path)
    with pytest.raises(PartitionError, match=r"too large: 2 MB, over KBFLOW_MAX_FILE_MB=1"):
        prepare_document(source, refs["big.txt"], SplitOptions(max_file_mb=1))


def test_an_office_file_that_unpacks_to_more_than_the_limit_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document>" + " " * (8 * 2**20) + "</w:document>")
    (tmp_path / "bomb.docx").write_bytes(buf.getvalue())
    assert (tmp_path / "bomb.docx").stat().st_size < 2**20  # small on disk
    source, refs = refs_of(tmp_path)
    with pytest.raises(PartitionError, match=r"unpacks to 8 MB, over KBFLOW_MAX_FILE_MB=2 \(a zip bomb"):
        prepare_document(source, refs["bomb.docx"], SplitOptions(max_file_mb=2))


def test_a_document_with_more_chunks_than_the_limit_is_refused_and_the_rest_is_indexed(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "long.txt").write_text(
        "\n\n".join(f"Paragraph {i}: " + "The robot cleans the floor. " * 20 for i in range(40))
    )
    (docs / "short.txt").write_text("The office opens at nine.")
    monkeypatch.setenv("KBFLOW_MAX_CHUNKS_PER_DOCUMENT", "10")
    with pytest.raises(DocumentsFailed) as info:
        ingest_flow(source_path=str(docs), store_dir=str(tmp_path / "store"))
    summary = info.value.summary
    assert summary["added"] == 1 and [f["path"] for f in summary["failed"]] == ["long.txt"]
    assert "chunks, over KBFLOW_MAX_CHUNKS_PER_DOCUMENT=10" in summary["failed"][0]["reason"]
