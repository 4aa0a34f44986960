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


# The share of the adapter's own effect on the loss that llama.cpp may miss: a wrongly written adapter (llama's q and
# k rows left unpermuted) misses all of it.
EFFECT_SHARE = 0.1


def check_agreement(
    llama_loss: float,
    torch_loss: float,
    tolerance: float,
    adapter: str | Path,
    base_gap: float = 0.0,
    effect: float = 0.0,
) -> float:
    """The relative difference; FinetuneError when the two differ by more than `tolerance` of PyTorch's loss plus
    `base_gap`, the difference the base model alone shows between them on the same examples (llama.cpp multiplies
    quantized weights by quantized activations, PyTorch the dequantized weights: SmolLM2 Q4_1 differs by 1.4% with no
    adapter), and by more than EFFECT_SHARE of `effect`, how much the adapter moved PyTorch's loss on them. A wrongly
    written adapter differs by its whole effect; a rightly written one, by quantization's noise, which at a trained
    adapter's small loss can be several percent of it (Qwen: 0.2119 against 0.2029, 4.4%, where the adapter had moved
    the loss from 0.3400: an effect of 0.137)."""
    gap = abs(llama_loss - torch_loss)
    difference = gap / max(abs(torch_loss), 1e-9)
    if gap > tolerance * abs(torch_loss) + base_gap and gap > EFFECT_SHARE * effect:
        name = str(adapter).removesuffix(".partial")
        raise FinetuneError(
            f"the adapter written to {name} does not behave in llama.cpp as it did in training: answer loss "
            f"{llama_loss:.4f} in llama.cpp against {torch_loss:.4f} in PyTorch ({difference:.1%} apart, more than "
            f"{tolerance:.0%} beyond the base model's own {base_gap:.4f}, and more than {EFFECT_SHARE:.0%} of the "
            f"adapter's effect {effect:.4f}); it was not kept"
        )
    return difference
