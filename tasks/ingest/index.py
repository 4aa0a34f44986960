"""The per-batch work of an ingest: read, partition, split and embed documents. What a cluster worker runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from connectors.base import DocumentRef, DocumentVanished, SourceError, source_from_config
from tasks.embed.embedder import EmbedderConfig, get_embedder
from tasks.ingest.partition import PartitionError, partition_document
from tasks.ingest.split import SplitOptions, split_sections
from tasks.text import tokenize


def check_size(ref: DocumentRef, data: bytes | None, split: SplitOptions) -> None:
    """Refuse a file over KBFLOW_MAX_FILE_MB, or an Office file (a zip) that unpacks to more, before partitioning."""
    limit = int(split.max_file_mb * 1024 * 1024)
    mb = f"KBFLOW_MAX_FILE_MB={split.max_file_mb:g}"
    if ref.size > limit:
        raise PartitionError(f"too large: {ref.size / 2**20:.0f} MB, over {mb}; raise it or exclude the file")
    if data is not None and ref.path.lower().endswith((".docx", ".pptx", ".xlsx")) and data[:2] == b"PK":
        import io
        import zipfile

        try:
            unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
        except zipfile.BadZipFile:
            return  # partitioning says what is wrong with it
        if unpacked > limit:
            raise PartitionError(
                f"unpacks to {unpacked / 2**20:.0f} MB, over {mb} (a zip bomb, or a very large file): "
                "raise it or exclude the file"
            )


def read_document(source, ref: DocumentRef) -> bytes | Path:
    """A document's bytes; for a PDF in a local folder, its path instead, so that partitioning reads a 300-page scan
    a page at a time rather than holding the whole file. Raises SourceError or DocumentVanished."""
    path_of = getattr(source, "path_of", None)  # connectors.local: the file behind a ref, kept inside the folder
    if path_of is None or not ref.path.lower().endswith(".pdf"):
        return source.read(ref)
    path = path_of(ref)
    try:
        with path.open("rb"):  # the errors source.read gives, before partitioning opens it again
            pass
    except FileNotFoundError as exc:
        raise DocumentVanished("deleted while the run was going on") from exc
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from exc
    return path


def prepare_document(source, ref: DocumentRef, split: SplitOptions, warnings: list[str] | None = None) -> list[dict]:
    """One document's chunks as plain dicts; raises PartitionError, SourceError or DocumentVanished. Pages that OCR
    read with low confidence are added to warnings."""
    check_size(ref, None, split)  # before reading: a 200 MB file is refused without being loaded
    data = read_document(source, ref)
    if isinstance(data, bytes):
        check_size(DocumentRef(ref.source_id, ref.path, len(data), ref.mtime, ref.sha256), data, split)
    sections = partition_document(data, ref.path, warnings)
    chunks = split_sections(
        sections,
        source=ref.path,
        source_id=ref.source_id,
        doc_sha256=ref.sha256,
        chunk_size=split.chunk_size,
        chunk_overlap=split.chunk_overlap,
    )
    if not chunks:
        raise PartitionError("no text extracted")
    if len(chunks) > split.max_chunks_per_document:
        raise PartitionError(
            f"{len(chunks)} chunks, over KBFLOW_MAX_CHUNKS_PER_DOCUMENT={split.max_chunks_per_document}; "
            "raise it, or split the document"
        )
    return [c.to_dict() for c in chunks]


def warm_up(embedder: EmbedderConfig) -> threading.Thread:
    """Load the embedding model and jieba's dictionary in a background thread, while the first batch imports and
    loads unstructured and spaCy: an edited file's refresh waits for the longest of them, not for their sum."""

    def load() -> None:
        try:
            get_embedder(embedder)
            tokenize("预热")
        except Exception:  # noqa: BLE001 - the batch loads them itself and reports what fails
            pass

    thread = threading.Thread(target=load, name="kbflow-warm-up", daemon=True)
    thread.start()
    return thread


# Vectors are results, never cache keys: Prefect must not hash them (cache_policy=NONE).
@task(name="index-batch", cache_policy=NONE)
def index_batch(source_config: dict, refs: list[dict], split: SplitOptions, embedder: EmbedderConfig) -> dict:
    """Read, partition, split and embed a batch of documents; a document that fails or vanished is reported, not
    raised."""
    started = time.perf_counter()
    source = source_from_config(source_config)
    chunks: list[dict] = []
    failed: dict[str, str] = {}
    vanished: list[str] = []
    warnings: dict[str, list[str]] = {}
    for raw in refs:
        ref = DocumentRef.from_dict(raw)
        notes: list[str] = []
        try:
            chunks.extend(prepare_document(source, ref, split, notes))
        except DocumentVanished:
            vanished.append(ref.path)
        except (PartitionError, SourceError) as exc:
            failed[ref.path] = str(exc)
        if notes and ref.path not in failed:
            warnings[ref.path] = notes
    prepared = time.perf_counter()
    vectors = get_embedder(embedder).embed([c["text"] for c in chunks]) if chunks else []
    embedded = time.perf_counter()
    # Keyword tokens (jieba for Chinese) are made here too, on the worker, not by the single writer.
    terms = [tokenize(c["text"]) for c in chunks]
    seconds = {
        "read_partition_split": prepared - started,
        "embed": embedded - prepared,
        "keyword_tokens": time.perf_counter() - embedded,
    }
    return {
        "chunks": chunks,
        "vectors": vectors,
        "terms": terms,
        "failed": failed,
        "warnings": warnings,
        "vanished": vanished,
        "seconds": seconds,
    }


def _not_an_access_file(task, task_run, state) -> bool:
    """Retry a listing, but not over a broken access file: it stays broken until someone edits it."""
    from connectors.access import AccessFileError

    try:
        state.result(raise_on_failure=True)
    except AccessFileError:
        return False
    except Exception:  # noqa: BLE001 - any other failure is worth the retry
        return True
    return True


@task(name="list-documents", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=_not_an_access_file)
def list_documents(source_config: dict, known: dict[str, dict]) -> dict:
    """List the source's documents with their hashes, reusing known hashes of unchanged files."""
    listing = source_from_config(source_config).list({p: DocumentRef.from_dict(r) for p, r in known.items()})
    return {"refs": [r.to_dict() for r in listing.refs], "errors": listing.errors}
