"""Seconds a LoRA training step and peak memory, per base model and precision, on kbflow's own RAFT prompt.

Each (model, precision) runs in its own process, so its peak RSS is its own: the base loaded from its GGUF, a LoRA
(rank 16, q/k/v/o), then --steps AdamW steps of batch 1 on examples of about --tokens tokens (a question, four
passages, a cited answer). The first step is reported apart (it allocates).

    python benchmarks/finetune.py --models smollm2 qwen2.5-1.5b --precisions fp32 bf16 --steps 4

Writes benchmarks/results/finetune.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import RESULTS  # noqa: E402

PASSAGE = (
    "The {n} service plan covers repairs of the device for {y} years from the date of purchase. Claims are made "
    "through the support portal with the receipt, and a courier collects the device within {d} working days. "
)


def examples(tokens: int, steps: int) -> list[list[dict]]:
    """Chats in kbflow's prompt: four passages long enough for about `tokens` tokens, a cited short answer."""
    from tasks.answer.prompts import build_messages

    chats = []
    for i in range(steps + 1):
        text = "".join(PASSAGE.format(n=f"Model {i}-{k}", y=k + 1, d=k + 2) for k in range(max(1, tokens // 200)))
        passages = [
            {
                "source": f"doc{k}.txt",
                "page": None,
                "text": text.replace(" years", f" years (part {k})"),
                "chunk_id": str(k),
            }
            for k in range(4)
        ]
        messages = build_messages(f"How long does the Model {i}-0 plan cover repairs?", passages, "en", "sentence")
        chats.append([*messages, {"role": "assistant", "content": "1 years [2]"}])
    return chats


def one_run(model: str, precision: str, steps: int, tokens: int) -> dict:
    """In this process: load, add the LoRA, train `steps` steps; seconds and peak RSS."""
    import torch

    from tasks.answer.models import resolve_gguf
    from tasks.finetune import train as t
    from tasks.finetune.data import ChatTokenizer
    from tasks.finetune.options import FinetuneOptions
    from tasks.settings import load_settings

    base = resolve_gguf(model, Path(load_settings().models_dir))
    tokenizer = ChatTokenizer(base)
    data = [tokenizer.encode(m, 4096) for m in examples(tokens, steps)]
    started = time.perf_counter()
    lora = t.add_lora(t.load_base(base, precision, "cpu"), FinetuneOptions())
    load_s = time.perf_counter() - started
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=2e-4)
    seconds = []
    for example in data[:steps]:
        started = time.perf_counter()
        t.answer_nll(lora, example).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - started)
    later = seconds[1:] or seconds
    return {
        "model": base.name,
        "precision": precision,
        "parameters_m": round(t.gguf_facts(str(base))["parameters"] / 1e6),
        "tokens_per_example": round(sum(len(e["ids"]) for e in data[:steps]) / steps),
        "load_s": round(load_s, 1),
        "first_step_s": round(seconds[0], 2),
        "step_s": round(sum(later) / len(later), 2),
        "steps": steps,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["smollm2"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=900, help="about this many tokens an example")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "finetune.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one[0], args.one[1], args.steps, args.tokens)))
        return
    rows = []
    for model in args.models:
        for precision in args.precisions:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                model,
                precision,
                "--steps",
                str(args.steps),
                "--tokens",
                str(args.tokens),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                sys.exit(f"{model} {precision} failed: {proc.stderr[-1500:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
