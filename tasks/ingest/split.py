"""Split sections into chunks that respect Chinese and English sentence boundaries."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache

from pydantic import BaseModel, Field

from tasks.ingest.partition import Section
from tasks.ingest.tables import split_table

# Paragraphs, lines, then sentence ends (Chinese full-width and English), then clauses, then words.
SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    "! ",
    "? ",
    ". ",
    "; ",
    "，",
    "、",
    ", ",
    " ",
    "",
]


class SplitOptions(BaseModel, frozen=True):
    """How documents are cut into chunks."""

    chunk_size: int = Field(500, gt=20, description="Characters per chunk.")
    chunk_overlap: int = Field(80, ge=0, description="Characters shared by neighbouring chunks.")
    max_file_mb: float = Field(
        100.0,
        gt=0,
        description="A file larger than this (MB), or an Office file that unpacks to more, is refused "
        "with the reason, before it is read into memory.",
    )
    max_chunks_per_document: int = Field(
        20_000, gt=0, description="A document that splits into more chunks than this is refused with the reason."
    )


@dataclass
class Chunk:
    """A piece of a document as it is stored: id, text and metadata."""

    id: str
    text: str
    source: str
    source_id: str
    page: int | None
    section: str
    chunk_index: int
    doc_sha256: str

    def metadata(self) -> dict:
        # Chroma metadata values cannot be None.
        return {
            "source": self.source,
            "source_id": self.source_id,
            "page": self.page if self.page is not None else -1,
            "section": self.section,
            "chunk_index": self.chunk_index,
            "doc_sha256": self.doc_sha256,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def chunk_id(source_id: str, path: str, doc_sha256: str, index: int, text: str) -> str:
    """Deterministic id: the same document version always gives the same ids, a new version new ones."""
    h = hashlib.sha256()
    for part in (source_id, path, doc_sha256, str(index), text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


@lru_cache(maxsize=8)
def _splitter(chunk_size: int, chunk_overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        keep_separator="end",
        strip_whitespace=True,
    )


def split_sections(
    sections: list[Section], *, source: str, source_id: str, doc_sha256: str, chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    """Split a document's sections into chunks numbered in reading order."""
    splitter = _splitter(chunk_size, chunk_overlap)
    chunks: list[Chunk] = []
    for i, section in enumerate(sections):
        following = sections[i + 1] if i + 1 < len(sections) else None
        if (
            following is not None
            and following.table_header
            and section.section
            and following.section == section.section
            and section.text.strip() == section.section.strip()
        ):
            continue  # a heading alone, over its table: every chunk of the table carries it (below)
        for piece in _pieces(section, splitter, chunk_size):
            piece = piece.strip()
            if not piece:
                continue
            index = len(chunks)
            chunks.append(
                Chunk(
                    id=chunk_id(source_id, source, doc_sha256, index, piece),
                    text=piece,
                    source=source,
                    source_id=source_id,
                    page=section.page,
                    section=section.section,
                    chunk_index=index,
                    doc_sha256=doc_sha256,
                )
            )
    return chunks


def _pieces(section: Section, splitter, chunk_size: int) -> list[str]:
    """A section's pieces: a table's whole rows under its title and repeated header, other text by the recursive
    splitter."""
    header = section.table_header
    if header and section.text.startswith(header):
        rows = [row for row in section.text[len(header) :].split("\n") if row.strip()]
        # The table's title (its section's heading) on top of every chunk, so that the question's words for what the
        # table is about ("hotel caps per night") find its rows; a title that is itself a table row is not repeated.
        title = section.section.strip() if section.section.strip() and not section.section.startswith("|") else ""
        pieces = split_table(header, rows, max(chunk_size - len(title) - 1, 1))
        return [f"{title}\n{piece}" if title else piece for piece in pieces]
    return splitter.split_text(section.text)
