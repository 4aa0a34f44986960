"""What the JSON-schema grammar costs and buys when a model writes question/answer pairs: the same prompts, with and
without the grammar, on one model in process.

    .venv/bin/python benchmarks/json_grammar.py --model smollm2 --name json-grammar-smollm2

Passages are the demo corpus's plain-text documents (.txt, .md), cut at blank lines into pieces of 300 to 900
characters, English and Chinese alike. For each passage the dataset export's own prompt (qa_messages) goes to the
model twice: free (the reply parsed as the export reads it) and held to pairs_schema by llama.cpp's grammar.
Records per mode: replies, replies that were complete JSON, pairs read, completion tokens, generation seconds,
tokens per second; and the seconds to build the grammar from the schema (once per process; cached after).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, save  # noqa: E402 - run as a script: the repository goes on sys.path first


def passages(corpus: Path, limit: int) -> list[dict]:
    """Pieces of 300-900 characters of the corpus's .txt and .md files, in path order, alternating documents."""
    per_doc = []
    for path in sorted(p for p in corpus.rglob("*") if p.suffix in (".txt", ".md")):
        pieces, current = [], ""
        for para in path.read_text(encoding="utf-8").split("\n\n"):
            current = f"{current}\n\n{para}".strip()
            if len(current) >= 300:
                pieces.append(current[:900])
                current = ""
        per_doc.append([{"source": str(path.relative_to(corpus)), "text": t} for t in pieces])
    picked: list[dict] = []
    while len(picked) < limit and any(per_doc):
        for doc in per_doc:
            if doc and len(picked) < limit:
                picked.append(doc.pop(0))
    return picked


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--limit", type=int, default=10, help="passages")
    ap.add_argument("--per-chunk", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument(
        "--unbounded", action="store_true", help="drop the strings' maxLength (what the bounded repetition costs)"
    )
    ap.add_argument("--name", default="json-grammar")
    args = ap.parse_args()

    from tasks.answer.backends import LLMConfig, json_grammar, make_backend, schema_key
    from tasks.dataset.pairs import pairs_schema, parse_pairs, qa_messages

    backend = make_backend(LLMConfig(model=args.model))
    schema = pairs_schema(args.per_chunk)
    if args.unbounded:
        for field in schema["properties"]["pairs"]["items"]["properties"].values():
            field.pop("maxLength")
    json_grammar.cache_clear()
    started = time.perf_counter()
    json_grammar(schema_key(schema))
    build_s = time.perf_counter() - started
    chunks = passages(REPO / "docs" / "demo" / "corpus", args.limit)
    result = {
        "model": args.model,
        "threads": getattr(backend, "threads", None),
        "passages": len(chunks),
        "per_chunk": args.per_chunk,
        "max_tokens": args.max_tokens,
        "grammar_build_ms": round(build_s * 1000, 2),
        "string_max_length": not args.unbounded,
        "command": "benchmarks/json_grammar.py " + " ".join(sys.argv[1:]),
        "modes": {},
    }
    for mode, given in (("free", None), ("grammar", schema)) if not args.unbounded else (("grammar", schema),):
        figures = {"replies": 0, "replies_json": 0, "replies_with_pairs": 0, "pairs": 0, "tokens": 0, "seconds": 0.0}
        for chunk in chunks:
            started = time.perf_counter()
            raw, _, tokens = backend.chat(qa_messages(chunk, args.per_chunk), args.max_tokens, 0.1, json_schema=given)
            figures["seconds"] += time.perf_counter() - started
            pairs, parsed = parse_pairs(raw)
            figures["replies"] += 1
            figures["replies_json"] += parsed
            figures["replies_with_pairs"] += bool(pairs)
            figures["pairs"] += len(pairs)
            figures["tokens"] += tokens
        figures["seconds"] = round(figures["seconds"], 1)
        figures["tokens_per_s"] = round(figures["tokens"] / figures["seconds"], 1) if figures["seconds"] else None
        result["modes"][mode] = figures
        print(mode, figures, flush=True)
    print(f"saved to {save(args.name, result)}")


if __name__ == "__main__":
    main()
