"""The generation backends: a GGUF in process (llama.cpp) or an OpenAI-compatible server, loaded once per process."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field, SecretStr

logger = logging.getLogger("kbflow.tasks.answer.backends")


LLMBackend = Literal["llama-cpp", "openai"]
AnswerStyle = Literal["sentence", "short"]


def default_models_dir() -> str:
    """$XDG_DATA_HOME/kbflow/models, else ~/.local/share/kbflow/models."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "kbflow", "models")


class LLMConfig(BaseModel, frozen=True):
    """Which model answers, and how. Each field is declared here once; Settings reads KBFLOW_* into it."""

    backend: LLMBackend = Field("llama-cpp", description="Generation backend.")
    model: str = Field(
        "auto",
        description="GGUF to answer with: 'auto' (a pulled model if there is one, else the bundled SmolLM2), "
        "'smollm2', a name pulled with `kbflow models pull`, or a path to any .gguf file.",
    )
    models_dir: str = Field(
        default_factory=default_models_dir, description="Folder where `kbflow models pull` puts models."
    )
    n_ctx: int = Field(2048, gt=256, description="Context window in tokens.")
    threads: int = Field(
        0,
        ge=0,
        description="CPU threads for generation; 0: the fastest count, measured on this machine at a model's first "
        "load and cached (tasks/answer/threads.py).",
    )
    max_tokens: int = Field(256, gt=0, description="Most tokens generated per answer.")
    context_tokens: int = Field(
        400,
        ge=0,
        description="Most tokens of passages a prompt carries: they go in best first while they fit; past it a "
        "passage gives only its sentences that match the question best, or nothing; the first, a table and a passage "
        "in the other language always go in whole. Prefill is most of an answer's time. 0: as many as the context "
        "window holds.",
    )
    temperature: float = Field(0.1, ge=0, description="Sampling temperature.")
    seed: int = Field(0, description="Sampling seed: with it, the same prompt gives the same answer.")
    openai_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="Base URL of an OpenAI-compatible chat endpoint."
    )
    openai_model: str = Field("local", description="Model name sent to the OpenAI-compatible endpoint.")
    openai_api_key: SecretStr = Field(
        SecretStr(""),
        description="API key of the OpenAI-compatible endpoint (default: the variable named by "
        "KBFLOW_OPENAI_API_KEY_ENV).",
    )
    answer_style: AnswerStyle = Field(
        "sentence",
        description='sentence: one cited sentence a person reads; short: the answer alone ("24 months", "孙登"), for '
        "checklists and extraction sheets; its passage is still recorded.",
    )
    lora: str = Field(
        "",
        description="Path of a LoRA adapter GGUF (llama.cpp's convert_lora_to_gguf.py output) applied to the GGUF "
        "model at load; it must be made for that base model. Empty for none.",
    )
    lora_scale: float = Field(
        1.0, description="How strongly the LoRA adapter applies: 1.0 as trained, 0 the base model alone."
    )


class GenerationError(Exception):
    """The model could not produce an answer; the message says why."""


class ContextTooLarge(GenerationError):
    """Every passage was to be given to the model (the whole knowledge base), and they do not fit in its window."""


class ServerBusy(GenerationError):
    """A model server's passing failure (a timeout, a lost connection, HTTP 408, 429 or 5xx): worth another try."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class EndpointRefused(Exception):
    """The model server refuses every request alike (HTTP 401, 403, 404, 405): no question can be answered, so the
    run stops (this is no GenerationError, which one question's row records). The message names endpoint and status."""


class Backend(Protocol):
    name: str
    n_ctx: int

    def count_tokens(self, messages: list[dict]) -> int: ...
    def truncate(self, text: str, max_tokens: int) -> str: ...

    # The last chat's generated tokens: (text, the probability the model gave it, [(another token it weighed, its
    # probability), ...]); empty when the backend gives none.
    last_tokens: list[tuple[str, float, list[tuple[str, float]]]]

    def chat(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        *,
        json_schema: dict | None = None,
        until: Callable[[str], bool] | None = None,
    ) -> tuple[str, int, int]:
        """The reply, its prompt tokens and completion tokens; with json_schema, a reply held to that JSON schema
        (cut short only by max_tokens). With until, a local model stops as soon as until(the reply so far) is true;
        a server's reply runs to its end."""
        ...


# A JSON string's character in GBNF, as llama-cpp-python's converter writes it and as JSON allows it.
_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


@lru_cache(maxsize=8)
def json_grammar(schema_json: str):
    """llama.cpp's GBNF grammar for a JSON schema (given as JSON text), built once per schema and process."""
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    # LlamaGrammar.from_json_schema is from_string(json_schema_to_gbnf(...)), and that converter lets raw control
    # characters (a newline) into strings: not JSON. llama.cpp's own converter excludes them (ggml-org/llama.cpp#5888,
    # abetlen/llama-cpp-python#1259); so does this rule.
    gbnf = json_schema_to_gbnf(schema_json).replace(_LOOSE_CHAR, _JSON_CHAR)
    return LlamaGrammar.from_string(gbnf, verbose=False)


def schema_key(schema: dict) -> str:
    """A JSON schema as the text that keys its cached grammar (keys in the schema's order: the grammar writes
    properties in that order)."""
    return json.dumps(schema, ensure_ascii=False)


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

    def __init__(
        self, model_path: str, n_ctx: int, threads: int, seed: int = 0, lora: str = "", lora_scale: float = 1.0
    ):
        from llama_cpp import Llama, llama_chat_format

        check_cpu_support()
        self.model_path, self.lora, self.lora_scale, self.seed = model_path, lora, lora_scale, seed
        self.last_tokens: list[tuple[str, float, list[tuple[str, float]]]] = []
        from tasks.answer.threads import cpu_count, fastest_threads

        measure = threads == 0
        threads = threads or max(1, cpu_count() - 1)  # the count to load with, before the measurement
        try:
            self.llm = Llama(
                model_path=model_path,
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                seed=seed,
                lora_path=lora or None,
                lora_scale=lora_scale,
                verbose=False,
            )
        except ValueError as exc:  # llama.cpp refused the file (truncated, not a model, a bad adapter)
            from tasks.answer.models import ModelError

            raise ModelError(
                f"llama.cpp cannot load {model_path}{f' with adapter {lora}' if lora else ''} ({exc}): replace it "
                "with a complete copy (`kbflow models pull NAME` for a pulled model, `kbflow models verify`)"
            ) from None
        if measure:
            threads = fastest_threads(self.llm, model_path)
            self.llm._ctx.set_n_threads(threads, threads)
            self.llm.n_threads = self.llm.n_threads_batch = threads
            self.llm.context_params.n_threads = self.llm.context_params.n_threads_batch = threads
        self.threads = threads
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

    def chat(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        *,
        json_schema: dict | None = None,
        until: Callable[[str], bool] | None = None,
    ) -> tuple[str, int, int]:
        rendered = self._render(messages)
        tokens = self._tokens(rendered)
        if len(tokens) + max_tokens > self.n_ctx:
            raise GenerationError(
                f"prompt of {len(tokens)} tokens + {max_tokens} to generate exceeds n_ctx {self.n_ctx}"
            )
        stop = rendered.stop if isinstance(rendered.stop, list) else ([rendered.stop] if rendered.stop else [])
        steps: list[tuple[int, dict[int, float]]] = []
        stopping = None
        if until is not None:
            from llama_cpp import StoppingCriteriaList

            stopping = StoppingCriteriaList([partial(self._until, until, len(tokens))])
        out = self.llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            seed=self.seed,
            # The token probabilities are for an answer's figures; a JSON reply skips their ~1 ms a token.
            logits_processor=None if json_schema else [partial(_note_probabilities, steps)],
            grammar=json_grammar(schema_key(json_schema)) if json_schema else None,
            stopping_criteria=stopping,
        )
        self.last_tokens = self._sampled(steps)
        usage = out.get("usage", {})
        return (
            out["choices"][0]["text"],
            int(usage.get("prompt_tokens", len(tokens))),
            int(usage.get("completion_tokens", 0)),
        )

    def _until(self, until: Callable[[str], bool], start: int, input_ids, logits) -> bool:
        """A stopping criterion: until() of the reply so far (the tokens after the prompt's `start`)."""
        return until(self.llm.detokenize(list(input_ids[start:])).decode("utf-8", errors="ignore"))

    def _sampled(self, steps: list[tuple[int, dict[int, float]]]) -> list:
        """Each generated token that was evaluated, with the probability the model gave it when it was chosen."""
        evaluated = self.llm.input_ids[: self.llm.n_tokens]
        out = []
        for length, top in steps:
            if length < len(evaluated):
                token = int(evaluated[length])
                # Not among the few most likely (sampling at a temperature): below the least of them.
                prob = top.get(token, min(top.values(), default=0.0) / 2)
                others = sorted(((p, t) for t, p in top.items() if t != token), reverse=True)[:3]
                out.append((self._piece(token), prob, [(self._piece(t), p) for p, t in others]))
        return out

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token]).decode("utf-8", errors="replace")


# How many of the most likely next tokens are noted at each step.
TOP_NOTED = 8


def _note_probabilities(steps: list, input_ids, logits):
    """A logits processor that changes nothing: it notes the few most likely next tokens and their probabilities
    (a softmax over the whole vocabulary, about 1 ms a token), for the answer's confidence."""
    top = np.argpartition(logits, -TOP_NOTED)[-TOP_NOTED:]
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak).sum()))
    steps.append((len(input_ids), {int(t): float(np.exp(logits[t] - log_total)) for t in top}))
    return logits


# HTTP statuses of a passing failure, retried with backoff; every other 4xx is the request's own fault.
RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Statuses no request to this endpoint can get past: the run stops at the first one, with what to check.
REFUSED_STATUS = {
    401: "check KBFLOW_OPENAI_API_KEY",
    403: "check KBFLOW_OPENAI_API_KEY and what it may use",
    404: "check KBFLOW_OPENAI_BASE_URL (it ends in /v1) and KBFLOW_OPENAI_MODEL",
    405: "check KBFLOW_OPENAI_BASE_URL (it ends in /v1)",
}
# Waits before each retry of a passing failure (doubling, 15 s in all); a server's Retry-After counts when longer.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
RETRY_AFTER_MAX = 60.0


def _retry_after(value: str | None) -> float | None:
    """A Retry-After header's seconds (the HTTP-date form is rare from model servers and read as absent)."""
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_MAX) if value else None
    except ValueError:
        return None


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint, over one shared HTTP client (connections are kept and reused).
    Tokens are estimated (1 per CJK character, 1 per 3 other characters)."""

    name = "openai"
    last_tokens: list = []  # not asked for: a server may refuse logprobs

    def __init__(self, base_url: str, model: str, api_key: str, n_ctx: int, timeout: float = 300.0):
        import httpx

        self.base_url, self.model, self.n_ctx = base_url.rstrip("/"), model, n_ctx
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Thread-safe: the answer flow's concurrent questions share it. Connecting gets 10 s, a reply the full timeout.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        # How a JSON schema is asked for: OpenAI's json_schema until the server refuses it, then json_object.
        self.json_form: Literal["json_schema", "json_object"] = "json_schema"

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

    def chat(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        *,
        json_schema: dict | None = None,
        until: Callable[[str], bool] | None = None,
    ) -> tuple[str, int, int]:
        """One answer; a passing failure is retried with backoff, a refusal of the endpoint raises EndpointRefused.
        With json_schema the reply is asked for as OpenAI's structured output (response_format json_schema), or as
        a json_object with that schema from a server that only knows that form (llama-cpp-python's)."""
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        if json_schema is None:
            data = self._retried(body)
        else:
            try:
                data = self._retried({**body, "response_format": self._response_format(json_schema)})
            except FormatRefused:
                if self.json_form == "json_object":
                    raise
                self.json_form = "json_object"
                logger.info("%s has no json_schema response format; asking for json_object", self.base_url)
                data = self._retried({**body, "response_format": self._response_format(json_schema)})
        usage = data.get("usage") or {}
        return (
            data["choices"][0]["message"]["content"] or "",
            int(usage.get("prompt_tokens", self.count_tokens(messages))),
            int(usage.get("completion_tokens", 0)),
        )

    def _response_format(self, schema: dict) -> dict:
        if self.json_form == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": schema.get("title", "reply"), "schema": schema}}

    def _retried(self, body: dict) -> dict:
        delays = list(RETRY_DELAYS)
        while True:
            try:
                return self._complete(body)
            except ServerBusy as exc:
                if not delays:
                    raise
                wait = delays.pop(0)
                time.sleep(max(wait, exc.retry_after or 0.0))

    def _complete(self, body: dict) -> dict:
        """One POST to /chat/completions, its failure sorted: ServerBusy (retry), EndpointRefused (stop the run),
        GenerationError (this question's row)."""
        import httpx

        url = f"{self.base_url}/chat/completions"
        try:
            resp = self._client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise ServerBusy(f"{url} did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ServerBusy(f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError as exc:
                raise GenerationError(f"{url} answered HTTP 200 with no JSON: {resp.text[:200]}") from exc
        status = f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip()
        if _refuses_json_schema(body, resp.status_code, resp.text):
            raise FormatRefused(f"{url} answered {status}: {resp.text[:200]}")
        if resp.status_code in REFUSED_STATUS:
            # The server's own text is left out: it may repeat the key that was refused.
            raise EndpointRefused(
                f"the model server {url} answered {status}, as it would to every request: "
                f"{REFUSED_STATUS[resp.status_code]}"
            )
        if resp.status_code in RETRIED_STATUS:
            raise ServerBusy(
                f"{url} answered {status}: {resp.text[:200]}", _retry_after(resp.headers.get("retry-after"))
            )
        raise GenerationError(f"{url} answered {status}: {resp.text[:200]}")


class FormatRefused(GenerationError):
    """The server refused the json_schema response format itself."""


def _refuses_json_schema(body: dict, status: int, text: str) -> bool:
    """Whether a server refused a request's json_schema response format itself: a 400 or 422 naming it, or the 500
    llama-cpp-python's server answers (it accepts only text and json_object, with an optional schema, and reports
    its request validation as a server error), which no retry changes."""
    asked = (body.get("response_format") or {}).get("type") == "json_schema"
    return asked and status in (400, 422, 500) and ("response_format" in text or "json_schema" in text)


@lru_cache(maxsize=4)
def openai_backend(base_url: str, model: str, api_key: str, n_ctx: int) -> OpenAIBackend:
    """One OpenAI-compatible backend, and so one HTTP client, per endpoint and settings in a process."""
    return OpenAIBackend(base_url, model, api_key, n_ctx)


@lru_cache(maxsize=2)
def load_llama(
    model_path: str, n_ctx: int, threads: int, lora: str = "", lora_scale: float = 1.0, seed: int = 0
) -> LlamaCppBackend:
    """Load a GGUF (and its LoRA adapter, if any) once per process (keyed on its settings)."""
    logger.info(
        "Loading GGUF model %s (n_ctx %d, %s threads)%s",
        model_path,
        n_ctx,
        threads or "the fastest measured",
        f" with LoRA adapter {lora} (scale {lora_scale})" if lora else "",
    )
    return LlamaCppBackend(model_path, n_ctx, threads, seed=seed, lora=lora, lora_scale=lora_scale)


def make_backend(config: LLMConfig) -> Backend:
    """The generation backend for these settings (a GGUF is loaded once per process)."""
    if config.backend == "llama-cpp":
        from tasks.answer.models import resolve_gguf

        return load_llama(
            str(resolve_gguf(config.model, Path(config.models_dir))),
            config.n_ctx,
            config.threads,
            config.lora,
            config.lora_scale,
            config.seed,
        )
    if config.backend == "openai":
        return openai_backend(
            config.openai_base_url, config.openai_model, config.openai_api_key.get_secret_value(), config.n_ctx
        )
    raise GenerationError(f"unknown backend {config.backend!r}: use llama-cpp or openai")
