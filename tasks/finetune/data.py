"""The dataset a finetune reads: `kbflow dataset export`'s folder, checked, hashed, and rendered into token ids with
the base GGUF's own chat template and tokenizer, exactly as `kbflow ask` prompts it."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from tasks.finetune.options import FinetuneError

SPLITS = ("train.jsonl", "eval.jsonl")


def _messages(record: object) -> list[dict] | None:
    """The chat of one line in any of the export's formats (openai, alpaca, sharegpt); None when it is none."""
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("messages"), list):
        messages = record["messages"]
    elif "instruction" in record and "output" in record:
        messages = [
            *([{"role": "system", "content": record["system"]}] if record.get("system") else []),
            {"role": "user", "content": "\n".join(x for x in (record["instruction"], record.get("input")) if x)},
            {"role": "assistant", "content": record["output"]},
        ]
    elif isinstance(record.get("conversations"), list):
        roles = {"human": "user", "gpt": "assistant", "system": "system"}
        messages = [
            *([{"role": "system", "content": record["system"]}] if record.get("system") else []),
            *({"role": roles.get(t.get("from"), ""), "content": t.get("value")} for t in record["conversations"]),
        ]
    else:
        return None
    if (
        len(messages) < 2
        or any(not isinstance(m, dict) or not isinstance(m.get("content"), str) for m in messages)
        or messages[-1].get("role") != "assistant"
        or not messages[-1]["content"].strip()
        or any(m.get("role") not in ("system", "user", "assistant") for m in messages)
    ):
        return None
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _read_split(path: Path) -> list[list[dict]]:
    examples = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise FinetuneError(f"dataset file {path} is not UTF-8 text ({exc.reason})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            messages = _messages(json.loads(line))
        except ValueError:
            messages = None
        if messages is None:
            raise FinetuneError(
                f"dataset file {path} line {n} is not a chat example (JSON with messages ending in the assistant's "
                "answer, or alpaca/sharegpt fields): re-export it with `kbflow dataset export`"
            )
        examples.append(messages)
    return examples


def dataset_sha256(folder: Path) -> str:
    """The dataset's identity: a hash of its train and eval files (name and bytes)."""
    h = hashlib.sha256()
    for name in SPLITS:
        path = folder / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def read_dataset(folder: str | Path, collection: str | None = None) -> dict:
    """The train and eval examples of an exported dataset folder, its hash and summary; FinetuneError (one line) for
    a missing, empty or malformed one, or one exported from another collection than `collection`."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise FinetuneError(f"dataset {folder} is not a folder: give the folder `kbflow dataset export --out` wrote")
    train_path = folder / "train.jsonl"
    if not train_path.is_file():
        raise FinetuneError(f"dataset {folder} has no train.jsonl: give the folder `kbflow dataset export` wrote")
    summary: dict = {}
    if (folder / "summary.json").is_file():
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise FinetuneError(f"dataset file {folder / 'summary.json'} is not valid JSON ({exc})") from None
        if not isinstance(summary, dict):
            raise FinetuneError(f"dataset file {folder / 'summary.json'} is not a JSON object")
    exported_from = summary.get("collection")
    if collection and exported_from and exported_from != collection:
        raise FinetuneError(
            f"dataset {folder} was exported from collection {exported_from!r}, not {collection!r}: "
            f"finetune with --collection {exported_from}, or export a dataset from {collection!r}"
        )
    train = _read_split(train_path)
    if not train:
        raise FinetuneError(f"dataset file {train_path} holds no example: export with more --chunks")
    held_out = _read_split(folder / "eval.jsonl") if (folder / "eval.jsonl").is_file() else []
    return {
        "folder": str(folder),
        "train": train,
        "eval": held_out,
        "sha256": dataset_sha256(folder),
        "collection": exported_from,
        "summary": summary,
    }


def pick_examples(examples: list, n: int, seed: int) -> list:
    """At most n examples in a seeded order (the same dataset and seed always train on the same ones)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in order[:n]]


class ChatTokenizer:
    """The base GGUF's tokenizer and chat template, loaded by llama.cpp (vocabulary only): training sees exactly the
    token ids `kbflow ask` would feed the model."""

    def __init__(self, gguf_path: str | Path):
        from llama_cpp import Llama, llama_chat_format

        self.llm = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise FinetuneError(f"{gguf_path} has no chat template in its GGUF metadata: it cannot be fine-tuned here")
        eos_id, bos_id = self.llm.token_eos(), self.llm.token_bos()
        text = self.llm._model.token_get_text
        self.eos_text = text(eos_id) if eos_id != -1 else ""
        self.formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=self.eos_text,
            bos_token=text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )

    def _ids(self, text: str, bos: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True)

    def encode(self, messages: list[dict], max_tokens: int) -> dict:
        """{"ids", "start"}: the prompt and answer token ids; the loss is on ids[start:] (the answer and its end of
        turn). A prompt too long loses tokens from its middle (the passages) until the example fits max_tokens."""
        prompt = self.formatter(messages=messages[:-1])
        full = self.formatter(messages=messages).prompt
        # The template renders the answer after the prompt; the turn ends at the model's end-of-turn token.
        if not full.startswith(prompt.prompt):
            raise FinetuneError("the base model's chat template does not render the answer after the prompt")
        answer = full[len(prompt.prompt) :]
        if self.eos_text and self.eos_text in answer:
            answer = answer[: answer.index(self.eos_text) + len(self.eos_text)]
        answer_ids = self._ids(answer, False)
        prompt_ids = self._ids(prompt.prompt, not prompt.added_special)
        budget = max_tokens - len(answer_ids)
        if budget < 16:
            raise FinetuneError(f"an answer of {len(answer_ids)} tokens does not fit max_tokens {max_tokens}")
        if len(prompt_ids) > budget:
            # Cut the middle of the prompt (the passages), keep its head (the instructions) and tail (the question).
            head = budget // 3
            prompt_ids = prompt_ids[:head] + prompt_ids[len(prompt_ids) - (budget - head) :]
        return {"ids": prompt_ids + answer_ids, "start": len(prompt_ids)}
