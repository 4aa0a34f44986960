"""What every vector store is: its config, its errors, the VectorStore protocol and the chunk it returns."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from tasks.ingest.split import Chunk

META_MODEL = "kbflow_embedding_model"
META_DIM = "kbflow_embedding_dim"
META_BACKEND = "kbflow_embedding_backend"


class StoreError(Exception):
    """The store cannot be used as asked; the message says what to do."""


class EmbeddingMismatchError(StoreError):
    pass


class StoreBusyError(StoreError):
    pass


class StoreUnavailable(StoreError):
    """The Chroma server stopped answering in the middle of a run: a fault, not a usage error. What was written
    stays consistent (the ledger is committed after Chroma), and the next run, with the server back, repairs it."""


class StoreConfig(BaseModel, frozen=True):
    """Where one knowledge base lives: a store folder (ledger, lock, embedded Chroma) and a collection."""

    store_dir: str = Field(description="Folder of the ledger, the lock, the reports and the embedded Chroma files.")
    collection: str = Field(description="Chroma collection: one knowledge base.")
    chroma_collection: str = Field(
        "",
        description="The Chroma collection to read and write; empty: the one that serves the knowledge base (the "
        "ledger names it: a change of embedding model moves it to a new collection, tasks.store.reembed).",
    )
    chroma_host: str = Field("", description="host:port of a Chroma server; empty uses the embedded store.")
    chroma_token: str = Field("", repr=False, description="Bearer token sent to the Chroma server, if any.")
    min_free_mb: int = Field(
        50,
        ge=0,
        description="Megabytes an ingest leaves free on the store's disk: a write that would cut into them stops "
        "the run with a clear message, before Chroma or SQLite meet a full disk.",
    )

    @property
    def chroma_dir(self) -> str:
        return str(Path(self.store_dir) / "chroma")


@dataclass
class StoredChunk:
    """A chunk as read back from the store."""

    id: str
    text: str
    metadata: dict


@runtime_checkable
class VectorStore(Protocol):
    """What ingest and retrieval need from a vector store; ids are kbflow's deterministic chunk ids."""

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> int: ...
    def delete(self, ids: Sequence[str]) -> int: ...
    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]: ...
    def query(
        self,
        vector: Sequence[float],
        n: int,
        sources: Collection[str] | None = None,
        groups: Collection[str] | None = None,
    ) -> list[tuple[str, float]]: ...
    def chunks_under(self, prefix: str) -> dict[str, str]: ...
    def all_ids(self) -> set[str]: ...
    def count(self) -> int: ...
