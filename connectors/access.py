"""Who may read a document: its readers, from the source's own permissions or from `.kbflow-access` files.

A document's readers are a sorted tuple of labels: `*` (everyone: the document is public), group names, and
`user:NAME` for a file's owner. A question is answered for a set of groups (and user labels); it sees a document
when the two share a label, or the document is public.

An access file, `.kbflow-access`, may sit in any folder of any source. Each line is `PATTERN: group, group`:
PATTERN is a glob relative to the file's folder (matched as the connectors' include patterns are), and the group
`*` means everyone; lines starting with `#` are comments. The closest access file above a document decides, and
within it the last line that matches; a file whose lines all miss the document leaves it to the next one above,
and then to the source's own permissions (POSIX modes for a folder; public for a source that has none).
"""

from __future__ import annotations

import grp
import pwd
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from connectors.base import SourceError, matches_glob

ACCESS_FILE = ".kbflow-access"
PUBLIC = "*"
PUBLIC_READERS: tuple[str, ...] = (PUBLIC,)
# A group or user label: no spaces, commas or colons but the one of `user:` (so a line splits one way only).
_LABEL = re.compile(r"^(user:)?[^\s,:#*]+$")


class AccessFileError(SourceError):
    """A `.kbflow-access` file that cannot be read as rules: the message names the file, the line and why."""


def readers_of(groups: Iterable[str]) -> tuple[str, ...]:
    """A document's readers in their one canonical form: `('*',)` when everyone may read it, else sorted labels."""
    labels = {g.strip() for g in groups if g.strip()}
    return PUBLIC_READERS if PUBLIC in labels else tuple(sorted(labels))


def parse_groups(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """The groups a question is asked for, from `hr,staff` (or a list of them); raises ValueError on a bad name."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    labels = sorted({p.strip() for p in parts if p.strip()})
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(
                f"{label!r} is not a group name: give names without spaces, commas or colons (a user as user:NAME); "
                "an administrator sees every document with --all-documents, not with a group"
            )
    return tuple(labels)


def may_read(readers: Iterable[str] | None, groups: Iterable[str]) -> bool:
    """Whether a reader of these groups may read a document with these readers (None: not recorded, hidden)."""
    if readers is None:
        return False
    readers = set(readers)
    return PUBLIC in readers or not readers.isdisjoint(groups)


@dataclass(frozen=True)
class Rule:
    pattern: str
    readers: tuple[str, ...]


def parse_access_file(text: str, where: str) -> list[Rule]:
    """The rules of one access file, in order; `where` names it in errors (AccessFileError: file, line, reason)."""
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            try:
                rules.append(_rule(line))
            except ValueError as exc:
                raise AccessFileError(f"{where}, line {number}: {exc} (a line is `PATTERN: group, group`)") from None
    return rules


def _rule(line: str) -> Rule:
    pattern, sep, rest = line.partition(":")
    pattern = pattern.strip()
    if not sep:
        raise ValueError(f"no ':' in {line!r}")
    if not pattern:
        raise ValueError("no pattern before ':'")
    groups = [g.strip() for g in rest.split(",")]
    if not any(groups):
        raise ValueError(f"pattern {pattern!r} names no group (write `*` for everyone)")
    for g in groups:
        if not g:
            raise ValueError("an empty group name between commas")
        if g != PUBLIC and not _LABEL.match(g):
            raise ValueError(f"{g!r} is not a group name (no spaces, commas or colons; a user as user:NAME)")
    return Rule(pattern, readers_of(groups))


class AccessRules:
    """The access files of one source, by folder (POSIX, relative to the source root, '' for the root itself)."""

    def __init__(self, by_folder: Mapping[str, list[Rule]] | None = None):
        self.by_folder = dict(by_folder or {})

    def __bool__(self) -> bool:
        return bool(self.by_folder)

    def add(self, folder: str, text: str, where: str) -> None:
        self.by_folder[folder.strip("/")] = parse_access_file(text, where)

    def readers(self, rel: str) -> tuple[str, ...] | None:
        """The readers the closest access file with a line for this path gives; None when no access file has one."""
        if not self.by_folder:
            return None
        parts = rel.split("/")
        for depth in range(len(parts) - 1, -1, -1):
            rules = self.by_folder.get("/".join(parts[:depth]))
            if not rules:
                continue
            below = "/".join(parts[depth:])
            for rule in reversed(rules):
                if matches_glob(below, [rule.pattern]):
                    return rule.readers
        return None


@lru_cache(maxsize=4096)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)  # a group with no name on this machine: its number


@lru_cache(maxsize=4096)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def posix_readers(mode: int, uid: int, gid: int) -> tuple[str, ...]:
    """A file's readers from its own mode: public when others may read it; else its group (when the group may read
    it) and its owner as `user:NAME`."""
    if mode & stat.S_IROTH:
        return PUBLIC_READERS
    readers = [f"user:{_user_name(uid)}"]
    if mode & stat.S_IRGRP:
        readers.append(_group_name(gid))
    return readers_of(readers)
