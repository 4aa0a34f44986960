"""Dataset export's pure parts: the model's pairs parsed and filtered, RAFT examples, formats and the split by
document."""

from __future__ import annotations

import csv
import json
import random

import pytest

from tasks.answer.backends import GenerationError, LLMConfig
from tasks.answer.prompts import REFUSAL, SYSTEM
from tasks.dataset.pairs import (
    SENTENCE_SYSTEM,
    TRANSLATE_SYSTEM,
    ask_pairs,
    cited_sentence,
    dataset_info,
    filter_pairs,
    free_reply_done,
    gold_flags,
    pairs_schema,
    parse_pairs,
    qa_messages,
    raft_example,
    sample_chunks,
    sentence_messages,
    split_by_source,
    to_record,
    translate_messages,
    translated_question,
    write_dataset,
)
from tests.tasks.answer.test_generate import RecordingBackend, ScriptedBackend

pytestmark = pytest.mark.unit

REFUNDS = {
    "chunk_id": "gold",
    "source": "policies/refunds.md",
    "page": None,
    "text": "Refunds are paid within 21 days of the return. Store credit never expires.",
}
OFFICE = {
    "chunk_id": "d1",
    "source": "company/about.txt",
    "page": None,
    "text": "The office is in Berlin, next to the river.",
}
LEAVE = {"chunk_id": "d2", "source": "hr/leave.txt", "page": 3, "text": "Staff have 25 days of paid leave each year."}
NEIGHBOUR = {
    "chunk_id": "d3",
    "source": "policies/refunds.md",
    "page": None,
    "text": "of the return. Refunds are paid within 21 days of the return, by bank transfer.",
}


def test_a_reply_held_to_the_schema_is_read_as_is():
    reply = (
        '{"pairs": [{"question": "How long do refunds take?", "answer": "21 days"},\n'
        ' {"question": "Does store\\ncredit expire?", "answer": " never expires "}]}'
    )
    assert parse_pairs(reply) == (
        [
            {"question": "How long do refunds take?", "answer": "21 days"},
            {"question": "Does store credit expire?", "answer": "never expires"},
        ],
        True,
    )
    # Valid JSON, nothing usable: parsed, no pair (blank strings pass the grammar's minLength, not the reader).
    assert parse_pairs('{"pairs": [{"question": " ", "answer": "x"}]}') == ([], True)


def test_a_reply_cut_by_the_token_cap_keeps_its_complete_pairs_and_says_it_was_not_json():
    cut = '{"pairs": [{"question": "How many days?", "answer": "21"}, {"question": "Where is it?", "answer": "Berl'
    assert parse_pairs(cut) == ([{"question": "How many days?", "answer": "21"}], False)
    # A server that ignored response_format: fenced JSON in prose is not JSON, its complete objects still read.
    fenced = 'Sure!\n```json\n[{"question": "退款多久？", "answer": "21天"}]\n```'
    assert parse_pairs(fenced) == ([{"question": "退款多久？", "answer": "21天"}], False)
    assert parse_pairs("I cannot write questions about this.") == ([], False)


def test_a_free_reply_stops_at_its_kth_pair_or_as_soon_as_it_strays_from_the_pairs_json():
    done = free_reply_done(2)
    # Still on its way to the pairs JSON, fenced or not, in English or Chinese: go on.
    for going in (
        "",
        "{",
        '{\n  "pa',
        "```",
        "```json\n",
        '```json\n{"pairs": [{"question": "退款多久？", "answer": "21',
    ):
        assert not done(going), going
    one = '{"pairs": [{"question": "How many days?", "answer": "21"}, '
    assert not done(one)
    # Two complete pairs: enough, without a third or the closing brackets; the reply counts as complete.
    assert done(one + '{"question": "Where?", "answer": "Berlin"}')
    # Another JSON object (SmolLM2 writes the document's own fields) or prose: stop, to be asked under the schema.
    assert done('{\n  "title": "About Corvid"') and done("Sure! Here are") and done('```json\n{"id"')


def test_the_schema_asks_for_one_to_k_pairs_of_non_empty_strings_and_its_grammar_is_built_once():
    from tasks.answer.backends import json_grammar, schema_key

    schema = pairs_schema(3)
    pairs = schema["properties"]["pairs"]
    assert (schema["type"], schema["required"], pairs["minItems"], pairs["maxItems"]) == ("object", ["pairs"], 1, 3)
    assert pairs["items"]["required"] == ["question", "answer"]
    assert all(f["minLength"] == 1 for f in pairs["items"]["properties"].values())
    json_grammar.cache_clear()
    first = json_grammar(schema_key(pairs_schema(3)))
    assert json_grammar(schema_key(pairs_schema(3))) is first and json_grammar.cache_info().hits == 1
    assert "pairs" in first._grammar and "root ::=" in first._grammar
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in first._grammar  # no raw newline inside a JSON string


def test_the_model_is_asked_in_the_chunks_language_and_its_reply_parsed():
    backend = ScriptedBackend('{"pairs": [{"question": "How long do refunds take?", "answer": "21 days"}]}')
    got = ask_pairs(backend, REFUNDS, 3, 64, 0.2)
    assert got["pairs"] == [{"question": "How long do refunds take?", "answer": "21 days"}] and got["parsed"]
    assert backend.json_schema == pairs_schema(3) and got["completion_tokens"] == 12
    messages = qa_messages(REFUNDS, 3)
    assert "write 3 different questions" in messages[0]["content"] and REFUNDS["text"] in messages[1]["content"]
    assert '{"pairs": [{"question": ..., "answer": ...}, ...]}' in messages[0]["content"]
    zh = qa_messages({**REFUNDS, "text": "退款在退货后二十一天内支付。"}, 2)
    assert "2 个不同的问题" in zh[0]["content"] and '{"pairs":' in zh[0]["content"]


def test_pairs_whose_answer_is_not_in_the_chunk_or_whose_question_repeats_are_dropped():
    seen: list = []
    pairs = [
        {"question": "How long do refunds take?", "answer": "twenty-one days"},  # numbers normalized: kept
        {"question": "How long do refunds take to be paid?", "answer": "21 days"},  # near-duplicate of the first
        {"question": "Who pays refunds?", "answer": "the finance team"},  # not in the chunk
        {"question": "Does store credit expire?", "answer": "Never expires."},  # case and punctuation: kept
        {"question": "When are refunds paid?", "answer": "within 21 days of the return"},  # another question: kept
        {"question": "What does the passage say about refunds?", "answer": "paid within 21 days"},  # not standalone
        {"question": "What is the refund rule?", "answer": REFUNDS["text"]},  # the whole chunk: no short answer
        {"question": "Store credit never expires?", "answer": "store credit never expires"},  # gives its answer away
    ]
    kept, dropped = filter_pairs(pairs, REFUNDS["text"], seen, max_answer_tokens=10)
    assert [p["question"] for p in kept] == [
        "How long do refunds take?",
        "Does store credit expire?",
        "When are refunds paid?",
    ]
    assert dropped == {
        "answer_not_in_chunk": 1,
        "answer_too_long": 1,
        "answer_in_question": 1,
        "question_not_standalone": 1,
        "duplicate_question": 1,
    }
    zh, dropped = filter_pairs([{"question": "段落中提到的退款期限是多少？", "answer": "21 days"}], REFUNDS["text"], [])
    assert zh == [] and dropped["question_not_standalone"] == 1
    # Duplicates are found across chunks too: `seen` carries the questions already kept.
    again, dropped = filter_pairs(
        [{"question": "how long does a REFUND take", "answer": "21 days"}], REFUNDS["text"], seen
    )
    assert again == [] and dropped["duplicate_question"] == 1


def test_sampling_spreads_over_documents_skips_tiny_chunks_and_repeats_with_the_seed():
    chunks = [{"chunk_id": f"{s}-{i}", "source": s, "text": "x" * 100} for s in ("a", "b", "c") for i in range(5)]
    chunks.append({"chunk_id": "tiny", "source": "d", "text": "short"})
    picked = sample_chunks(chunks, 6, seed=1)
    assert sorted(c["source"] for c in picked) == ["a", "a", "b", "b", "c", "c"]
    assert picked == sample_chunks(chunks, 6, seed=1) and len({c["chunk_id"] for c in picked}) == 6
    assert len(sample_chunks(chunks, 100, seed=1)) == 15  # never the tiny one, never twice


def test_a_raft_example_is_kbflows_prompt_with_the_gold_cited_among_shuffled_distractors():
    pair = {"question": "How long do refunds take?", "answer": "21 days"}
    ex = raft_example(
        pair, REFUNDS, [REFUNDS, OFFICE, NEIGHBOUR, LEAVE], n_distractors=2, with_gold=True, rng=random.Random(3)
    )
    system, user, assistant = ex["messages"]
    assert system == {"role": "system", "content": SYSTEM["sentence", "en"]}
    # The gold chunk is one of three passages; the neighbour that also holds the answer is no distractor.
    assert sorted(ex["passages"]) == ["d1", "d2", "gold"]
    n = ex["gold_position"]
    assert f"[{n}] (policies/refunds.md)\n{REFUNDS['text']}" in user["content"]
    assert assistant == {"role": "assistant", "content": f"21 days [{n}]"}
    positions = {
        raft_example(pair, REFUNDS, [OFFICE, LEAVE], n_distractors=2, with_gold=True, rng=random.Random(seed))[
            "gold_position"
        ]
        for seed in range(20)
    }
    assert positions == {1, 2, 3}  # shuffled: the gold is not always first


def test_a_raft_example_marks_the_tier_the_questions_quantity_falls_in_as_answering_does():
    """The adapter learns from prompts like the ones it will answer: the tier holding 6 years is marked there too."""
    tiers = {
        "chunk_id": "tiers",
        "source": "hr/leave.md",
        "text": "员工累计工作满1年不满5年的，年假为6天；满5年不满10年的，年假为10天；满10年及以上的，年假为15天。",
    }
    pair = {"question": "工作满6年的员工每年有几天年假？", "answer": "10天"}
    ex = raft_example(pair, tiers, [OFFICE, LEAVE], n_distractors=1, with_gold=True, rng=random.Random(0))
    assert "满5年不满10年的，年假为10天（6年适用此条）" in ex["messages"][1]["content"]
    assert ex["messages"][-1]["content"] == f"10天 [{ex['gold_position']}]"


def test_without_the_gold_chunk_the_example_teaches_the_refusal():
    pair = {"question": "退款多久到账？", "answer": "21天"}
    ex = raft_example(pair, REFUNDS, [OFFICE, LEAVE, NEIGHBOUR], n_distractors=2, with_gold=False, rng=random.Random(0))
    assert "gold" not in ex["passages"] and "d3" in ex["passages"]  # the neighbour lacks "21天": a fair distractor
    # As many passages as an example with the gold one: their count says nothing about the answer.
    assert len(ex["passages"]) == 3
    assert ex["messages"][-1]["content"] == REFUSAL["zh"] and ex["gold_position"] is None
    assert REFUNDS["text"] not in ex["messages"][1]["content"]


def test_exactly_a_fifth_of_the_examples_go_without_gold():
    flags = gold_flags(50, 0.2, random.Random(0))
    assert flags.count(False) == 10 and flags != sorted(flags, reverse=True)
    assert gold_flags(0, 0.2, random.Random(0)) == []


def examples_from(sources: dict[str, int]) -> list[dict]:
    out = []
    for source, n in sources.items():
        for i in range(n):
            out.append(
                raft_example(
                    {"question": f"Question {i} about {source}?", "answer": "21 days"},
                    {**REFUNDS, "source": source, "chunk_id": f"{source}-{i}"},
                    [OFFICE],
                    n_distractors=1,
                    with_gold=i % 5 != 4,
                    rng=random.Random(i),
                )
            )
    return out


def test_train_and_eval_never_share_a_source_document():
    examples = examples_from({"a.md": 6, "b.md": 4, "c.md": 5, "d.md": 5, "e.md": 3})
    train, held = split_by_source(examples, 0.2, seed=0)
    assert len(train) + len(held) == len(examples) and held
    assert not {e["source"] for e in train} & {e["source"] for e in held}
    assert 0.1 <= len(held) / len(examples) <= 0.5
    assert split_by_source(examples, 0.2, seed=0) == (train, held)
    one_doc = examples_from({"a.md": 4})
    assert split_by_source(one_doc, 0.2, seed=0) == (one_doc, [])  # nothing to hold out without a second document


@pytest.mark.parametrize("fmt", ["openai", "alpaca", "sharegpt"])
def test_each_format_carries_the_same_system_prompt_question_and_answer(fmt):
    ex = examples_from({"a.md": 1})[0]
    system, user, assistant = (m["content"] for m in ex["messages"])
    record = to_record(ex, fmt)
    if fmt == "openai":
        assert record == {"messages": ex["messages"]}
    elif fmt == "alpaca":
        assert record == {"instruction": user, "input": "", "output": assistant, "system": system}
    else:
        assert record == {
            "conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}],
            "system": system,
        }
    info = dataset_info(fmt, {"train": "train.jsonl"})["kbflow_train"]
    assert info["file_name"] == "train.jsonl"
    # The columns LLaMA-Factory is told to read are the record's keys.
    columns = info["columns"]
    assert set(columns.values()) <= set(record)
    if fmt == "openai":
        assert info["formatting"] == "sharegpt" and info["tags"]["role_tag"] == "role"


def test_the_dataset_folder_holds_both_splits_the_info_and_the_eval_questions(tmp_path):
    examples = examples_from({"a.md": 4, "b.md": 2})
    train, held = split_by_source(examples, 0.3, seed=0)
    files = write_dataset(train, held, tmp_path, "sharegpt")
    lines = {s: (tmp_path / files[s]).read_text(encoding="utf-8").splitlines() for s in ("train", "eval")}
    assert [len(lines["train"]), len(lines["eval"])] == [len(train), len(held)]
    assert json.loads(lines["eval"][0]) == to_record(held[0], "sharegpt")
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert {k: v["file_name"] for k, v in info.items()} == {"kbflow_train": "train.jsonl", "kbflow_eval": "eval.jsonl"}
    with (tmp_path / "questions.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["question"], r["expected_answer"], r["expected_source"]) for r in rows] == [
        (e["question"], "21 days", e["source"]) for e in held
    ]


def _example(question: str, answer: str, position: int = 2) -> dict:
    return {"question": question, "answer": answer, "gold_position": position, "with_gold": True}


def test_the_models_sentence_becomes_the_target_citing_the_gold_passage_alone():
    example = _example("How long do refunds take?", "21 days")
    # Whatever the model cited is replaced by the gold passage's number, after the sentence as kbflow's prompt asks.
    assert cited_sentence("Refunds are paid within 21 days [1].", example) == "Refunds are paid within 21 days. [2]"
    assert cited_sentence("Refunds are paid within 21 days.", example) == "Refunds are paid within 21 days. [2]"
    zh = _example("退款多久到账？", "21天", position=3)
    assert cited_sentence("退款在21天内到账。[1]", zh) == "退款在21天内到账。[3]"


def test_a_sentence_that_loses_the_answer_refuses_or_echoes_the_prompt_is_not_a_target():
    example = _example("How long do refunds take?", "21 days")
    assert cited_sentence("Refunds take three weeks.", example) is None  # the checked answer is gone
    assert cited_sentence(REFUSAL["en"], example) is None
    assert cited_sentence("Short answer: 21 days", example) is None
    assert cited_sentence("Refunds take 21 days.\nThey are paid by bank transfer.", example) is None
    assert cited_sentence("Refunds take 21 days " + "and more " * 60, example) is None


def test_the_sentence_prompt_carries_the_question_and_answer_in_the_questions_language():
    en = sentence_messages(_example("How long do refunds take?", "21 days"))
    assert en[0]["content"] == SENTENCE_SYSTEM["en"] and en[1]["content"].endswith(
        "How long do refunds take?\nAnswer: 21 days\nSentence:"
    )
    zh = sentence_messages(_example("退款多久到账？", "21天"))
    assert zh[0]["content"] == SENTENCE_SYSTEM["zh"] and "答案：21天" in zh[1]["content"]


class _GoneAfter(ScriptedBackend):
    """Writes the sentence for the first example, then fails as a server that went away."""

    calls = 0

    def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
        self.calls += 1
        if self.calls > 1:
            raise GenerationError("the server at 127.0.0.1:8080 closed the connection")
        return super().chat(messages, max_tokens, temperature)


def test_a_model_failure_on_one_sentence_drops_that_example_with_its_reason_and_keeps_the_rest(monkeypatch):
    import tasks.dataset.pairs as pairs

    monkeypatch.setattr(pairs, "make_backend", lambda llm: _GoneAfter("Refunds are paid within 21 days."))
    first = {**_example("How long do refunds take?", "21 days"), "source": "refunds.md", "chunk_id": "a"}
    first["messages"] = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant"}]
    second = {**first, "question": "How long do returns take?", "source": "returns.md", "chunk_id": "b"}
    refusal = {**first, "with_gold": False, "source": "faq.md", "chunk_id": "c"}
    kept, counts, failures = pairs.write_answer_sentences.fn([first, second, refusal], LLMConfig())
    assert [e["chunk_id"] for e in kept] == ["a", "c"]
    assert kept[0]["messages"][-1]["content"] == "Refunds are paid within 21 days. [2]"
    assert counts["sentences_written"] == 1 and counts["dropped_sentence_unchecked"] == 0
    assert failures == [
        {
            "source": "returns.md",
            "chunk_id": "b",
            "step": "answer sentence",
            "reason": "GenerationError: the server at 127.0.0.1:8080 closed the connection",
        }
    ]


# ---------------------------------------------------------------- questions across languages


def test_a_question_is_translated_into_the_other_language_keeping_its_latin_names():
    en = {"question": "What is the monthly internet allowance for the Rotterdam office?", "answer": "EUR 25"}
    prompt = translate_messages(en["question"])
    assert prompt[0]["content"] == TRANSLATE_SYSTEM["zh"] and en["question"] in prompt[1]["content"]
    quoted = "“Rotterdam 办公室每月的网络补贴是多少？”"
    assert translated_question(quoted, en) == "Rotterdam 办公室每月的网络补贴是多少？"
    # Qwen2.5-1.5B's "荷兰" (the Netherlands) for Rotterdam asks about another place.
    assert translated_question("荷兰办公室每月的网络补贴是多少？", en) is None
    zh = {"question": "AP-90 净化器在睡眠模式下的噪音是多少？", "answer": "26分贝"}
    assert translate_messages(zh["question"])[0]["content"] == TRANSLATE_SYSTEM["en"]
    assert translated_question("How loud is the AP-90 purifier in sleep mode?", zh) == (
        "How loud is the AP-90 purifier in sleep mode?"
    )
    assert translated_question("How loud is the purifier in sleep mode?", zh) is None  # the model code is lost


def test_a_translation_that_is_not_a_question_in_the_other_language_is_not_kept():
    en = {"question": "How long do refunds take?", "answer": "21 days"}
    assert translated_question("How long do refunds take?", en) is None  # not translated
    assert translated_question("翻译：退款需要多久？", en) is None
    assert translated_question("退款需要多久？\n（退款需要的时间）", en) is None
    assert translated_question("退款是否需要21 days？", en) is None  # gives its own answer
    assert translated_question("文中的退款需要多久？", en) is None  # points at the passage


def test_a_sentence_across_languages_states_the_answer_by_its_figures():
    crossed = {**_example("鹿特丹办公室每月的网络补贴是多少？", "EUR 25"), "cross_lingual": True}
    assert cited_sentence("鹿特丹办公室每月的网络补贴是25欧元。", crossed) == "鹿特丹办公室每月的网络补贴是25欧元。[2]"
    assert cited_sentence("鹿特丹办公室每月的网络补贴是20欧元。", crossed) is None
    # Asked in its own language the answer must still be there word for word.
    same = _example("What is the monthly internet allowance?", "EUR 25")
    assert cited_sentence("The monthly internet allowance is 25 euros.", same) is None
    named = {**_example("云墨欧洲公司的总经理是谁？", "Jonas Albrecht"), "cross_lingual": True}
    assert cited_sentence("总经理是Jonas Albrecht。", named) == "总经理是Jonas Albrecht。[2]"
    assert cited_sentence("云墨欧洲公司的总经理是阿尔布雷希特。", named) is None  # no figure to check by


def test_a_share_of_the_pairs_is_asked_across_and_a_failed_translation_keeps_the_pair(monkeypatch):
    import tasks.dataset.pairs as pairs

    backend = RecordingBackend("退款需要多久？", "Who pays for return shipping?", "Translation: 多久？")
    monkeypatch.setattr(pairs, "make_backend", lambda llm: backend)
    gold = {"source": "refunds.md", "chunk_id": "a"}
    written = [
        {"question": "How long do refunds take?", "answer": "21 days", "gold": gold},
        {"question": "退货运费谁付？", "answer": "客户", "gold": gold},
        {"question": "Who pays return shipping?", "answer": "the customer", "gold": gold},
        {"question": "退款多久到账？", "answer": "21天", "gold": gold},
    ]
    # Three of four, picked by the seed (the first, second and fourth with seed 0), asked in turn.
    out, counts, failures = pairs.translate_questions.fn(written, 0.75, 0, LLMConfig())
    assert backend.prompts[0].endswith("How long do refunds take?\n中文译文：") and len(backend.prompts) == 3
    assert counts == {"questions_translated": 2, "translations_unchecked": 1} and failures == []
    assert [(p["question"], p.get("written_as")) for p in out] == [
        ("退款需要多久？", "How long do refunds take?"),
        ("Who pays for return shipping?", "退货运费谁付？"),
        ("Who pays return shipping?", None),
        ("退款多久到账？", None),  # "Translation: ..." is talk about translating: kept as written
    ]
    assert [p["answer"] for p in out] == [p["answer"] for p in written]
    assert pairs.translate_questions.fn(written, 0.0, 0, LLMConfig())[0] == written
