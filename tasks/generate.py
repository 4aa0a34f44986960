"""Prompting and generation: numbered passages packed into the model's window, citations checked afterwards."""

from __future__ import annotations

import logging
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

from prefect import task
from pydantic import BaseModel, Field, SecretStr

from tasks.text import contains_answer, is_chinese

logger = logging.getLogger("kbflow.tasks.generate")

REFUSAL = {"en": "Not found in the knowledge base.", "zh": "知识库中没有找到答案。"}

# Prompts by answer style and language. "sentence": a short cited sentence a person reads;
# "short": the answer alone (a checklist or extraction sheet), its citation parsed off afterwards.
SYSTEM = {
    ("sentence", "en"): (
        "You answer questions about a company's documents, using only the numbered context passages. "
        "Answer in English with a short, complete sentence that states the answer, then cite the passages "
        "you used, like [1] or [2]. If the passages do not contain the answer, reply exactly: "
        f"{REFUSAL['en']}"
    ),
    ("sentence", "zh"): (
        "你根据公司文档回答问题，只能使用编号的上下文段落。用中文写一句简短完整的话直接给出答案，"
        f"然后用 [1]、[2] 这样的编号注明所用的段落。如果段落中没有答案，只回答：{REFUSAL['zh']}"
    ),
    ("short", "en"): (
        "You answer questions about a company's documents from the numbered context passages. "
        "Reply with the answer only: the shortest span copied word for word from a passage that fully answers "
        "the question. Keep a number's unit and qualifiers (about, over, per year); when the question asks which "
        "ones, list them all; when it asks why, how or what something is, copy the clause that says it. "
        f"No explanation. If no passage contains the answer, reply exactly: {REFUSAL['en']}"
    ),
    ("short", "zh"): (
        "你根据公司文档的编号段落回答问题。只回答答案本身：从段落中原样摘抄、能完整回答问题的最短片段。"
        "数字要带上单位和修饰词（如“约”“超过”“个”“名”）；问“哪些”“哪几个”时列出全部；"
        "问原因、方式或“是什么”时，摘抄说明它的那个分句。"
        f"不要解释。如果所有段落都没有答案，只回答：{REFUSAL['zh']}"
    ),
}
USER = {
    ("sentence", "en"): "Context passages:\n\n{context}\n\nQuestion: {question}\n(Answer in one sentence that ends with the number of the passage you used, in brackets, like [1].)",
    ("sentence", "zh"): "上下文段落：\n\n{context}\n\n问题：{question}\n（用一句话回答，句末用方括号注明所用段落的编号，如 [1]。）",
    ("short", "en"): "Context passages:\n\n{context}\n\nQuestion: {question}\nAnswer:",
    ("short", "zh"): "上下文段落：\n\n{context}\n\n问题：{question}\n答案：",
}
AnswerStyle = Literal["sentence", "short"]


class LLMConfig(BaseModel, frozen=True):
    """Which model answers, and how."""

    backend: Literal["llama-cpp", "openai"] = Field("llama-cpp", description="Generation backend.")
    model: str = Field("smollm2", description="GGUF: 'smollm2' (bundled), a pulled name, or a .gguf path.")
    models_dir: str = Field("", description="Folder of pulled models.")
    n_ctx: int = Field(2048, gt=256, description="Context window in tokens.")
    threads: int = Field(1, gt=0, description="CPU threads for generation.")
    max_tokens: int = Field(256, gt=0, description="Most tokens generated per answer.")
    temperature: float = Field(0.1, ge=0, description="Sampling temperature.")
    openai_base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint.")
    openai_model: str = Field("local", description="Model name sent to the endpoint.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="API key sent to the endpoint.")
    answer_style: AnswerStyle = Field("sentence", description="sentence: a cited sentence; short: the answer alone.")
    lora: str = Field("", description="Path of a LoRA adapter GGUF applied to the model at load; empty for none.")
    lora_scale: float = Field(1.0, description="How strongly the LoRA adapter applies (0 is the base model).")


class GenerationError(Exception):
    """The model could not produce an answer; the message says why."""


class ContextTooLarge(GenerationError):
    """Every passage was to be given to the model (the whole knowledge base), and they do not fit in its window."""


def language_of(question: str) -> str:
    return "zh" if is_chinese(question) else "en"


def format_passage(number: int, passage: dict) -> str:
    where = passage["source"] + (f", page {passage['page']}" if passage.get("page") not in (None, -1) else "")
    return f"[{number}] ({where})\n{passage['text'].strip()}"


def build_messages(question: str, passages: list[dict], lang: str, style: AnswerStyle = "sentence") -> list[dict]:
    context = "\n\n".join(format_passage(i, p) for i, p in enumerate(passages, start=1))
    return [
        {"role": "system", "content": SYSTEM[style, lang]},
        {"role": "user", "content": USER[style, lang].format(context=context, question=question.strip())},
    ]


_CITATION = re.compile(r"\[(\d{1,3})\]")


def clean_citations(answer: str, n_passages: int) -> tuple[str, list[int]]:
    """Drop citation marks that point to no passage; return the answer and the passages it cites (1-based)."""
    cited: list[int] = []

    def keep(match: re.Match) -> str:
        n = int(match.group(1))
        if 1 <= n <= n_passages:
            if n not in cited:
                cited.append(n)
            return match.group(0)
        return ""

    cleaned = _CITATION.sub(keep, answer)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned, sorted(cited)


class Backend(Protocol):
    name: str
    n_ctx: int

    def count_tokens(self, messages: list[dict]) -> int: ...
    def truncate(self, text: str, max_tokens: int) -> str: ...
    def chat(self, messages: list[dict], max_tokens: int, temperature: float) -> tuple[str, int, int]: ...


def check_cpu_support() -> None:
    """Refuse, with what to do, a llama.cpp build that uses AVX-512 on a CPU without it (it would crash)."""
    import llama_cpp

    built = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return  # not Linux: nothing to compare with
    if "AVX512 = 1" in built and flags and "avx512f" not in flags:
        raise GenerationError(
            "llama-cpp-python was built for AVX-512 but this CPU has none; rebuild it on this machine: "
            "rm .venv/.kbflow-installed && make install"
        )


class LlamaCppBackend:
    """A GGUF model in process; prompts are rendered with the GGUF's own chat template and counted exactly."""

    name = "llama-cpp"

    def __init__(self, model_path: str, n_ctx: int, threads: int, seed: int = 0, lora: str = "", lora_scale: float = 1.0):
        from llama_cpp import Llama, llama_chat_format

        check_cpu_support()
        self.model_path, self.lora, self.lora_scale = model_path, lora, lora_scale
        self.llm = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, seed=seed,
                         lora_path=lora or None, lora_scale=lora_scale, verbose=False)
        self.n_ctx = self.llm.n_ctx()
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise GenerationError(f"{model_path} has no chat template in its GGUF metadata")
        eos_id, bos_id = self.llm.token_eos(), self.llm.token_bos()
        text = self.llm._model.token_get_text
        self.formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=text(eos_id) if eos_id != -1 else "",
            bos_token=text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )

    def _render(self, messages: list[dict]):
        return self.formatter(messages=messages)

    def _tokens(self, rendered) -> list[int]:
        return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self._tokens(self._render(messages)))

    def truncate(self, text: str, max_tokens: int) -> str:
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) <= max_tokens:
            return text
        return self.llm.detokenize(tokens[: max(0, max_tokens)]).decode("utf-8", errors="ignore")

    def chat(self, messages: list[dict], max_tokens: int, temperature: float) -> tuple[str, int, int]:
        rendered = self._render(messages)
        tokens = self._tokens(rendered)
        if len(tokens) + max_tokens > self.n_ctx:
            raise GenerationError(f"prompt of {len(tokens)} tokens + {max_tokens} to generate exceeds n_ctx {self.n_ctx}")
        stop = rendered.stop if isinstance(rendered.stop, list) else ([rendered.stop] if rendered.stop else [])
        out = self.llm.create_completion(prompt=tokens, max_tokens=max_tokens, temperature=temperature, stop=stop)
        usage = out.get("usage", {})
        return out["choices"][0]["text"], int(usage.get("prompt_tokens", len(tokens))), int(usage.get("completion_tokens", 0))


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint. Tokens are estimated (1 per CJK character, 1 per 3 other characters)."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str, n_ctx: int, timeout: float = 300.0):
        self.base_url, self.model, self.api_key, self.n_ctx, self.timeout = base_url.rstrip("/"), model, api_key, n_ctx, timeout

    @staticmethod
    def _estimate(text: str) -> int:
        cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
        return cjk + (len(text) - cjk + 2) // 3

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(self._estimate(m["content"]) + 8 for m in messages) + 8

    def truncate(self, text: str, max_tokens: int) -> str:
        while text and self._estimate(text) > max_tokens:
            text = text[: int(len(text) * 0.9)]
        return text

    def chat(self, messages: list[dict], max_tokens: int, temperature: float) -> tuple[str, int, int]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        try:
            resp = httpx.post(f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise GenerationError(f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise GenerationError(f"{self.base_url} answered HTTP {resp.status_code}: {resp.text[:200]}")
        data = resp.json()
        usage = data.get("usage") or {}
        return (
            data["choices"][0]["message"]["content"] or "",
            int(usage.get("prompt_tokens", self.count_tokens(messages))),
            int(usage.get("completion_tokens", 0)),
        )


def pack_context(backend: Backend, question: str, passages: list[dict], lang: str, max_tokens: int,
                 style: AnswerStyle = "sentence") -> tuple[list[dict], list[dict], int]:
    """Fit as many passages (best first) as the window holds after the answer's budget; cut the last one if needed."""
    budget = backend.n_ctx - max_tokens - 4
    base = backend.count_tokens(build_messages(question, [], lang, style))
    if base > budget:
        raise GenerationError(f"the question alone takes {base} tokens, more than the {budget} the context window leaves")
    used: list[dict] = []
    for p in passages:
        trial = used + [p]
        if backend.count_tokens(build_messages(question, trial, lang, style)) <= budget:
            used = trial
            continue
        # Cut this passage to the room that is left, if a useful part fits, and stop.
        room = budget - backend.count_tokens(build_messages(question, used + [{**p, "text": ""}], lang, style))
        if room >= 32:
            text = backend.truncate(p["text"], room)
            while text and backend.count_tokens(build_messages(question, used + [{**p, "text": text}], lang, style)) > budget:
                text = backend.truncate(text, int(room * 0.9))
                room = int(room * 0.9)
            if text:
                used.append({**p, "text": text})
        break
    messages = build_messages(question, used, lang, style)
    return messages, used, backend.count_tokens(messages)


def fit_all(backend: Backend, question: str, passages: list[dict], lang: str, max_tokens: int,
            style: AnswerStyle = "sentence") -> tuple[list[dict], int]:
    """The prompt with every passage uncut, or ContextTooLarge when it leaves no room for the answer's budget."""
    messages = build_messages(question, passages, lang, style)
    n_tokens = backend.count_tokens(messages)
    if n_tokens + max_tokens + 4 > backend.n_ctx:  # the margin pack_context keeps
        raise ContextTooLarge(
            f"the whole knowledge base ({len(passages)} chunks, {n_tokens} tokens) does not fit in n_ctx {backend.n_ctx} "
            f"with max_tokens {max_tokens}: use hybrid retrieval or a longer-context model"
        )
    return messages, n_tokens


@lru_cache(maxsize=2)
def load_llama(model_path: str, n_ctx: int, threads: int, lora: str = "", lora_scale: float = 1.0) -> LlamaCppBackend:
    """Load a GGUF (and its LoRA adapter, if any) once per process (keyed on its settings)."""
    logger.info("Loading GGUF model %s (n_ctx %d, %d threads)%s", model_path, n_ctx, threads,
                f" with LoRA adapter {lora} (scale {lora_scale})" if lora else "")
    return LlamaCppBackend(model_path, n_ctx, threads, lora=lora, lora_scale=lora_scale)


def make_backend(config: LLMConfig) -> Backend:
    """The generation backend for these settings (a GGUF is loaded once per process)."""
    if config.backend == "llama-cpp":
        from tasks.models import resolve_gguf

        return load_llama(str(resolve_gguf(config.model, Path(config.models_dir))), config.n_ctx, config.threads,
                          config.lora, config.lora_scale)
    if config.backend == "openai":
        return OpenAIBackend(config.openai_base_url, config.openai_model, config.openai_api_key.get_secret_value(), config.n_ctx)
    raise GenerationError(f"unknown backend {config.backend!r}: use llama-cpp or openai")


def answer_question(backend: Backend, question: str, passages: list[dict], *, max_tokens: int, temperature: float,
                    style: AnswerStyle = "sentence", whole: bool = False) -> dict:
    """Answer one question from its passages: pack (or, whole, take all of them uncut), generate, check citations."""
    lang = language_of(question)
    if whole:
        messages, _ = fit_all(backend, question, passages, lang, max_tokens, style)
        used = passages
    else:
        messages, used, _ = pack_context(backend, question, passages, lang, max_tokens, style)
    started = time.perf_counter()
    raw, prompt_tokens, completion_tokens = backend.chat(messages, max_tokens, temperature)
    answer, cited = clean_citations(raw, len(used))
    if style == "short":
        # The answer alone: its citation marks are recorded, not shown; if the model gave none,
        # the passages that contain the answer support it.
        answer = _CITATION.sub("", answer).strip().rstrip("。.").strip()
        if not cited and answer and answer not in REFUSAL.values():
            cited = [i for i, p in enumerate(used, start=1) if contains_answer(p["text"], answer)][:1]
    return {
        "answer": answer,
        "cited": cited,
        "citations": [{"source": used[i - 1]["source"], "page": used[i - 1].get("page"),
                       "chunk_id": used[i - 1].get("chunk_id"), "text": used[i - 1]["text"]} for i in cited],
        "passages_used": len(used),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "generation_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def refusal(question: str) -> str:
    return REFUSAL[language_of(question)]


@task(name="generate-answer")
def generate_answer(question: str, passages: list[dict], llm: LLMConfig, whole: bool = False) -> dict:
    """Generate one answer from its passages with the configured model (loaded once per process); whole: all passages or none."""
    return answer_question(make_backend(llm), question, passages, max_tokens=llm.max_tokens, temperature=llm.temperature,
                           style=llm.answer_style, whole=whole)
