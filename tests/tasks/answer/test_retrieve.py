"""Ranking logic: fusion, the dense weight and the keyword index, without models or stores."""

from __future__ import annotations

import pytest

from tasks.answer.retrieve import fuse, relevance
from tasks.embed.embedder import dense_weight
from tasks.store.keyword import KeywordIndex
from tasks.text import tokenize

pytestmark = pytest.mark.unit


def test_fuse_adds_weighted_reciprocal_ranks():
    dense = [("a", 0.9), ("b", 0.8)]
    keyword = [("b", 7.0), ("c", 3.0)]
    fused = dict(fuse(dense, keyword, w_dense=1.0))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61) and fused["c"] == pytest.approx(1 / 62)
    assert [cid for cid, _ in fuse(dense, keyword, 1.0)] == ["b", "a", "c"]
    # A blind dense ranking (weight 0) cannot move anything: the keyword order stands.
    assert [cid for cid, _ in fuse(dense, keyword, 0.0)][:2] == ["b", "c"]


def test_dense_weight_drops_with_chinese_and_unknown_pieces():
    assert dense_weight("What is the refund window?") == 1.0
    assert dense_weight("退款期限是多久？") == 0.0
    assert 0.0 < dense_weight("S7 robot 的 battery warranty") < 1.0
    assert dense_weight("plain english", unknown_share=0.25) == pytest.approx(0.5)
    # A multilingual model reads Chinese: only its unknown pieces count.
    assert dense_weight("退款期限是多久？", english_only=False) == 1.0


def test_relevance_per_mode():
    assert relevance("dense", 0.7, 0.1, 1.0, 1.0) == 0.7
    assert relevance("keyword", 0.7, 0.4, 1.0, 1.0) == 0.4
    # Hybrid trusts the dense similarity only as far as the embedder reads both question and passage.
    assert relevance("hybrid", 0.8, 0.3, 1.0, 0.5) == pytest.approx(0.4)
    assert relevance("hybrid", 0.8, 0.3, 0.0, 1.0) == pytest.approx(0.3)


def test_keyword_index_ranks_chinese_and_english_and_measures_coverage():
    docs = {
        "leave": "员工每年有十五天带薪年假，需提前两周申请。",
        "travel": "出差到柏林每晚住宿费最多报销150欧元。",
        "refund": "Customers may return a product within 30 days of delivery.",
    }
    index = KeywordIndex.build(list(docs), [tokenize(t) for t in docs.values()])
    top = index.search(tokenize("柏林住宿费最多报销多少？"), 3)
    assert top[0][0] == "travel" and all(score > 0 for _, score in top)
    assert index.search(tokenize("return a product after delivery"), 3)[0][0] == "refund"
    assert index.search(tokenize("return a product"), 3, allowed={"leave"}) == []
    q = tokenize("return window for a product")
    assert index.coverage(q, "refund") == pytest.approx(
        sum(index.idf_of(t) for t in set(q) if t in {"return", "product"}) / sum(index.idf_of(t) for t in set(q))
    )
    assert index.coverage(q, "unknown-chunk") == 0.0
    assert KeywordIndex.build([], []).search(q, 5) == []


def test_select_context_keeps_relevant_passages_close_to_the_best():
    from tasks.answer.evidence import select_context

    ps = [{"chunk_id": c, "score": s} for c, s in [("a", 0.9), ("b", 0.8), ("c", 0.5), ("d", 0.2)]]
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.0)] == ["a", "b", "c"]
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.85)] == ["a", "b"]
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 1.0)] == ["a"]
    assert select_context(ps, 0.95, 0.0) == []  # nothing relevant: the question is refused
    # A relevant passage that lists the tiers the question's quantity falls in stays, however far below the best.
    levels = "金叶会员：累计消费满5000元，享受9折\n墨叶会员：累计消费满20000元，享受8.8折"
    ps = [
        {"chunk_id": "heading", "score": 0.9, "text": "四、会员等级\n会员等级按近12个月累计消费金额确定："},
        {"chunk_id": "levels", "score": 0.4, "text": levels},
        {"chunk_id": "other", "score": 0.4, "text": "积分可在下单时抵扣现金。"},
    ]
    kept = select_context(ps, 0.3, 0.85, "累计消费满20000元的会员属于哪个等级？")
    assert [p["chunk_id"] for p in kept] == ["heading", "levels"]


def test_sentence_window_keeps_the_sentences_around_what_the_question_asks():
    from tasks.answer.evidence import narrow, sentence_window

    text = (
        "《战国无双3》是由光荣和ω-force开发的正统续作。本作以三大故事为主轴。游戏于2009年在日本发售。"
        "另外本作还有新的角色。价格是3.5万日元。"
    )
    got = sentence_window(text, tokenize("游戏是哪一年发售的？"), 1)
    assert got == "… 本作以三大故事为主轴。游戏于2009年在日本发售。另外本作还有新的角色。 …"
    assert "3.5万日元" in sentence_window(text, tokenize("价格是多少日元"), 1)  # 3.5 is not a sentence end
    english = "The S7 has a 5200 mAh battery. It mops. It vacuums. It docks. The warranty lasts 2 years."
    assert (
        sentence_window(english, tokenize("How long does the warranty last?"), 1)
        == "… It docks. The warranty lasts 2 years."
    )
    # Off, too short to cut, or nothing matches: the passage is kept whole.
    assert sentence_window(text, tokenize("游戏是哪一年发售的？"), 0) == text
    assert sentence_window("One. Two. Three.", tokenize("two"), 1) == "One. Two. Three."
    assert sentence_window(english, tokenize("zebra"), 1) == english
    passages = [{"chunk_id": "a", "text": english}]
    assert narrow(passages, "zebra?", 0) is passages
    assert narrow(passages, "warranty?", 1)[0]["text"].endswith("2 years.")
    # A list of tiers stays whole: a window around "6个月" would keep only the last tier's 18 days.
    leave = (
        "一、年假\n员工连续工作满1年不满5年的，年假为7天；满5年不满10年的，年假为12天；满10年及以上的，年假为18天。"
        "试用期为3个月（管理岗为6个月），试用期内不享受年假。当年未休完的年假可顺延至次年3月31日，逾期作废。"
    )
    question = "How many days of annual leave does an employee with 6 years of service get?"
    assert "年假为12天" not in sentence_window(leave, tokenize(question), 1)
    assert narrow([{"chunk_id": "b", "text": leave}], question, 1)[0]["text"] == leave


def test_sentence_window_does_not_weigh_the_passages_subject():
    """扁掌龙亚科 is in most sentences of its article: every one of them matched the question half as well as the one
    that answers it, and the window kept the whole paragraph."""
    from tasks.answer.evidence import sentence_window

    article = (
        "扁掌龙亚科是有鳞目沧龙科的一科，生存于白垩纪晚期。戴尔·罗素将扁掌龙亚科定义为具有以下特征。"
        "扁掌龙亚科的化石可发现于各大洲，但澳洲的化石仍有争议。在沧龙科中，扁掌龙亚科的头部较短。"
        "大部分扁掌龙亚科是鱼食性动物。体型较大的物种可能也以小型海生爬行动物为食。扁掌龙亚科身长介于12到25公尺之间。"
    )
    got = sentence_window(article, tokenize("扁掌龙亚科化石在哪些洲有过发现？"), 1)
    assert got == (
        "… 戴尔·罗素将扁掌龙亚科定义为具有以下特征。扁掌龙亚科的化石可发现于各大洲，但澳洲的化石仍有争议。"
        "在沧龙科中，扁掌龙亚科的头部较短。 …"
    )
    # Only the subject matches: it is weighed after all, and the sentences that hold it stay.
    assert "身长介于12到25公尺" in sentence_window(article, tokenize("扁掌龙亚科有多长？"), 1)


def test_select_context_keeps_the_keyword_rankings_first_passage():
    from tasks.answer.evidence import select_context

    # The error-code table matches the question's rare words best (keywords) but reads as a list to the embedder.
    ps = [
        {"chunk_id": "intro", "score": 0.57, "dense_score": 0.57, "keyword_score": 4.8},
        {"chunk_id": "overview", "score": 0.50, "dense_score": 0.37, "keyword_score": 5.6},
        {"chunk_id": "table", "score": 0.44, "dense_score": 0.25, "keyword_score": 5.9},
        {"chunk_id": "faq", "score": 0.39, "dense_score": 0.39, "keyword_score": None},
    ]
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.8)] == ["intro", "overview", "table"]  # not faq
    assert select_context(ps, 0.6, 0.8) == []  # the first of a ranking stays only when it is relevant


def test_sentence_window_keeps_a_rare_word_in_a_list_and_a_table_row_with_its_header():
    from tasks.answer.evidence import key_sentences, sentence_window

    hotels = (
        "第三章　住宿标准\n住宿费按每人每晚的上限实报实销，超出部分由员工自行承担：\n北京、上海：每晚不超过600元；\n"
        "广州、杭州、成都：每晚不超过450元；\n其他国内城市：每晚不超过350元；\n柏林、慕尼黑等德国城市：每晚不超过140欧元；\n"
        "其他欧洲城市：每晚不超过160欧元。\n两名同性别员工同行出差的，原则上合住一间标准间。"
    )
    question = tokenize("员工去柏林出差，酒店住宿费每晚最多可以报销多少？")
    assert "140欧元" in sentence_window(hotels, question, 1)  # 柏林 is in one line only: that line stays
    focused = key_sentences(hotels, question)  # no neighbours: the other cities' figures are gone
    assert "柏林、慕尼黑等德国城市：每晚不超过140欧元；" in focused
    assert not any(figure in focused for figure in ("600元", "450元", "350元", "160欧元"))
    table = "\n".join(
        ["| SKU | Product | Price CNY | Price EUR |", "|---|---|---|---|"]
        + [f"| X{i} | Model {i} | {1000 + i} | {100 + i} |" for i in range(8)]
        + ["| SD-D3 | Dock D3 station | 1699 | 229 |"]
    )
    got = sentence_window(table, tokenize("What does the Dock D3 station cost in EUR?"), 1)
    assert got.startswith("| SKU | Product | Price CNY | Price EUR |\n|---|---|---|---|")
    assert got.endswith("| SD-D3 | Dock D3 station | 1699 | 229 |")
    titled = "Prices by product\n" + table  # a table chunk carries its title (tasks/ingest/split.py)
    assert sentence_window(titled, tokenize("What does the Dock D3 station cost in EUR?"), 1).startswith(
        "Prices by product\n| SKU | Product | Price CNY | Price EUR |\n|---|---|---|---|"
    )


def test_a_table_that_names_the_questions_cell_stays_below_the_keep_ratio():
    """The SLA table whose P1 row and Enterprise column the question names was cut at 0.66 of a prose passage that
    repeats the question's words; the answer then took that prose's figure."""
    from tasks.answer.evidence import select_context

    question = "What is the P1 response time for Corvid Cloud Enterprise customers?"
    table = (
        "Support response times\n| Priority | Standard | Business | Enterprise |\n|---|---|---|---|\n"
        "| P1 (service down) | 4 hours | 1 hour | 30 minutes |\n| P2 (degraded) | 1 business day | 8 hours | 4 hours |"
    )
    prose = "Enterprise customers of Corvid Cloud get a response time report; P1 incidents are closed within 24 hours."
    other = "| Plan | Price |\n|---|---|\n| Standard | 10 EUR |\n| Enterprise | 90 EUR |"
    ps = [
        {"chunk_id": "prose", "score": 0.60, "text": prose},
        {"chunk_id": "sla", "score": 0.40, "text": table},
        {"chunk_id": "prices", "score": 0.40, "text": other},
    ]
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.8, question)] == ["prose", "sla"]
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.8)] == ["prose"]  # without the question: the ratio alone
    low = [ps[0], {**ps[1], "score": 0.35}]  # under 0.6 x the best: cut
    assert [p["chunk_id"] for p in select_context(low, 0.3, 0.8, question)] == ["prose"]


def test_a_table_row_is_cut_whole_never_at_a_semicolon_in_its_cells():
    """A row whose cell lists two cases ("钓鱼邮件链接被点击；单个账号被盗用") is one unit of the cut: split at
    the "；", the row named by its code lost its figures, and the model gave the first row's figure for SEC-3."""
    from tasks.answer.evidence import key_sentences, sentence_window

    table = (
        "二、事件分级与处置时限\n| 级别 | 典型情形 | 响应时限 | 处置完成时限 |\n|---|---|---|---|\n"
        "| SEC-1（特别严重） | 客户信息大量泄露；ERP全部中断 | 30分钟 | 24小时内控制事态 |\n"
        "| SEC-2（严重） | 单个业务系统中断；勒索软件感染服务器 | 2小时 | 3个工作日 |\n"
        "| SEC-3（较大） | 钓鱼邮件链接被点击；单个账号被盗用 | 8小时 | 5个工作日 |\n"
        "| SEC-4（一般） | 违反密码规定；丢失设备 | 1个工作日 | 15个工作日 |\n"
        "| SEC-5（轻微） | 可疑登录；扫描 | 2个工作日 | 20个工作日 |\n"
        "级别由信息安全经理确定。无法确定时，按较高级别处理。复盘报告须在10个工作日内提交。"
    )
    question = tokenize("SEC-3级信息安全事件的处置完成时限是多久？")
    got = sentence_window(table, question, 1)
    row = "| SEC-3（较大） | 钓鱼邮件链接被点击；单个账号被盗用 | 8小时 | 5个工作日 |"
    assert row in got.splitlines()
    assert all(line.count("|") == 5 for line in got.splitlines() if line.startswith("|"))  # no row cut short
    assert row in key_sentences(table, question).splitlines()


def test_a_passage_in_the_other_language_is_judged_with_its_relevance_raised():
    """Its relevance is raised against the best passage's and, more, against min_score."""
    from tasks.answer.evidence import ACROSS_LANGUAGES, ACROSS_LANGUAGES_MIN, select_context

    ps = [
        {"chunk_id": "zh", "score": 0.40, "text": "员工每月可报销25欧元的网络费用。"},
        {"chunk_id": "en", "score": 0.30, "text": "Rotterdam staff get an internet allowance of EUR 25 a month."},
    ]
    question = "鹿特丹办公室员工每月的网络补贴是多少？"
    # Without the question, the English passage is under 0.8 x the best and is cut; with it, 0.30 x 1.25 stays.
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.8)] == ["zh"]
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.8, question)] == ["zh", "en"]
    # An English question over the English passage alone: nothing raised, so 0.25 stays under min_score.
    low = [{"chunk_id": "en", "score": 0.25, "text": ps[1]["text"]}]
    assert select_context(low, 0.3, 0.8, "What is the internet allowance in Rotterdam?") == []
    assert select_context(low, 0.3, 0.8, question)[0]["chunk_id"] == "en"  # 0.25 x 1.25 >= 0.3
    assert ACROSS_LANGUAGES > 1
    # Against min_score the other language counts for more still (ACROSS_LANGUAGES_MIN): the English passage at 0.23
    # is given to a Chinese question (refused at 1.25) and not to an English one; at 0.2 both are refused.
    lower = [{**low[0], "score": 0.23}]
    assert [p["chunk_id"] for p in select_context(lower, 0.3, 0.8, question)] == ["en"]
    assert select_context(lower, 0.3, 0.8, "What is the internet allowance in Rotterdam?") == []
    assert select_context([{**low[0], "score": 0.2}], 0.3, 0.8, question) == []
    assert ACROSS_LANGUAGES_MIN > ACROSS_LANGUAGES


class _Chunks:
    """A store whose get() returns the chunks asked for that it has."""

    def __init__(self, texts: dict[str, str]):
        from tasks.store.base import StoredChunk

        self.chunks = {cid: StoredChunk(cid, text, {}) for cid, text in texts.items()}

    def get(self, ids):
        return {cid: self.chunks[cid] for cid in ids if cid in self.chunks}


def test_a_top_k_of_one_language_gives_its_last_place_to_the_dense_rankings_best_passage_in_the_other():
    from tasks.answer.retrieve import _other_language_slot

    store = _Chunks(
        {"zh1": "退货期为签收后15天。", "zh2": "退款在7天内到账。", "en1": "Returns within 30 days of delivery."}
    )
    rows = store.get(["zh1", "zh2"])
    dense = [("zh1", 0.5), ("en1", 0.45), ("zh2", 0.4)]
    # A Chinese question whose top 2 are both Chinese: the dense ranking's best English passage takes the last place.
    assert _other_language_slot("退货期多长？", ["zh1", "zh2"], dense, dict(rows), store, 2) == ["zh1", "en1"]
    # An English question over the same top 2 already reads the other language: left as it is.
    assert _other_language_slot("How long are returns?", ["zh1", "zh2"], dense, dict(rows), store, 2) == ["zh1", "zh2"]
    # No passage of the other language among the dense ranking's first: left as it is.
    assert _other_language_slot("退货期多长？", ["zh1", "zh2"], dense[:1], dict(rows), store, 2) == ["zh1", "zh2"]


def test_a_passage_the_english_reader_finds_close_to_its_best_stays():
    from tasks.answer.evidence import READING_KEEP, select_context

    question = "Super Bowl 2021 location"
    ps = [
        # Shares every word of the question, about another year: the best relevance by keyword coverage.
        {"chunk_id": "2022", "score": 1.0, "reading": 0.66, "text": "Super Bowl 2021 location? In 2022 it is LA."},
        {"chunk_id": "tampa", "score": 0.66, "reading": 0.73, "text": "The game was played in Tampa, Florida."},
        {"chunk_id": "tickets", "score": 0.66, "reading": 0.40, "text": "On Location sells Super Bowl tickets."},
    ]
    # 0.66 is under 0.8 x 1.0, but the English reader puts tampa first: it stays; tickets, read far, does not.
    assert [p["chunk_id"] for p in select_context(ps, 0.3, 0.8, question)] == ["2022", "tampa"]
    without = [{k: v for k, v in p.items() if k != "reading"} for p in ps]
    assert [p["chunk_id"] for p in select_context(without, 0.3, 0.8, question)] == ["2022"]
    # Read close, but not relevant at all: still refused.
    assert select_context([{**ps[1], "score": 0.2}], 0.3, 0.8, question) == []
    assert 0.5 < READING_KEEP < 1


def test_an_english_reader_that_cannot_load_leaves_the_passages_unread_and_says_so_once(monkeypatch, caplog):
    import tasks.answer.retrieve as retrieve
    from tasks.embed.embedder import EmbedderConfig

    calls = []

    def broken(config):
        calls.append(config.model)
        raise OSError("model.onnx: No such file or directory")

    monkeypatch.setattr(retrieve, "get_embedder", broken)
    monkeypatch.setattr(retrieve, "_reader_failed", [])
    passages = [{"text": "The game was played in Tampa, Florida."}]
    with caplog.at_level("WARNING", logger="kbflow.tasks.answer.retrieve"):
        retrieve.english_reading("Where was the Super Bowl played?", passages, EmbedderConfig())
        retrieve.english_reading("Where was the Super Bowl played?", passages, EmbedderConfig())
    assert "reading" not in passages[0]  # chosen by relevance alone, as before the reader
    assert calls == ["all-MiniLM-L6-v2"]  # not tried again for every question
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "No such file or directory" in warnings[0]
