"""Whether generating several answers at once is faster on this machine: llama.cpp's batch API decoding 1, 2, 4
and 8 sequences together, each after its own prompt, greedy, through llama-cpp-python's low-level bindings.

    .venv/bin/python benchmarks/batched_decode.py --model qwen2.5-1.5b --name batched-decode-qwen

Where decoding is memory-bound (a GPU, a many-core server), n sequences cost little more a step than one, and
throughput grows nearly n-fold. The prompts are the same length for every sequence (random tokens: the cost of a
token does not depend on which one it is). Records per n: prefill seconds a sequence, decode milliseconds a step and
a token, and tokens a second in all.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402 - run as a script: the repository goes on sys.path first


def measure(llama_cpp, model, n_vocab: int, n_seq: int, prompt_len: int, steps: int, threads: int) -> dict:
    import numpy as np

    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 4096, 512, 512
    params.n_seq_max, params.n_threads, params.n_threads_batch = n_seq, threads, threads
    ctx = llama_cpp.llama_init_from_model(model, params)
    batch = llama_cpp.llama_batch_init(512, 0, n_seq)
    rng = np.random.default_rng(0)
    try:
        started = time.perf_counter()
        for seq in range(n_seq):
            tokens = rng.integers(1000, 20000, prompt_len)
            for start in range(0, prompt_len, 512):
                chunk = tokens[start : start + 512]
                batch.n_tokens = len(chunk)
                for i, token in enumerate(chunk):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = int(token), start + i, 1
                    batch.seq_id[i][0], batch.logits[i] = seq, start + i == prompt_len - 1
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed on a prompt")
        prefilled = time.perf_counter()
        last = [int(t) for t in rng.integers(1000, 20000, n_seq)]
        for step in range(steps):
            batch.n_tokens = n_seq
            for seq in range(n_seq):
                batch.token[seq], batch.pos[seq], batch.n_seq_id[seq] = last[seq], prompt_len + step, 1
                batch.seq_id[seq][0], batch.logits[seq] = seq, True
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed on a step")
            for seq in range(n_seq):
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, seq), shape=(n_vocab,))
                last[seq] = int(logits.argmax())
        done = time.perf_counter()
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    decode = done - prefilled
    return {
        "sequences": n_seq,
        "prefill_s_per_sequence": round((prefilled - started) / n_seq, 3),
        "decode_ms_per_step": round(decode / steps * 1000, 1),
        "decode_ms_per_token": round(decode / steps / n_seq * 1000, 1),
        "tokens_per_s": round(n_seq * steps / decode, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--prompt-tokens", type=int, default=300)
    ap.add_argument("--steps", type=int, default=24, help="tokens decoded per sequence (about an answer's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sequences", default="1,2,4,8")
    ap.add_argument("--name", default="batched-decode")
    args = ap.parse_args()

    import llama_cpp

    from tasks.answer.backends import LLMConfig
    from tasks.answer.models import check_gguf, resolve_gguf

    # The GGUF kbflow would load for this setting, checked as it checks it; loaded here once, by the bare bindings.
    path = str(resolve_gguf(args.model, Path(LLMConfig().models_dir)))
    check_gguf(Path(path))
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(path.encode(), llama_cpp.llama_model_default_params())
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    rows = []
    for n in (int(x) for x in args.sequences.split(",")):
        rows.append(measure(llama_cpp, model, n_vocab, n, args.prompt_tokens, args.steps, args.threads))
        print(rows[-1], flush=True)
    llama_cpp.llama_model_free(model)
    result = {
        "model": args.model,
        "gguf": Path(path).name,
        "prompt_tokens": args.prompt_tokens,
        "steps": args.steps,
        "threads": args.threads,
        "command": "benchmarks/batched_decode.py " + " ".join(sys.argv[1:]),
        "rows": rows,
        "speedup_of_most_sequences": round(max(r["tokens_per_s"] for r in rows) / rows[0]["tokens_per_s"], 2),
    }
    print(f"saved {save(args.name, result)}")


if __name__ == "__main__":
    main()
