"""A change of embedding model: a new collection is built beside the serving one, which serves until it is complete."""

from __future__ import annotations

import pytest

from flows.ingest import ingest_flow
from tasks.answer.options import RetrievalOptions
from tasks.answer.retrieve import retrieve_context
from tasks.embed.embedder import (
    MINILM,
    MULTILINGUAL_USE,
    EmbedderConfig,
    ExportedEmbedder,
    MultilingualUseEmbedder,
    SentenceTransformerEmbedder,
)
from tasks.ingest.ledger import Ledger
from tasks.settings import load_settings
from tasks.store import keyword, reembed
from tasks.store.base import StoreConfig
from tasks.store.chroma import ChromaStore, collection_for_model

pytestmark = pytest.mark.slow

DOCS = {
    "notes.txt": "Meeting notes. The blue widget ships in March. The red widget ships in May.",
    "guide.md": "# Install guide\n\nPlug the hub into port 4 first.\n\n## Reset\n\nHold the reset pin nine seconds.",
    "leave.txt": "Employees get 15 days of paid annual leave after three years of service.",
    "parking.txt": "Visitors park in the north lot; staff park behind building C.",
    "canteen.txt": "The canteen opens at 11:30 and closes at 14:00 on weekdays.",
    "假期.txt": "员工工作满三年后每年享有十五天带薪年假。",
}


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text + "\n", encoding="utf-8")
    return docs


def run(src, store, model, **kw):
    return ingest_flow(source_path=str(src), store_dir=str(store), embedding_model=model, **kw)


def config(store) -> StoreConfig:
    return StoreConfig(store_dir=str(store), collection="knowledge")


def top_source(store, question: str, model: str) -> str:
    """The best passage's document, as a question that embeds with `model` (a job begun before a switch) gets it."""
    options = RetrievalOptions(mode="hybrid", top_k=3, all_documents=True)
    got = retrieve_context.fn(question, config(store), EmbedderConfig(model=model), options)
    assert got["passages"][0]["dense_score"] is not None  # the dense ranking ran: the vectors matched the question's
    return got["passages"][0]["source"]


@pytest.fixture
def embeds(monkeypatch):
    """Texts embedded, by model."""
    seen: dict[str, int] = {}
    for cls in (SentenceTransformerEmbedder, ExportedEmbedder, MultilingualUseEmbedder):
        real = cls.__dict__["embed"]

        def counted(self, texts, real=real):
            seen[self.name] = seen.get(self.name, 0) + len(texts)
            return real(self, texts)

        monkeypatch.setattr(cls, "embed", counted)
    return seen


def test_a_model_change_builds_a_new_collection_that_serves_once_complete(folder, store_dir, embeds):
    first = run(folder, store_dir, MULTILINGUAL_USE)
    chunks = first["chunks_written"]
    assert top_source(store_dir, "When does the red widget ship?", MULTILINGUAL_USE) == "notes.txt"
    with Ledger.of_store(store_dir, "knowledge") as ledger:
        ids_before, key_before = ledger.all_chunk_ids(), ledger.index_key()

    embeds.clear()
    switched = run(folder, store_dir, MINILM)
    assert switched["failed"] == [] and switched["chunks_written"] == 0  # no document is partitioned again
    assert embeds == {MINILM: chunks}  # every chunk once, with the new model only

    serving = ChromaStore.open_existing(config(store_dir))
    assert serving.embedding_model == MINILM and serving.embedding_dim == 384
    assert serving.name == collection_for_model(config(store_dir), MINILM) != "knowledge"
    assert serving.all_ids() == ids_before  # the ledger's chunk ids are the new collection's
    with Ledger.of_store(store_dir, "knowledge") as ledger:
        assert ledger.all_chunk_ids() == ids_before
        assert ledger.recorded_embedding()["collection"] == serving.name and ledger.building() is None
        assert ledger.index_key() != key_before  # readers open the store again
        assert ledger.retired() == ["knowledge"]
    assert keyword.is_current(config(store_dir))
    # The old collection stays until the next refresh: a question that opened it just before the switch finds it.
    assert ChromaStore.collections_of(config(store_dir)) == {"knowledge", serving.name}

    # A question asked with the old setting (a job begun before the switch) embeds with the served model.
    assert top_source(store_dir, "When does the red widget ship?", MULTILINGUAL_USE) == "notes.txt"
    assert top_source(store_dir, "How long do I hold the reset pin?", MINILM) == "guide.md"

    embeds.clear()
    again = run(folder, store_dir, MINILM)
    assert again["chunks_written"] == 0 and embeds == {}
    assert ChromaStore.collections_of(config(store_dir)) == {serving.name}
    with Ledger.of_store(store_dir, "knowledge") as ledger:
        assert ledger.retired() == []


class EmbedderDied(RuntimeError):
    pass


def test_a_re_embedding_stopped_half_way_leaves_the_old_model_serving_until_the_next_refresh(
    folder, store_dir, embeds, monkeypatch
):
    from flows.answer import model_change_note
    from kbflow.cli.status import store_status

    first = run(folder, store_dir, MULTILINGUAL_USE)
    chunks = first["chunks_written"]
    assert chunks >= 6
    monkeypatch.setattr(reembed, "BATCH_CHUNKS", 2)
    calls = []
    for cls in (SentenceTransformerEmbedder, ExportedEmbedder):
        real = cls.embed

        def dies_on_the_third_batch(self, texts, real=real):
            calls.append(len(texts))
            if len(calls) >= 3:
                raise EmbedderDied("the embedder died")
            return real(self, texts)

        monkeypatch.setattr(cls, "embed", dies_on_the_third_batch)

    with pytest.raises(EmbedderDied):
        run(folder, store_dir, MINILM)

    serving = ChromaStore.open_existing(config(store_dir))
    assert serving.embedding_model == MULTILINGUAL_USE and serving.name == "knowledge"
    partial = ChromaStore.open_existing(
        config(store_dir).model_copy(update={"chroma_collection": collection_for_model(config(store_dir), MINILM)})
    )
    assert partial.count() == 4  # two batches of two, written before the third died
    with Ledger.of_store(store_dir, "knowledge") as ledger:
        assert ledger.building()["embedding_model"] == MINILM
    status = store_status(load_settings(store_dir=str(store_dir)))
    assert (status["embedding_model"], status["embedding_building"]) == (MULTILINGUAL_USE, MINILM)
    # Questions still embed with the old model and search its vectors, and say what is going on.
    assert top_source(store_dir, "How long do I hold the reset pin?", MULTILINGUAL_USE) == "guide.md"
    note = model_change_note(load_settings(store_dir=str(store_dir), embedding_model=MINILM), MULTILINGUAL_USE)
    assert note.startswith(f"the store serves {MULTILINGUAL_USE}; {MINILM} (the setting) is being built")

    monkeypatch.undo()
    embeds = {}
    for cls in (SentenceTransformerEmbedder, ExportedEmbedder):
        real = cls.embed
        monkeypatch.setattr(
            cls,
            "embed",
            lambda self, texts, real=real: embeds.update(n=embeds.get("n", 0) + len(texts)) or real(self, texts),
        )
    resumed = run(folder, store_dir, MINILM)
    assert resumed["failed"] == [] and embeds == {"n": chunks - 4}  # only what the stopped run had not written
    serving = ChromaStore.open_existing(config(store_dir))
    assert serving.embedding_model == MINILM and serving.count() == chunks
    assert top_source(store_dir, "How long do I hold the reset pin?", MINILM) == "guide.md"
    assert model_change_note(load_settings(store_dir=str(store_dir), embedding_model=MINILM), MINILM) is None


def test_rebuild_with_another_model_starts_over_in_the_knowledge_bases_own_collection(folder, store_dir):
    run(folder, store_dir, MULTILINGUAL_USE)
    run(folder, store_dir, MINILM)
    rebuilt = run(folder, store_dir, MULTILINGUAL_USE, rebuild=True)
    assert rebuilt["added"] == len(DOCS)
    serving = ChromaStore.open_existing(config(store_dir))
    assert serving.name == "knowledge" and serving.embedding_model == MULTILINGUAL_USE
    assert ChromaStore.collections_of(config(store_dir)) == {"knowledge"}
    assert top_source(store_dir, "How many days of paid annual leave after three years?", MULTILINGUAL_USE) in {
        "leave.txt",
        "假期.txt",
    }
