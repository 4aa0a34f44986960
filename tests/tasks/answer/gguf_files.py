"""Small GGUF files written in tests: a LoRA adapter sized to a base GGUF, or a stand-in base model."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tensor_shapes(gguf_path: str | Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's dimensions as GGUF stores them (innermost first: a weight is (n_in, n_out))."""
    from gguf import GGUFReader

    return {t.name: tuple(int(d) for d in t.shape) for t in GGUFReader(str(gguf_path)).tensors}


def write_lora(
    path: Path,
    base_gguf: str | Path,
    *,
    rank: int = 8,
    alpha: float | None = None,
    targets: tuple[str, ...] = ("attn_q", "attn_k", "attn_v", "attn_output"),
    std: float = 0.05,
    zero_b: bool = False,
    seed: int = 0,
    arch: str = "llama",
    general_type: str = "adapter",
    adapter_type: str = "lora",
    n_in_offset: int = 0,
) -> Path:
    """A LoRA adapter GGUF for base_gguf, as llama.cpp's convert_lora_to_gguf.py lays it out.

    Every block's `targets` weight gets `<name>.lora_a` (rank x n_in) and `<name>.lora_b` (n_out x rank),
    float32, random normal (lora_b zero with zero_b). n_in_offset sizes it for another model, to break it.
    """
    from gguf import GGUFWriter

    rng = np.random.default_rng(seed)
    shapes = tensor_shapes(base_gguf)
    names = sorted(n for n in shapes if n.startswith("blk.") and n.split(".")[2] in targets and n.endswith(".weight"))
    assert names, f"no {targets} weights in {base_gguf}"
    writer = GGUFWriter(str(path), arch)
    writer.add_type(general_type)
    writer.add_string("adapter.type", adapter_type)
    writer.add_float32("adapter.lora.alpha", float(alpha if alpha is not None else rank))
    for name in names:
        n_in, n_out = shapes[name][0] + n_in_offset, shapes[name][1]
        a = rng.normal(0.0, std, size=(rank, n_in)).astype(np.float32)
        b = (
            np.zeros((n_out, rank), np.float32)
            if zero_b
            else rng.normal(0.0, std, size=(n_out, rank)).astype(np.float32)
        )
        writer.add_tensor(name + ".lora_a", a)
        writer.add_tensor(name + ".lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def write_base(path: Path, *, arch: str = "llama", n_embd: int = 16, n_out: int = 8) -> Path:
    """A stand-in base model: a GGUF of type 'model' with one block's attention weights (no model can run on it)."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_type("model")
    for name in ("blk.0.attn_q.weight", "blk.0.attn_v.weight"):
        writer.add_tensor(name, np.zeros((n_out, n_embd), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)
