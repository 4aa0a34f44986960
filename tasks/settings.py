"""kbflow's settings: the one place that reads the environment (KBFLOW_* variables)."""

from __future__ import annotations

import copy
import os
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from tasks.answer.backends import AnswerStyle, LLMBackend, LLMConfig
from tasks.answer.options import Mode, RetrievalOptions
from tasks.embed.embedder import EmbedderConfig, EmbeddingBackend
from tasks.ingest.split import SplitOptions
from tasks.store.base import StoreConfig


def declared(model: type, name: str, **changes) -> FieldInfo:
    """A setting as its task config declares it (type bounds, default, description): written once, there.

    `changes` are what the setting adds for the user (a default that depends on the machine, a longer word)."""
    info = copy.copy(model.model_fields[name])
    for key, value in changes.items():
        setattr(info, key, value)
    return info


# Settings that are fields of a task config: setting name -> (config, field). A unit test checks that
# each is declared once (same default, same bounds) and the CLI takes its choices and help from here.
CONFIG_FIELDS: dict[str, tuple[type, str]] = {
    "chroma_host": (StoreConfig, "chroma_host"),
    "min_free_mb": (StoreConfig, "min_free_mb"),
    "chunk_size": (SplitOptions, "chunk_size"),
    "chunk_overlap": (SplitOptions, "chunk_overlap"),
    "max_file_mb": (SplitOptions, "max_file_mb"),
    "max_chunks_per_document": (SplitOptions, "max_chunks_per_document"),
    "embedding_model": (EmbedderConfig, "model"),
    "embedding_backend": (EmbedderConfig, "backend"),
    "embed_batch_size": (EmbedderConfig, "batch_size"),
    "top_k": (RetrievalOptions, "top_k"),
    "mode": (RetrievalOptions, "mode"),
    "llm_backend": (LLMConfig, "backend"),
    "llm_model": (LLMConfig, "model"),
    "n_ctx": (LLMConfig, "n_ctx"),
    "threads": (LLMConfig, "threads"),
    "max_tokens": (LLMConfig, "max_tokens"),
    "context_tokens": (LLMConfig, "context_tokens"),
    "temperature": (LLMConfig, "temperature"),
    "seed": (LLMConfig, "seed"),
    "answer_style": (LLMConfig, "answer_style"),
    "llm_lora": (LLMConfig, "lora"),
    "llm_lora_scale": (LLMConfig, "lora_scale"),
    "openai_base_url": (LLMConfig, "openai_base_url"),
    "openai_model": (LLMConfig, "openai_model"),
    "openai_api_key": (LLMConfig, "openai_api_key"),
    "models_dir": (LLMConfig, "models_dir"),
}


class Settings(BaseSettings):
    """Every kbflow setting, read from KBFLOW_* environment variables; the defaults run offline on the bundled
    models."""

    model_config = SettingsConfigDict(env_prefix="KBFLOW_", extra="ignore")

    # Store
    store_dir: Path = Field(
        Path(".kbflow"), description="Folder that holds the Chroma store, the ledger and the reports."
    )
    collection: str = Field(
        "knowledge",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$",
        description="Chroma collection (one knowledge base): 3-512 letters, digits, '.', '_' or '-'.",
    )
    chroma_host: str = declared(StoreConfig, "chroma_host")
    chroma_token: SecretStr = Field(
        SecretStr(""), description="Bearer token sent to the Chroma server (for a reverse proxy that checks one)."
    )
    min_free_mb: int = declared(StoreConfig, "min_free_mb")
    lock_timeout: float = Field(
        600.0, description="Seconds an ingest waits for another ingest on the same store before it gives up."
    )

    # Source
    include: list[str] = Field(default_factory=lambda: ["*"], description="Glob patterns a source file must match.")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns of files or folders to skip.")
    s3_endpoint_url: str = Field(
        "",
        description="URL of an S3-compatible service (MinIO, Ceph) for s3:// sources; empty means AWS. Credentials "
        "come from boto3's own AWS_* variables or profile.",
    )

    # Chunking and embedding
    chunk_size: int = declared(SplitOptions, "chunk_size")
    chunk_overlap: int = declared(SplitOptions, "chunk_overlap")
    max_file_mb: float = declared(SplitOptions, "max_file_mb")
    max_chunks_per_document: int = declared(SplitOptions, "max_chunks_per_document")
    embedding_model: str = declared(EmbedderConfig, "model")
    embedding_backend: EmbeddingBackend = declared(EmbedderConfig, "backend")
    embedding_export_dir: Path = Field(
        Path(sys.prefix) / "share" / "kbflow" / "all-MiniLM-L6-v2-onnx",
        description="Where `make install` exports the bundled embedding model for the fast backends (a folder of "
        "kbflow's own, not site-packages).",
    )
    embed_batch_size: int = declared(EmbedderConfig, "batch_size")
    ingest_batch_docs: int = Field(
        128,
        gt=0,
        description="Most documents read, embedded (in one length-sorted pass) and written per ingest batch; a batch "
        "is one task run. A smaller folder is cut into smaller batches, so that every worker gets some.",
    )

    # Where the per-batch work (read, partition, split, embed) runs
    task_runner: Literal["local", "processes", "dask"] = Field(
        "local",
        description="local: two threads of the flow's process (one batch is read and partitioned while another is "
        "embedded); processes: Prefect's ProcessPoolTaskRunner; dask: prefect-dask's DaskTaskRunner (a cluster).",
    )
    dask_address: str = Field(
        "",
        description="tcp://host:port of an existing Dask scheduler; empty with task_runner=dask starts a LocalCluster "
        "on 127.0.0.1.",
    )
    workers: int = Field(
        2,
        gt=0,
        description="Worker processes for task_runner=processes, or for the LocalCluster that task_runner=dask starts.",
    )

    # Retrieval
    top_k: int = declared(RetrievalOptions, "top_k")
    mode: Mode = declared(RetrievalOptions, "mode")
    context_keep_ratio: float = Field(
        0.8,
        ge=0,
        le=1,
        description="A retrieved passage goes into the prompt only if its relevance is at least this share of the "
        "best passage's (0 keeps all top_k). The multilingual embedder's relevances lie closer together than "
        "MiniLM's: 0.8 keeps the demo's error-code table beside the manual's text (0.9 did not).",
    )
    context_window: int = Field(
        1,
        ge=0,
        description="Within a long passage, only the sentences that match the question's keywords best, with this "
        "many sentences on each side, go into the prompt (the rest is left out, marked …); 0 gives whole passages. "
        "1 cut prompt tokens by 36% and answer time by 30% on CMRC, accuracy 0.63 -> 0.70.",
    )
    other_language_look: bool = Field(
        True,
        description="An answer the report flags and whose figure or name the model hesitated over, on a knowledge "
        "base in both languages, is asked again over the three passages of the other language closest to its question "
        "(when the best is close enough); that answer is kept when the report would not flag it and it states other "
        "figures. Costs an answer where it runs.",
    )
    groups: str = Field(
        "",
        description="Groups questions are asked for, comma-separated (hr,staff; a user as user:NAME): answers come "
        "from public documents and those these may read. Empty: public documents only.",
    )
    min_score: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Relevance (0-1) the best passage must reach, or the question is refused without calling the "
        "model.",
    )

    # Generation
    llm_backend: LLMBackend = declared(LLMConfig, "backend")
    llm_model: str = declared(LLMConfig, "model")
    models_dir: Path = declared(LLMConfig, "models_dir", validate_default=True)
    n_ctx: int = declared(LLMConfig, "n_ctx")
    max_tokens: int = declared(LLMConfig, "max_tokens")
    context_tokens: int = declared(LLMConfig, "context_tokens")
    temperature: float = declared(LLMConfig, "temperature")
    threads: int = declared(LLMConfig, "threads")
    answer_style: AnswerStyle = declared(LLMConfig, "answer_style")
    llm_lora: str = declared(LLMConfig, "lora")
    llm_lora_scale: float = declared(LLMConfig, "lora_scale")
    seed: int = declared(LLMConfig, "seed")
    answer_cache: Literal["on", "off"] = Field(
        "on",
        description="on: reuse a generated answer when its question, evidence, model, prompt and settings are "
        "unchanged (STORE/answers.sqlite); off: generate every answer (also `kbflow ask --no-cache`).",
    )
    llm_concurrency: int = Field(
        1,
        gt=0,
        le=256,
        description="Questions answered at once with the openai backend (a model server with parallel slots); the "
        "local llama-cpp backend answers one at a time.",
    )
    openai_base_url: str = declared(LLMConfig, "openai_base_url")
    openai_model: str = declared(LLMConfig, "openai_model")
    openai_api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Environment variable that holds the endpoint's API key, read when KBFLOW_OPENAI_API_KEY is not "
        "set.",
    )
    openai_api_key: SecretStr = declared(LLMConfig, "openai_api_key")

    # Watching
    watch_deployment: str = Field(
        "",
        description="Prefect deployment the watcher runs (e.g. kb-ingest/kb-refresh); empty runs the ingest in "
        "process.",
    )
    debounce_seconds: float = Field(
        2.0, ge=0, description="Quiet time after the last file event before the watcher starts an ingest."
    )

    # Prefect's API for CLI runs (when neither PREFECT_API_URL nor PREFECT_HOME is set)
    prefect: Literal["background", "temporary"] = Field(
        "background",
        description="background: the first command that runs a flow starts the store's Prefect server (UI and API "
        "on 127.0.0.1) and later commands reuse it; temporary: Prefect's temporary server in each command (3 to "
        "11 s each).",
    )
    prefect_idle_minutes: float = Field(
        30.0, gt=0, description="Minutes with no command running after which the background Prefect server stops."
    )
    warm: bool = Field(
        True,
        description="With the background server: after a command, a process with kbflow's modules loaded waits "
        "for the next one and forks it (kbflow/warm.py); off: each command loads them itself.",
    )

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, value) -> str:
        """`hr,staff` or a list of names, checked and kept in one form: sorted, comma-separated."""
        from connectors.access import parse_groups

        return ",".join(parse_groups(value))

    @model_validator(mode="after")
    def _api_key_from_named_variable(self) -> Settings:
        if not self.openai_api_key.get_secret_value() and self.openai_api_key_env:
            self.openai_api_key = SecretStr(os.environ.get(self.openai_api_key_env, ""))
        return self

    # The typed configs the tasks take: plain values, built here so nothing else reads the environment.
    def store_config(self) -> StoreConfig:
        return StoreConfig(
            store_dir=str(self.store_dir),
            collection=self.collection,
            chroma_host=self.chroma_host,
            chroma_token=self.chroma_token.get_secret_value(),
            min_free_mb=self.min_free_mb,
        )

    def embedder_config(self, model: str | None = None) -> EmbedderConfig:
        return EmbedderConfig(
            model=model or self.embedding_model,
            backend=self.embedding_backend,
            batch_size=self.embed_batch_size,
            export_dir=str(self.embedding_export_dir),
        )

    def split_options(self) -> SplitOptions:
        return SplitOptions(
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            max_file_mb=self.max_file_mb,
            max_chunks_per_document=self.max_chunks_per_document,
        )

    def retrieval_options(self, source_prefix: str | None = None, all_documents: bool = False) -> RetrievalOptions:
        """How to retrieve; `all_documents` (an administrator's explicit choice, never a variable) lifts the
        readers' filter."""
        from connectors.access import parse_groups

        return RetrievalOptions(
            top_k=self.top_k,
            mode=self.mode,
            source_prefix=source_prefix,
            for_groups=parse_groups(self.groups),
            all_documents=all_documents,
        )

    def llm_config(self) -> LLMConfig:
        return LLMConfig(
            backend=self.llm_backend,
            model=self.llm_model,
            models_dir=str(self.models_dir),
            n_ctx=self.n_ctx,
            threads=self.threads,
            max_tokens=self.max_tokens,
            context_tokens=self.context_tokens,
            temperature=self.temperature,
            seed=self.seed,
            openai_base_url=self.openai_base_url,
            openai_model=self.openai_model,
            openai_api_key=self.openai_api_key,
            answer_style=self.answer_style,
            lora=self.llm_lora,
            lora_scale=self.llm_lora_scale,
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


def timestamped_dir(parent: Path, name: str) -> Path:
    """A new folder under parent, made here: the time, then name made safe for a path (reports, datasets). It is
    claimed by creating it, so two runs that end in the same second (two jobs of one question set) get two folders:
    the second gets a suffix -2, -3, ..."""
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^\w.-]+", "-", name)[:40]
    Path(parent).mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = Path(parent) / (f"{stamp}-{safe}" if n == 1 else f"{stamp}-{safe}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}: 999 folders named {stamp}-{safe} already exist")


def load_settings(**overrides) -> Settings:
    """Settings from the environment, with explicit (non-None) overrides from the CLI or a flow's parameters."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
