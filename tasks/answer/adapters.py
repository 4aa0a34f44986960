"""Fine-tuned LoRA adapters: check that a GGUF adapter fits its base model before llama.cpp loads it."""

from __future__ import annotations

from pathlib import Path

from connectors.base import sha256_file
from tasks.answer.models import ModelError

# llama.cpp names an adapter's tensors after the base tensor they change: "<base>.lora_a" and "<base>.lora_b".
LORA_SUFFIXES = (".lora_a", ".lora_b")


def _reader(path: Path, role: str):
    from gguf import GGUFReader

    try:
        return GGUFReader(str(path), "r")
    except (ValueError, OSError, IndexError, KeyError, TypeError) as exc:  # any file a user may point at
        raise ModelError(f"{role} {path} is not a readable GGUF file ({type(exc).__name__}: {exc})") from None


def _string(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        value = field.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def _number(reader, key: str) -> float | None:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        return float(field.contents())
    except (TypeError, ValueError, IndexError):
        return None


def _shapes(reader) -> dict[str, tuple[int, ...]]:
    # GGUF lists dimensions innermost first (ggml's ne), as llama.cpp compares them.
    return {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}


def _check(adapter_path: Path, base_path: Path) -> dict:
    fits = f"LoRA adapter {adapter_path} cannot be used with base model {base_path.name}"
    lora = _reader(adapter_path, "LoRA adapter")
    kind = _string(lora, "general.type")
    if kind != "adapter":
        raise ModelError(
            f"{fits}: it is not an adapter GGUF (general.type is {kind!r}, not 'adapter'); "
            "convert a PEFT adapter with llama.cpp's convert_lora_to_gguf.py"
        )
    adapter_type = _string(lora, "adapter.type")
    if adapter_type != "lora":
        raise ModelError(f"{fits}: adapter.type is {adapter_type!r}; only 'lora' adapters are supported")
    arch = _string(lora, "general.architecture")
    model = _reader(base_path, "base model")
    base_arch = _string(model, "general.architecture")
    if arch != base_arch:
        raise ModelError(
            f"{fits}: the adapter was made for architecture {arch!r}, the base model is {base_arch!r}; "
            "use the adapter's own base model (KBFLOW_LLM_MODEL)"
        )
    _check_trained_base(lora, base_path, fits)
    base_shapes, shapes = _shapes(model), _shapes(lora)
    pairs = sorted({name[: -len(s)] for name in shapes for s in LORA_SUFFIXES if name.endswith(s)})
    if not pairs:
        raise ModelError(f"{fits}: it holds no LoRA tensors (names ending in .lora_a / .lora_b)")
    rank = 0
    for target in pairs:
        a, b = shapes.get(target + ".lora_a"), shapes.get(target + ".lora_b")
        if a is None or b is None:
            raise ModelError(f"{fits}: {target} has only one of its two LoRA tensors (lora_a, lora_b)")
        if target not in base_shapes:
            raise ModelError(f"{fits}: it changes tensor {target}, which the base model does not have")
        w = base_shapes[target]
        # Same test as llama.cpp's loader: a is (in, rank), b is (rank, out), the base weight (in, out).
        if len(w) < 2 or a[0] != w[0] or b[1] != w[1] or a[1] != b[0]:
            raise ModelError(
                f"{fits}: tensor {target} is {list(w)} in the base model but the adapter's "
                f"lora_a {list(a)} and lora_b {list(b)} do not fit it; it was made for another model size"
            )
        rank = max(rank, a[1])
    return {
        "name": adapter_path.name,
        "path": str(adapter_path),
        "sha256": sha256_file(adapter_path),
        "architecture": arch,
        "base_model": base_path.name,
        "alpha": _number(lora, "adapter.lora.alpha"),
        "rank": rank,
        "tensors": len(pairs),
    }


def _check_trained_base(lora, base_path: Path, fits: str) -> None:
    """An adapter `kbflow finetune` wrote records its base (size and sha256): another base of the same shapes (another
    fine-tune of the model) is refused too. Checked without hashing the base: its size, and a pulled model's
    official sha256."""
    from tasks.answer.models import MODEL_SOURCES

    trained_on, size, sha = (_string(lora, f"kbflow.base_{k}") for k in ("model", "size", "sha256"))
    official = next((s.sha256 for s in MODEL_SOURCES.values() if s.filename == base_path.name), None)
    if (size and size != str(base_path.stat().st_size)) or (sha and official and sha != official):
        raise ModelError(
            f"{fits}: it was trained on {trained_on} (sha256 {(sha or '?')[:12]}), another file; "
            "use that base model (KBFLOW_LLM_MODEL / --model), or train an adapter on this one with `kbflow finetune`"
        )


def check_adapter(adapter_path: str | Path, base_gguf_path: str | Path) -> dict:
    """Refuse a LoRA file that is missing or does not fit the base GGUF; return its name, sha256 and architecture."""
    adapter, base = Path(adapter_path).expanduser(), Path(base_gguf_path)
    if not adapter.is_file():
        raise ModelError(
            f"LoRA adapter {adapter} does not exist (base model {base.name}): "
            "give the path of a .gguf adapter (KBFLOW_LLM_LORA or --lora)"
        )
    return _check(adapter, base)


def checked_llm(llm) -> tuple:
    """The LLM config with its model and adapter checked before the first question (ModelError otherwise), and
    the adapter's facts (name, sha256, ...; None without one). The adapter path is made absolute, so every task
    (and its cache key) sees the same file wherever it runs."""
    from pathlib import Path

    from tasks.answer.models import check_gguf, resolve_gguf

    if llm.backend != "llama-cpp":
        return llm, None
    base = resolve_gguf(llm.model, Path(llm.models_dir))
    check_gguf(base)  # a truncated or damaged file: a clear error now, not a llama.cpp abort at load
    if not llm.lora:
        return llm, None
    llm = llm.model_copy(update={"lora": str(Path(llm.lora).expanduser().resolve())})
    return llm, check_adapter(llm.lora, base)
