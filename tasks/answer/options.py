"""How passages are retrieved: how many, ranked how, from which documents (plain values, no heavy imports)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["dense", "keyword", "hybrid", "all"]


class RetrievalOptions(BaseModel, frozen=True):
    """How many passages, ranked how, from which documents."""

    top_k: int = Field(5, gt=0, description="Passages retrieved per question.")
    mode: Mode = Field(
        "hybrid",
        description="Retrieval mode: dense, keyword or hybrid (fused); 'all' answers from the whole knowledge base "
        "(every chunk, in document order) when it fits in n_ctx, and refuses the question otherwise.",
    )
    source_prefix: str | None = Field(None, description="Only documents whose path starts with this.")
