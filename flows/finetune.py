"""The finetune flow: a LoRA adapter trained on an exported dataset, from the GGUF base, verified in llama.cpp."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from connectors.base import sha256_file
from flows.errors import ConfigError
from tasks import progress
from tasks.answer.models import MODEL_SOURCES, ModelError, check_gguf, resolve_gguf
from tasks.finetune.data import read_dataset
from tasks.finetune.options import FinetuneError, FinetuneOptions
from tasks.finetune.steps import (
    checkpoint_dir,
    lora_bytes,
    room_needed,
    train_adapter,
    verify_adapter,
    write_adapter,
)
from tasks.settings import load_settings


def _run_name() -> str:
    return f"finetune-{Path(str(flow_run.parameters.get('dataset_dir') or 'dataset')).name}"


def base_sha256(base: Path) -> str:
    """The base GGUF's sha256: the official one for a pulled model of the official size, else hashed."""
    pulled = next((s for s in MODEL_SOURCES.values() if s.filename == base.name), None)
    if pulled is not None and base.stat().st_size == pulled.size:
        return pulled.sha256
    return sha256_file(base)


def check_inputs(cfg, dataset_dir: str) -> tuple[Path, dict]:
    """The base GGUF and the dataset, checked before anything heavy loads (ConfigError, one line, otherwise)."""
    try:
        base = resolve_gguf(cfg.llm_model, Path(cfg.models_dir))
        check_gguf(base)
        dataset = read_dataset(dataset_dir, cfg.collection)
    except (ModelError, FinetuneError) as exc:
        raise ConfigError(str(exc)) from exc
    return base, dataset


def pick_hardware(options: FinetuneOptions, base: Path) -> dict:
    """Device and precision for this run, and a refusal when the machine lacks the memory (ConfigError)."""
    from tasks.finetune import train as t

    try:
        device = t.pick_device(options.device)
        precision, probe = t.pick_precision(options.precision, device, t.gguf_facts(str(base))["hidden"] or 1536)
        memory = t.check_memory(base, precision, device)
    except FinetuneError as exc:
        raise ConfigError(str(exc)) from exc
    return {"device": device, "precision": precision, "precision_probe": probe, **memory}


def curve_table(curve: list[dict], rows: int = 25) -> str:
    """The loss curve as a markdown table: the mean loss of each of at most `rows` equal windows of steps."""
    if not curve:
        return "no steps"
    size = max(1, -(-len(curve) // rows))
    lines = ["| steps | mean loss | s/step |", "|---|---|---|"]
    for i in range(0, len(curve), size):
        window = curve[i : i + size]
        mean = sum(p["loss"] for p in window) / len(window)
        seconds = sum(p["seconds"] for p in window) / len(window)
        lines.append(f"| {window[0]['step']}–{window[-1]['step']} | {mean:.4f} | {seconds:.2f} |")
    return "\n".join(lines)


def finetune_markdown(summary: dict) -> str:
    def loss(x):
        return "n/a" if x is None else f"{x:.4f}"

    rows = [
        ("adapter", f"`{summary['out']}`"),
        ("base model", f"{summary['base_model']} (sha256 {summary['base_sha256'][:12]}…)"),
        ("dataset", f"`{summary['dataset_dir']}` (sha256 {summary['dataset_sha256'][:12]}…)"),
        ("examples (train / eval)", f"{summary['train_examples']} / {summary['eval_examples']}"),
        ("steps", f"{summary['steps']}" + (f" (resumed at {summary['resumed_at']})" if summary["resumed_at"] else "")),
        ("device, precision", f"{summary['device']}, {summary['precision']}"),
        ("eval loss before → after", f"{loss(summary['eval_loss_before'])} → {loss(summary['eval_loss_after'])}"),
        (
            "llama.cpp vs PyTorch loss",
            f"{summary['verify']['llama_cpp_loss']:.4f} vs {summary['verify']['torch_loss']:.4f} "
            f"({summary['verify']['relative_difference']:.2%} apart)",
        ),
        ("training time", f"{summary['train_seconds']:.0f} s"),
    ]
    table = "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    return f"{table}\n\n## Loss curve (answer tokens, training examples)\n\n{curve_table(summary['curve'])}"


@flow(name="kb-finetune", flow_run_name=_run_name)
def finetune_flow(
    dataset_dir: str,
    out: str | None = None,
    model: str | None = None,
    store_dir: str | None = None,
    collection: str | None = None,
    epochs: float | None = None,
    max_examples: int | None = None,
    rank: int | None = None,
    alpha: float | None = None,
    learning_rate: float | None = None,
    max_tokens: int | None = None,
    precision: str | None = None,
    device: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
) -> dict:
    """Train a LoRA adapter on an exported dataset from the GGUF base model, check it in llama.cpp, and write it as a
    GGUF adapter for `kbflow ask --lora`."""
    cfg = load_settings(store_dir=store_dir, collection=collection, llm_model=model)
    given = dict(
        epochs=epochs,
        max_examples=max_examples,
        rank=rank,
        alpha=alpha,
        learning_rate=learning_rate,
        max_tokens=max_tokens,
        precision=precision,
        device=device,
        steps=steps,
        seed=seed,
    )
    options = FinetuneOptions(**{k: v for k, v in given.items() if v is not None})
    logger = get_run_logger()
    base, dataset = check_inputs(cfg, dataset_dir)
    target = Path(out or Path(dataset["folder"]) / f"adapter-{base.stem}.gguf").expanduser().resolve()
    room_needed(target, lora_bytes(str(base), options.rank))
    hardware = pick_hardware(options, base)
    progress.notice(
        f"training on {hardware['device']} in {hardware['precision']}: {base.name} "
        f"({hardware['parameters'] / 1e6:.0f}M parameters, about {hardware['memory_needed_gb']:.1f} GB)"
    )
    base_sha = base_sha256(base)
    from tasks.finetune.train import run_key

    key = run_key(base_sha, dataset["sha256"], options, hardware["precision"])
    checkpoint = checkpoint_dir(target)
    started = time.perf_counter()
    trained = train_adapter(
        str(base),
        dataset["folder"],
        cfg.collection,
        options.model_dump(),
        hardware["precision"],
        hardware["device"],
        str(checkpoint),
        key,
    )
    train_seconds = time.perf_counter() - started
    logger.info(
        "Trained %d steps in %.0f s; eval loss %s -> %s",
        trained["steps"],
        train_seconds,
        trained["eval_loss_before"],
        trained["eval_loss_after"],
    )
    metadata = {
        "base_model": base.name,
        "base_sha256": base_sha,
        "base_size": str(base.stat().st_size),
        "dataset_sha256": dataset["sha256"],
        "dataset": dataset["folder"],
        "collection": dataset["collection"] or cfg.collection,
        "training": {
            **key["options"],
            "precision": hardware["precision"],
            "device": hardware["device"],
            "steps": trained["steps"],
            "train_examples": trained["train_examples"],
        },
        "eval_loss": {
            "before": trained["eval_loss_before"],
            "after": trained["eval_loss_after"],
            "examples": trained["eval_examples"],
        },
    }
    partial = target.with_name(target.name + ".partial")
    write_adapter(str(checkpoint), str(base), str(partial), options.alpha, metadata)
    try:
        verified = verify_adapter(
            str(base),
            str(partial),
            trained["verify_examples"],
            trained["verify_torch_loss"],
            trained["verify_torch_base_loss"],
            options.verify_tolerance,
        )
    except FinetuneError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(str(exc)) from exc
    partial.replace(target)
    summary = {
        "out": str(target),
        "base_model": base.name,
        "base_sha256": base_sha,
        "dataset_dir": dataset["folder"],
        "dataset_sha256": dataset["sha256"],
        "collection": metadata["collection"],
        "options": options.model_dump(),
        **hardware,
        **{k: v for k, v in trained.items() if k != "verify_examples"},
        "verify": verified,
        "train_seconds": round(train_seconds, 1),
    }
    target.with_name(target.name + ".json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    shutil.rmtree(checkpoint, ignore_errors=True)  # the adapter is whole: its checkpoint is no longer needed
    create_markdown_artifact(
        key="finetune-summary",
        markdown=f"# LoRA adapter `{target.name}`\n\n{finetune_markdown(summary)}",
        description="What the finetune trained, its loss curve and its check in llama.cpp",
    )
    logger.info(
        "Adapter written to %s (llama.cpp loss %.4f, PyTorch %.4f)",
        target,
        verified["llama_cpp_loss"],
        verified["torch_loss"],
    )
    return summary
