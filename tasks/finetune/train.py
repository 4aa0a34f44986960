"""Training: the GGUF base loaded dequantized into transformers, a PEFT LoRA on q, k, v, o, AdamW on the answer
tokens, checkpoints a killed run resumes from."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from tasks.finetune.options import FinetuneError, FinetuneOptions
from tasks.machine import cpu_model, read_measured, write_measured

logger = logging.getLogger("kbflow.tasks.finetune")

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
DTYPE_BYTES = {"fp32": 4, "bf16": 2}
BF16_MARGIN = 1.2  # bf16 only when it trains at least this much faster than fp32 here


# ---------------------------------------------------------------- memory and device


@functools.lru_cache(maxsize=4)
def gguf_facts(gguf_path: str) -> dict:
    """What training needs to know of a base GGUF, read once (parsing a GGUF's header takes seconds): architecture,
    sizes, head counts, parameter count and the float32 bytes of a rank-1 adapter on q, k, v and o."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path), "r")
    arch = reader.get_field("general.architecture").contents()

    def number(key: str, default: int = 0) -> int:
        field = reader.get_field(f"{arch}.{key}")
        return int(field.contents()) if field is not None else default

    n_head = number("attention.head_count")
    attention = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")
    return {
        "architecture": arch,
        "hidden": number("embedding_length"),
        "n_head": n_head,
        "n_head_kv": number("attention.head_count_kv", n_head),
        "parameters": sum(int(t.n_elements) for t in reader.tensors),
        "lora_bytes_per_rank": sum(
            4 * sum(int(d) for d in t.shape[:2]) for t in reader.tensors if t.name.endswith(attention)
        ),
    }


def memory_needed(parameters: int, precision: str) -> int:
    """Bytes a training run needs: the weights in the training dtype, plus what loading and training add
    (measured: Qwen2.5-1.5B 9.5 GB in fp32, 5.6 GB in bf16; SmolLM2-135M 1.2 GB in fp32)."""
    return int(parameters * DTYPE_BYTES[precision] + parameters * 1.3 + 0.5 * 2**30)


def available_memory() -> int:
    """Bytes this process may still allocate: the kernel's MemAvailable, or a cgroup's limit when that is lower."""
    available = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        import psutil

        available = psutil.virtual_memory().available
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def check_memory(gguf_path: str | Path, precision: str, device: str) -> dict:
    """Refuse, before loading, a model whose training needs more memory than is available (FinetuneError saying how
    much); the figures otherwise."""
    parameters = gguf_facts(str(gguf_path))["parameters"]
    need = memory_needed(parameters, precision)
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        have, where = free, "GPU memory free"
    else:
        have, where = available_memory(), "memory available"
    if need > have:
        raise FinetuneError(
            f"training {Path(gguf_path).name} ({parameters / 1e6:.0f}M parameters, {precision}) needs about "
            f"{need / 2**30:.1f} GB, and only {have / 2**30:.1f} GB is {where}: close other programs, use "
            f"{'--precision bf16 or ' if precision == 'fp32' else ''}a smaller --model"
        )
    return {
        "parameters": parameters,
        "memory_needed_gb": round(need / 2**30, 2),
        "memory_free_gb": round(have / 2**30, 2),
    }


def pick_device(wanted: str) -> str:
    """cuda when asked for (and there) or when 'auto' finds a GPU; else cpu."""
    import torch

    if wanted == "cuda" and not torch.cuda.is_available():
        raise FinetuneError("--device cuda was asked for, but torch sees no CUDA GPU (a CPU-only torch build?)")
    return "cuda" if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()) else "cpu"


def _cpu_has_bf16() -> bool:
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        ).split()
    except (OSError, StopIteration):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _step_seconds(dtype, hidden: int, tokens: int = 256) -> float:
    """A forward and backward pass through a stack of hidden x hidden layers: the best of three."""
    import torch

    torch.manual_seed(0)
    layers = [torch.randn(hidden, hidden, dtype=dtype) / hidden**0.5 for _ in range(4)]
    best = float("inf")
    for _ in range(3):
        x = torch.randn(tokens, hidden, dtype=dtype, requires_grad=True)
        started = time.perf_counter()
        y = x
        for w in layers:
            y = torch.nn.functional.silu(y @ w)
        y.float().square().mean().backward()
        best = min(best, time.perf_counter() - started)
    return best


def measured_precision_file() -> Path:
    import sys

    return Path(sys.prefix) / "share" / "kbflow" / "finetune-precision.json"


def pick_precision(wanted: str, device: str, hidden: int = 1536) -> tuple[str, dict]:
    """The training precision: what was asked for, or for 'auto' bf16 where the hardware has it and it measures at
    least 1.2x faster here (measured once per CPU and cached), else fp32; with the measurement."""
    import torch

    if wanted != "auto":
        if wanted == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
            raise FinetuneError("--precision bf16 was asked for, but this GPU has no bf16 support: use fp32")
        return wanted, {}
    if device == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp32"), {}
    if not _cpu_has_bf16():
        return "fp32", {"reason": "no avx512_bf16 / amx_bf16 on this CPU"}
    key = f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads | hidden {hidden}"
    entries = read_measured(measured_precision_file())
    if key not in entries:
        fp32, bf16 = _step_seconds(torch.float32, hidden), _step_seconds(torch.bfloat16, hidden)
        entries[key] = {
            "precision": "bf16" if fp32 >= BF16_MARGIN * bf16 else "fp32",
            "probe_ms": {"fp32": round(fp32 * 1e3, 2), "bf16": round(bf16 * 1e3, 2)},
        }
        write_measured(measured_precision_file(), entries)
    return entries[key]["precision"], entries[key]


# ---------------------------------------------------------------- the model


@contextlib.contextmanager
def gguf_parsed_once():
    """Within one load, each GGUF header parsed once and gguf's tensor-name map built once. transformers parses the
    header twice (for the config, then for the weights: seconds each, most of it the tokenizer's vocabulary) and
    rebuilds the name map for every submodule (397 times for SmolLM2). SmolLM2 loaded in 16 s, with this in 8 s."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers = functools.lru_cache(maxsize=2)(lambda path, mode="r": reader(path, mode))
    gguf.GGUFReader, gguf.get_tensor_name_map = readers, functools.lru_cache(maxsize=4)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map
        readers.cache_clear()  # its memory map goes with it


def load_base(gguf_path: str | Path, precision: str, device: str):
    """The base model from its GGUF, dequantized into torch (nothing is downloaded)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    gguf_path = Path(gguf_path)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # it warns, wrongly, that bf16 weights "stay quantized"
    try:
        with gguf_parsed_once():
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name, dtype=dtype, local_files_only=True
            )
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise FinetuneError(
            f"transformers cannot load {gguf_path} for training ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.to(device)


def add_lora(model, options: FinetuneOptions):
    """The base frozen, a LoRA (rank, alpha) on every attention projection; its initial weights seeded."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(options.seed)
    config = LoraConfig(
        r=options.rank, lora_alpha=options.alpha, target_modules=list(TARGET_MODULES), lora_dropout=0.0, bias="none"
    )
    return get_peft_model(model, config)


def answer_nll(model, example: dict):
    """Mean negative log-likelihood of the answer tokens (a torch scalar with its graph). Only the answer's
    positions go through the output layer: with a 150k vocabulary that is most of the compute otherwise."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([example["ids"]], device=device)
    keep = len(example["ids"]) - example["start"] + 1
    logits = model(input_ids=ids, logits_to_keep=keep).logits[0, :-1].float()
    targets = ids[0, example["start"] :]
    return torch.nn.functional.cross_entropy(logits, targets)


def mean_loss(model, examples: list[dict]) -> float | None:
    """Mean answer loss over examples, no gradients (None for none)."""
    import torch

    if not examples:
        return None
    model.eval()
    with torch.no_grad():
        total = sum(float(answer_nll(model, e)) for e in examples)
    model.train()
    return total / len(examples)


# ---------------------------------------------------------------- training with checkpoints


def lora_state(model) -> dict:
    """The adapter's own tensors (lora_A / lora_B of each adapted layer), on the CPU."""
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items() if "lora_" in k}


def _save_checkpoint(folder: Path, state: dict) -> None:
    """Written to a temporary file, then renamed: a run killed while saving leaves the previous checkpoint whole."""
    import errno
    import shutil

    import torch

    tmp = folder / f"checkpoint.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:  # closed here even when the disk fills: the error keeps no open file
            torch.save(state, fh)
        os.replace(tmp, folder / "checkpoint.pt")
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        if full or shutil.disk_usage(folder if folder.exists() else folder.parent).free < 2**20:
            raise OSError(
                errno.ENOSPC,
                f"No space left on device: the checkpoint of step {state['step']} was not written; the last one "
                "written is kept and the next run resumes from it",
                str(folder),
            ) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(folder: Path, key: dict) -> dict | None:
    """The last checkpoint of a run with the same base, dataset and settings (None otherwise, or when unreadable)."""
    import torch

    path = folder / "checkpoint.pt"
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        logger.warning("Checkpoint %s is unreadable (%s); training starts over", path, exc)
        return None
    if state.get("key") != key:
        logger.info("Checkpoint %s is of another base, dataset or settings; training starts over", path)
        return None
    return state


def schedule(n_examples: int, options: FinetuneOptions) -> int:
    """The number of optimizer steps (batch 1)."""
    return options.steps or max(1, math.ceil(n_examples * options.epochs))


def train_lora(
    model,
    examples: list[dict],
    options: FinetuneOptions,
    checkpoint_dir: Path,
    key: dict,
    on_step: Callable[[int, int, float, float], None] = lambda step, total, loss, seconds: None,
) -> dict:
    """Train the adapter (batch 1, AdamW, linear warm-up over the first 5% of steps), saving a checkpoint every
    `checkpoint_every` steps and at the end; resumes from a checkpoint of the same run. Returns the loss curve."""
    import torch

    total = schedule(len(examples), options)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=0.0)
    warmup = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    order: list[int] = []
    rng = random.Random(options.seed)
    while len(order) < total:
        epoch = list(range(len(examples)))
        rng.shuffle(epoch)
        order.extend(epoch)
    step, curve, resumed = 0, [], None
    state = load_checkpoint(checkpoint_dir, key)
    if state is not None:
        model.load_state_dict(state["lora"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, curve, resumed = state["step"], state["curve"], state["step"]
        logger.info("Resuming from checkpoint %s at step %d of %d", checkpoint_dir, step, total)
    model.train()
    while step < total:
        started = time.perf_counter()
        loss = answer_nll(model, examples[order[step]])
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        seconds = time.perf_counter() - started
        value = float(loss.detach())
        curve.append({"step": step, "loss": round(value, 5), "seconds": round(seconds, 3)})
        on_step(step, total, value, seconds)
        if step % options.checkpoint_every == 0 or step == total:
            _save_checkpoint(
                checkpoint_dir,
                {
                    "key": key,
                    "step": step,
                    "curve": curve,
                    "lora": lora_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                },
            )
    return {"steps": total, "resumed_at": resumed, "curve": curve}


def run_key(base_sha256: str, dataset_sha256: str, options: FinetuneOptions, precision: str) -> dict:
    """What a checkpoint must share with a run to be resumed by it."""
    settings = options.model_dump(
        exclude={"verify_examples", "verify_tolerance", "checkpoint_every", "eval_examples", "device", "precision"}
    )
    return json.loads(
        json.dumps({"base": base_sha256, "dataset": dataset_sha256, "precision": precision, "options": settings})
    )
