"""The written adapter checked in llama.cpp itself: its answer loss on a few eval examples must agree with PyTorch's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.finetune.options import FinetuneError


def llama_cpp_loss(base_gguf: str | Path, adapter: str | Path | None, examples: list[dict], threads: int) -> float:
    """Mean answer NLL that llama.cpp gives the same token ids, with the adapter applied (or without one)."""
    from llama_cpp import Llama

    n_ctx = max(len(e["ids"]) for e in examples) + 8
    llm = Llama(
        model_path=str(base_gguf),
        lora_path=str(adapter) if adapter else None,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=True,
        verbose=False,
    )
    try:
        total = 0.0
        for example in examples:
            ids, start = example["ids"], example["start"]
            llm.reset()
            llm.eval(ids)
            logits = np.asarray(llm.scores[start - 1 : len(ids) - 1], dtype=np.float64)
            top = logits.max(axis=1, keepdims=True)
            log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
            targets = np.asarray(ids[start:])
            total += float(np.mean(log_z - logits[np.arange(len(targets)), targets]))
        return total / len(examples)
    finally:
        llm.close()


def check_agreement(llama_loss: float, torch_loss: float, tolerance: float, adapter: str | Path) -> float:
    """The relative difference; FinetuneError when it exceeds the tolerance (the adapter is then not kept)."""
    difference = abs(llama_loss - torch_loss) / max(abs(torch_loss), 1e-9)
    if difference > tolerance:
        name = str(adapter).removesuffix(".partial")
        raise FinetuneError(
            f"the adapter written to {name} does not behave in llama.cpp as it did in training: answer loss "
            f"{llama_loss:.4f} in llama.cpp against {torch_loss:.4f} in PyTorch ({difference:.1%} apart, more than "
            f"{tolerance:.0%}); it was not kept"
        )
    return difference
