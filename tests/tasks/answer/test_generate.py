"""Prompt packing and citations with the real bundled SmolLM2 tokenizer and model."""

from __future__ import annotations

import pytest

from tasks.answer.backends import load_llama
from tasks.answer.evidence import key_sentences
from tasks.answer.generate import answer_question, pack_context
from tasks.answer.models import bundled_gguf
from tasks.answer.prompts import REFUSAL, build_messages, clean_citations, language_of
from tasks.text import tokenize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_llm():
    """SmolLM2 with a deliberately small window, so packing has to work hard."""
    return load_llama(str(bundled_gguf()), 512, 1)


def passages(n, text):
    return [
        {"source": f"doc{i}.txt", "page": i % 3 or None, "text": text, "chunk_id": str(i), "score": 0.9}
        for i in range(n)
    ]


@pytest.mark.parametrize("text", ["The refund window is 21 days. " * 400, "退款期限为二十一天。" * 800])
def test_packing_never_exceeds_the_window_even_with_k50_and_huge_chunks(small_llm, text):
    question = "What is the refund window?"
    messages, used, n_tokens = pack_context(small_llm, question, passages(50, text), language_of(question), 128)
    assert 1 <= len(used) < 50
    assert n_tokens == small_llm.count_tokens(messages)
    assert n_tokens + 128 <= small_llm.n_ctx
    answer, prompt_tokens, completion_tokens = small_llm.chat(messages, 128, 0.0)
    assert prompt_tokens + completion_tokens <= small_llm.n_ctx


def test_packing_keeps_whole_passages_in_rank_order_when_they_fit(small_llm):
    ps = passages(3, "Short passage.")
    _, used, _ = pack_context(small_llm, "Q?", ps, "en", 64)
    assert [p["chunk_id"] for p in used] == ["0", "1", "2"]


def test_a_passage_budget_stops_before_the_passage_that_would_pass_it_but_keeps_the_first(small_llm):
    ps = passages(4, "The refund window is 21 days for goods bought online. " * 3)
    _, all_of_them, _ = pack_context(small_llm, "Q?", ps, "en", 64)
    base = small_llm.count_tokens(build_messages("Q?", [], "en"))
    one = small_llm.count_tokens(build_messages("Q?", ps[:1], "en")) - base
    two = small_llm.count_tokens(build_messages("Q?", ps[:2], "en")) - base
    _, within, n_tokens = pack_context(small_llm, "Q?", ps, "en", 64, context_tokens=two)
    assert len(all_of_them) == 4
    assert [p["chunk_id"] for p in within] == ["0", "1"]
    assert n_tokens - base <= two
    _, first_only, _ = pack_context(small_llm, "Q?", ps, "en", 64, context_tokens=one // 2)
    assert [p["chunk_id"] for p in first_only] == ["0"]  # the first passage goes in whole, whatever the budget
    # Past the budget, a passage's sentences that match the question best still go in, if they fit.
    question = "How many days does the refund take?"
    long = "The shop opens at nine. Parking is free on Sundays. The refund takes 21 days. Gift cards never expire."
    ps = passages(2, long)
    empty = small_llm.count_tokens(build_messages(question, [], "en"))
    room = small_llm.count_tokens(build_messages(question, ps[:1], "en")) - empty + 28
    _, packed, _ = pack_context(small_llm, question, ps, "en", 64, context_tokens=room)
    assert [p["chunk_id"] for p in packed] == ["0", "1"]
    assert packed[0]["text"] == long and "The refund takes 21 days." in packed[1]["text"]
    assert "Parking" not in packed[1]["text"]
    # A table, and a passage in the other language, go in whole: their best-matching lines lose whose each figure
    # is, or cannot match the question's words (only its codes, here AP-60).
    table = "| Item | Days |\n|---|---|\n| The refund takes | 21 days |\n| Parking is free | 7 days |\n"
    table += "| Gift cards | 365 days |"
    chinese = "AP-60 退款说明。门店九点开门。退款需要21天。礼品卡永不过期。"
    for text, asked in ((table, question), (chinese, "How many days does the AP-60 refund take?")):
        assert key_sentences(text, tokenize(asked)) != text  # what the budget would have given
        ps = passages(1, long) + passages(2, text)[1:]
        _, packed, _ = pack_context(small_llm, asked, ps, "en", 64, context_tokens=room)
        assert [p["chunk_id"] for p in packed] == ["0", "1"]
        assert packed[1]["text"] == text


@pytest.mark.unit
def test_clean_citations_drops_numbers_that_point_nowhere():
    answer, cited = clean_citations("Returns take 21 days [2][7], see also [1] and [0].", 3)
    assert answer == "Returns take 21 days [2], see also [1] and ."
    assert cited == [1, 2]


@pytest.mark.unit
def test_round_bracket_citations_become_marks_only_where_they_end_a_sentence_and_point_to_a_passage():
    assert clean_citations("Returns take 21 days (2).", 3) == ("Returns take 21 days [2].", [2])
    zh = clean_citations("退货期限为21天（1）。运费由公司承担(3)", 3)
    assert zh == ("退货期限为21天[1]。运费由公司承担[3]", [1, 3])
    # not a citation: a passage number that does not exist, a figure inside the sentence, an answer with real marks
    assert clean_citations("Model D3 (7).", 3) == ("Model D3 (7).", [])
    assert clean_citations("Option (2) costs 40 euros.", 3) == ("Option (2) costs 40 euros.", [])
    assert clean_citations("Step (2) applies [1].", 3) == ("Step (2) applies [1].", [1])
    # a round mark just before a square one is the same citation twice (heldout3: "The discount is 8% (1) [1].")
    assert clean_citations("The discount is 8% (1) [1].", 3) == ("The discount is 8% [1].", [1])
    assert clean_citations("Model D3 (7) [1].", 3) == ("Model D3 (7) [1].", [1])


@pytest.mark.unit
def test_prompt_is_in_the_question_language_with_numbered_sources():
    msgs = build_messages("退款期限是多久？", [{"source": "a.docx", "page": 2, "text": "二十一天"}], "zh")
    assert "[1] (a.docx, page 2)\n二十一天" in msgs[1]["content"] and REFUSAL["zh"] in msgs[0]["content"]
    assert language_of("What is it?") == "en" and language_of("S7 的保修期是多久？") == "zh"


def test_answer_records_the_passages_it_cites(small_llm):
    ps = [
        {
            "source": "policy.docx",
            "page": None,
            "text": "Refunds are paid within 21 days of the return.",
            "chunk_id": "a",
        },
        {"source": "faq.html", "page": None, "text": "The office is in Berlin.", "chunk_id": "b"},
    ]
    out = answer_question(small_llm, "How long do refunds take?", ps, max_tokens=64, temperature=0.0)
    assert out["answer"] and out["prompt_tokens"] > 0 and out["passages_used"] == 2
    # The model's citation marks map to the passages it was given; a mark that points nowhere is dropped.
    scripted = answer_question(
        ScriptedBackend("Refunds are paid within 21 days [1][7]."), "How long?", ps, max_tokens=64, temperature=0.0
    )
    assert scripted["answer"] == "Refunds are paid within 21 days [1]." and scripted["cited"] == [1]
    assert [c["chunk_id"] for c in scripted["citations"]] == ["a"]


class ScriptedBackend:
    """A backend that answers with a fixed text, to test what happens around the model."""

    name, n_ctx = "scripted", 4096
    last_tokens: list = []  # no token probabilities, as from a server

    def __init__(self, reply: str):
        self.reply, self.json_schema = reply, None

    def count_tokens(self, messages):
        return sum(len(m["content"]) for m in messages) // 4

    def truncate(self, text, max_tokens):
        return text[: max_tokens * 4]

    def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
        self.json_schema = json_schema
        return self.reply, self.count_tokens(messages), 12


class RecordingBackend(ScriptedBackend):
    """A scripted backend that answers each prompt in turn and keeps the prompts it was given."""

    def __init__(self, *replies: str):
        super().__init__(replies[0])
        self.replies, self.prompts = list(replies), []

    def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
        self.prompts.append(messages[-1]["content"])
        return self.replies[min(len(self.prompts), len(self.replies)) - 1], self.count_tokens(messages), 12


LEAVE = "一、年假\n员工累计工作满1年不满5年的，年假为6天；满5年不满10年的，年假为10天；满10年及以上的，年假为15天。"


@pytest.mark.unit
def test_the_tier_of_the_questions_quantity_is_marked_for_the_model_and_another_tiers_figure_is_asked_again():
    ps = [{"source": "leave_policy_zh.docx", "page": None, "text": LEAVE, "chunk_id": "a"}]
    question = "累计工作满6年的员工，每年有几天年假？"
    backend = RecordingBackend("每年有15天年假（6年适用此条）。[1]", "每年有10天年假。[1]")
    out = answer_question(backend, question, ps, max_tokens=64, temperature=0.0)
    assert "满5年不满10年的，年假为10天（6年适用此条）；满10年及以上" in backend.prompts[0]
    # The first answer took the next tier's 15: asked again over that tier alone, the second answer is kept.
    assert len(backend.prompts) == 2 and "满1年不满5年" not in backend.prompts[1]
    assert "满5年不满10年的，年假为10天（6年适用此条）" in backend.prompts[1]
    assert out["answer"] == "每年有10天年假。[1]" and out["second_look"] is True
    assert out["citations"][0]["text"] == LEAVE  # the passage as the knowledge base holds it, without the mark
    # A second answer without a citation mark cites the tier it was given.
    bare = answer_question(RecordingBackend("15天 [1]", "10天"), question, ps, max_tokens=64, temperature=0.0)
    assert bare["answer"] == "10天 [1]" and bare["cited"] == [1]
    # An answer that copies the mark loses it.
    copied = answer_question(
        RecordingBackend("每年有10天年假（6年适用此条）。[1]"), question, ps, max_tokens=64, temperature=0.0
    )
    assert copied["answer"] == "每年有10天年假。[1]" and copied["second_look"] is False


@pytest.mark.unit
def test_cited_numbers_become_the_passages_they_point_to():
    ps = [
        {"source": "policy.docx", "page": 2, "text": "Refunds are paid within 21 days.", "chunk_id": "a"},
        {"source": "faq.html", "page": None, "text": "The office is in Berlin.", "chunk_id": "b"},
    ]
    out = answer_question(
        ScriptedBackend("Refunds take 21 days [1][5]."), "How long do refunds take?", ps, max_tokens=64, temperature=0.0
    )
    assert out["answer"] == "Refunds take 21 days [1]." and out["cited"] == [1]
    assert out["citations"] == [
        {"source": "policy.docx", "page": 2, "chunk_id": "a", "text": "Refunds are paid within 21 days."}
    ]


@pytest.mark.unit
def test_a_sentence_answer_that_runs_on_is_stopped_at_its_third_sentence():
    """A one-sentence answer that copies its passage out stops at the third sentence's end, not at max_tokens; a
    list's "1." and a decimal point are not sentence ends, and the short style (a span) is never stopped."""
    from tasks.answer.generate import run_on

    assert not run_on("三角关系是指三个人的群体。[1]")
    assert not run_on("Refunds take 21.5 days. See [1].")
    assert not run_on("Steps: 1. Open the lid 2. Clean the filter 3. Close it [1]")
    assert not run_on("三角关系是指三个人的群体。三角恋是多角恋的一种。恋爱于近年")
    assert run_on("三角关系是指三个人的群体。三角恋是多角恋的一种。恋爱于近年普遍被认为是婚姻的前一阶段。")
    assert not run_on("It is red. It is round. It is")
    assert run_on("It is red. It is round. It is small. It")

    class Watching(ScriptedBackend):
        def chat(self, messages, max_tokens, temperature, *, json_schema=None, until=None):
            self.until = until
            return super().chat(messages, max_tokens, temperature, json_schema=json_schema, until=until)

    ps = [{"source": "policy.docx", "page": 2, "text": "Refunds are paid within 21 days.", "chunk_id": "a"}]
    sentence, short = Watching("Refunds take 21 days [1]."), Watching("21 days")
    answer_question(sentence, "How long do refunds take?", ps, max_tokens=64, temperature=0.0)
    answer_question(short, "How long do refunds take?", ps, max_tokens=64, temperature=0.0, style="short")
    assert sentence.until is run_on and short.until is None


@pytest.mark.unit
def test_an_answer_from_a_passage_without_the_bracketed_name_is_asked_again_over_those_that_name_it():
    """The question spells out 桂花糕（10枚装）; the first answer cites the 8-piece pastry's passage. Asked again over
    the passage that names the 10-piece cake alone, its answer is kept with the first prompt's numbering."""
    pastry = {"source": "launch.pptx", "chunk_id": "a", "text": "桂花龙井酥\n嘉兴工厂出品，8枚装\n保质期45天"}
    cake = {"source": "specs.csv", "chunk_id": "b", "text": "桂花糕（10枚装）：冷藏保存，保质期7天。"}
    backend = RecordingBackend("桂花糕（10枚装）的保质期是45天。[1]", "桂花糕（10枚装）的保质期是7天。[1]")
    out = answer_question(backend, "桂花糕（10枚装）的保质期是多久？", [pastry, cake], max_tokens=64, temperature=0.0)
    assert len(backend.prompts) == 2 and "桂花龙井酥" not in backend.prompts[1] and "保质期7天" in backend.prompts[1]
    assert out["answer"] == "桂花糕（10枚装）的保质期是7天。[2]" and out["cited"] == [2]
    assert out["second_look"] is True and out["year_look"] is None and out["name_look"] == ["10枚装"]
    # The report still flags it: over our stored sets such an answer was right once and wrong once.
    from tasks.report.grounding import check_grounding

    row = {"question": "桂花糕（10枚装）的保质期是多久？", "answer": out["answer"], "citations": out["citations"]}
    assert (
        "first answered from a passage without '10枚装'; asked again over those that name it"
        in (check_grounding({**row, "name_look": out["name_look"], "retrieved": [pastry, cake]})["flag_reason"])
    )
    # An answer that cites the passage naming it is not asked again.
    once = RecordingBackend("桂花糕（10枚装）的保质期是7天。[2]")
    answer_question(once, "桂花糕（10枚装）的保质期是多久？", [pastry, cake], max_tokens=64, temperature=0.0)
    assert len(once.prompts) == 1
