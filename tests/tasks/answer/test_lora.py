"""A LoRA adapter on the bundled SmolLM2: applied at load, recorded in the report, refused when it does not fit."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pandas as pd
import pytest

from tasks.answer.adapters import check_adapter
from tasks.answer.backends import load_llama
from tasks.answer.models import ModelError, bundled_gguf
from tasks.answer.prompts import build_messages
from tests.conftest import KBFLOW
from tests.tasks.answer.gguf_files import write_lora

pytestmark = pytest.mark.slow

QUESTION = "How long do refunds take?"
PASSAGES = [
    {"source": "policy.txt", "page": None, "text": "Refunds are paid within 21 days of the return.", "chunk_id": "a"}
]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    base = bundled_gguf()
    return {
        "random": write_lora(root / "random.gguf", base, rank=8, std=0.05, seed=1),
        "zero_b": write_lora(root / "zero-b.gguf", base, rank=8, zero_b=True, seed=1),
    }


def answer_tokens(lora: str = "", scale: float = 1.0) -> list[int]:
    """SmolLM2's greedy answer (as tokens) to one fixed prompt, with an adapter applied at load."""
    backend = load_llama(str(bundled_gguf()), 512, 1, str(lora), scale)
    text, _, completion_tokens = backend.chat(build_messages(QUESTION, PASSAGES, "en"), 40, 0.0)
    assert completion_tokens > 0
    return backend.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def test_an_adapter_with_no_effect_gives_the_base_models_answer_token_for_token(adapters):
    base = answer_tokens()
    assert answer_tokens(adapters["random"], 0.0) == base
    assert answer_tokens(adapters["zero_b"], 1.0) == base


def test_an_adapter_with_weights_changes_the_answer(adapters):
    backend = load_llama(str(bundled_gguf()), 512, 1, str(adapters["random"]), 1.0)
    assert backend.llm.lora_path == str(adapters["random"]) and backend.llm.lora_scale == 1.0
    assert answer_tokens(adapters["random"], 1.0) != answer_tokens()


def test_the_bundled_model_and_a_missing_file_are_refused_naming_the_file(tmp_path, adapters):
    base = bundled_gguf()
    assert check_adapter(adapters["random"], base)["architecture"] == "llama"
    with pytest.raises(
        ModelError, match=rf"LoRA adapter {base} cannot be used with base model {base.name}: it is not an adapter"
    ):
        check_adapter(base, base)
    with pytest.raises(ModelError, match=rf"{tmp_path / 'missing.gguf'} does not exist \(base model {base.name}\)"):
        check_adapter(tmp_path / "missing.gguf", base)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """Two short documents ingested into a store of their own."""
    from flows.ingest import ingest_flow

    root = tmp_path_factory.mktemp("lora-kb")
    docs = root / "docs"
    docs.mkdir()
    (docs / "refunds.txt").write_text("Refunds are paid within 21 days of the return.\n", encoding="utf-8")
    (docs / "office.txt").write_text("The office is in Berlin, next to the river.\n", encoding="utf-8")
    assert ingest_flow(source_path=str(docs), store_dir=str(root / "store"))["failed"] == []
    questions = root / "questions.csv"
    # Its words are in refunds.txt, so keyword retrieval finds it and the model answers (no refusal).
    pd.DataFrame([{"id": "q1", "question": "When are refunds paid?"}]).to_csv(questions, index=False)
    return {"store": root / "store", "questions": questions}


def test_the_report_records_base_model_adapter_and_scale(small_store, adapters, tmp_path, monkeypatch):
    from flows.answer import answer_flow

    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "24")
    monkeypatch.setenv("KBFLOW_N_CTX", "512")
    out = tmp_path / "report"
    summary = answer_flow(
        questions_path=str(small_store["questions"]),
        store_dir=str(small_store["store"]),
        out_dir=str(out),
        mode="keyword",
        llm_model="smollm2",
        lora=str(adapters["random"]),
        lora_scale=0.5,
    )
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    sha = hashlib.sha256(adapters["random"].read_bytes()).hexdigest()
    assert written["base_model"] == bundled_gguf().name
    assert written["lora"] == {"name": "random.gguf", "sha256": sha} and written["lora_scale"] == 0.5
    assert summary["lora"] == written["lora"] and (summary["answered"], summary["errors"]) == (1, 0)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "random.gguf" in html and sha[:12] in html


def test_without_an_adapter_the_summary_says_so(small_store, tmp_path, monkeypatch):
    from flows.answer import answer_flow

    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "8")
    summary = answer_flow(
        questions_path=str(small_store["questions"]),
        store_dir=str(small_store["store"]),
        out_dir=str(tmp_path / "r"),
        mode="keyword",
        llm_model="smollm2",
    )
    assert (summary["base_model"], summary["lora"], summary["lora_scale"]) == (bundled_gguf().name, None, None)


def test_ask_with_a_missing_adapter_exits_2_naming_the_file(small_store, tmp_path, cli_env):
    missing = tmp_path / "missing.gguf"
    proc = subprocess.run(
        [
            KBFLOW,
            "ask",
            str(small_store["questions"]),
            "--store",
            str(small_store["store"]),
            "--model",
            "smollm2",
            "--lora",
            str(missing),
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"LoRA adapter {missing} does not exist" in proc.stderr and bundled_gguf().name in proc.stderr
    assert not list((small_store["store"] / "reports").glob("*/summary.json"))  # nothing was answered
