"""How a flow run ends badly, with what the CLI needs to pick its exit code."""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A usage or configuration error: the message says what to fix (CLI exit code 2)."""


class DocumentsFailed(Exception):
    """Some documents failed; the others were indexed. Carries the run summary (CLI exit code 1)."""

    def __init__(self, summary: dict[str, Any]):
        self.summary = summary
        failed = summary["failed"]
        shown = "; ".join(f"{f['path']}: {f['reason']}" for f in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        super().__init__(f"{len(failed)} document(s) failed, the rest were indexed: {shown}{more}")


class QuestionsFailed(Exception):
    """Some questions could not be answered (recorded in their rows); carries the summary (CLI exit code 1)."""

    def __init__(self, summary: dict):
        self.summary = summary
        super().__init__(
            f"{summary['errors']} of {summary['questions']} question(s) failed; see {summary['report_dir']}"
        )
