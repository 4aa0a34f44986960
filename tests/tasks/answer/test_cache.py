"""The answer cache: keyed by the evidence and the setup, durable per row, shared by processes, healed when damaged."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from tasks.answer.backends import LLMConfig
from tasks.answer.cache import AnswerCache, answer_key, cache_path, evidence_of, setup_fingerprint
from tasks.answer.facts import ModelFacts, deterministic, generation_setup

pytestmark = pytest.mark.unit

PASSAGES = [
    {"chunk_id": "c1", "text": "Refunds are paid within 21 days.", "source": "policies/refund.docx"},
    {"chunk_id": "c2", "text": "The office is in Berlin.", "source": "company/about.txt"},
]
FACTS = ModelFacts("llama-cpp", "model.gguf", model_sha256="a" * 64)


def setup_of(**changes) -> str:
    llm = LLMConfig(**changes.pop("llm", {}))
    facts = changes.pop("facts", FACTS)
    return setup_fingerprint(generation_setup(llm, facts, whole=False))


def test_the_key_changes_with_the_evidence_its_order_and_text_and_with_the_setup():
    setup = setup_of()
    key = answer_key("How long?", setup, evidence_of(PASSAGES))
    assert key == answer_key("How long?", setup, evidence_of([dict(p) for p in PASSAGES]))  # same evidence: same key
    edited = [PASSAGES[0], {**PASSAGES[1], "text": "The office is in Munich."}]
    assert answer_key("How long?", setup, evidence_of(edited)) != key  # a passage changed text
    assert answer_key("How long?", setup, evidence_of(PASSAGES[::-1])) != key  # another order
    assert answer_key("How long?", setup, evidence_of(PASSAGES[:1])) != key  # a passage left
    assert answer_key("How long exactly?", setup, evidence_of(PASSAGES)) != key


@pytest.mark.parametrize(
    "change",
    [
        {"llm": {"answer_style": "short"}},  # another prompt template
        {"llm": {"temperature": 0.7}},
        {"llm": {"max_tokens": 64}},
        {"llm": {"seed": 7}},
        {"llm": {"n_ctx": 4096}},
        {"facts": ModelFacts("llama-cpp", "model.gguf", model_sha256="b" * 64)},  # another model file
        {"facts": ModelFacts("llama-cpp", "model.gguf", "a" * 64, "lora.gguf", "c" * 64, 1.0)},  # an adapter
        {"facts": ModelFacts("llama-cpp", "model.gguf", "a" * 64, "lora.gguf", "c" * 64, 0.5)},  # its scale
        {"llm": {"backend": "openai"}, "facts": ModelFacts("openai", "openai:local@http://127.0.0.1:8000/v1")},
    ],
)
def test_a_model_prompt_or_setting_change_gives_another_setup(change):
    assert setup_of(**change) != setup_of()


def test_a_remote_server_sampling_above_zero_is_not_deterministic_a_seeded_local_model_is():
    assert deterministic(LLMConfig(backend="llama-cpp", temperature=0.5))
    assert not deterministic(LLMConfig(backend="openai", temperature=0.5))
    assert deterministic(LLMConfig(backend="openai", temperature=0.0))


def test_an_answer_is_kept_at_once_and_found_by_its_key(tmp_path):
    with AnswerCache.of_store(tmp_path) as cache:
        cache.put(
            "k1",
            "How long?",
            "s",
            evidence_of(PASSAGES),
            {"answer": "21 days [1].", "citations": [], "generation_ms": 1500.0},
            "run-1",
            True,
        )
    # Another connection (another process would be the same) sees the row: it was committed when written.
    with AnswerCache.of_store(tmp_path) as cache:
        got = cache.get("k1")
        assert got.output["answer"] == "21 days [1]." and got.run_id == "run-1" and got.deterministic
        assert cache.get("k2") is None
        assert cache.known_questions(["How long?", "Where?"], "s") == 1
        assert cache.seconds_per_answer("s") == 1.5 and cache.seconds_per_answer("other") is None
        assert cache.stats()["answers"] == 1


def _writer(store: str, worker: int, n: int) -> None:
    with AnswerCache.of_store(store) as cache:
        for i in range(n):
            cache.put(f"{worker}-{i}", f"q{i}", "s", [["c1", "h", "a.txt"]], {"answer": f"{worker}/{i}"}, "r", True)
            cache.get(f"{1 - worker}-{i}")


def test_two_processes_write_the_same_cache_at_once_and_every_row_is_whole(tmp_path):
    AnswerCache.of_store(tmp_path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 300)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    db = sqlite3.connect(cache_path(tmp_path))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 600


def test_a_damaged_cache_is_set_aside_with_a_warning_and_a_new_one_started(tmp_path):
    path = cache_path(tmp_path)
    path.write_bytes(b"this is not a database" * 1000)
    with AnswerCache.of_store(tmp_path) as cache:
        assert "was damaged" in cache.warning and "set aside as answers.sqlite.damaged-" in cache.warning
        cache.put("k", "q", "s", [], {"answer": "a"}, "r", True)
        assert cache.get("k").output["answer"] == "a"
    aside = list(tmp_path.glob("answers.sqlite.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")  # kept, never deleted


def test_prune_drops_the_answers_whose_passages_left_the_store(tmp_path):
    with AnswerCache.of_store(tmp_path) as cache:
        cache.put("keep", "q1", "s", [["c1", "h", "a.txt"], ["c2", "h", "b.txt"]], {"answer": "1"}, "r", True)
        cache.put("gone", "q2", "s", [["c1", "h", "a.txt"], ["c9", "h", "b.txt"]], {"answer": "2"}, "r", True)
        assert cache.prune({"c1", "c2", "c3"}) == 1
        assert cache.get("keep") is not None and cache.get("gone") is None


def test_a_file_is_hashed_once_per_version(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x" * 1000)
    with AnswerCache.of_store(tmp_path) as cache:
        first = cache.file_sha256(model)
        assert cache.file_sha256(model) == first
        model.write_bytes(b"y" * 1001)
        assert cache.file_sha256(model) != first
