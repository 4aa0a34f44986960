"""Fine-tuning data from the knowledge base: model-written question/answer pairs as RAFT examples in kbflow's own
prompt."""

from __future__ import annotations

import csv
import json
import random
import re
import time
from pathlib import Path

from prefect import task

from tasks.answer.backends import Backend, GenerationError, LLMConfig, make_backend
from tasks.answer.crossing import other_language
from tasks.answer.models import ModelError
from tasks.answer.prompts import REFUSAL, AnswerStyle, build_messages, clean_citations, language_of
from tasks.answer.tiers import mark_tiers
from tasks.cells import csv_cell
from tasks.dataset.options import FORMATS, DatasetFormat
from tasks.text import answer_tokens, contains_answer, normalize_numbers, tokenize

# ---------------------------------------------------------------- sampling


def sample_chunks(chunks: list[dict], n: int, seed: int, min_chars: int = 80) -> list[dict]:
    """n chunks spread over the documents (round-robin over shuffled documents), in a reproducible order."""
    rng = random.Random(seed)
    by_source: dict[str, list[dict]] = {}
    for c in chunks:
        if len(c["text"].strip()) >= min_chars:
            by_source.setdefault(c["source"], []).append(c)
    sources = sorted(by_source)
    rng.shuffle(sources)
    for source in sources:
        rng.shuffle(by_source[source])
    picked: list[dict] = []
    while len(picked) < n and any(by_source[s] for s in sources):
        for source in sources:
            if by_source[source] and len(picked) < n:
                picked.append(by_source[source].pop())
    return picked


# ---------------------------------------------------------------- asking the model for pairs

QA_SYSTEM = {
    "en": (
        "You write the questions that employees and customers ask about a company's documents. From the passage, "
        "write {k} different questions that the passage answers, of different kinds: how much or how many, when or "
        "how long, who or which, under what condition, why. Each question must make sense on its own: name the "
        "product, policy or topic, and never say 'the passage' or 'the text'. Each answer is copied word for word "
        "from the passage: the shortest phrase that answers the question in full, with its unit and the condition "
        'or reason it depends on. Reply with JSON only: {{"pairs": [{{"question": ..., "answer": ...}}, ...]}}.'
    ),
    "zh": (
        "你替员工和客户就公司文档提问。根据段落写出 {k} 个不同的问题，每个问题都能由该段落回答，类型各不相同："
        "多少、何时或多久、谁或哪一个、在什么条件下、为什么。每个问题都要能单独看懂：写明产品、制度或主题，"
        "不要说“段落中”或“文中”。每个答案都从段落中原样摘抄：能完整回答问题的最短语句，带上单位以及它所依赖的条件或原因。"
        '只回复 JSON：{{"pairs": [{{"question": ..., "answer": ...}}, ...]}}。'
    ),
}
QA_USER = {
    "en": "Passage (from {source}):\n{text}\n\nJSON:",
    "zh": "段落（来自 {source}）：\n{text}\n\nJSON：",
}
# Bounds that keep a constrained reply inside the token cap: a question is a sentence, an answer a short span.
QUESTION_MAX_CHARS = 200
ANSWER_MAX_CHARS = 100


def qa_messages(chunk: dict, k: int) -> list[dict]:
    """The prompt that asks the model for k question/answer pairs about one chunk, in the chunk's language."""
    lang = language_of(chunk["text"])
    return [
        {"role": "system", "content": QA_SYSTEM[lang].format(k=k)},
        {"role": "user", "content": QA_USER[lang].format(source=chunk["source"], text=chunk["text"].strip())},
    ]


def pairs_schema(k: int) -> dict:
    """The JSON schema of the reply: {"pairs": [...]}, 1 to k objects with a non-empty question and answer.

    llama.cpp samples under it as a grammar, and OpenAI-compatible servers take it as response_format, so the
    reply is this JSON unless the token cap cuts it (the root is an object: OpenAI's structured output requires
    one)."""
    pair = {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": QUESTION_MAX_CHARS},
            "answer": {"type": "string", "minLength": 1, "maxLength": ANSWER_MAX_CHARS},
        },
        "required": ["question", "answer"],
        "additionalProperties": False,
    }
    return {
        "title": "qa_pairs",
        "type": "object",
        "properties": {"pairs": {"type": "array", "items": pair, "minItems": 1, "maxItems": k}},
        "required": ["pairs"],
        "additionalProperties": False,
    }


# A markdown code fence at either end of a reply: ```json ... ```.
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
# A complete {...} holding no braces: one pair of a reply cut by the token cap.
_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


def _as_pair(item: object) -> dict | None:
    if not isinstance(item, dict):
        return None
    q, a = item.get("question"), item.get("answer")
    if not isinstance(q, str) or not isinstance(a, str) or not q.strip() or not a.strip():
        return None
    return {"question": " ".join(q.split()), "answer": " ".join(a.split())}


def _complete_pairs(raw: str) -> list[dict]:
    """The complete {question, answer} objects in a reply that is not (or not yet) whole JSON."""
    pairs = []
    for match in _OBJECT.finditer(raw):
        try:
            pair = _as_pair(json.loads(match.group(0)))
        except ValueError:
            continue
        if pair:
            pairs.append(pair)
    return pairs


def parse_pairs(raw: str) -> tuple[list[dict], bool]:
    """The {question, answer} pairs in a reply held to pairs_schema, and whether the reply was complete JSON.

    A reply the token cap cut (or a server that ignored the schema) is not JSON: its complete pair objects are
    taken one by one. A markdown code fence around the JSON, as models write it when not held to the schema, is
    dropped."""
    raw = _FENCE.sub("", raw.strip())
    try:
        # strict=False: a raw newline inside a string, as the grammar of llama-cpp-python's server lets through.
        value = json.loads(raw, strict=False)
    except ValueError:
        return _complete_pairs(raw), False
    items = value.get("pairs") if isinstance(value, dict) else value
    return [p for p in map(_as_pair, items if isinstance(items, list) else []) if p], True


# How a reply held to pairs_schema begins, without its spaces (a bare list of pairs is read too).
_PAIRS_STARTS = ('{"pairs":[{"', '[{"')


def _may_be_pairs(reply: str) -> bool:
    """Whether a reply so far can still become pairs_schema's JSON (a code fence before it is allowed)."""
    body = reply.lstrip()
    if body.startswith("`"):
        if "\n" not in body:
            return len(body) < 16
        body = body.split("\n", 1)[1]
    compact = "".join(body.split())
    return any(compact.startswith(s) or s.startswith(compact) for s in _PAIRS_STARTS)


def free_reply_done(k: int):
    """When a free reply has said all it should: it stopped looking like the pairs JSON (held to the schema next,
    not after 256 tokens of something else), or it holds k complete pairs (no (k+1)-th pair, no closing brackets)."""

    def done(reply: str) -> bool:
        return not _may_be_pairs(reply) or len(_complete_pairs(reply)) >= k

    return done


def ask_pairs(backend: Backend, chunk: dict, k: int, max_tokens: int, temperature: float, held: bool = True) -> dict:
    """k question/answer pairs about one chunk from a backend, its reply held to pairs_schema (or, held=False, only
    asked for it in the prompt, and stopped once it has them or strays): the raw reply, the pairs parsed from it,
    whether it was complete (JSON, or a free reply stopped at its k-th pair), its completion tokens and seconds."""
    started = time.perf_counter()
    messages, cap = qa_messages(chunk, k), max(max_tokens, 64 * k)
    if held:
        raw, _, completion_tokens = backend.chat(messages, cap, temperature, json_schema=pairs_schema(k))
    else:
        raw, _, completion_tokens = backend.chat(messages, cap, temperature, until=free_reply_done(k))
    pairs, parsed = parse_pairs(raw)
    parsed = parsed or len(pairs) >= k
    pairs = pairs[:k]
    return {
        "raw": raw,
        "pairs": pairs,
        "parsed": parsed,
        "completion_tokens": completion_tokens,
        "seconds": time.perf_counter() - started,
    }


@task(name="write-qa-pairs")
def write_qa_pairs(chunk: dict, k: int, llm: LLMConfig, held: bool = True) -> dict:
    """Ask the configured model for k question/answer pairs about one chunk; the reply is parsed, not trusted."""
    return ask_pairs(make_backend(llm), chunk, k, llm.max_tokens, llm.temperature, held)


# ---------------------------------------------------------------- filtering


def question_words(question: str) -> frozenset[str]:
    """What near-duplicate detection compares: the question's keyword tokens (jieba words for Chinese), plural -s
    dropped."""
    return frozenset(
        t[:-1] if len(t) > 3 and t.isascii() and t.endswith("s") and not t.endswith("ss") else t
        for t in tokenize(question)
    )


def is_near_duplicate(words: frozenset[str], seen: list[frozenset[str]], threshold: float) -> bool:
    """Whether a question's words overlap (Jaccard) any earlier question's by at least threshold."""
    for other in seen:
        union = words | other
        if union and len(words & other) / len(union) >= threshold:
            return True
    return False


# A question that points at "the passage" means nothing to someone asking the knowledge base.
_NOT_STANDALONE = re.compile(
    r"\b(?:the|this|above|given) (?:passage|text|paragraph|excerpt)\b|段落|文中|上文|本段|原文", re.IGNORECASE
)


def filter_pairs(
    pairs: list[dict], chunk_text: str, seen: list[frozenset[str]], threshold: float = 0.7, max_answer_tokens: int = 24
) -> tuple[list[dict], dict[str, int]]:
    """Keep short answers found in the chunk (after normalization) to standalone, new questions that do not
    contain their own answer (a sentence of the chunk copied as the "question" teaches nothing); `seen` grows with
    them."""
    kept: list[dict] = []
    dropped = {
        "answer_not_in_chunk": 0,
        "answer_too_long": 0,
        "answer_in_question": 0,
        "question_not_standalone": 0,
        "duplicate_question": 0,
    }
    for pair in pairs:
        if not contains_answer(chunk_text, pair["answer"]):
            dropped["answer_not_in_chunk"] += 1
            continue
        if len(answer_tokens(pair["answer"])) > max_answer_tokens:
            dropped["answer_too_long"] += 1
            continue
        if contains_answer(pair["question"], pair["answer"]):
            dropped["answer_in_question"] += 1
            continue
        if _NOT_STANDALONE.search(pair["question"]):
            dropped["question_not_standalone"] += 1
            continue
        words = question_words(pair["question"])
        if not words or is_near_duplicate(words, seen, threshold):
            dropped["duplicate_question"] += 1
            continue
        seen.append(words)
        kept.append(pair)
    return kept, dropped


# ---------------------------------------------------------------- questions across languages

# Most of the questions the base model gets wrong on a mixed corpus are asked in one language of a passage in the
# other: the passage is retrieved, but a passage in the question's own language that is about something else wins. A
# share of the pairs is asked across: the model that writes the pairs translates the question, and the example
# keeps the answer copied from the passage, as a person asking in Chinese about an English policy would get it.
TRANSLATE_SYSTEM = {
    "zh": "把下面的英文问题翻译成一个自然的中文问题。人名、地名、公司名、产品名、型号和代码保留英文原文；"
    "数字照原样保留。只回复译文。",
    "en": "Translate the Chinese question into one natural English question. Keep names, model numbers, codes and "
    "figures as they are. Reply with the translation only.",
}
TRANSLATE_USER = {"zh": "英文问题：{question}\n中文译文：", "en": "Chinese question: {question}\nEnglish translation:"}
# A name or code written in Latin letters: Rotterdam, GmbH, AP-90, S2. A translation must keep each one (Qwen2.5-1.5B
# turned "Rotterdam" into 荷兰 and "Yunmo Tea Europe GmbH" into 云茂茶欧洲 GmbH: a question about another thing).
_LATIN_NAME = re.compile(
    r"(?<![A-Za-z0-9-])(?:[A-Z][A-Za-z]+|[A-Za-z0-9-]*(?:\d[A-Za-z]|[A-Za-z]-?\d)[A-Za-z0-9-]*)(?![A-Za-z0-9-])"
)
_TRANSLATOR_TALK = re.compile(r"translat|翻译|译文|question\s*[:：]|问题\s*[:：]", re.IGNORECASE)


def translate_messages(question: str) -> list[dict]:
    """The prompt that asks for a question in the other language (English <-> Chinese)."""
    to = other_language(question)
    return [
        {"role": "system", "content": TRANSLATE_SYSTEM[to]},
        {"role": "user", "content": TRANSLATE_USER[to].format(question=question)},
    ]


def translated_question(reply: str, pair: dict) -> str | None:
    """The reply as the pair's question in the other language, or None when it is not one: another language, more
    than one line, talk about translating, a name or code of the question's lost, a question that gives its own
    answer or points at "the passage"."""
    text = reply.strip().strip("\"'“”「」")
    zh = language_of(pair["question"]) == "zh"
    names = {m.group(0) for m in _LATIN_NAME.finditer(pair["question"]) if zh or m.start()}  # not "What", "How"
    if (
        not text
        or "\n" in text
        or len(text) > QUESTION_MAX_CHARS
        or language_of(text) != other_language(pair["question"])
        or _TRANSLATOR_TALK.search(text)
        or any(name.lower() not in text.lower() for name in names)
        or _NOT_STANDALONE.search(text)
        or contains_answer(text, pair["answer"])
    ):
        return None
    return " ".join(text.split())


@task(name="translate-questions")
def translate_questions(
    pairs: list[dict], share: float, seed: int, llm: LLMConfig
) -> tuple[list[dict], dict[str, int], list[dict]]:
    """round(share x n) of the pairs, picked with seed, asked in the other language (the rest as they are); a
    translation that fails translated_question keeps its pair as written. Also returns the counts and the pairs the
    model failed on (kept as written, listed with their reason)."""
    counts = {"questions_translated": 0, "translations_unchecked": 0}
    failures: list[dict] = []
    picked = set(random.Random(seed).sample(range(len(pairs)), round(len(pairs) * share))) if pairs else set()
    if not picked:
        return list(pairs), counts, failures
    backend = make_backend(llm)
    out = []
    for i, pair in enumerate(pairs):
        if i not in picked:
            out.append(pair)
            continue
        try:
            reply, _, _ = backend.chat(translate_messages(pair["question"]), min(llm.max_tokens, 96), 0.0)
        except MODEL_FAILURES as exc:
            failures.append(failure(pair["gold"], exc, "translation"))
            out.append(pair)
            continue
        question = translated_question(reply, pair)
        if question is None:
            counts["translations_unchecked"] += 1
            out.append(pair)
            continue
        counts["questions_translated"] += 1
        out.append({**pair, "question": question, "written_as": pair["question"], "cross_lingual": True})
    return out, counts, failures


# ---------------------------------------------------------------- RAFT examples


def gold_flags(n: int, no_gold_share: float, rng: random.Random) -> list[bool]:
    """For n examples, which keep the gold chunk in the prompt: exactly round(n x share) do not."""
    without = set(rng.sample(range(n), round(n * no_gold_share))) if n else set()
    return [i not in without for i in range(n)]


def raft_example(
    pair: dict,
    gold: dict,
    candidates: list[dict],
    *,
    n_distractors: int,
    with_gold: bool,
    rng: random.Random,
    style: AnswerStyle = "sentence",
) -> dict:
    """One training example: kbflow's prompt over the gold chunk (or not) and distractors, shuffled, with the answer to
    learn.

    Distractors are the retrieved candidates that are not the gold chunk and do not contain the answer
    (a neighbouring chunk shares text with the gold one), so an example without the gold chunk really
    has no answer in its prompt and is taught the refusal.
    """
    question, answer = pair["question"], pair["answer"]
    lang = language_of(question)
    distractors = [
        c for c in candidates if c["chunk_id"] != gold["chunk_id"] and not contains_answer(c["text"], answer)
    ]
    # An example without the gold chunk gets one more distractor in its place: the same number of passages either
    # way, so the count of passages never tells the model to refuse.
    passages = [_passage(c) for c in distractors[: n_distractors + (not with_gold)]] + (
        [_passage(gold)] if with_gold else []
    )
    rng.shuffle(passages)
    # As answering marks them (tasks/answer/generate.py): the tier that holds the question's quantity.
    marked = [{**p, "text": mark_tiers(question, p["text"], lang == "zh")} for p in passages]
    messages = build_messages(question, marked, lang, style)
    if with_gold:
        position = next(i for i, p in enumerate(passages, start=1) if p["chunk_id"] == gold["chunk_id"])
        target = f"{answer} [{position}]"
    else:
        position, target = None, REFUSAL[lang]
    return {
        "question": question,
        "answer": answer,
        "source": gold["source"],
        "chunk_id": gold["chunk_id"],
        "with_gold": with_gold,
        "cross_lingual": pair.get("cross_lingual", False),
        **({"written_as": pair["written_as"]} if pair.get("cross_lingual") else {}),
        "gold_position": position,
        "passages": [p["chunk_id"] for p in passages],
        "messages": [*messages, {"role": "assistant", "content": target}],
    }


def _passage(chunk: dict) -> dict:
    return {"source": chunk["source"], "page": chunk.get("page"), "text": chunk["text"], "chunk_id": chunk["chunk_id"]}


# ---------------------------------------------------------------- answers in the prompt's own style

# The sentence style's prompt asks for one sentence that ends with its citation, and a model trained on bare spans
# ("850元 [1]") learns to answer in fragments. So the model that will be trained turns each checked answer into the
# sentence it would say (the question and the short answer in, no passages: a cheap prompt), and the gold passage's
# number is put after it. Told the answer inside kbflow's own prompt instead, Qwen2.5-1.5B copied the hint ("650
# CNY, in passage.") or refused.
SENTENCE_SYSTEM = {
    "en": "You turn a question and its answer into one complete English sentence that answers the question. Keep "
    "every word of the answer exactly as given, its conditions and reasons included. Reply with the sentence only.",
    "zh": "你把一个问题和它的答案改写成一句完整的中文句子，直接回答这个问题。"
    "答案原文一字不改，其中的条件和原因都要保留。只回复这句话。",
}
SENTENCE_USER = {
    "en": "Question: {question}\nAnswer: {answer}\nSentence:",
    "zh": "问题：{question}\n答案：{answer}\n句子：",
}
SENTENCE_MAX_CHARS = 400


def sentence_messages(example: dict) -> list[dict]:
    """The prompt that turns an example's question and short answer into a sentence, in the question's language."""
    lang = language_of(example["question"])
    return [
        {"role": "system", "content": SENTENCE_SYSTEM[lang]},
        {"role": "user", "content": SENTENCE_USER[lang].format(question=example["question"], answer=example["answer"])},
    ]


_ECHO = re.compile(r"short answer|简短答案|^(?:question|answer|sentence|问题|答案|句子)\s*[:：]", re.IGNORECASE)


def cited_sentence(reply: str, example: dict) -> str | None:
    """The model's reply as the example's target: one sentence that states the answer and cites the gold passage
    alone (any citation mark it wrote is replaced), or None when it does not state the answer, refuses, echoes the
    prompt or runs long."""
    lang = language_of(example["question"])
    text, _ = clean_citations(reply.strip(), 99)
    text = re.sub(r"\s*[(（]?\s*\[\d{1,3}\](?:\s*[,，、]?\s*\[\d{1,3}\])*\s*[)）]?", "", text).strip()
    text = " ".join(text.split())
    if (
        not text
        or len(text) > SENTENCE_MAX_CHARS
        or "\n" in reply.strip()
        or REFUSAL[lang].rstrip(".。") in text
        or _ECHO.search(text)
        or not states_answer(text, example)
    ):
        return None
    mark = f"[{example['gold_position']}]"
    return f"{text}{mark}" if lang == "zh" else f"{text} {mark}"


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def states_answer(sentence: str, example: dict) -> bool:
    """Whether a target sentence states the example's answer: word for word, or for a question asked across
    languages (an English span in a Chinese sentence reads "25欧元" for "EUR 25") every figure of the answer."""
    if contains_answer(sentence, example["answer"]):
        return True
    figures = _NUMBER.findall(normalize_numbers(example["answer"]))
    if not example.get("cross_lingual") or not figures:
        return False
    said = set(_NUMBER.findall(normalize_numbers(sentence)))
    return all(f in said for f in figures)


def write_answer_sentence(backend: Backend, example: dict, max_tokens: int) -> tuple[str | None, int]:
    """The example's target sentence written by the backend (None when it fails cited_sentence), and its completion
    tokens."""
    reply, _, completion_tokens = backend.chat(sentence_messages(example), max_tokens, 0.0)
    return cited_sentence(reply, example), completion_tokens


# What a model call may raise that ends one chunk's or one example's part of an export, not the export: a server gone
# away, a model that fails to load, a reply the backend cannot read.
MODEL_FAILURES = (GenerationError, ModelError, OSError, RuntimeError, ValueError)


def failure(item: dict, exc: Exception, step: str | None = None) -> dict:
    """A failed chunk or example as summary.json lists it: its source and chunk, the step when not the pairs, why."""
    return {
        "source": item["source"],
        "chunk_id": item["chunk_id"],
        **({"step": step} if step else {}),
        "reason": f"{type(exc).__name__}: {exc}"[:300],
    }


@task(name="write-answer-sentences")
def write_answer_sentences(examples: list[dict], llm: LLMConfig) -> tuple[list[dict], dict[str, int], list[dict]]:
    """Each example that holds its gold passage, its target rewritten as a sentence in the prompt's style by the
    configured model; one whose sentence fails the check is dropped (a bare span would teach fragments). Examples
    without the gold passage keep the refusal. Also returns the counts (sentences written, dropped, tokens) and the
    examples the model failed on (a server gone away, a load error), each dropped with its reason, as
    `ask_for_pairs` records a failed chunk."""
    backend = make_backend(llm)
    kept: list[dict] = []
    counts = {"sentences_written": 0, "dropped_sentence_unchecked": 0, "sentence_tokens": 0}
    failures: list[dict] = []
    for example in examples:
        if not example["with_gold"]:
            kept.append(example)
            continue
        try:
            target, tokens = write_answer_sentence(backend, example, min(llm.max_tokens, 128))
        except MODEL_FAILURES as exc:
            failures.append(failure(example, exc, "answer sentence"))
            continue
        counts["sentence_tokens"] += tokens
        if target is None:
            counts["dropped_sentence_unchecked"] += 1
            continue
        counts["sentences_written"] += 1
        kept.append(with_target(example, target))
    return kept, counts, failures


def with_target(example: dict, target: str) -> dict:
    """The example with its assistant turn replaced by target."""
    return {**example, "messages": [*example["messages"][:-1], {"role": "assistant", "content": target}]}


# ---------------------------------------------------------------- split and formats


def split_by_source(examples: list[dict], eval_share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Train and eval examples from disjoint source documents; eval takes whole documents until it holds eval_share."""
    sources = sorted({e["source"] for e in examples})
    if eval_share <= 0 or len(sources) < 2:
        return list(examples), []
    random.Random(seed).shuffle(sources)
    count = {s: sum(1 for e in examples if e["source"] == s) for s in sources}
    held: set[str] = set()
    target = eval_share * len(examples)
    for source in sources[:-1]:  # at least one document stays for training
        if sum(count[s] for s in held) >= target:
            break
        held.add(source)
    return [e for e in examples if e["source"] not in held], [e for e in examples if e["source"] in held]


def to_record(example: dict, fmt: DatasetFormat) -> dict:
    """One example as a line of the chosen format (LLaMA-Factory reads all three)."""
    system, user, assistant = (m["content"] for m in example["messages"])
    if fmt == "openai":
        return {"messages": example["messages"]}
    if fmt == "alpaca":
        return {"instruction": user, "input": "", "output": assistant, "system": system}
    if fmt == "sharegpt":
        return {
            "conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}],
            "system": system,
        }
    raise ValueError(f"unknown dataset format {fmt!r}: use one of {', '.join(FORMATS)}")


def dataset_info(fmt: DatasetFormat, files: dict[str, str]) -> dict:
    """LLaMA-Factory's dataset_info.json entries (kbflow_train, kbflow_eval) for the files written."""
    spec = {
        "openai": {
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        },
        "alpaca": {"columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}},
        "sharegpt": {"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"}},
    }[fmt]
    return {f"kbflow_{split}": {"file_name": name, **spec} for split, name in files.items()}


def write_dataset(train: list[dict], held_out: list[dict], out_dir: Path, fmt: DatasetFormat) -> dict[str, str]:
    """train.jsonl, eval.jsonl, dataset_info.json, examples.jsonl and questions.csv (the eval questions for `kbflow
    ask`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"train": "train.jsonl", "eval": "eval.jsonl"}
    for split, rows in (("train", train), ("eval", held_out)):
        with (out / files[split]).open("w", encoding="utf-8") as fh:
            for example in rows:
                fh.write(json.dumps(to_record(example, fmt), ensure_ascii=False) + "\n")
    (out / "dataset_info.json").write_text(
        json.dumps(dataset_info(fmt, files), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    with (out / "examples.jsonl").open("w", encoding="utf-8") as fh:
        for split, rows in (("train", train), ("eval", held_out)):
            for example in rows:
                meta = {k: v for k, v in example.items() if k != "messages"}
                fh.write(json.dumps({"split": split, **meta}, ensure_ascii=False) + "\n")
    with (out / "questions.csv").open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "question", "expected_answer", "expected_source"])
        for n, example in enumerate(held_out, start=1):
            row = [f"eval-{n:04d}", example["question"], example["answer"], example["source"]]
            writer.writerow([csv_cell(cell) for cell in row])  # a model's text opens as text, never a formula
    return {**files, "info": "dataset_info.json", "examples": "examples.jsonl", "questions": "questions.csv"}
