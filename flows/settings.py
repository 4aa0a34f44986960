"""kbflow's settings: the one place that reads the environment (KBFLOW_* variables)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Nothing is downloaded at run time and nothing phones home. Set before the libraries are imported.
OFFLINE_ENV = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "ORT_DISABLE_TELEMETRY": "1",
}


def apply_offline_env() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def _default_threads() -> int:
    return max(1, (os.cpu_count() or 2) - 1)


def _default_models_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "kbflow", "models")


class Settings(BaseSettings):
    """Every kbflow setting, read from KBFLOW_* environment variables; the defaults run offline on the bundled models."""

    model_config = SettingsConfigDict(env_prefix="KBFLOW_", extra="ignore")

    # Store
    store_dir: Path = Field(Path(".kbflow"), description="Folder that holds the Chroma store, the ledger and the reports.")
    collection: str = Field(
        "knowledge",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$",
        description="Chroma collection (one knowledge base): 3-512 letters, digits, '.', '_' or '-'.",
    )
    chroma_host: str = Field("", description="host:port of a Chroma server; empty uses the embedded store under store_dir.")
    chroma_token: SecretStr = Field(SecretStr(""), description="Bearer token sent to the Chroma server (for a reverse proxy that checks one).")
    lock_timeout: float = Field(600.0, description="Seconds an ingest waits for another ingest on the same store before it gives up.")

    # Source
    include: list[str] = Field(default_factory=lambda: ["*"], description="Glob patterns a source file must match.")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns of files or folders to skip.")
    s3_endpoint_url: str = Field("", description="URL of an S3-compatible service (MinIO, Ceph) for s3:// sources; empty means AWS. Credentials come from boto3's own AWS_* variables or profile.")

    # Chunking and embedding
    chunk_size: int = Field(500, gt=20, description="Characters per chunk.")
    chunk_overlap: int = Field(80, ge=0, description="Characters shared by neighbouring chunks.")
    embedding_model: str = Field("all-MiniLM-L6-v2", description="Sentence-transformers model: 'all-MiniLM-L6-v2' (bundled) or a local model folder.")
    embedding_backend: Literal["auto", "torch", "openvino", "onnxruntime"] = Field("auto", description="auto: the bundled model's install-time ONNX export on OpenVINO (else ONNX Runtime), several times faster than torch with the same vectors; torch otherwise. torch, openvino or onnxruntime force one.")
    embedding_export_dir: Path = Field(Path(sys.prefix) / "share" / "kbflow" / "all-MiniLM-L6-v2-onnx", description="Where `make install` exports the bundled embedding model for the fast backends (a folder of kbflow's own, not site-packages).")
    embed_batch_size: int = Field(32, gt=0, description="Chunks per embedding batch.")
    ingest_batch_docs: int = Field(128, gt=0, description="Documents read, embedded (in one length-sorted pass) and written per ingest batch; a batch is one task run.")

    # Where the per-batch work (read, partition, split, embed) runs
    task_runner: Literal["local", "processes", "dask"] = Field("local", description="local: batches one after another in the flow's process; processes: Prefect's ProcessPoolTaskRunner; dask: prefect-dask's DaskTaskRunner (a cluster).")
    dask_address: str = Field("", description="tcp://host:port of an existing Dask scheduler; empty with task_runner=dask starts a LocalCluster on 127.0.0.1.")
    workers: int = Field(2, gt=0, description="Worker processes for task_runner=processes, or for the LocalCluster that task_runner=dask starts.")

    # Retrieval
    top_k: int = Field(5, gt=0, description="Passages retrieved per question.")
    mode: Literal["dense", "keyword", "hybrid", "all"] = Field("hybrid", description="Retrieval mode; 'all' answers from the whole knowledge base (every chunk, in document order) when it fits in n_ctx, and refuses the question otherwise.")
    context_keep_ratio: float = Field(0.9, ge=0, le=1, description="A retrieved passage goes into the prompt only if its relevance is at least this share of the best passage's (0 keeps all top_k). 0.9 cut prefill by a third at equal accuracy on CMRC.")
    min_score: float = Field(0.3, ge=0, le=1, description="Relevance (0-1) the best passage must reach, or the question is refused without calling the model.")

    # Generation
    llm_backend: Literal["llama-cpp", "openai"] = Field("llama-cpp", description="Generation backend.")
    llm_model: str = Field("auto", description="GGUF to answer with: 'auto' (a pulled model if there is one, else the bundled SmolLM2), 'smollm2', a name pulled with `kbflow models pull`, or a path to any .gguf file.")
    models_dir: Path = Field(Path(_default_models_dir()), description="Folder where `kbflow models pull` puts models.")
    n_ctx: int = Field(2048, gt=256, description="Context window in tokens.")
    max_tokens: int = Field(256, gt=0, description="Most tokens generated per answer.")
    temperature: float = Field(0.1, ge=0, description="Sampling temperature.")
    threads: int = Field(default_factory=_default_threads, description="CPU threads for generation (default: cores - 1).")
    answer_style: Literal["sentence", "short"] = Field("sentence", description="sentence: one cited sentence a person reads; short: the answer alone (\"24 months\", \"孙登\"), for checklists and extraction sheets; its passage is still recorded.")
    llm_lora: str = Field("", description="Path of a LoRA adapter GGUF (llama.cpp's convert_lora_to_gguf.py output) applied to the GGUF model at load; it must be made for that base model. Empty for none.")
    llm_lora_scale: float = Field(1.0, description="How strongly the LoRA adapter applies: 1.0 as trained, 0 the base model alone.")
    llm_concurrency: int = Field(1, gt=0, le=256, description="Questions answered at once with the openai backend (a model server with parallel slots); the local llama-cpp backend answers one at a time.")
    openai_base_url: str = Field("http://127.0.0.1:8000/v1", description="Base URL of an OpenAI-compatible chat endpoint.")
    openai_model: str = Field("local", description="Model name sent to the OpenAI-compatible endpoint.")
    openai_api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable that holds the endpoint's API key, read when KBFLOW_OPENAI_API_KEY is not set.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="API key of the OpenAI-compatible endpoint (default: the variable named by KBFLOW_OPENAI_API_KEY_ENV).")

    # Watching
    watch_deployment: str = Field("", description="Prefect deployment the watcher runs (e.g. kb-ingest/kb-refresh); empty runs the ingest in process.")
    debounce_seconds: float = Field(2.0, ge=0, description="Quiet time after the last file event before the watcher starts an ingest.")

    @model_validator(mode="after")
    def _api_key_from_named_variable(self) -> "Settings":
        if not self.openai_api_key.get_secret_value() and self.openai_api_key_env:
            self.openai_api_key = SecretStr(os.environ.get(self.openai_api_key_env, ""))
        return self

    @property
    def chroma_dir(self) -> Path:
        return self.store_dir / "chroma"

    # The typed configs the tasks take: plain values, built here so nothing else reads the environment.
    def store_config(self):
        from tasks.store import StoreConfig

        return StoreConfig(store_dir=str(self.store_dir), collection=self.collection, chroma_host=self.chroma_host,
                           chroma_token=self.chroma_token.get_secret_value())

    def embedder_config(self, model: str | None = None):
        from tasks.embed import EmbedderConfig

        return EmbedderConfig(model=model or self.embedding_model, backend=self.embedding_backend,
                              batch_size=self.embed_batch_size, export_dir=str(self.embedding_export_dir))

    def split_options(self):
        from tasks.index import SplitOptions

        return SplitOptions(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)

    def retrieval_options(self, source_prefix: str | None = None):
        from tasks.retrieve import RetrievalOptions

        return RetrievalOptions(top_k=self.top_k, mode=self.mode, source_prefix=source_prefix)

    def llm_config(self):
        from tasks.generate import LLMConfig

        return LLMConfig(
            backend=self.llm_backend, model=self.llm_model, models_dir=str(self.models_dir), n_ctx=self.n_ctx,
            threads=self.threads, max_tokens=self.max_tokens, temperature=self.temperature,
            openai_base_url=self.openai_base_url, openai_model=self.openai_model, openai_api_key=self.openai_api_key,
            answer_style=self.answer_style, lora=self.llm_lora, lora_scale=self.llm_lora_scale,
        )

    @property
    def reports_dir(self) -> Path:
        return self.store_dir / "reports"


def prefect_env(store_dir: str | os.PathLike | None) -> dict[str, str]:
    """Where CLI runs report: the store's Prefect home, and the project's server when it runs.

    Nothing changes when the user set PREFECT_HOME or PREFECT_API_URL. Otherwise runs use the home
    that `make server` serves (STORE/prefect/home), so they show up in its UI, and when that server
    answers (its address is in STORE/prefect/api_url), they report to it live.
    """
    if os.environ.get("PREFECT_HOME") or os.environ.get("PREFECT_API_URL"):
        return {}
    store = Path(store_dir or os.environ.get("KBFLOW_STORE_DIR") or ".kbflow").expanduser().resolve()
    env = {"PREFECT_HOME": str(store / "prefect" / "home")}
    # A new home's temporary server migrates its database first: on a busy 2-core machine that can
    # take longer than Prefect's default 20 s.
    if not os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
    try:
        api = (store / "prefect" / "api_url").read_text(encoding="utf-8").strip()
    except OSError:
        return env
    import urllib.request

    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{api}/health", timeout=3) as resp:
            if resp.status == 200:
                env["PREFECT_API_URL"] = api
    except (OSError, ValueError) as exc:
        env["KBFLOW_PREFECT_SERVER_DOWN"] = f"{api}: {exc}"
    return env


def load_settings(**overrides) -> Settings:
    """Settings from the environment, with explicit (non-None) overrides from the CLI or a flow's parameters."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
