"""The PEFT adapter as a GGUF LoRA that llama.cpp loads (its loader's names and shapes, src/llama-adapter.cpp), with
what it was trained from recorded in its metadata."""

from __future__ import annotations

import json
import re
from pathlib import Path

# PEFT's module name -> llama.cpp's tensor name inside block N.
GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output"}
_PEFT_KEY = re.compile(r"\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.lora_([AB])\.")


def _llama_permute(weights, n_head: int):
    """llama.cpp's reordering of q/k rows (convert_hf_to_gguf.py's `permute`): transformers undoes it when it loads
    a llama GGUF, so the rows of lora_B must get it back."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_lora_tensors(state: dict, architecture: str, n_head: int, n_head_kv: int) -> dict:
    """llama.cpp tensor name -> float32 array: lora_a is PEFT's lora_A (rank x in), lora_b its lora_B (out x rank),
    neither transposed."""
    tensors = {}
    for key, value in state.items():
        match = _PEFT_KEY.search(key)
        if not match:
            continue
        layer, module, which = match.groups()
        array = value.detach().to("cpu").float().numpy()
        if architecture == "llama" and which == "B" and module in ("q_proj", "k_proj"):
            array = _llama_permute(array, n_head if module == "q_proj" else n_head_kv)
        tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_{which.lower()}"] = array.copy()
    return dict(sorted(tensors.items()))


def write_gguf_lora(state: dict, base_gguf: str | Path, out: str | Path, alpha: float, metadata: dict) -> dict:
    """Write the adapter GGUF (general.type adapter, the base's architecture, adapter.lora.alpha) with `metadata`
    under kbflow.* keys (strings; dicts as JSON). Returns what was written."""
    import gguf

    from tasks.finetune.train import gguf_facts

    facts = gguf_facts(str(base_gguf))
    architecture = facts["architecture"]
    tensors = gguf_lora_tensors(state, architecture, facts["n_head"], facts["n_head_kv"])
    if not tensors:
        raise ValueError("the trained model holds no LoRA tensor on q, k, v or o projections")
    out = Path(out)
    writer = gguf.GGUFWriter(str(out), arch=architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    writer.add_string("general.name", out.stem)
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        writer.add_string(f"kbflow.{key}", text)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return {"architecture": architecture, "tensors": len(tensors), "path": str(out)}


def read_kbflow_metadata(adapter: str | Path) -> dict:
    """The kbflow.* keys of an adapter GGUF (JSON values decoded)."""
    import gguf

    reader = gguf.GGUFReader(str(adapter), "r")
    found = {}
    for name, field in reader.fields.items():
        if name.startswith("kbflow."):
            value = field.contents()
            try:
                value = json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value
            except ValueError:
                pass
            found[name.removeprefix("kbflow.")] = value
    return found
