"""The other-language look, end to end on a real store: a Chinese question whose answer is only in an English
document, the first answer flagged, asked again over the English passages, and that answer kept."""

from __future__ import annotations

import json

import pytest

import tasks.answer.generate as generate_mod
from flows.answer import answer_flow
from flows.ingest import ingest_flow
from tests.tasks.answer.test_generate import ScriptedBackend

pytestmark = pytest.mark.slow

QUESTION = "鹿特丹办公室员工每月的网络补贴是多少？"
CHINESE = (
    "杭州总部差旅规定。鹿特丹办公室员工的差旅按英文版规定执行，本规定只适用于杭州员工。"
    "杭州员工出差乘坐高铁二等座，每晚住宿不超过500元。"
)
ENGLISH = (
    "Remote work rules for Rotterdam staff. Employees of the Rotterdam office receive an internet allowance of "
    "EUR 25 a month, paid with the salary. Remote days are limited to two a week."
)


class ByPassage(ScriptedBackend):
    """Answers from the passages it is shown: the right figure from the Rotterdam rules, surely; otherwise a figure no
    passage holds, hesitating over it as a model that guesses does (the kind of answer the report flags)."""

    def __init__(self):
        super().__init__("")
        self.prompts: list[str] = []

    def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
        self.prompts.append(messages[-1]["content"])
        if "EUR 25" in messages[-1]["content"]:
            figure, prob, rival, unit = "25", 0.97, ["300", 0.02], " EUR。[1]"
        else:
            figure, prob, rival, unit = "300", 0.5, ["25", 0.45], "元。[1]"
        self.last_tokens = [["鹿特丹办公室员工每月的网络补贴是", 0.9, []], [figure, prob, [rival]], [unit, 0.9, []]]
        return "".join(t[0] for t in self.last_tokens), 90, 14


@pytest.fixture
def mixed_store(tmp_path, prefect_harness):
    docs = tmp_path / "docs"
    (docs / "travel").mkdir(parents=True)
    (docs / "hr").mkdir()
    (docs / "travel" / "travel_hangzhou_zh.txt").write_text(CHINESE, encoding="utf-8")
    (docs / "hr" / "remote_rotterdam.txt").write_text(ENGLISH, encoding="utf-8")
    store = tmp_path / "store"
    ingest_flow(source_path=str(docs), store_dir=str(store))
    return store


def run(store, tmp_path, monkeypatch, name: str, **env) -> tuple[dict, dict, ByPassage]:
    model = ByPassage()
    monkeypatch.setattr(generate_mod, "make_backend", lambda llm: model)
    # On two documents hybrid retrieval puts the English passage first (the other language's best takes the last of
    # the top k); by keywords alone the Chinese question finds only the Chinese passage, as on a corpus where the
    # question's own language fills the top k. The look retrieves by the embedder whatever the mode.
    monkeypatch.setenv("KBFLOW_MODE", "keyword")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    questions = tmp_path / "q.csv"
    questions.write_text(f"id,question,expected_answer\nx1,{QUESTION},25 EUR\n", encoding="utf-8")
    out = tmp_path / name
    summary = answer_flow(questions_path=str(questions), store_dir=str(store), out_dir=str(out), llm_model="smollm2")
    row = json.loads((out / "rows.jsonl").read_text(encoding="utf-8").splitlines()[0])
    return summary, row, model


def test_a_flagged_answer_is_asked_again_over_the_other_languages_passages_and_kept(mixed_store, tmp_path, monkeypatch):
    summary, row, model = run(mixed_store, tmp_path, monkeypatch, "look")
    assert "EUR 25" not in model.prompts[0] and "鹿特丹办公室员工的差旅" in model.prompts[0]  # the Chinese one alone
    assert row["other_language_look"] == {
        "passages": 1,
        "kept": True,
        "answer_source": "generated",
        "answer": "鹿特丹办公室员工每月的网络补贴是25 EUR。[1]",
    }
    assert row["answer"] == "鹿特丹办公室员工每月的网络补贴是25 EUR。[1]" and row["correct"] is True
    assert [c["source"] for c in row["citations"]] == ["hr/remote_rotterdam.txt"] and not row["flag_reason"]
    assert "EUR 25" in model.prompts[-1]
    assert (summary["other_language_looks"], summary["other_language_kept"], summary["accuracy"]) == (1, 1, 1.0)

    # The next run reuses both answers from the cache: nothing is generated.
    summary, row, model = run(mixed_store, tmp_path, monkeypatch, "again")
    assert model.prompts == [] and row["answer_source"] == "reused"
    assert row["other_language_look"]["answer_source"] == "reused" and row["correct"] is True

    # Turned off, the first answer stays, flagged.
    summary, row, model = run(mixed_store, tmp_path, monkeypatch, "off", KBFLOW_OTHER_LANGUAGE_LOOK="false")
    assert row["other_language_look"] is None and row["answer"].endswith("300元。[1]")
    assert "300" in row["flag_reason"] and summary["other_language_looks"] == 0
