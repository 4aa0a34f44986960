"""The Chroma implementation of the vector store: embedded (a folder) or a Chroma server."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from tasks.ingest.split import Chunk
from tasks.store.base import (
    META_BACKEND,
    META_DIM,
    META_MODEL,
    EmbeddingMismatchError,
    StoreConfig,
    StoredChunk,
    StoreError,
    StoreUnavailable,
)
from tasks.text import is_chinese

logger = logging.getLogger("kbflow.tasks.store.chroma")


# Chroma's internal SQLite tables and columns that content_fingerprint reads (not a public API: chromadb is pinned, and
# tests/tasks/store/test_chroma_schema.py fails when a Chroma release changes them or adds a migration).
CHROMA_TABLES_READ = {
    "embeddings_queue": ("seq_id",),
    "max_seq_id": ("segment_id", "seq_id"),
    "collections": ("id", "name"),
}
# The last migration of each of Chroma's SQLite schemas, in the chromadb release this was checked with (1.5.9).
CHROMA_MIGRATIONS_CHECKED = {"embeddings_queue": 2, "metadb": 6, "sysdb": 10}


def content_fingerprint(config: StoreConfig) -> str | None:
    """Where the embedded Chroma database's write log stands, as one short hash, read from its SQLite file without
    importing chromadb. Every upsert and delete is logged with a new sequence number, each segment records the last
    one it applied, and a collection made again has new ids; opening and reading change none of these, although
    chromadb writes a row each time a process opens the file and may rewrite the vector index files from the log.
    None for a Chroma server, no database yet, or a database this code cannot read (the caller takes the long way)."""
    import hashlib
    import sqlite3
    from contextlib import closing

    db = Path(config.chroma_dir) / "chroma.sqlite3"
    if config.chroma_host or not db.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            state = [
                conn.execute("SELECT MAX(seq_id) FROM embeddings_queue").fetchone(),
                conn.execute("SELECT segment_id, seq_id FROM max_seq_id ORDER BY segment_id").fetchall(),
                conn.execute("SELECT id, name FROM collections ORDER BY id").fetchall(),
            ]
    except sqlite3.Error:
        return None
    return hashlib.sha256(repr(state).encode()).hexdigest()[:24]


def state_token(config: StoreConfig, embedding_model: str) -> str:
    """The collection's content fingerprint with the embedding model asked for ('' when it cannot be told): what the
    ledger records as the state a run left (Ledger.record_store_as_left)."""
    fingerprint = content_fingerprint(config)
    return f"{embedding_model}|{fingerprint}" if fingerprint else ""


def collection_name(config: StoreConfig) -> str:
    """The Chroma collection that holds the knowledge base's vectors: config.chroma_collection when given, else the
    one the ledger's embedding record names (a change of embedding model moves it, tasks.store.reembed), else the
    knowledge base's own name (a store from before the record named it, or a new one)."""
    if config.chroma_collection:
        return config.chroma_collection
    from tasks.ingest.ledger import Ledger, ledger_path

    if not ledger_path(Path(config.store_dir)).exists():
        return config.collection
    try:
        with Ledger.of_store(Path(config.store_dir), config.collection) as ledger:
            recorded = ledger.recorded_embedding() or {}
    except Exception:  # noqa: BLE001 - a damaged ledger is reported (and healed) where the store is checked
        return config.collection
    return str(recorded.get("collection") or config.collection)


def collection_for_model(config: StoreConfig, model: str) -> str:
    """The Chroma collection a knowledge base is embedded into with another model: its name, '--', and a tag of the
    model (readable, plus a hash that tells apart two paths that read alike)."""
    import hashlib
    import re

    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40].strip("-") or "model"
    return f"{config.collection}--{slug}-{hashlib.sha256(model.encode()).hexdigest()[:6]}"


def pinned(config: StoreConfig, name: str | None = None) -> StoreConfig:
    """The config with its Chroma collection fixed (by default the one serving now), whatever the ledger says later."""
    return config.model_copy(update={"chroma_collection": name or collection_name(config)})


_seen_keys: dict[str, str] = {}
_reopen_lock = threading.Lock()


def reopen_if_moved(config: StoreConfig, key: str) -> bool:
    """Drop this process's embedded Chroma client when another process has written the store since it was opened.

    An embedded client keeps the HNSW index it loaded: after another process's refresh replaced a document's chunks
    its dense queries still returned the deleted ids and never the new ones (checked with two processes), so a bulk
    job lost the edited documents for the rest of its run. key is the ledger's index key, which every write moves.
    A Chroma server needs nothing of this: its clients always see its current index."""
    if config.chroma_host:
        return False
    with _reopen_lock:
        seen = _seen_keys.get(config.chroma_dir)
        _seen_keys[config.chroma_dir] = key
        if seen is None or seen == key:
            return False
        from chromadb.api.shared_system_client import SharedSystemClient

        _client.cache_clear()
        # Chroma shares one system per path in a process: forget this path's, so the next client loads the index
        # anew. The old one is not stopped: a thread may still be reading through it.
        for identifier in [i for i in SharedSystemClient._identifier_to_system if config.chroma_dir in i]:
            SharedSystemClient._identifier_to_system.pop(identifier, None)
            SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        return True


@lru_cache(maxsize=4)
def _client(chroma_dir: str, host: str = "", token: str = ""):
    """One Chroma client per store per process: embedded (PersistentClient) or a Chroma server (host:port)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if host:
        name, sep, port = host.rpartition(":")
        if not sep:
            name, port = host, "8000"
        if not port.isdigit():
            raise StoreError(f"KBFLOW_CHROMA_HOST={host!r} is not host:port")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            # The client checks the server at once: a refused connection or a proxy's 401 surfaces here.
            return chromadb.HttpClient(host=name, port=int(port), headers=headers, settings=chroma_settings)
        except Exception as exc:  # noqa: BLE001 - any failure here means the server is unusable; the message says why
            import httpx

            why = (
                "it does not answer"
                if isinstance(exc, httpx.TransportError)
                else f"it refused the client ({type(exc).__name__})"
            )
            raise StoreError(
                f"cannot use the Chroma server at {host}: {why}. Check that it runs, KBFLOW_CHROMA_HOST and, "
                "behind a token-checking proxy, KBFLOW_CHROMA_TOKEN."
            ) from None
    Path(chroma_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=chroma_dir, settings=chroma_settings)


def _server_call(method):
    """A Chroma server that stops answering in the middle of a call becomes StoreUnavailable, naming the server.

    Prefect's task retries have already had their turn when this reaches the user."""

    @functools.wraps(method)
    def call(self_or_cls, *args, **kwargs):
        try:
            return method(self_or_cls, *args, **kwargs)
        except Exception as exc:
            config = getattr(self_or_cls, "config", None) or kwargs.get("config") or args[0]
            host = config.chroma_host
            if not host or not _transport_error(exc):
                raise
            raise StoreUnavailable(
                f"the Chroma server at {host} stopped answering ({type(exc).__name__}): start it again and run the "
                "same command; the next run repairs what this one left"
            ) from exc

    return call


def _transport_error(exc: BaseException) -> bool:
    import httpx

    from tasks.faults import exception_chain

    return any(isinstance(e, httpx.TransportError | ConnectionError) for e in exception_chain(exc))


READERS = "readers"  # chunk metadata: the document's readers, a list (connectors.access)


def readers_where(groups: Collection[str]) -> dict:
    """Chroma's filter for the chunks a reader of these groups may read: public ones, and those of a group named."""
    from connectors.access import PUBLIC

    clauses = [{READERS: {"$contains": g}} for g in [PUBLIC, *sorted(groups)]]
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _with_readers(metadata: dict, readers: Sequence[str] | None) -> dict:
    # No readers recorded: no key, and no question but an administrator's finds the chunk.
    return metadata if readers is None else {**metadata, READERS: list(readers)}


def _batches(seq: Sequence, size: int):
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class ChromaStore:
    """A Chroma collection written only with our own embeddings (never Chroma's default function)."""

    def __init__(self, config: StoreConfig, collection):
        self.config = config
        self._coll = collection
        try:
            self._max_batch = int(self._client().get_max_batch_size())
        except Exception as exc:  # noqa: BLE001 - an older server without the call: Chroma's documented default
            self._max_batch = 5000
            logger.info("Chroma did not give its batch limit (%s): writing in batches of %d", type(exc).__name__, 5000)

    def _client(self):
        c = self.config
        return _client(c.chroma_dir, c.chroma_host, c.chroma_token)

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    @_server_call
    def collection_exists(cls, config: StoreConfig) -> bool:
        """Whether the collection that serves the knowledge base (or config.chroma_collection) exists."""
        return collection_name(config) in cls.collections_of(config)

    @classmethod
    @_server_call
    def collections_of(cls, config: StoreConfig) -> set[str]:
        """The Chroma collections of the knowledge base: its own name, and those embedded with another model."""
        client = _client(config.chroma_dir, config.chroma_host, config.chroma_token)
        names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
        return {n for n in names if n == config.collection or n.startswith(config.collection + "--")}

    @classmethod
    @_server_call
    def open_existing(cls, config: StoreConfig) -> ChromaStore:
        """A collection an ingest has built, for reading; a StoreError that says what to run when there is none."""
        from tasks.ingest.ledger import ledger_path

        if not ledger_path(Path(config.store_dir)).exists():
            raise StoreError(
                f"no knowledge base in {config.store_dir}: run `kbflow ingest PATH` first (or set --store)"
            )
        from chromadb.errors import NotFoundError

        client = _client(config.chroma_dir, config.chroma_host, config.chroma_token)
        try:
            coll = client.get_collection(collection_name(config), embedding_function=None)
        except (NotFoundError, ValueError):  # chromadb raises one or the other depending on version
            raise StoreError(
                f"collection {config.collection!r} does not exist in {config.store_dir}; run `kbflow ingest PATH` first"
            ) from None
        return cls(config, coll)

    @classmethod
    @_server_call
    def open_for_writing(cls, config: StoreConfig, embedding_model: str, dim: int, backend: str = "") -> ChromaStore:
        """Open (or create) the collection and refuse it if it was built with another embedding model."""
        client = _client(config.chroma_dir, config.chroma_host, config.chroma_token)
        coll = client.get_or_create_collection(
            collection_name(config),
            embedding_function=None,  # never Chroma's default: it would download an ONNX model
            metadata={"hnsw:space": "cosine", META_MODEL: embedding_model, META_DIM: dim, META_BACKEND: backend},
        )
        meta = coll.metadata or {}
        stored_model, stored_dim = meta.get(META_MODEL), meta.get(META_DIM)
        if stored_model != embedding_model or (stored_dim is not None and int(stored_dim) != dim):
            raise EmbeddingMismatchError(
                f"collection {config.collection!r} in {config.store_dir} was built with embedding model "
                f"{stored_model!r} ({stored_dim}-d), but the current setting is {embedding_model!r} ({dim}-d). "
                f"Mixing them would give wrong answers. Set KBFLOW_EMBEDDING_MODEL={stored_model} to use it, or "
                f"rebuild it with `kbflow ingest PATH --collection {config.collection} --rebuild` "
                "(or pick another --collection)."
            )
        return cls(config, coll)

    @classmethod
    @_server_call
    def drop(cls, config: StoreConfig, names: Collection[str] | None = None) -> None:
        """Delete these collections (by default every collection of the knowledge base, for --rebuild); only "it
        does not exist" is passed over, any other failure is raised."""
        from chromadb.errors import NotFoundError

        client = _client(config.chroma_dir, config.chroma_host, config.chroma_token)
        for name in sorted(cls.collections_of(config) if names is None else names):
            try:
                client.delete_collection(name)
            except (NotFoundError, ValueError):
                pass  # it did not exist

    @property
    def name(self) -> str:
        """The Chroma collection's own name."""
        return self._coll.name

    @property
    def metadata(self) -> dict:
        return dict(self._coll.metadata or {})

    @property
    def embedding_model(self) -> str | None:
        return self.metadata.get(META_MODEL)

    @property
    def embedding_dim(self) -> int | None:
        dim = self.metadata.get(META_DIM)
        return int(dim) if dim else None

    def embedding_record(self) -> dict:
        """The embedding the collection was made with, as `kbflow status` shows it (and the ledger keeps it)."""
        return {
            "embedding_model": self.embedding_model,
            "dim": self.embedding_dim,
            "backend": self.metadata.get(META_BACKEND) or "torch",
            "collection": self.name,
        }

    # --- VectorStore -----------------------------------------------------------------------------

    @_server_call
    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
        readers: Mapping[str, Sequence[str] | None] | None = None,
    ) -> int:
        """Upsert chunks with their embeddings, in batches no larger than Chroma accepts; `readers` (by document
        path) go into each chunk's metadata, where a question's `where` filter reads them."""
        readers = readers or {}
        for idx in _batches(range(len(chunks)), self._max_batch):
            part = [chunks[i] for i in idx]
            self._coll.upsert(
                ids=[c.id for c in part],
                embeddings=[list(vectors[i]) for i in idx],
                documents=[c.text for c in part],
                metadatas=[_with_readers(c.metadata(), readers.get(c.source)) for c in part],
            )
        return len(chunks)

    @_server_call
    def put(self, rows: Sequence[StoredChunk], vectors: Sequence[Sequence[float]]) -> int:
        """Upsert chunks read from another collection, text and metadata as they are, with new vectors."""
        for idx in _batches(range(len(rows)), self._max_batch):
            self._coll.upsert(
                ids=[rows[i].id for i in idx],
                embeddings=[list(vectors[i]) for i in idx],
                documents=[rows[i].text for i in idx],
                metadatas=[rows[i].metadata for i in idx],
            )
        return len(rows)

    @_server_call
    def set_readers(self, ids: Sequence[str], readers: Sequence[str]) -> int:
        """Give these chunks new readers in place (a permission change): nothing is embedded or rewritten but the
        metadata key. Chroma merges the keys given into each chunk's metadata."""
        ids = list(ids)
        for part in _batches(ids, self._max_batch):
            self._coll.update(ids=list(part), metadatas=[{READERS: list(readers)} for _ in part])
        return len(ids)

    @_server_call
    def delete(self, ids: Sequence[str]) -> int:
        ids = list(ids)
        for part in _batches(ids, self._max_batch):
            self._coll.delete(ids=list(part))
        return len(ids)

    @_server_call
    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        if not ids:
            return {}
        got = self._coll.get(ids=list(ids), include=["documents", "metadatas"])
        return {
            cid: StoredChunk(cid, doc or "", meta or {})
            for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])
        }

    @_server_call
    def chunks_under(self, prefix: str) -> dict[str, str]:
        """chunk_id -> source of every chunk whose source path starts with `prefix`."""
        got = self._coll.get(include=["metadatas"])
        return {
            cid: str(m.get("source", ""))
            for cid, m in zip(got["ids"], got["metadatas"])
            if str(m.get("source", "")).startswith(prefix)
        }

    @_server_call
    def query(
        self,
        vector: Sequence[float],
        n: int,
        sources: Collection[str] | None = None,
        groups: Collection[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk_id, cosine similarity clipped to 0-1), best first; only from `sources` if given,
        and only chunks a reader of `groups` may read if given (None: every chunk)."""
        if sources is not None and not sources:
            return []
        clauses = [{"source": {"$in": sorted(sources)}}] if sources is not None else []
        if groups is not None:
            clauses.append(readers_where(groups))
        where = clauses[0] if len(clauses) == 1 else {"$and": clauses} if clauses else None
        # No count() first: Chroma returns what it has when n is more (or nothing from an empty collection), and
        # counting was 11 of a question's 27 ms at 100,000 chunks.
        res = self._coll.query(query_embeddings=[list(vector)], n_results=n, where=where, include=["distances"])
        # cosine space: distance = 1 - cosine
        return [(cid, max(0.0, min(1.0, 1.0 - float(d)))) for cid, d in zip(res["ids"][0], res["distances"][0])]

    @_server_call
    def all_ids(self) -> set[str]:
        """Every chunk id in the collection, read in pages."""
        out: set[str] = set()
        page, offset = 10000, 0
        while True:
            ids = self._coll.get(include=[], limit=page, offset=offset)["ids"]
            out.update(ids)
            if len(ids) < page:
                return out
            offset += page

    @_server_call
    def count(self) -> int:
        return int(self._coll.count())

    @_server_call
    def languages(self, pages: int = 10, page: int = 200, min_share: float = 0.02) -> frozenset[str]:
        """The languages ("zh", "en") its chunks are written in, read from up to pages x page chunks spread over the
        collection; a language of fewer than min_share of them is left out (a Chinese wiki's few English pages)."""
        total = self.count()
        counts = {"zh": 0, "en": 0}
        for offset in range(0, total, max(page, total // pages)):
            for doc in self._coll.get(include=["documents"], limit=page, offset=offset)["documents"]:
                counts["zh" if is_chinese(doc or "") else "en"] += 1
        read = sum(counts.values())
        return frozenset(lang for lang, n in counts.items() if n and n >= min_share * read)
