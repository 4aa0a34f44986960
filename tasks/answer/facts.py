"""What made a run's answers, computed once per run: the model and adapter (with their sha256) and the setup."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tasks.answer.backends import LLMConfig
from tasks.answer.models import ModelError, resolve_gguf
from tasks.answer.prompts import template_hash


@dataclass(frozen=True)
class ModelFacts:
    """The model that answers: its label, its file's sha256, and the LoRA adapter applied to it (if any)."""

    backend: str
    base_model: str
    model_sha256: str | None = None
    lora_name: str | None = None
    lora_sha256: str | None = None
    lora_scale: float | None = None

    @property
    def label(self) -> str:
        """The model as a report names it: the GGUF file (or openai:MODEL@URL), plus its adapter."""
        if not self.lora_name:
            return self.base_model
        return f"{self.base_model} + LoRA {self.lora_name} (sha256 {self.lora_sha256[:12]}, scale {self.lora_scale:g})"

    @property
    def lora(self) -> dict | None:
        return {"name": self.lora_name, "sha256": self.lora_sha256} if self.lora_name else None


def model_facts(llm: LLMConfig, adapter: dict | None = None, file_sha256=None) -> ModelFacts:
    """The facts of the model for these settings; `file_sha256(path)` hashes the GGUF (None: not hashed)."""
    if llm.backend == "openai":
        return ModelFacts("openai", f"openai:{llm.openai_model}@{llm.openai_base_url}")
    try:
        path = Path(str(resolve_gguf(llm.model, Path(llm.models_dir))))
    except ModelError:
        return ModelFacts(llm.backend, llm.model)
    return ModelFacts(
        backend=llm.backend,
        base_model=path.name,
        model_sha256=file_sha256(path) if file_sha256 else None,
        lora_name=adapter["name"] if adapter else None,
        lora_sha256=adapter["sha256"] if adapter else None,
        lora_scale=llm.lora_scale if adapter else None,
    )


def deterministic(llm: LLMConfig) -> bool:
    """Whether the same prompt gives the same answer: a local model with its fixed seed, or temperature 0."""
    return llm.temperature == 0 or llm.backend == "llama-cpp"


def generation_setup(llm: LLMConfig, facts: ModelFacts, whole: bool) -> dict:
    """Everything besides the question and its evidence that decides an answer (the answer cache's key part)."""
    setup = {
        "style": llm.answer_style,
        "prompt": template_hash(llm.answer_style),
        "whole": whole,
        "backend": llm.backend,
        "temperature": llm.temperature,
        "max_tokens": llm.max_tokens,
        "seed": llm.seed,
        "n_ctx": llm.n_ctx,
        "context_tokens": llm.context_tokens,
        **asdict(facts),  # the model file's and the adapter's sha256; openai:MODEL@URL for a model server
    }
    return setup
