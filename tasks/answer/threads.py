"""The thread count that answers fastest on this machine: measured once per model and CPU, then cached.

Prefill is most of a RAG answer's time, and its best thread count depends on the machine: on a 2-vCPU AMD EPYC
VM, Qwen2.5 1.5B prefilled a 450-token prompt at 73 tok/s with 1 thread and 66 tok/s with 2 (the second vCPU is
a hyperthread of the first, and the two threads fight over one core); on an Intel VM of the same size, 2 threads
were faster. So with KBFLOW_THREADS unset (0), the first load of a model times a prompt's prefill at each
candidate count on the loaded model (llama_set_n_threads, no reload) and keeps the fastest, cached beside the
llama.cpp build flags in the venv (share/kbflow/threads.json), keyed by CPU model, core count, llama.cpp version
and model file. About 2 s once for Qwen 1.5B on 2 cores, well under a second for SmolLM2.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from tasks.machine import cpu_count, cpu_model, read_measured, write_measured

logger = logging.getLogger("kbflow.tasks.answer.threads")

# A fixed prompt: the same text on every machine, about 200 tokens in either language.
PROBE = (
    "The travel policy pays a daily meal allowance and covers trains in second class. 差旅政策规定每日餐补，"
    "火车票报销二等座。 Expenses are filed within thirty days with the receipts attached. "
) * 4


def cache_file() -> Path:
    return Path(sys.prefix) / "share" / "kbflow" / "threads.json"


def candidates(cpus: int) -> list[int]:
    """The counts worth timing: every one on a small machine, else half, all but one, and all."""
    if cpus <= 4:
        return list(range(1, cpus + 1))
    return sorted({cpus // 2, cpus - 1, cpus})


def machine_key(model_path: str) -> str:
    import llama_cpp

    cpu = cpu_model()
    model = Path(model_path)
    size = model.stat().st_size if model.exists() else 0
    return f"{cpu} | {cpu_count()} cpus | llama-cpp-python {llama_cpp.__version__} | {model.name} {size}"


def fastest_threads(llm, model_path: str) -> int:
    """The thread count with the fastest prefill for this model on this machine, measured on `llm` once."""
    key = machine_key(model_path)
    entries = read_measured(cache_file())
    if key in entries:
        return int(entries[key]["threads"])
    counts = candidates(cpu_count())
    if len(counts) == 1:
        return counts[0]
    tokens = llm.tokenize(PROBE.encode("utf-8"), add_bos=True)[:256]
    rates: dict[int, float] = {}
    for n in counts:
        llm._ctx.set_n_threads(n, n)
        best = float("inf")
        for _ in range(2):  # the best of two: the first may pay for page faults
            llm.reset()
            started = time.perf_counter()
            llm.eval(tokens)
            best = min(best, time.perf_counter() - started)
        rates[n] = len(tokens) / best
    llm.reset()
    pick = max(rates, key=rates.get)
    entries[key] = {"threads": pick, "prefill_tok_s": {str(n): round(r, 1) for n, r in rates.items()}}
    write_measured(cache_file(), entries)
    logger.info("Measured prefill on %d-token prompt: %s tok/s; answering with %d threads", len(tokens), rates, pick)
    return pick
