"""The ingest flow with real Chroma, real unstructured and the real embedding model."""

from __future__ import annotations

import os
import shutil

import pytest

from flows.errors import ConfigError, DocumentsFailed
from flows.ingest import ingest_flow
from tasks.embed.embedder import ExportedEmbedder, MultilingualUseEmbedder, SentenceTransformerEmbedder
from tasks.ingest.ledger import Ledger
from tasks.store import keyword
from tasks.store.base import StoreConfig
from tasks.store.chroma import ChromaStore
from tests.conftest import assert_store_matches_folder, store_state

pytestmark = pytest.mark.slow


def run(src, store, **kw):
    return ingest_flow(source_path=str(src), store_dir=str(store), **kw)


@pytest.fixture
def count_embeds(monkeypatch):
    calls = []
    for cls in (SentenceTransformerEmbedder, ExportedEmbedder, MultilingualUseEmbedder):
        monkeypatch.setattr(
            cls, "embed", lambda self, texts, real=cls.embed: calls.append(len(texts)) or real(self, texts)
        )
    return calls


def test_first_run_indexes_every_file_and_second_run_embeds_nothing(docs_dir, store_dir, count_embeds):
    first = run(docs_dir, store_dir)
    n_files = len(list(docs_dir.iterdir()))
    assert first["added"] == n_files and first["failed"] == [] and first["chunks_written"] > n_files - 1
    state = assert_store_matches_folder(store_dir, docs_dir)
    pdf = state["by_source"]["manual.pdf"]
    assert {c["page"] for c in pdf} == {1, 2}
    assert any(c["section"] == "Meals" and "45 euros" in c["text"] for c in state["by_source"]["policy.docx"])
    assert sum(count_embeds) == first["chunks_written"]

    count_embeds.clear()
    second = run(docs_dir, store_dir)
    assert second["unchanged"] == n_files
    assert second["added"] == second["updated"] == second["deleted"] == second["chunks_written"] == 0
    assert count_embeds == []
    assert store_state(store_dir)["ids"] == state["ids"]


def test_edit_delete_and_rename_keep_the_store_exact(docs_dir, store_dir):
    run(docs_dir, store_dir)
    before = store_state(store_dir)["by_source"]

    (docs_dir / "notes.txt").write_text("Meeting notes. The green widget ships in October.\n")
    (docs_dir / "guide.md").unlink()
    (docs_dir / "page.html").rename(docs_dir / "hours.html")
    summary = run(docs_dir, store_dir)
    assert (summary["added"], summary["updated"], summary["deleted"]) == (1, 1, 2)

    after = assert_store_matches_folder(store_dir, docs_dir)["by_source"]
    assert "guide.md" not in after and "page.html" not in after
    assert "Lisbon" in after["hours.html"][0]["text"]
    assert ["green widget" in c["text"] for c in after["notes.txt"]] == [True]
    # Only the edited file's chunks changed; every other document kept its chunk ids.
    for path in set(before) & set(after) - {"notes.txt"}:
        assert [c["id"] for c in after[path]] == [c["id"] for c in before[path]]
    assert not {c["id"] for c in before["notes.txt"]} & {c["id"] for c in after["notes.txt"]}
    # The run left the keyword index saved for the new state: the edit's words are found, the deleted file's not.
    config = StoreConfig(store_dir=str(store_dir), collection="knowledge")
    assert keyword.is_current(config)
    index, done = keyword.refresh(config)
    assert done == "current" and index.chunk_ids() == store_state(store_dir)["ids"]
    assert index.search(["green", "widget"], 3)[0][0] == after["notes.txt"][0]["id"]
    assert {cid for cid, _ in index.search(["lisbon"], 10)} == {c["id"] for c in after["hours.html"]}


def test_bad_inputs_are_reported_by_name_and_the_good_files_indexed(docs_dir, store_dir):
    (docs_dir / "scan.pdf").write_bytes(b"%PDF-1.7\n%garbage that is no pdf" + os.urandom(200))
    (docs_dir / "empty.txt").write_bytes(b"")
    (docs_dir / "report.docx").write_bytes(os.urandom(4096))
    (docs_dir / "model.stl").write_bytes(b"solid x\nendsolid x\n")
    (docs_dir / "gbk.txt").write_bytes("报销须在出差结束后三十天内提交。".encode("gbk"))

    with pytest.raises(DocumentsFailed) as info:
        run(docs_dir, store_dir)
    summary = info.value.summary
    reasons = {f["path"]: f["reason"] for f in summary["failed"]}
    assert set(reasons) == {"scan.pdf", "empty.txt", "report.docx", "model.stl"}
    assert reasons["scan.pdf"].startswith("corrupt PDF")
    assert reasons["empty.txt"] == "empty file (0 bytes)"
    assert reasons["report.docx"].startswith("not a valid docx file")
    assert reasons["model.stl"].startswith("unsupported file type .stl")
    assert summary["added"] == len(list(docs_dir.iterdir())) - 4
    state = assert_store_matches_folder(store_dir, docs_dir, expect_missing=reasons)
    assert "三十天内提交" in state["by_source"]["gbk.txt"][0]["text"]

    # Fixing a file makes the next run index it and forget the failure.
    (docs_dir / "empty.txt").write_text("Now it has text.")
    for bad in ("scan.pdf", "report.docx", "model.stl"):
        (docs_dir / bad).unlink()
    summary = run(docs_dir, store_dir)
    assert summary["failed"] == [] and summary["added"] == 1
    assert_store_matches_folder(store_dir, docs_dir)


def test_a_run_that_dies_between_writing_chunks_and_the_ledger_is_repaired(docs_dir, store_dir, monkeypatch):
    run(docs_dir, store_dir)
    (docs_dir / "notes.txt").write_text("Meeting notes. The violet widget ships in June.\n")
    (docs_dir / "extra.md").write_text("# Extra\n\nA brand new document about the lighthouse.\n")

    def die(*a, **k):
        raise KeyboardInterrupt("killed")  # not caught anywhere: the run stops where kill -9 would

    monkeypatch.setattr(Ledger, "commit_documents", die)
    with pytest.raises(KeyboardInterrupt):
        run(docs_dir, store_dir)
    broken = store_state(store_dir)
    assert broken["ids"] > broken["ledger_ids"]  # new chunks written, ledger never told
    monkeypatch.undo()

    summary = run(docs_dir, store_dir)
    assert summary["added"] == 1 and summary["updated"] == 1
    state = assert_store_matches_folder(store_dir, docs_dir)
    assert "violet" in state["by_source"]["notes.txt"][0]["text"]


def test_a_run_that_dies_after_the_ledger_but_before_deleting_old_chunks_is_repaired(docs_dir, store_dir, monkeypatch):
    run(docs_dir, store_dir)
    (docs_dir / "notes.txt").write_text("Meeting notes. The amber widget ships in July.\n")
    calls = {"n": 0}
    real = ChromaStore.delete

    def die_on_delete(self, ids):
        if not ids:
            return real(self, ids)
        calls["n"] += 1
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ChromaStore, "delete", die_on_delete)
    with pytest.raises(KeyboardInterrupt):
        run(docs_dir, store_dir)
    monkeypatch.setattr(ChromaStore, "delete", real)
    assert calls["n"] >= 1
    stale = store_state(store_dir)
    assert stale["ids"] > stale["ledger_ids"]  # old version's chunks still in Chroma

    summary = run(docs_dir, store_dir)
    assert summary["unchanged"] == len(list(docs_dir.iterdir()))
    assert_store_matches_folder(store_dir, docs_dir)


def test_chunks_lost_from_chroma_are_re_indexed(docs_dir, store_dir):
    from kbflow.cli.status import store_status
    from tasks.settings import load_settings

    run(docs_dir, store_dir)
    settings = load_settings(store_dir=str(store_dir))
    chunks = store_status(settings)["chunks"]  # from the ledger: Chroma is as the run left it

    store = ChromaStore.open_existing(StoreConfig(store_dir=str(store_dir), collection="knowledge"))
    lost = [c["id"] for c in store_state(store_dir)["by_source"]["guide.md"]]
    store.delete(lost[:1])
    assert store_status(settings)["chunks"] == chunks - 1  # Chroma changed behind the ledger: counted in Chroma
    summary = run(docs_dir, store_dir)
    assert summary["repaired"] == 1 and summary["updated"] == 1
    assert_store_matches_folder(store_dir, docs_dir)
    assert store_status(settings)["chunks"] == chunks


def test_a_model_that_cannot_load_is_a_clear_error_and_the_store_keeps_serving(docs_dir, store_dir):
    run(docs_dir, store_dir)
    other = shutil.copytree(docs_dir, store_dir.parent / "other")
    with pytest.raises(ConfigError) as info:
        run(other, store_dir, embedding_model="some/other-model")
    msg = str(info.value)
    assert "'some/other-model'" in msg and "still serves 'multilingual-use-v3'" in msg
    served = ChromaStore.open_existing(StoreConfig(store_dir=str(store_dir), collection="knowledge"))
    assert served.embedding_model == "multilingual-use-v3" and served.count() == len(store_state(store_dir)["ids"])


def test_a_file_deleted_while_the_run_reads_it_is_vanished_not_failed(docs_dir, store_dir, monkeypatch):
    from connectors.local import LocalSource

    run(docs_dir, store_dir)
    (docs_dir / "notes.txt").write_text("Meeting notes. The teal widget ships in May.\n")
    (docs_dir / "brand_new.md").write_text("# New\n\nA document that is gone before it is read.\n")
    real = LocalSource.read

    def delete_then_read(self, ref):
        if ref.path in ("notes.txt", "brand_new.md"):
            (self.root / ref.path).unlink()  # someone deletes it between the listing and the read
        return real(self, ref)

    monkeypatch.setattr(LocalSource, "read", delete_then_read)
    summary = run(docs_dir, store_dir)  # no DocumentsFailed: the run ends Completed
    assert summary["failed"] == [] and summary["vanished"] == ["brand_new.md", "notes.txt"]
    assert summary["added"] == summary["updated"] == 0
    # The vanished document's old chunks left the store with it; everything else is untouched.
    assert_store_matches_folder(store_dir, docs_dir)
    assert "notes.txt" not in store_state(store_dir)["ledger_docs"]
