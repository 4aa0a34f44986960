"""The ingest summary's forms agree with each other."""

from __future__ import annotations

import pytest

from tasks.ingest.summary import IngestSummary

pytestmark = pytest.mark.unit


def test_table_round_trip_and_text():
    s = IngestSummary(
        source="/docs",
        store=".kbflow",
        collection="kb",
        added=3,
        updated=1,
        deleted=2,
        unchanged=7,
        chunks_written=40,
        chunks_deleted=12,
        duration_s=1.25,
        failed=[{"path": "bad.pdf", "reason": "corrupt PDF: no header"}],
        vanished=["gone.md"],
    )
    back = IngestSummary.from_table(s.table(), source="/docs", store=".kbflow", collection="kb")
    assert back == s
    text = s.text()
    assert "added 3, updated 1, deleted 2, unchanged 7, failed 1" in text
    assert "FAILED bad.pdf: corrupt PDF: no header" in text and "vanished gone.md" in text
    assert s.counts() == "3 added, 1 updated, 2 deleted, 7 unchanged, 1 failed, 1 vanished in 1.2 s"
    assert IngestSummary.from_dict(s.to_dict()) == s


def test_a_permission_change_alone_is_counted_and_said():
    s = IngestSummary(source="/docs", store=".kbflow", collection="kb", unchanged=4, readers_changed=1)
    assert s.counts() == "0 added, 0 updated, 0 deleted, 4 unchanged (1 with new readers), 0 failed in 0.0 s"
    assert "readers changed 1 (updated in place, nothing embedded)" in s.text()
    assert IngestSummary.from_table(s.table(), source="/docs", store=".kbflow", collection="kb") == s
