"""The ledger's side of a change of embedding model: which collection serves, switched in one write."""

from __future__ import annotations

import pytest

from tasks.ingest.ledger import Ledger
from tasks.store.base import StoreConfig
from tasks.store.chroma import collection_for_model, collection_name

pytestmark = pytest.mark.unit


def test_the_serving_collection_is_the_ledgers_record_else_the_knowledge_bases_name(tmp_path):
    store = StoreConfig(store_dir=str(tmp_path), collection="kb")
    assert collection_name(store) == "kb"  # no ledger yet
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.record_store_as_left("", {"embedding_model": "multilingual-use-v3", "dim": 512, "backend": "numpy"})
    assert collection_name(store) == "kb"  # a record from before it named the collection
    assert collection_name(store.model_copy(update={"chroma_collection": "kb--x-123456"})) == "kb--x-123456"


def test_a_switch_is_one_write_that_names_the_new_collection_and_moves_the_readers(tmp_path):
    store = StoreConfig(store_dir=str(tmp_path), collection="kb")
    new = collection_for_model(store, "all-MiniLM-L6-v2")
    assert new.startswith("kb--all-minilm-l6-v2-") and len(new) == len("kb--all-minilm-l6-v2-") + 6
    assert collection_for_model(store, "/models/a b") != collection_for_model(store, "/models/a-b")
    with Ledger.of_store(tmp_path, "kb") as ledger:
        ledger.record_store_as_left("", {"embedding_model": "multilingual-use-v3", "collection": "kb"})
        ledger.start_building({"collection": new, "embedding_model": "all-MiniLM-L6-v2"})
        key = ledger.index_key()
        assert collection_name(store) == "kb" and ledger.building()["collection"] == new  # the old one serves

        ledger.switch_embedding({"embedding_model": "all-MiniLM-L6-v2", "dim": 384, "collection": new}, retired="kb")
        assert collection_name(store) == new
        assert ledger.recorded_embedding()["embedding_model"] == "all-MiniLM-L6-v2"
        assert ledger.building() is None and ledger.retired() == ["kb"] and ledger.index_key() != key

        # Back to the first model before the next refresh: the collection that serves is never listed as retired.
        ledger.switch_embedding({"embedding_model": "multilingual-use-v3", "collection": "kb"}, retired=new)
        assert ledger.retired() == [new] and collection_name(store) == "kb"
