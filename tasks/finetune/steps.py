"""The finetune's Prefect tasks: train (with checkpoints), write the GGUF adapter, verify it in llama.cpp.
Arguments are paths and plain values; the model lives only inside the training task."""

from __future__ import annotations

import errno
import gc
import os
import shutil
from pathlib import Path

from prefect import task

from tasks import progress
from tasks.finetune.data import ChatTokenizer, pick_examples, read_dataset
from tasks.finetune.options import FinetuneError, FinetuneOptions


def checkpoint_dir(out: Path) -> Path:
    """Where a run's checkpoint lives: beside the adapter it will become."""
    return out.parent / f"{out.name}.checkpoint"


def tokenize_dataset(base_gguf: str, dataset_dir: str, collection: str | None, options: FinetuneOptions) -> dict:
    """Train examples (at most max_examples, seeded order) and eval examples (at most eval_examples) as token ids."""
    dataset = read_dataset(dataset_dir, collection)
    tokenizer = ChatTokenizer(base_gguf)
    train = [tokenizer.encode(m, options.max_tokens) for m in pick_examples(dataset["train"], options.max_examples, 0)]
    held_out = [tokenizer.encode(m, options.max_tokens) for m in dataset["eval"][: options.eval_examples]]
    return {"train": train, "eval": held_out}


@task(name="train-adapter")
def train_adapter(
    base_gguf: str,
    dataset_dir: str,
    collection: str | None,
    options: dict,
    precision: str,
    device: str,
    checkpoint: str,
    key: dict,
) -> dict:
    """Train the LoRA on the train split from the GGUF base; the eval loss before and after, and PyTorch's loss on
    the examples the adapter is verified on. The adapter's tensors are in the checkpoint."""
    import torch

    from tasks.finetune import train as t

    opts = FinetuneOptions(**options)
    data = tokenize_dataset(base_gguf, dataset_dir, collection, opts)
    verify = (data["eval"] or data["train"])[: opts.verify_examples]
    model = t.add_lora(t.load_base(base_gguf, precision, device), opts)
    before = t.mean_loss(model, data["eval"])
    progress.start(t.schedule(len(data["train"]), opts), "training", "step")

    def on_step(step: int, total: int, loss: float, seconds: float) -> None:
        progress.advance(1, f"loss {loss:.3f}, {seconds:.1f} s/step")

    try:
        history = t.train_lora(model, data["train"], opts, Path(checkpoint), key, on_step)
    finally:
        progress.finish()
    after = t.mean_loss(model, data["eval"])
    verify_precision = precision
    if precision == "bf16":
        # llama.cpp computes from the GGUF's exact values; bf16 rounded them. Check against the fp32 base when it fits.
        state = t.lora_state(model)
        del model
        gc.collect()
        try:
            t.check_memory(base_gguf, "fp32", device)
        except FinetuneError:
            model = t.add_lora(t.load_base(base_gguf, "bf16", device), opts)
        else:
            model, verify_precision = t.add_lora(t.load_base(base_gguf, "fp32", device), opts), "fp32"
        model.load_state_dict(state, strict=False)
    if verify == data["eval"] and verify_precision == precision:
        torch_verify, torch_verify_base = after, before  # the same examples on the same weights: measured above
    else:
        torch_verify = t.mean_loss(model, verify)
        with model.disable_adapter():  # the base's own loss there: llama.cpp's quantized arithmetic differs from it
            torch_verify_base = t.mean_loss(model, verify)
    return {
        **history,
        "train_examples": len(data["train"]),
        "eval_examples": len(data["eval"]),
        "eval_loss_before": before,
        "eval_loss_after": after,
        "verify_examples": verify,
        "verify_torch_loss": torch_verify,
        "verify_torch_base_loss": torch_verify_base,
        "verify_torch_precision": verify_precision,
        "torch_threads": torch.get_num_threads(),
    }


@task(name="write-adapter")
def write_adapter(checkpoint: str, base_gguf: str, out: str, alpha: float, metadata: dict) -> dict:
    """The checkpoint's LoRA tensors as a GGUF adapter at `out` (a full disk: an OSError that names the folder)."""
    import torch

    from tasks.finetune.convert import write_gguf_lora

    state = torch.load(Path(checkpoint) / "checkpoint.pt", map_location="cpu", weights_only=False)["lora"]
    try:
        return write_gguf_lora(state, base_gguf, out, alpha, metadata)
    except OSError as exc:
        Path(out).unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, "No space left on device: the adapter was not written", out) from exc
        raise


@task(name="verify-adapter")
def verify_adapter(
    base_gguf: str, adapter: str, examples: list[dict], torch_loss: float, torch_base_loss: float, tolerance: float
) -> dict:
    """llama.cpp's answer loss with the written adapter against PyTorch's, on the same token ids (FinetuneError when
    they differ by more than the tolerance beyond the base model's own difference between the two)."""
    from tasks.finetune.verify import check_agreement, llama_cpp_loss
    from tasks.machine import cpu_count

    base_loss = llama_cpp_loss(base_gguf, None, examples, threads=cpu_count())
    loss = llama_cpp_loss(base_gguf, adapter, examples, threads=cpu_count())
    base_gap = abs(base_loss - torch_base_loss)
    effect = abs(torch_base_loss - torch_loss)
    difference = check_agreement(loss, torch_loss, tolerance, adapter, base_gap, effect)
    return {
        "llama_cpp_loss": loss,
        "torch_loss": torch_loss,
        "relative_difference": difference,
        "base_llama_cpp_loss": base_loss,
        "base_torch_loss": torch_base_loss,
        "base_relative_difference": base_gap / max(abs(torch_base_loss), 1e-9),
        "adapter_effect": effect,
        "missed_share_of_effect": abs(loss - torch_loss) / max(effect, 1e-9),
    }


def room_needed(out: Path, lora_bytes: int) -> None:
    """Refuse a run whose adapter and checkpoint (with its optimizer state) cannot fit on the disk (OSError ENOSPC
    naming the folder)."""
    need = lora_bytes * 5  # adapter, checkpoint's weights and AdamW's two moments, and one checkpoint being written
    folder = out.parent
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device: the adapter and its checkpoint need {need / 2**20:.0f} MB, "
            f"{free / 2**20:.0f} MB is free",
            str(folder / out.name),
        )


def lora_bytes(base_gguf: str, rank: int) -> int:
    """Bytes of the adapter's float32 tensors: rank x (in + out) for each q, k, v and o matrix."""
    from tasks.finetune.train import gguf_facts

    return rank * gguf_facts(base_gguf)["lora_bytes_per_rank"]


def move_into_place(partial: Path, out: Path) -> None:
    os.replace(partial, out)
