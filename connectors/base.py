"""What every connector shares: the document record and the Source protocol."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable


@dataclass(frozen=True)
class DocumentRef:
    """One document of a source, identified by its path relative to the source root."""

    source_id: str
    path: str  # POSIX, relative to the source root
    size: int
    mtime: float
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DocumentRef":
        return cls(**{k: data[k] for k in ("source_id", "path", "size", "mtime", "sha256")})


@dataclass
class Listing:
    """What a source holds now: readable documents, and the ones it could not even hash."""

    refs: list[DocumentRef] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # path -> reason


class SourceError(Exception):
    """A source could not be listed or read; the message is safe to log."""


@runtime_checkable
class Source(Protocol):
    """Where documents live. A new connector is one module that implements this."""

    source_id: str

    def list(self, known: Mapping[str, DocumentRef] | None = None) -> Listing:
        """List every document; `known` refs with the same size and mtime keep their hash."""
        ...

    def read(self, ref: DocumentRef) -> bytes:
        """Return the document's bytes."""
        ...

    def to_config(self) -> dict[str, Any]:
        """Plain values that rebuild this source with `source_from_config` (for tasks and workers)."""
        ...


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    """sha256 of a file's content, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def source_from_config(config: Mapping[str, Any]) -> Source:
    """Rebuild a source from the plain config its `to_config()` gave."""
    kind = config.get("type")
    if kind == "local":
        from connectors.local import LocalSource, LocalSourceConfig

        return LocalSource(LocalSourceConfig(**{k: v for k, v in config.items() if k != "type"}))
    raise SourceError(f"unknown source type {kind!r}; known: 'local'")


def refs_by_path(refs: Iterable[DocumentRef]) -> dict[str, DocumentRef]:
    return {r.path: r for r in refs}
