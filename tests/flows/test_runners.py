"""Where batches run does not change what is stored: in process (any batch size), or on a Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest

from flows.ingest import ingest_flow
from tasks.embed.embedder import ExportedEmbedder, SentenceTransformerEmbedder

pytestmark = pytest.mark.slow


def snapshot(store) -> dict[str, tuple[dict, str, np.ndarray]]:
    """Every stored chunk: id -> (metadata, text, vector)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=str(store / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    got = client.get_collection("knowledge", embedding_function=None).get(
        include=["metadatas", "documents", "embeddings"]
    )
    return {
        cid: (meta, text, np.asarray(vec))
        for cid, meta, text, vec in zip(got["ids"], got["metadatas"], got["documents"], got["embeddings"])
    }


def assert_same_store(a: dict, b: dict) -> None:
    assert set(a) == set(b) and a, "different chunk ids"
    for cid in a:
        assert a[cid][0] == b[cid][0] and a[cid][1] == b[cid][1], f"{cid}: metadata or text differ"
        assert np.abs(a[cid][2] - b[cid][2]).max() < 1e-5, f"{cid}: vectors differ"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, docs_dir_module):
    """The store the default settings build (local runner, default batch size)."""
    store = tmp_path_factory.mktemp("reference") / "store"
    assert ingest_flow(source_path=str(docs_dir_module), store_dir=str(store))["failed"] == []
    return snapshot(store)


@pytest.fixture(scope="module")
def docs_dir_module(tmp_path_factory):
    import shutil

    from tests.conftest import DATA

    return shutil.copytree(DATA / "docs", tmp_path_factory.mktemp("docs") / "docs")


def test_batch_size_does_not_change_ids_texts_or_vectors(reference, docs_dir_module, tmp_path, monkeypatch):
    monkeypatch.setenv("KBFLOW_INGEST_BATCH_DOCS", "1")  # one document per batch, as small as it gets
    store = tmp_path / "store"
    ingest_flow(source_path=str(docs_dir_module), store_dir=str(store))
    assert_same_store(snapshot(store), reference)


@pytest.mark.integration
def test_a_dask_cluster_builds_the_same_store_and_a_rerun_embeds_nothing(
    reference, docs_dir_module, tmp_path, monkeypatch
):
    monkeypatch.setenv("KBFLOW_TASK_RUNNER", "dask")
    monkeypatch.setenv("KBFLOW_WORKERS", "2")
    monkeypatch.setenv("KBFLOW_INGEST_BATCH_DOCS", "2")  # several batches, spread over both workers
    store = tmp_path / "store"
    first = ingest_flow(source_path=str(docs_dir_module), store_dir=str(store))
    assert first["failed"] == [] and first["added"] == len(list(docs_dir_module.iterdir()))
    assert_same_store(snapshot(store), reference)

    calls = []
    for cls in (SentenceTransformerEmbedder, ExportedEmbedder):
        monkeypatch.setattr(cls, "embed", lambda self, texts: calls.append(texts) or [])
    second = ingest_flow(source_path=str(docs_dir_module), store_dir=str(store))
    assert second["chunks_written"] == 0 and second["unchanged"] == first["added"] and calls == []


def test_a_store_built_with_torch_keeps_working_with_the_fast_backend(docs_dir_module, tmp_path, monkeypatch):
    """An upgrade from torch to the install-time export: same collection, nothing re-embedded, new text added."""
    import shutil

    from tasks.embed.embedder import resolve_backend
    from tests.conftest import assert_store_matches_folder

    docs = shutil.copytree(docs_dir_module, tmp_path / "docs")
    store = tmp_path / "store"
    monkeypatch.setenv("KBFLOW_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    monkeypatch.setenv("KBFLOW_EMBEDDING_BACKEND", "torch")
    ingest_flow(source_path=str(docs), store_dir=str(store))
    torch_vectors = snapshot(store)
    monkeypatch.delenv("KBFLOW_EMBEDDING_BACKEND")
    from tasks.settings import load_settings

    assert resolve_backend(load_settings().embedder_config()) in ("openvino", "onnxruntime")  # make install exported it
    (docs / "notes.txt").write_text("Meeting notes. The cobalt widget ships in March.\n")
    summary = ingest_flow(source_path=str(docs), store_dir=str(store))
    assert summary["updated"] == 1 and summary["unchanged"] == len(list(docs.iterdir())) - 1
    after = snapshot(store)
    kept = set(torch_vectors) & set(after)
    assert kept and all(np.array_equal(torch_vectors[c][2], after[c][2]) for c in kept)
    assert_store_matches_folder(store, docs)
