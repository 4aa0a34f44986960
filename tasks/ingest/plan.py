"""The sync decision: what a source listing means against the ledger (new, changed, unchanged, deleted, repaired)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from connectors.base import DocumentRef, Listing


@dataclass(frozen=True)
class ChangePlan:
    """What one ingest run does to the store. Paths are relative to the source."""

    added: list[DocumentRef] = field(default_factory=list)
    changed: list[DocumentRef] = field(default_factory=list)
    repaired: list[DocumentRef] = field(default_factory=list)  # in the ledger before, chunks lost from the store
    unchanged: list[str] = field(default_factory=list)
    regranted: list[DocumentRef] = field(default_factory=list)  # unchanged content, new readers: updated in place
    deleted: list[str] = field(default_factory=list)  # indexed, and gone from the source
    unreadable: dict[str, str] = field(default_factory=dict)  # listed but unreadable: kept as indexed
    vanished: list[str] = field(default_factory=list)  # listed, then gone when read: not indexed, not a failure

    @property
    def to_index(self) -> list[DocumentRef]:
        """Documents to read, partition, split and embed, in a stable order."""
        return self.added + self.repaired + self.changed

    def vanish(self, paths: list[str]) -> ChangePlan:
        """The plan after some listed documents turned out to be gone when read: not indexed, not failed."""
        gone = set(paths)
        if not gone:
            return self
        return replace(
            self,
            added=[r for r in self.added if r.path not in gone],
            changed=[r for r in self.changed if r.path not in gone],
            repaired=[r for r in self.repaired if r.path not in gone],
            vanished=sorted(set(self.vanished) | gone),
        )


def plan_changes(
    listing: Listing, known: Mapping[str, DocumentRef], repaired: set[str] | frozenset[str] = frozenset()
) -> ChangePlan:
    """Compare a source listing with the ledger's documents of that source.

    `repaired` are paths the ledger forgot because their chunks went missing from the store; they are
    indexed again even though the content did not change. A path the source could list but not read
    is kept as it was indexed: a failure must not delete knowledge.
    """
    current = {r.path: r for r in listing.refs}
    added = [r for p, r in current.items() if p not in known and p not in repaired]
    redo = [r for p, r in current.items() if p in repaired]
    changed = [r for p, r in current.items() if p in known and p not in repaired and known[p].sha256 != r.sha256]
    unchanged = [p for p, r in current.items() if p in known and p not in repaired and known[p].sha256 == r.sha256]
    # A permission change alone (chmod, chgrp, an edited access file): the readers are rewritten, nothing embedded.
    regranted = [current[p] for p in unchanged if known[p].readers != current[p].readers]
    deleted = [p for p in known if p not in current and p not in listing.errors]
    return ChangePlan(
        added=added,
        changed=changed,
        repaired=redo,
        unchanged=unchanged,
        regranted=regranted,
        deleted=deleted,
        unreadable=dict(listing.errors),
    )
