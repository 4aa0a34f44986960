"""What every connector shares: the document record, the Source protocol and the registry of connector types."""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class DocumentRef:
    """One document of a source, identified by its path relative to the source root."""

    source_id: str
    path: str  # POSIX, relative to the source root
    size: int
    mtime: float
    sha256: str
    # Who may read it (connectors.access): ('*',) for everyone, else group names and `user:NAME`; None when the
    # connector or an older ledger recorded none.
    readers: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and a listing of 20,000 files calls this 40,000 times.
        return {
            "source_id": self.source_id,
            "path": self.path,
            "size": self.size,
            "mtime": self.mtime,
            "sha256": self.sha256,
            "readers": None if self.readers is None else list(self.readers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocumentRef:
        readers = data.get("readers")
        return cls(
            **{k: data[k] for k in ("source_id", "path", "size", "mtime", "sha256")},
            readers=None if readers is None else tuple(readers),
        )


@dataclass
class Listing:
    """What a source holds now: readable documents, and the ones it could not even hash."""

    refs: list[DocumentRef] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # path -> reason


class SourceError(Exception):
    """A source could not be listed or read; the message is safe to log."""


class DocumentVanished(SourceError):
    """The document was listed but is gone when read (deleted or moved during the run): not a failure."""


@runtime_checkable
class Source(Protocol):
    """Where documents live. A new connector is one module that implements this and registers itself."""

    source_id: str

    def list(self, known: Mapping[str, DocumentRef] | None = None) -> Listing:
        """List every document; `known` refs with the same size and mtime keep their hash."""
        ...

    def read(self, ref: DocumentRef) -> bytes:
        """Return the document's bytes; raise DocumentVanished if it is gone, SourceError if unreadable."""
        ...

    def to_config(self) -> dict[str, Any]:
        """Plain values that rebuild this source with `source_from_config` (for tasks and workers)."""
        ...

    def describe(self) -> str:
        """A short human-readable name of the source (a folder, a bucket and prefix) for summaries."""
        ...


# CONNECTOR_TYPE -> factory taking the plain config (without "type")
@dataclass(frozen=True)
class Registration:
    """A connector type: its factory, and the URL scheme and spec parser of the sources it reads (if any)."""

    factory: Callable[[dict[str, Any]], Source]
    scheme: str | None = None
    # (the spec's text after SCHEME://, include, exclude, per-connector options) -> its plain config
    parse_spec: Callable[..., dict[str, Any]] | None = None


_REGISTRY: dict[str, Registration] = {}


def register_connector(
    connector_type: str,
    factory: Callable[[dict[str, Any]], Source],
    *,
    scheme: str | None = None,
    parse_spec: Callable[..., dict[str, Any]] | None = None,
) -> None:
    """Make a connector type known to `source_from_config` (and its scheme to `source_config_from_spec`).

    Each connector module calls this once at import; a second registration of a type or a scheme is refused.
    """
    if connector_type in _REGISTRY:
        raise ValueError(f"connector type {connector_type!r} is registered already")
    if scheme is not None and any(r.scheme == scheme for r in _REGISTRY.values()):
        raise ValueError(f"URL scheme {scheme}:// is registered already")
    _REGISTRY[connector_type] = Registration(factory, scheme, parse_spec)


def _registered(kind: str) -> Registration | None:
    """The registration of a connector type, importing `connectors.<kind>` on first use."""
    if kind not in _REGISTRY and kind.isidentifier():
        try:
            importlib.import_module(f"connectors.{kind}")
        except ModuleNotFoundError:
            pass
    return _REGISTRY.get(kind)


def source_from_config(config: Mapping[str, Any]) -> Source:
    """Rebuild a source from the plain config its `to_config()` gave (imports `connectors.<type>` on first use)."""
    kind = str(config.get("type", ""))
    registration = _registered(kind)
    if registration is None:
        raise SourceError(f"unknown source type {kind!r}; known: {', '.join(sorted(_REGISTRY)) or 'none'}")
    return registration.factory({k: v for k, v in config.items() if k != "type"})


# Editor swap files, Office lock files and downloads still in flight are never documents.
DEFAULT_EXCLUDE = [
    "~$*",
    "*~",
    "*.swp",
    "*.swo",
    "*.swx",
    "*.tmp",
    "*.temp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    ".#*",
    "#*#",
    "*.lock",
]


class _GlobSet:
    """Glob patterns compiled for a loop over many paths: `*` alone, `*SUFFIX` and `PREFIX*` are plain
    string tests; the rest is one regex of fnmatch's own translation (case-sensitive)."""

    def __init__(self, patterns: tuple[str, ...]):
        self.everything = False
        suffixes, prefixes, rest = [], [], []
        for p in patterns:
            if p == "*":
                self.everything = True
            elif p.startswith("*") and not _has_wildcard(p[1:]):
                suffixes.append(p[1:])
            elif p.endswith("*") and not _has_wildcard(p[:-1]):
                prefixes.append(p[:-1])
            else:
                rest.append(p)
        self.suffixes, self.prefixes = tuple(suffixes), tuple(prefixes)
        self.regex = re.compile("|".join(fnmatch.translate(p) for p in rest)) if rest else None

    def match(self, text: str) -> bool:
        return (
            self.everything
            or text.endswith(self.suffixes)
            or text.startswith(self.prefixes)
            or (self.regex is not None and self.regex.match(text) is not None)
        )


def _has_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


@lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> _GlobSet:
    return _GlobSet(patterns)


def matches_glob(rel: str, patterns: list[str]) -> bool:
    """Whether a relative POSIX path, or its last name, matches one of the glob patterns."""
    globs = _globs(tuple(patterns))
    return globs.match(rel) or globs.match(rel.rsplit("/", 1)[-1])


def is_candidate_path(rel: str, include: list[str], exclude: list[str]) -> bool:
    """Whether a relative path is a document: no hidden part, no part excluded, the path included."""
    parts = rel.split("/")
    if any(p.startswith(".") for p in parts):
        return False
    if any(matches_glob("/".join(parts[: i + 1]), exclude) for i in range(len(parts))):
        return False
    return matches_glob(rel, include)


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)


def source_config_from_spec(spec: str, include: list[str], exclude: list[str], **options: Any) -> dict[str, Any]:
    """The connector config of a source given as the CLI takes it: `s3://BUCKET/PREFIX` or a folder path.

    `options` are per-connector settings (`endpoint_url`, `region` for S3); empty ones are left out.
    """
    match = _SCHEME.match(spec)
    if match is None:
        return {"type": "local", "root": spec, "include": list(include), "exclude": list(exclude)}
    scheme, rest = match.group(1).lower(), match.group(2)
    # A connector module is named after its type; by convention a URL scheme names its connector.
    registration = _registered(scheme)
    if registration is None or registration.scheme != scheme or registration.parse_spec is None:
        import pkgutil

        import connectors

        for module in pkgutil.iter_modules(connectors.__path__):  # every connector, to name every scheme
            _registered(module.name)
        schemes = sorted(f"{r.scheme}://" for r in _REGISTRY.values() if r.scheme)
        raise SourceError(
            f"unsupported source {scheme}://...: give a folder path or one of {', '.join(schemes) or 'none'}"
        )
    return registration.parse_spec(rest, include, exclude, **options)


def sha256_file(path) -> str:
    """sha256 of a file's content, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
