"""How passages are retrieved: how many, ranked how, from which documents (plain values, no heavy imports)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ALL_DOCUMENTS = "all documents (an administrator's run)"
PUBLIC_ONLY = "public documents only (no groups given)"

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
    # Not `groups`: that is the setting (KBFLOW_GROUPS, comma-separated text) this is parsed from.
    for_groups: tuple[str, ...] = Field(
        (),
        description="Groups the question is asked for (and user:NAME labels): it sees public documents and those "
        "these may read; none sees public documents only.",
    )
    all_documents: bool = Field(
        False, description="An administrator's question: every document, whatever its readers (explicit only)."
    )

    def audience(self) -> str:
        """For whom the answers are, as reports name it."""
        if self.all_documents:
            return ALL_DOCUMENTS
        return f"groups {', '.join(self.for_groups)} (and public documents)" if self.for_groups else PUBLIC_ONLY

    def readers_filter(self) -> tuple[str, ...] | None:
        """The groups retrieval filters for; None: no filter (all_documents)."""
        return None if self.all_documents else tuple(self.for_groups)
