"""How a fine-tuning dataset is built (plain values, no heavy imports)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DatasetFormat = Literal["openai", "alpaca", "sharegpt"]


FORMATS: tuple[str, ...] = ("openai", "alpaca", "sharegpt")


class DatasetOptions(BaseModel, frozen=True):
    """How many examples, built how, written in which format."""

    chunks: int = Field(50, gt=0, description="Chunks sampled from the knowledge base (spread over its documents).")
    pairs_per_chunk: int = Field(3, gt=0, le=10, description="Question/answer pairs the model writes per chunk.")
    distractors: int = Field(
        3, ge=0, description="Retrieved passages that do not hold the answer, put beside the gold chunk."
    )
    # 0 by default: with a fifth of the examples teaching the refusal, Qwen2.5-1.5B's adapter refused 26 of 40
    # held-out Chinese questions and 22 of 30 English ones it had answered (heldout3); without them it gained.
    no_gold_share: float = Field(
        0.0, ge=0, le=1, description="Share of examples whose prompt lacks the gold chunk: they teach the refusal."
    )
    cross_lingual_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of questions the model translates into the other language (English and Chinese), so the "
        "adapter learns to answer from a passage in the language the question is not in.",
    )
    eval_share: float = Field(
        0.2, ge=0, lt=1, description="Share of examples held out for evaluation, split by source document."
    )
    format: DatasetFormat = Field(
        "openai", description="openai (messages), alpaca (instruction/output) or sharegpt (conversations)."
    )
    seed: int = Field(0, description="Seed of every random choice: the same store and seed give the same dataset.")
    min_chunk_chars: int = Field(
        80, ge=0, description="Chunks shorter than this are not sampled: too little to ask about."
    )
    max_answer_tokens: int = Field(
        40,
        gt=0,
        description="Longest answer kept, in words (a Chinese character counts as one): a span with its condition.",
    )
    duplicate_similarity: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Questions whose keyword overlap (Jaccard) reaches this are near-duplicates; the later one is "
        "dropped.",
    )
