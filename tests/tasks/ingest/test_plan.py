"""The sync decision, without models or stores."""

from __future__ import annotations

import pytest

from connectors.base import DocumentRef, Listing
from tasks.ingest.plan import plan_changes

pytestmark = pytest.mark.unit


def ref(path: str, sha: str) -> DocumentRef:
    return DocumentRef("local:/docs", path, 10, 1.0, sha)


def test_new_changed_unchanged_and_deleted_documents():
    known = {"same.txt": ref("same.txt", "a"), "edited.txt": ref("edited.txt", "b"), "gone.txt": ref("gone.txt", "c")}
    listing = Listing([ref("same.txt", "a"), ref("edited.txt", "b2"), ref("new.txt", "d")])
    plan = plan_changes(listing, known)
    assert [r.path for r in plan.added] == ["new.txt"]
    assert [r.path for r in plan.changed] == ["edited.txt"]
    assert plan.unchanged == ["same.txt"] and plan.deleted == ["gone.txt"]
    assert [r.path for r in plan.to_index] == ["new.txt", "edited.txt"]
    assert plan.repaired == []


def test_a_second_run_over_an_unchanged_listing_does_nothing():
    refs = [ref("a.txt", "1"), ref("b.txt", "2")]
    plan = plan_changes(Listing(list(refs)), {r.path: r for r in refs})
    assert plan.to_index == [] and plan.deleted == [] and plan.unchanged == ["a.txt", "b.txt"]


def test_an_unreadable_document_is_kept_as_indexed_not_deleted():
    known = {"locked.txt": ref("locked.txt", "a")}
    plan = plan_changes(Listing([], {"locked.txt": "cannot read file: Permission denied"}), known)
    assert plan.deleted == [] and plan.unreadable == {"locked.txt": "cannot read file: Permission denied"}
    assert plan.to_index == []


def test_a_rename_is_a_delete_plus_an_add():
    known = {"old/name.txt": ref("old/name.txt", "same")}
    plan = plan_changes(Listing([ref("new/name.txt", "same")]), known)
    assert [r.path for r in plan.added] == ["new/name.txt"] and plan.deleted == ["old/name.txt"]


def test_repaired_documents_are_indexed_again_even_when_unchanged():
    # The ledger forgot b.txt because chunks of it went missing from the store.
    known = {"a.txt": ref("a.txt", "1")}
    plan = plan_changes(Listing([ref("a.txt", "1"), ref("b.txt", "2")]), known, repaired={"b.txt"})
    assert [r.path for r in plan.repaired] == ["b.txt"] and plan.added == [] and plan.unchanged == ["a.txt"]


def test_documents_that_vanish_while_the_run_reads_them_are_neither_indexed_nor_failed():
    known = {"edited.txt": ref("edited.txt", "old")}
    plan = plan_changes(Listing([ref("edited.txt", "new"), ref("new.txt", "n"), ref("kept.txt", "k")]), known)
    after = plan.vanish(["edited.txt", "new.txt"])
    assert [r.path for r in after.to_index] == ["kept.txt"]
    assert after.vanished == ["edited.txt", "new.txt"] and after.unreadable == {}
    assert after.deleted == []  # a vanished document is counted as vanished, not as deleted
    assert plan.vanish([]) is plan


def test_new_readers_of_unchanged_content_are_a_regrant_not_a_reindex():
    known = {
        "hr.txt": DocumentRef("local:/docs", "hr.txt", 10, 1.0, "a", ("hr", "user:root")),
        "old.txt": DocumentRef("local:/docs", "old.txt", 10, 1.0, "b", None),  # from a ledger without readers
        "same.txt": DocumentRef("local:/docs", "same.txt", 10, 1.0, "c", ("*",)),
    }
    listing = Listing(
        [
            DocumentRef("local:/docs", "hr.txt", 10, 1.0, "a", ("*",)),
            DocumentRef("local:/docs", "old.txt", 10, 1.0, "b", ("*",)),
            DocumentRef("local:/docs", "same.txt", 10, 1.0, "c", ("*",)),
        ]
    )
    plan = plan_changes(listing, known)
    assert [(r.path, r.readers) for r in plan.regranted] == [("hr.txt", ("*",)), ("old.txt", ("*",))]
    assert plan.to_index == [] and plan.unchanged == ["hr.txt", "old.txt", "same.txt"]
