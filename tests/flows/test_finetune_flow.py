"""kb-finetune on SmolLM2: a dataset exported from a small store, a few training steps, the GGUF adapter checked in
llama.cpp against PyTorch, and `kbflow ask --lora` accepting it."""

from __future__ import annotations

import json

import pytest

import tasks.dataset.pairs as dataset_mod
from flows.dataset import dataset_flow
from flows.errors import ConfigError
from flows.finetune import finetune_flow
from flows.ingest import ingest_flow
from tasks.answer.adapters import check_adapter
from tasks.answer.models import bundled_gguf
from tasks.finetune.convert import read_kbflow_metadata
from tasks.finetune.data import ChatTokenizer, read_dataset
from tasks.finetune.verify import llama_cpp_loss
from tests.flows.test_dataset_flow import PassageEcho

pytestmark = pytest.mark.slow

DOCS = {
    "warranty.txt": "The Falcon 200 drill carries a warranty of three years covering the motor and the battery pack. "
    "Repairs under warranty are done at the Leeds service centre within ten working days.",
    "travel.txt": "Employees book flights through the Harbour travel desk at least fourteen days ahead. Economy class "
    "is the default for trips shorter than six hours, and the desk reimburses taxis up to forty pounds.",
    "security.txt": "Badges are renewed every January at the north reception. A lost badge is reported to the "
    "security office on extension 4411, and a temporary pass is printed the same morning.",
    "returns.txt": "Customers may return unopened goods within thirty days for a full refund. Opened goods are "
    "exchanged only, and the refund is paid to the original card within five business days.",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small store ingested from four documents, and a dataset exported from it with a scripted pair writer."""
    root = tmp_path_factory.mktemp("finetune")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    store = root / "store"
    assert ingest_flow(source_path=str(corpus), store_dir=str(store))["failed"] == []
    mp = pytest.MonkeyPatch()
    mp.setattr(dataset_mod, "make_backend", lambda llm: PassageEcho())
    try:
        summary = dataset_flow(
            store_dir=str(store),
            out_dir=str(root / "ds"),
            chunks=8,
            pairs_per_chunk=1,
            distractors=1,
            eval_share=0.3,
            no_gold_share=0.0,
            llm_model="smollm2",
        )
    finally:
        mp.undo()
    assert summary["collection"] == "knowledge" and summary["train"] and summary["eval"]
    return {"store": store, "dir": root / "ds", "summary": summary}


def test_a_few_steps_on_smollm2_write_an_adapter_llama_cpp_agrees_with(dataset, tmp_path):
    out = tmp_path / "smol-lora.gguf"
    summary = finetune_flow(
        dataset_dir=str(dataset["dir"]),
        out=str(out),
        model="smollm2",
        store_dir=str(dataset["store"]),
        steps=6,
        learning_rate=1e-3,
        precision="fp32",
    )
    assert out.is_file() and summary["steps"] == 6 and len(summary["curve"]) == 6
    assert summary["train_examples"] == dataset["summary"]["train"]
    assert summary["eval_examples"] == dataset["summary"]["eval"]
    # Training on the answers lowered the loss on the held-out documents' answers.
    assert summary["eval_loss_after"] < summary["eval_loss_before"]

    # llama.cpp, loading the written file, gives the eval answers the loss PyTorch gave them: within 1% beyond the
    # gap the base model alone shows between the two on the same examples (SmolLM2 Q4_1: about 1.4%).
    held_out = read_dataset(dataset["dir"])["eval"]
    tokenizer = ChatTokenizer(bundled_gguf())
    examples = [tokenizer.encode(m, 1536) for m in held_out]
    llama = llama_cpp_loss(bundled_gguf(), out, examples, threads=2)
    llama_base = llama_cpp_loss(bundled_gguf(), None, examples, threads=2)
    base_gap = abs(llama_base - summary["eval_loss_before"])
    assert abs(llama - summary["eval_loss_after"]) <= 0.01 * summary["eval_loss_after"] + base_gap
    verify = summary["verify"]
    assert abs(verify["llama_cpp_loss"] - verify["torch_loss"]) <= 0.01 * verify["torch_loss"] + abs(
        verify["base_llama_cpp_loss"] - verify["base_torch_loss"]
    )
    # Without the adapter, llama.cpp gives the base model's loss, which training lowered.
    assert base_gap < 0.03 * summary["eval_loss_before"]

    # The adapter records what it was made from; `--lora`'s check accepts it on its base.
    meta = read_kbflow_metadata(out)
    assert meta["base_sha256"] == summary["base_sha256"] and meta["dataset_sha256"] == summary["dataset_sha256"]
    assert meta["collection"] == "knowledge" and meta["training"]["rank"] == 16 and meta["training"]["steps"] == 6
    facts = check_adapter(out, bundled_gguf())
    assert (facts["architecture"], facts["rank"], facts["tensors"]) == ("llama", 16, 120)
    # The run's checkpoint is gone once the adapter is whole; its summary sits beside it.
    assert not (tmp_path / "smol-lora.gguf.checkpoint").exists()
    assert json.loads((tmp_path / "smol-lora.gguf.json").read_text())["verify"] == summary["verify"]


def test_a_dataset_of_another_collection_is_refused_in_one_line(dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"exported from collection 'knowledge', not 'other'.*--collection knowledge"):
        finetune_flow(dataset_dir=str(dataset["dir"]), out=str(tmp_path / "a.gguf"), collection="other")
    assert not (tmp_path / "a.gguf").exists()


def _finetune_command(dataset_dir, store, cli_env, *more: str):
    import subprocess

    from tests.conftest import KBFLOW

    return subprocess.run(
        [KBFLOW, "finetune", str(dataset_dir), "--store", str(store), "--model", "smollm2", *more],
        capture_output=True,
        text=True,
        env=cli_env,
    )


def test_the_command_says_what_is_wrong_with_a_malformed_dataset_in_one_line(dataset, tmp_path, cli_env):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    proc = _finetune_command(bad, dataset["store"], cli_env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"kbflow: error: dataset file {bad / 'train.jsonl'} line 1 is not a chat example (JSON with messages ending "
        "in the assistant's answer, or alpaca/sharegpt fields): re-export it with `kbflow dataset export`"
    ]


def test_a_missing_compare_question_file_is_said_in_one_line_before_any_training(dataset, tmp_path, cli_env):
    missing = tmp_path / "mine.csv"
    out = tmp_path / "a.gguf"
    proc = _finetune_command(
        dataset["dir"], dataset["store"], cli_env, "--out", str(out), "--compare-questions", str(missing)
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"kbflow: error: question file {missing} not found (--compare-questions)"
    ]
    assert not out.exists() and not (tmp_path / "a.gguf.checkpoint").exists()
