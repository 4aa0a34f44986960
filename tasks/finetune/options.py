"""How an adapter is trained (plain values, no heavy imports)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Precision = Literal["auto", "fp32", "bf16"]
Device = Literal["auto", "cpu", "cuda"]


class FinetuneError(Exception):
    """A dataset, model or machine that cannot be trained on; the message is one line that says what to fix."""


class FinetuneOptions(BaseModel, frozen=True):
    """What is trained, for how long, in what precision: the adapter records all of it."""

    epochs: float = Field(1.0, gt=0, le=20, description="Passes over the training examples (1.5: one and a half).")
    # 120: an hour's training of Qwen2.5-1.5B on 2 cores in bf16 (20.6 s a step on kbflow's ~1,000-token examples,
    # benchmarks/results/finetune.json), with its loading and the eval passes before and after.
    max_examples: int = Field(
        120, gt=0, description="Training examples used at most (the first ones of train.jsonl, in a seeded order)."
    )
    rank: int = Field(16, gt=0, le=256, description="LoRA rank r of each adapted matrix (q, k, v, o).")
    alpha: float = Field(32.0, gt=0, description="LoRA alpha: the update is scaled by alpha / rank.")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="AdamW learning rate, after a short warm-up.")
    max_tokens: int = Field(
        1536, ge=64, description="Longest example in tokens: longer ones lose passages from the prompt's start."
    )
    eval_examples: int = Field(
        20, ge=0, description="Eval-split examples whose loss is reported before and after training."
    )
    verify_examples: int = Field(
        3, ge=1, description="Eval examples on which llama.cpp's loss with the written adapter is checked."
    )
    verify_tolerance: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Largest difference between llama.cpp's and PyTorch's loss with the adapter, as a share of "
        "PyTorch's, beyond the difference the base model alone shows.",
    )
    checkpoint_every: int = Field(
        20, gt=0, description="Steps between checkpoints (a killed run resumes from the last one)."
    )
    precision: Precision = Field(
        "auto", description="auto: bf16 where the CPU/GPU has it and it measures faster here, else fp32."
    )
    device: Device = Field("auto", description="auto: CUDA when torch sees a GPU, else the CPU.")
    seed: int = Field(0, description="Seed of the example order and the adapter's initial weights.")
    steps: int = Field(0, ge=0, description="Train exactly this many steps (0: the epochs decide); for trials.")
