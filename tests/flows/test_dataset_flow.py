"""The kb-dataset flow on the demo corpus, with a scripted model that writes one answerable pair per chunk."""

from __future__ import annotations

import json
import re

import pytest

import tasks.dataset.pairs as dataset_mod
from flows.dataset import DatasetFailed, dataset_flow
from flows.errors import ConfigError
from tasks.answer.prompts import REFUSAL, language_of
from tasks.answer.questions import load_questions
from tasks.dataset.pairs import SENTENCE_SYSTEM, TRANSLATE_SYSTEM
from tasks.text import contains_answer
from tests.conftest import demo_store_copy, store_state

pytestmark = pytest.mark.slow


class PassageEcho:
    """A model that asks about the passage it is shown: the answer is copied from it (three words, or four
    characters)."""

    name, n_ctx = "echo", 4096

    def count_tokens(self, messages):
        return sum(len(m["content"]) for m in messages) // 3

    @staticmethod
    def sentence(messages) -> str | None:
        """The sentence an answer is turned into, when this is that prompt (it cites passage 9, which is replaced)."""
        if messages[0]["content"] not in SENTENCE_SYSTEM.values():
            return None
        line = messages[1]["content"].split("\n")[1]
        answer = line.removeprefix("Answer: ").removeprefix("答案：")
        return f"答案是{answer}。[9]" if line.startswith("答案") else f"The answer is {answer}. [9]"

    def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
        if (sentence := self.sentence(messages)) is not None:
            return sentence, 0, 0
        body = messages[1]["content"]
        text = body.split("\n", 1)[1].rsplit("\n\nJSON", 1)[0]
        chinese = re.search(r"[\u4e00-\u9fff]{12,}", text)
        words = text.split()
        if chinese:
            run = chinese.group(0)
            pair = {"question": f"“{run[:8]}”之后是什么？", "answer": run[8:12]}
        elif len(words) >= 8:
            pair = {"question": f"What comes after '{' '.join(words[:5])}'?", "answer": " ".join(words[5:8])}
        else:
            return "No questions.", 0, 0
        return json.dumps({"pairs": [pair]}, ensure_ascii=False), 0, 0


@pytest.fixture(scope="module")
def demo_store(demo_kb, tmp_path_factory):
    """The demo corpus as ingested once per test process, in this module's own copy of the store."""
    return demo_store_copy(demo_kb, tmp_path_factory.mktemp("demo-dataset") / "store")


def test_export_writes_raft_examples_split_by_document(demo_store, tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_mod, "make_backend", lambda llm: PassageEcho())
    out = tmp_path / "ds"
    summary = dataset_flow(
        store_dir=str(demo_store),
        out_dir=str(out),
        chunks=30,
        pairs_per_chunk=1,
        distractors=3,
        no_gold_share=0.2,
        llm_model="smollm2",
        seed=7,
    )
    assert summary["chunks_sampled"] == 30 and summary["failures"] == []
    assert summary["examples"] == summary["train"] + summary["eval"] >= 20
    assert summary["without_gold"] == round(summary["examples"] * 0.2)
    assert summary["sentences_written"] == summary["examples"] - summary["without_gold"]
    assert summary["dropped_sentence_unchecked"] == 0
    assert summary["eval"] and not set(summary["train_sources"]) & set(summary["eval_sources"])

    texts = {c["id"]: c["text"] for chunks in store_state(demo_store)["by_source"].values() for c in chunks}
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()]
    records = [
        json.loads(line)
        for name in ("train.jsonl", "eval.jsonl")
        for line in (out / name).read_text(encoding="utf-8").splitlines()
    ]
    assert len(examples) == len(records) == summary["examples"]
    for example, record in zip(examples, records):
        system, user, assistant = record["messages"]
        assert contains_answer(texts[example["chunk_id"]], example["answer"])  # every answer is in its chunk
        passages = [texts[cid] for cid in example["passages"]]
        if example["with_gold"]:
            assert len(passages) == 4 and example["passages"][example["gold_position"] - 1] == example["chunk_id"]
            # the answer as the sentence the model wrote, citing the gold passage alone
            position = example["gold_position"]
            assert assistant["content"] in (
                f"The answer is {example['answer']}. [{position}]",
                f"答案是{example['answer']}。[{position}]",
            )
            assert f"[{example['gold_position']}] ({example['source']}" in user["content"]
        else:
            assert len(passages) == 4 and assistant["content"] in REFUSAL.values()
            assert not any(contains_answer(p, example["answer"]) for p in passages)  # really unanswerable
        distractors = [cid for cid in example["passages"] if cid != example["chunk_id"]]
        assert distractors and all(texts[cid] != texts[example["chunk_id"]] for cid in distractors)

    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["kbflow_train"]["file_name"] == "train.jsonl" and info["kbflow_eval"]["tags"]["user_tag"] == "user"
    questions = load_questions(str(out / "questions.csv"))
    assert len(questions) == summary["eval"]
    assert {q.expected_source for q in questions} <= set(summary["eval_sources"])


def test_a_model_that_writes_no_usable_pair_fails_the_run_with_the_counts(demo_store, tmp_path, monkeypatch):
    class Wrong(PassageEcho):
        def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
            return '{"pairs": [{"question": "What is the capital of Mars?", "answer": "Olympus City"}]}', 0, 0

    monkeypatch.setattr(dataset_mod, "make_backend", lambda llm: Wrong())
    with pytest.raises(DatasetFailed) as failed:
        dataset_flow(store_dir=str(demo_store), out_dir=str(tmp_path / "ds"), chunks=5, llm_model="smollm2")
    summary = failed.value.summary
    assert (summary["examples"], summary["pairs_generated"], summary["dropped_answer_not_in_chunk"]) == (0, 5, 5)
    assert json.loads((tmp_path / "ds" / "summary.json").read_text(encoding="utf-8"))["examples"] == 0


def test_free_replies_first_and_the_schema_only_after_replies_that_are_not_json(demo_store, tmp_path, monkeypatch):
    """A model that writes JSON unaided (here in a code fence) is never held to the schema's grammar; one that writes
    prose is asked again under it, and after two such replies every remaining chunk is asked under it at once."""
    calls: list[bool] = []

    class Fenced(PassageEcho):
        def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
            if (sentence := self.sentence(messages)) is not None:
                return sentence, 0, 0
            calls.append(json_schema is not None)
            reply, _, _ = super().chat(messages, max_tokens, temperature)
            return f"```json\n{reply}\n```", 0, 0

    class Prose(PassageEcho):
        def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
            if (sentence := self.sentence(messages)) is not None:
                return sentence, 0, 0
            calls.append(json_schema is not None)
            if json_schema is None:
                return "Here are some questions about the passage: what is it about?", 0, 0
            return super().chat(messages, max_tokens, temperature)

    monkeypatch.setattr(dataset_mod, "make_backend", lambda llm: Fenced())
    summary = dataset_flow(store_dir=str(demo_store), out_dir=str(tmp_path / "a"), chunks=6, llm_model="smollm2")
    assert calls == [False] * 6 and summary["replies_asked_again_held"] == 0 and summary["replies_not_json"] == 0
    assert summary["pairs_generated"] >= 5

    calls.clear()
    monkeypatch.setattr(dataset_mod, "make_backend", lambda llm: Prose())
    summary = dataset_flow(store_dir=str(demo_store), out_dir=str(tmp_path / "b"), chunks=6, llm_model="smollm2")
    assert calls == [False, True, False, True, True, True, True, True]
    assert summary["replies_asked_again_held"] == 2 and summary["replies_not_json"] == 0
    assert summary["pairs_generated"] >= 5


def test_an_empty_source_prefix_is_a_configuration_error(demo_store, tmp_path):
    with pytest.raises(ConfigError, match="no chunks in collection 'knowledge'.* under 'nowhere/'"):
        dataset_flow(
            store_dir=str(demo_store), out_dir=str(tmp_path / "ds"), source_prefix="nowhere/", llm_model="smollm2"
        )


def test_smollm2_held_to_the_schema_writes_pairs_that_parse(demo_store, tmp_path):
    """The bundled SmolLM2-135M, which without the grammar rarely writes JSON that parses, writes pairs that do; the
    replies that still fail to parse (cut by the token cap) are counted in the summary."""
    out = tmp_path / "ds"
    try:
        summary = dataset_flow(
            store_dir=str(demo_store), out_dir=str(out), chunks=5, pairs_per_chunk=3, distractors=1, llm_model="smollm2"
        )
    except DatasetFailed as failed:
        summary = failed.summary
    assert summary["failures"] == [] and summary["chunks_sampled"] == 5
    assert summary["pairs_generated"] >= 5 and summary["dropped_unparsed_reply"] <= 1
    assert summary["replies_asked_again_held"] <= 2  # free replies that failed, before the run held every reply
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert {k: written[k] for k in ("replies_not_json", "dropped_unparsed_reply")} == {
        k: summary[k] for k in ("replies_not_json", "dropped_unparsed_reply")
    }
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(examples) == summary["examples"] >= 1
    assert all(e["question"].strip() and e["answer"].strip() for e in examples)
    records = [
        json.loads(line)
        for name in ("train.jsonl", "eval.jsonl")
        for line in (out / name).read_text(encoding="utf-8").splitlines()
    ]
    assert len(records) == len(examples)
    for example, record in zip(examples, records):
        system, user, assistant = record["messages"]
        assert example["question"] in user["content"] and assistant["content"].strip()


class Translator(PassageEcho):
    """PassageEcho that also translates: a question that keeps the quoted words (it finds its passage), or, every
    second Chinese question, one about nothing ("What is it?", which finds no passage of its own)."""

    translations = 0
    nothing = 0

    def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
        if messages[0]["content"] not in TRANSLATE_SYSTEM.values():
            return super().chat(messages, max_tokens, temperature, json_schema=json_schema, until=until)
        self.translations += 1
        question = messages[1]["content"].split("\n")[0].split("：", 1)[-1].split(": ", 1)[-1]
        words = next(g for g in re.search(r"“(.+)”|'(.+)'", question).groups() if g)
        if messages[0]["content"] == TRANSLATE_SYSTEM["zh"]:
            return f"请问在公司的规定里“{words}”这句话后面紧接着写的是什么内容？", 0, 0
        if self.translations % 2 == 0:
            self.nothing += 1
            return "What is it?", 0, 0
        return f"What comes right after the words “{words}” in the company's documents?", 0, 0


def test_a_share_of_the_questions_is_asked_in_the_other_language_and_must_find_its_passage(
    demo_store, tmp_path, monkeypatch
):
    model = Translator()
    monkeypatch.setattr(dataset_mod, "make_backend", lambda llm: model)
    out = tmp_path / "ds"
    summary = dataset_flow(
        store_dir=str(demo_store),
        out_dir=str(out),
        chunks=20,
        pairs_per_chunk=1,
        cross_lingual_share=0.5,
        llm_model="smollm2",
        seed=3,
    )
    assert summary["failures"] == [] and model.translations >= 6 and model.nothing >= 1
    # Every translation keeps the question's names and is in the other language: none fails the check.
    assert summary["questions_translated"] == model.translations and summary["translations_unchecked"] == 0
    # "What is it?" retrieves no passage of its own (nor may a real translation): those pairs are asked as written.
    assert model.nothing <= summary["translations_not_retrieving"] < model.translations
    assert summary["cross_lingual"] == model.translations - summary["translations_not_retrieving"]

    texts = {c["id"]: c["text"] for chunks in store_state(demo_store)["by_source"].values() for c in chunks}
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()]
    crossed = [e for e in examples if e["cross_lingual"]]
    assert len(crossed) == summary["cross_lingual"]
    assert all(contains_answer(texts[e["chunk_id"]], e["answer"]) for e in examples)  # copied from the passage
    for example in crossed:
        assert language_of(example["written_as"]) != language_of(example["question"])
        assert example["question"].startswith(("What comes right after", "请问"))  # never "What is it?"
        assert example["chunk_id"] in example["passages"]
    assert all("written_as" not in e for e in examples if not e["cross_lingual"])
