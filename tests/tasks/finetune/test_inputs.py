"""What a finetune refuses before loading anything, each in one line: bad datasets, too little memory; and the pure
parts of the adapter writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.finetune import train
from tasks.finetune.convert import _llama_permute, gguf_lora_tensors
from tasks.finetune.data import pick_examples, read_dataset
from tasks.finetune.options import FinetuneError

pytestmark = pytest.mark.unit

CHAT = {
    "messages": [
        {"role": "system", "content": "Answer from the passages."},
        {"role": "user", "content": "[1] (a.txt) Refunds take 5 days.\nQuestion: How long do refunds take?"},
        {"role": "assistant", "content": "5 days [1]"},
    ]
}


def write(folder, train_lines, collection="knowledge", eval_lines=()):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(line + "\n" for line in train_lines), encoding="utf-8")
    (folder / "eval.jsonl").write_text("".join(line + "\n" for line in eval_lines), encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps({"collection": collection}), encoding="utf-8")
    return folder


def test_a_dataset_in_each_export_format_reads_as_the_same_chat(tmp_path):
    system, user, assistant = (m["content"] for m in CHAT["messages"])
    alpaca = {"instruction": user, "input": "", "output": assistant, "system": system}
    sharegpt = {
        "conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}],
        "system": system,
    }
    for name, record in (("openai", CHAT), ("alpaca", alpaca), ("sharegpt", sharegpt)):
        got = read_dataset(write(tmp_path / name, [json.dumps(record)] * 2, eval_lines=[json.dumps(record)]))
        assert got["train"] == [CHAT["messages"]] * 2 and got["eval"] == [CHAT["messages"]], name
        assert got["collection"] == "knowledge" and len(got["sha256"]) == 64


@pytest.mark.parametrize(
    "lines, match",
    [
        ([], r"train\.jsonl holds no example: export with more --chunks"),
        (["{not json"], r"train\.jsonl line 1 is not a chat example"),
        ([json.dumps(CHAT), json.dumps({"messages": CHAT["messages"][:2]})], r"train\.jsonl line 2 is not a chat"),
        ([json.dumps({"text": "hello"})], r"line 1 is not a chat example .* re-export it with `kbflow dataset export`"),
    ],
)
def test_an_empty_or_malformed_dataset_is_one_line_naming_the_file(tmp_path, lines, match):
    with pytest.raises(FinetuneError, match=match) as refused:
        read_dataset(write(tmp_path / "ds", lines))
    assert "\n" not in str(refused.value) and str(tmp_path / "ds" / "train.jsonl") in str(refused.value)


def test_a_folder_that_is_no_dataset_says_what_to_give(tmp_path):
    with pytest.raises(FinetuneError, match=r"has no train\.jsonl: give the folder `kbflow dataset export` wrote"):
        read_dataset(tmp_path)
    with pytest.raises(FinetuneError, match="is not a folder"):
        read_dataset(tmp_path / "missing")


def test_a_dataset_of_another_collection_is_refused_naming_both(tmp_path):
    folder = write(tmp_path / "ds", [json.dumps(CHAT)], collection="hr")
    with pytest.raises(FinetuneError, match=r"exported from collection 'hr', not 'knowledge': finetune with "):
        read_dataset(folder, "knowledge")
    assert read_dataset(folder, "hr")["collection"] == "hr"


def test_the_dataset_hash_changes_with_its_examples_and_the_pick_is_seeded(tmp_path):
    a = read_dataset(write(tmp_path / "a", [json.dumps(CHAT)]))["sha256"]
    b = read_dataset(write(tmp_path / "b", [json.dumps(CHAT)] * 2))["sha256"]
    assert a != b and a == read_dataset(tmp_path / "a")["sha256"]
    assert pick_examples(list(range(10)), 4, 0) == pick_examples(list(range(10)), 4, 0)
    assert sorted(pick_examples(list(range(10)), 10, 3)) == list(range(10))


def test_training_that_would_not_fit_in_memory_is_refused_before_loading_saying_how_much(monkeypatch, tmp_path):
    monkeypatch.setattr(train, "gguf_facts", lambda path: {"parameters": 1_777_000_000})
    monkeypatch.setattr(train, "available_memory", lambda: 4 * 2**30)
    with pytest.raises(FinetuneError) as refused:
        train.check_memory(tmp_path / "qwen.gguf", "fp32", "cpu")
    assert str(refused.value) == (
        "training qwen.gguf (1777M parameters, fp32) needs about 9.3 GB, and only 4.0 GB is memory available: close "
        "other programs, use --precision bf16 or a smaller --model"
    )
    monkeypatch.setattr(train, "available_memory", lambda: 7 * 2**30)
    assert train.check_memory(tmp_path / "qwen.gguf", "bf16", "cpu")["memory_needed_gb"] == 5.96


def test_llama_q_and_k_rows_get_llama_cpps_order_and_the_rest_stay(monkeypatch):
    import torch

    # transformers' loader undoes llama.cpp's permute; applying it again must give back the GGUF's order.
    rows = np.arange(12 * 2, dtype=np.float32).reshape(12, 2)
    gguf_order = _llama_permute(rows, 3)
    undone = gguf_order.reshape(3, 2, 2, 2).swapaxes(2, 1).reshape(12, 2)  # transformers' reverse_permute
    assert np.array_equal(undone, rows) and not np.array_equal(gguf_order, rows)
    state = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight": torch.tensor(rows),
        "base_model.model.model.layers.0.self_attn.v_proj.lora_B.default.weight": torch.tensor(rows),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight": torch.ones(2, 5),
        "base_model.model.model.layers.0.mlp.up_proj.weight": torch.ones(2, 2),
    }
    llama = gguf_lora_tensors(state, "llama", n_head=3, n_head_kv=1)
    assert sorted(llama) == [
        "blk.0.attn_q.weight.lora_a",
        "blk.0.attn_q.weight.lora_b",
        "blk.0.attn_v.weight.lora_b",
    ]
    assert np.array_equal(llama["blk.0.attn_q.weight.lora_b"], gguf_order)
    assert np.array_equal(llama["blk.0.attn_v.weight.lora_b"], rows)
    assert llama["blk.0.attn_q.weight.lora_a"].shape == (2, 5)  # rank x in: not transposed
    qwen = gguf_lora_tensors(state, "qwen2", n_head=3, n_head_kv=1)
    assert np.array_equal(qwen["blk.0.attn_q.weight.lora_b"], rows)  # qwen2 GGUFs keep transformers' order


def test_the_loss_curve_table_averages_windows_of_steps():
    from flows.finetune import curve_table

    curve = [{"step": i, "loss": float(i), "seconds": 1.0} for i in range(1, 7)]
    assert curve_table(curve, rows=3).splitlines() == [
        "| steps | mean loss | s/step |",
        "|---|---|---|",
        "| 1–2 | 1.5000 | 1.00 |",
        "| 3–4 | 3.5000 | 1.00 |",
        "| 5–6 | 5.5000 | 1.00 |",
    ]


def test_an_adapter_trained_on_another_base_of_the_same_shapes_is_refused_by_ask(tmp_path):
    import torch

    from tasks.answer.adapters import check_adapter
    from tasks.answer.models import ModelError
    from tasks.finetune.convert import read_kbflow_metadata, write_gguf_lora
    from tests.tasks.answer.gguf_files import write_base

    base, other = write_base(tmp_path / "base.gguf"), write_base(tmp_path / "other.gguf", n_embd=16)
    with open(other, "ab") as fh:
        fh.write(b"\0" * 32)  # another fine-tune of the same model: same shapes, other bytes
    state = {
        "base_model.model.model.layers.0.self_attn.v_proj.lora_A.default.weight": torch.ones(4, 16),
        "base_model.model.model.layers.0.self_attn.v_proj.lora_B.default.weight": torch.ones(8, 4),
    }
    meta = {"base_model": "base.gguf", "base_size": str(base.stat().st_size), "base_sha256": "ab" * 32}
    adapter = tmp_path / "lora.gguf"
    assert write_gguf_lora(state, base, adapter, 8.0, {**meta, "training": {"rank": 4}})["tensors"] == 2
    assert read_kbflow_metadata(adapter)["training"] == {"rank": 4}
    assert check_adapter(adapter, base)["rank"] == 4
    with pytest.raises(ModelError, match=r"it was trained on base\.gguf \(sha256 abababababab\), another file; use"):
        check_adapter(adapter, other)


@pytest.mark.parametrize(
    "base, adapter, recommended, why",
    [
        ({"accuracy": 0.4, "latency_ms_p50": 1000}, {"accuracy": 0.5, "latency_ms_p50": 1050}, True, "50% right"),
        ({"accuracy": 0.4, "latency_ms_p50": 1000}, {"accuracy": 0.4, "latency_ms_p50": 900}, False, "no more"),
        ({"accuracy": 0.4, "latency_ms_p50": 1000}, {"accuracy": 0.6, "latency_ms_p50": 1200}, False, "1.20x slower"),
        ({"accuracy": None, "latency_ms_p50": 1000}, {"accuracy": None, "latency_ms_p50": 1000}, False, "no expected"),
    ],
)
def test_the_adapter_is_recommended_only_for_more_right_answers_at_most_1_1x_the_time(base, adapter, recommended, why):
    from flows.adapter_ab import verdict

    got = verdict(base, adapter)
    assert got["recommended"] is recommended and why in got["why"]


def test_the_ab_answers_the_users_own_questions_when_given_else_the_datasets(tmp_path):
    from flows.adapter_ab import ab_questions
    from flows.errors import ConfigError

    (tmp_path / "questions.csv").write_text("question,expected_answer\nq,a\n", encoding="utf-8")
    mine = tmp_path / "mine.csv"
    mine.write_text("question,expected_answer\nwhy?,because\n", encoding="utf-8")
    assert ab_questions(str(tmp_path)) == tmp_path / "questions.csv"
    assert ab_questions(str(tmp_path), str(mine)) == mine
    with pytest.raises(ConfigError, match=r"question file .*other\.csv not found \(--compare-questions\)"):
        ab_questions(str(tmp_path), str(tmp_path / "other.csv"))
    (tmp_path / "questions.csv").unlink()
    with pytest.raises(ConfigError, match="has no questions.csv"):
        ab_questions(str(tmp_path))
