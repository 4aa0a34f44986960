"""A folder on the local disk as a document source."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from connectors.access import ACCESS_FILE, AccessFileError, AccessRules, posix_readers
from connectors.base import (
    DEFAULT_EXCLUDE,
    DocumentRef,
    DocumentVanished,
    Listing,
    SourceError,
    is_candidate_path,
    register_connector,
    sha256_file,
)
from connectors.base import (
    matches_glob as _matches,
)

CONNECTOR_TYPE = "local"
logger = logging.getLogger("kbflow.connectors.local")


class LocalSourceConfig(BaseModel):
    """Settings of a local folder source."""

    root: str = Field(description="Folder to index, recursively.")
    include: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Glob patterns (on the relative path or the file name) a file must match.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns that skip a file or folder; added to the built-in temporary-file patterns.",
    )


class LocalSource:
    """Lists and reads the files under a folder; hidden files, symlink loops and links that leave the folder are
    skipped."""

    def __init__(self, config: LocalSourceConfig):
        self.config = config
        root = Path(config.root).expanduser()
        if not root.is_dir():
            raise SourceError(f"source folder {root} does not exist or is not a folder")
        self.root = root.resolve()
        self.source_id = f"{CONNECTOR_TYPE}:{self.root.as_posix()}"
        self._exclude = DEFAULT_EXCLUDE + list(config.exclude)

    def to_config(self) -> dict[str, Any]:
        return {"type": CONNECTOR_TYPE, **self.config.model_dump()}

    def describe(self) -> str:
        return str(self.root)

    def is_candidate(self, rel: str) -> bool:
        """Whether a relative path would be listed (not hidden, included, not excluded)."""
        return is_candidate_path(rel, self.config.include, self._exclude)

    def _inside(self, real: Path) -> bool:
        return real == self.root or self.root in real.parents

    def _walk(self, rules: AccessRules | None = None):
        """Yield (relative path, real path, stat result or the OSError that stopped the stat) of candidate
        files, following only links that stay inside; the folders' access files go into `rules`.

        Plain entries are judged by their directory entry and one stat each (os.scandir): a no-change
        refresh of 20,000 files is mostly this loop.
        """
        seen_dirs: set[tuple[int, int]] = set()
        stack = [(str(self.root), "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                st = os.stat(folder)
            except OSError as exc:
                logger.warning("Skipping folder %s: %s", prefix or ".", exc.strerror or exc)
                continue
            if (st.st_dev, st.st_ino) in seen_dirs:
                continue  # a symlink loop, or a second link to a folder already walked
            seen_dirs.add((st.st_dev, st.st_ino))
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                logger.warning("Skipping folder %s: %s", prefix or ".", exc.strerror or exc)
                continue
            for entry in entries:
                rel = f"{prefix}{entry.name}"
                if entry.name == ACCESS_FILE and rules is not None and entry.is_file():
                    self._read_access_file(rules, prefix, entry.path)
                    continue
                if entry.name.startswith(".") or _matches(rel, self._exclude):
                    continue
                real = entry.path
                try:
                    if entry.is_symlink():
                        try:
                            resolved = Path(entry.path).resolve(strict=True)
                        except (OSError, RuntimeError):
                            logger.warning("Skipping %s: broken or looping symlink", rel)
                            continue
                        if not self._inside(resolved):
                            logger.warning("Skipping %s: symlink points outside the source folder", rel)
                            continue
                        real = str(resolved)
                    st = entry.stat()  # follows a link; no extra system call for a plain file seen before
                except FileNotFoundError:
                    continue  # gone since the folder was read: it is simply not there any more
                except OSError as exc:
                    if _matches(rel, self.config.include):
                        yield rel, real, exc
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append((real, rel + "/"))
                elif stat.S_ISREG(st.st_mode) and _matches(rel, self.config.include):
                    yield rel, real, st

    def _read_access_file(self, rules: AccessRules, prefix: str, path: str) -> None:
        """Add a folder's access file to the rules; AccessFileError (the file, the line, why) when it is broken."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise AccessFileError(f"{path}: cannot read the access file: {why}") from None
        rules.add(prefix, text, path)

    def list(self, known: Mapping[str, DocumentRef] | None = None) -> Listing:
        """List every document with its hash (reusing a known hash when size and mtime are unchanged) and its
        readers: the closest access file's rule for it, else its own POSIX mode.

        Raises AccessFileError for a broken access file: nothing may be indexed with readers guessed."""
        known = known or {}
        listing = Listing()
        rules = AccessRules()
        found = []
        for rel, real, st in self._walk(rules):
            if isinstance(st, OSError):
                listing.errors[rel] = f"cannot read file: {st.strerror or st}"
                continue
            old = known.get(rel)
            if old is not None and old.size == st.st_size and old.mtime == st.st_mtime and old.sha256:
                digest = old.sha256
            else:
                try:
                    digest = sha256_file(Path(real))
                except FileNotFoundError:
                    continue  # gone since the folder was read
                except OSError as exc:
                    listing.errors[rel] = f"cannot read file: {exc.strerror or exc}"
                    continue
            found.append((rel, st, digest))
        # After the walk: a folder's access file may sort after some of its documents.
        for rel, st, digest in found:
            readers = rules.readers(rel) or posix_readers(st.st_mode, st.st_uid, st.st_gid)
            listing.refs.append(DocumentRef(self.source_id, rel, st.st_size, st.st_mtime, digest, readers))
        return listing

    def path_of(self, ref: DocumentRef) -> Path:
        """The file behind a ref, refusing any path that would leave the folder."""
        real = (self.root / ref.path).resolve()
        if not self._inside(real):
            raise SourceError(f"{ref.path}: resolves outside the source folder")
        return real

    def read(self, ref: DocumentRef) -> bytes:
        try:
            return self.path_of(ref).read_bytes()
        except FileNotFoundError as exc:
            raise DocumentVanished("deleted while the run was going on") from exc
        except OSError as exc:
            raise SourceError(f"cannot read file: {exc.strerror or exc}") from exc


register_connector(CONNECTOR_TYPE, lambda config: LocalSource(LocalSourceConfig(**config)))
