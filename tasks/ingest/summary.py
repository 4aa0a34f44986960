"""The ingest summary: one type with its text (CLI, logs), table (Prefect artifact) and JSON forms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

COUNTS = (
    "added",
    "updated",
    "deleted",
    "unchanged",
    "repaired",
    "readers_changed",
    "chunks_written",
    "chunks_deleted",
)


@dataclass
class IngestSummary:
    """What an ingest run did, as a user reads it."""

    source: str
    store: str
    collection: str
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    repaired: int = 0
    readers_changed: int = 0  # of the unchanged: a permission change alone, the readers updated in place
    chunks_written: int = 0
    chunks_deleted: int = 0
    duration_s: float = 0.0
    failed: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}, sorted by path
    vanished: list[str] = field(default_factory=list)  # listed, then gone when read: not indexed, not a failure
    # Indexed, but worth a look (a page OCR read with low confidence): {"path", "warning"}, sorted by path
    warnings: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def warning_rows(warnings: dict[str, list[str]]) -> list[dict[str, str]]:
        """index_batch's {path: [warning, ...]} as the summary's rows, sorted by path."""
        return [{"path": p, "warning": w} for p in sorted(warnings) for w in warnings[p]]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestSummary:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def counts(self) -> str:
        """One line of counts, for logs and the watcher."""
        vanished = f", {len(self.vanished)} vanished" if self.vanished else ""
        readers = f" ({self.readers_changed} with new readers)" if self.readers_changed else ""
        return (
            f"{self.added} added, {self.updated} updated, {self.deleted} deleted, {self.unchanged} unchanged{readers}, "
            f"{len(self.failed)} failed{vanished} in {self.duration_s:.1f} s"
        )

    def text(self) -> str:
        """What the CLI prints."""
        lines = [
            f"Ingested {self.source} into collection {self.collection!r} ({self.store}) in {self.duration_s:.1f} s",
            f"  added {self.added}, updated {self.updated}, deleted {self.deleted}, unchanged {self.unchanged}, "
            f"failed {len(self.failed)}" + (f", vanished during the run {len(self.vanished)}" if self.vanished else ""),
            f"  chunks written {self.chunks_written}, chunks deleted {self.chunks_deleted}",
        ]
        if self.readers_changed:
            lines.insert(2, f"  readers changed {self.readers_changed} (updated in place, nothing embedded)")
        lines += [
            f"  vanished {p} (deleted while the run was going on; its old chunks were removed)" for p in self.vanished
        ]
        lines += [f"  FAILED {f['path']}: {f['reason']}" for f in self.failed]
        lines += [f"  WARNING {w['path']}: {w['warning']}" for w in self.warnings]
        return "\n".join(lines)

    def table(self) -> list[dict[str, str]]:
        """Rows of the Prefect table artifact: one per count, then one per vanished and per failed document."""
        rows = [{"item": k, "value": str(getattr(self, k))} for k in COUNTS + ("duration_s",)]
        rows.append({"item": "failed", "value": str(len(self.failed))})
        rows += [{"item": f"failed: {f['path']}", "value": f["reason"]} for f in self.failed]
        rows += [{"item": f"vanished: {p}", "value": "deleted while the run was going on"} for p in self.vanished]
        rows += [{"item": f"warning: {w['path']}", "value": w["warning"]} for w in self.warnings]
        return rows

    @classmethod
    def from_table(cls, rows: list[dict[str, Any]], **where: str) -> IngestSummary:
        """Read a summary back from its table artifact (the watcher does this for deployment runs)."""
        summary = cls(
            source=where.get("source", ""), store=where.get("store", ""), collection=where.get("collection", "")
        )
        for row in rows:
            item, value = str(row.get("item", "")), str(row.get("value", ""))
            if item.startswith("failed: "):
                summary.failed.append({"path": item[len("failed: ") :], "reason": value})
            elif item.startswith("vanished: "):
                summary.vanished.append(item[len("vanished: ") :])
            elif item.startswith("warning: "):
                summary.warnings.append({"path": item[len("warning: ") :], "warning": value})
            elif item == "duration_s":
                summary.duration_s = float(value)
            elif item in COUNTS:
                setattr(summary, item, int(value))
        return summary
