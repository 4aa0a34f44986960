"""Grounding on hand-made answers: copied, paraphrased, invented numbers, in English and Chinese."""

from __future__ import annotations

import pytest

from tasks.report.grounding import (
    borrowed_figures,
    check_grounding,
    cited_texts,
    missing_numbers,
    no_figure,
    other_code_rows,
    outside_tier,
    support_score,
    table_cell,
    wrong_column,
)

pytestmark = pytest.mark.unit

EN = (
    "Customers can return unused products within 30 days of delivery for a full refund. "
    "Refunds are paid to the original card within 14 days."
)
ZH = "客户可在收货后30天内退回未使用的商品并获得全额退款。退款将在14个工作日内退回原支付账户。"
Q_EN = "What is the return policy?"
Q_ZH = "退货政策是什么？"


def answered(question: str, answer: str, text: str | None = EN, **kw) -> dict:
    citations = [] if text is None else [{"source": "policy.docx", "page": 1, "chunk_id": "c1", "text": text}]
    return {
        "id": "q1",
        "question": question,
        "answer": answer,
        "refused": False,
        "error": None,
        "citations": citations,
        "retrieved": [],
        **kw,
    }


# ------------------------------------------------------------------ support_score


def test_copied_answer_is_fully_supported():
    copied = "Customers can return unused products within 30 days of delivery for a full refund [1]."
    assert support_score(copied, Q_EN, [EN]) == 1.0
    assert support_score("客户可在收货后30天内退回未使用的商品并获得全额退款[1]。", Q_ZH, [ZH]) == 1.0
    assert check_grounding(answered(Q_EN, copied)) == {"support": 1.0, "unsupported": False, "flag_reason": None}


def test_paraphrase_gets_partial_support():
    # A paraphrase that keeps the passage's key words. Content tokens (return/policy are the question's):
    # after back customer days delivery full gets items refund sent used within + 30 (thirty);
    # in the passage: customer(s) days delivery full refund within + 30 -> 7/13
    en = (
        "Items that have not been used can be sent back within thirty days after delivery, "
        "and the customer gets a full refund [1]."
    )
    assert support_score(en, Q_EN, [EN]) == pytest.approx(7 / 13)  # 0.54, just above the 0.5 threshold
    # 使用 全额 可以 后 商品 天内 并 收货 未 退回 退款 + 30 (三十): all but 可以 (the passage says 可) -> 11/12
    zh = "收货后三十天内，未使用的商品可以退回，并全额退款[1]。"
    assert support_score(zh, Q_ZH, [ZH]) == pytest.approx(11 / 12)
    assert missing_numbers(en, Q_EN, [EN]) == [] and missing_numbers(zh, Q_ZH, [ZH]) == []  # 三十 = thirty = 30
    assert check_grounding(answered(Q_EN, en))["unsupported"] is False


def test_free_paraphrase_scores_low_a_known_limit_of_a_word_check():
    # Synonyms are not recognised: send back / items / money are not the passage's return / products / refund.
    # after arrive back days get items money send used within + 30 -> days within 30 found: 3/11
    en = "You can send back items you have not used within thirty days after they arrive and get your money back [1]."
    assert support_score(en, Q_EN, [EN]) == pytest.approx(3 / 11)
    assert check_grounding(answered(Q_EN, en))["flag_reason"] == "low support 0.27"
    # 以内 全部 可以 后 商品 天 收到 用过 的话 退还 钱会 + 30 -> 后 商品 天 30 found: 4/12
    zh = "商品在收到后三十天以内没有用过的话可以退，钱会全部退还[1]。"
    assert support_score(zh, Q_ZH, [ZH]) == pytest.approx(4 / 12)


def test_invented_number_is_flagged_even_when_the_words_match():
    en = "Refunds are paid to the original card within 45 days [1]."
    assert missing_numbers(en, Q_EN, [EN]) == ["45"]
    # refunds, paid, original, card, within, days are in the passage, 45 is not: 6/7, above the threshold, still flagged
    assert support_score(en, Q_EN, [EN]) == pytest.approx(6 / 7)
    got = check_grounding(answered(Q_EN, en))
    assert got["unsupported"] is True and got["flag_reason"] == "number 45 not in cited passages"
    zh = "退款将在20个工作日内退回原支付账户[1]。"
    got = check_grounding(answered(Q_ZH, zh, ZH))
    assert got["unsupported"] is True and got["flag_reason"] == "number 20 not in cited passages"


def test_numbers_must_appear_whole():
    assert missing_numbers("It takes 14 days.", "How long?", ["It takes 140 days."]) == ["14"]
    assert missing_numbers("It takes 14.5 days.", "How long?", ["It takes 14 days."]) == ["14.5"]
    assert missing_numbers("It takes 1,000 days.", "How long?", ["It takes 1000 days."]) == []
    assert missing_numbers("退款需要十四天。", "多久？", ["退款需要14天。"]) == []
    assert missing_numbers("Wait 30 days, then 60 days.", "After 30 days?", ["Nothing here."]) == ["60"]  # 30 is asked


def test_answers_with_nothing_beyond_the_question_have_no_score():
    assert support_score("How long do refunds take?", "How long do refunds take?", [EN]) is None
    assert support_score("[1]", Q_EN, [EN]) is None
    assert support_score("退货政策[1]。", Q_ZH, [ZH]) is None
    # No score, but a flag: a citation mark where the answer should be is the commonest empty answer.
    got = check_grounding(answered("How long do refunds take?", "Refunds take [1]."))
    assert got == {"support": None, "unsupported": True, "flag_reason": "the answer says nothing the question does not"}
    # A why-question answered with its own words and a "because": no reason given.
    question, passage = "新罗王来支援，为什么为时已晚？", "百济都城已被攻破，新罗王来支援时为时已晚。"
    why = answered(question, "新罗王来支援，因为为时已晚。[1]", passage)
    assert check_grounding(why)["flag_reason"] == "the answer says nothing the question does not"
    reason = answered(question, "因为百济都城已被攻破。[1]", passage)
    assert check_grounding(reason)["unsupported"] is False


def test_an_answer_over_a_passage_in_the_other_language_is_checked_by_what_it_copies():
    passage = "Shen Lanting has been chief executive of Yunmo since 2019. HR manager Zhou Xiaoting approves leave."
    # A Chinese answer naming the person as the English passage writes it: the name is checked, and found.
    named = answered("云墨茶食的首席执行官是谁？", "云墨茶食的首席执行官是 Shen Lanting。[1]", passage)
    assert support_score(named["answer"], named["question"], [passage]) == 1.0
    assert check_grounding(named)["unsupported"] is False
    wrong = answered("云墨茶食的首席执行官是谁？", "云墨茶食的首席执行官是 Jonas Albrecht。[1]", passage)
    assert check_grounding(wrong)["flag_reason"] == "low support 0.00"
    # Translated words can't be checked against English, but the answer does say something: not "says nothing".
    translated = answered("请假超过3天由谁审批？", "由人力资源部经理周晓婷审批。[1]", passage)
    assert check_grounding(translated) == {"support": None, "unsupported": False, "flag_reason": None}


def test_words_that_say_where_an_answer_comes_from_are_no_claim():
    passage = "Error E12: main brush jammed. Remove the brush and clear the hair."
    question = "Which error code does the Starling S7 show when its main brush is jammed?"
    framed = "The error code E12 indicates that the main brush is jammed. This is described in [1]."
    assert support_score(framed, question, [passage]) == 1.0  # e12; not "indicates", "described"
    assert check_grounding(answered(question, framed, passage))["unsupported"] is False
    zh = answered("E12 表示什么故障？", "根据段落 [1]，E12 表示主刷被缠住。", "E12：主刷被缠住，请取下主刷清理毛发。")
    assert check_grounding(zh)["unsupported"] is False
    # Nor are the words that name it: "called" is not said far from the question in the passage, it frames the name.
    headset = "HoloLens is Microsoft's AR headset for business. Its 2019 successor was called HoloLens 2 in Barcelona."
    named = answered(
        "What is the name of Microsoft's AR headset?", "Microsoft's AR headset is called HoloLens. [1]", headset
    )
    assert check_grounding(named)["unsupported"] is False


def test_an_amount_answered_with_the_questions_own_figure_is_flagged():
    passage = "An employee with 12 years of service gets 17 days of annual leave. 工龄满10年的员工每年年假17天。"
    question = "How many days of annual leave does an employee with 12 years of service get?"
    borrowed = answered(question, "An employee with 12 years of service gets 12 days of annual leave. [1]", passage)
    assert check_grounding(borrowed)["flag_reason"] == (
        "its figure 12 is the question's own: the amount asked for is not stated"
    )
    right = answered(question, "An employee with 12 years of service gets 17 days of annual leave. [1]", passage)
    assert check_grounding(right)["unsupported"] is False
    # A question that asks for no amount may be answered with its own figure.
    assert borrowed_figures("Yes, 17 days.", "Do staff with 12 years of service get 17 days?") == []
    zh = answered("工龄满10年的员工每年有几天年假？", "工龄满10年的员工每年有10天年假。[1]", passage)
    assert "the question's own" in check_grounding(zh)["flag_reason"]


# ------------------------------------------------------------------ check_grounding


def test_an_amount_asked_for_and_answered_without_any_figure_is_flagged():
    text = "Pellaro Dealer Support: Service Level Agreement (Europe)\n| Plan | P3 first response |\n|---|---|\n"
    text += "| Standard | 3 business days |"
    cite = [{"source": "sla.md", "text": text}]
    question = "标准计划下P3级别工单的首次响应时间是多少？"
    wrong = check_grounding(
        answered(question, "Pellaro Dealer Support: Service Level Agreement (Europe)", None, citations=cite)
    )
    assert "the question asks how much, and the answer states no figure" in wrong["flag_reason"]
    right = check_grounding(
        answered(question, "标准计划下P3级别工单的首次响应时间是三个工作日。[1]", None, citations=cite)
    )
    assert "states no figure" not in (right["flag_reason"] or "")  # 三 is a figure
    assert not no_figure("需要提供身份证和发票。[1]", "退货需要提供哪几种材料？")  # which ones: a list


def test_an_answer_that_stops_at_a_colon_is_flagged():
    cite = [
        {"source": "terms.pdf", "text": "The discount depends on the net value of a single order: 1,500 EUR gets 8%."}
    ]
    question = "What volume discount does a retailer get on a single order with a net value of 1,500 EUR?"
    cut = check_grounding(
        answered(question, "The discount depends on the net value of a single order: [1]", None, citations=cite)
    )
    assert "the answer stops at a colon, before what it was to say" in cut["flag_reason"]
    whole = check_grounding(answered(question, "The discount is 8% [1].", None, citations=cite))
    assert "colon" not in (whole["flag_reason"] or "")


def test_low_support_reason_names_the_score():
    row = answered("Who pays refunds?", "Refunds are paid by the finance team [1].", "Refunds are paid within 14 days.")
    # content: paid, finance, team; only paid is in the passage -> 1/3
    assert check_grounding(row) == {
        "support": pytest.approx(1 / 3),
        "unsupported": True,
        "flag_reason": "low support 0.33",
    }
    assert check_grounding(row, threshold=0.3)["unsupported"] is False


def test_answer_without_valid_citation_is_flagged():
    got = check_grounding(answered(Q_EN, "Within 30 days.", None))
    assert got == {"support": None, "unsupported": True, "flag_reason": "no citation"}
    blank = answered(Q_EN, "Within 30 days.", None, citations=[{"source": "", "page": None}])
    assert check_grounding(blank)["flag_reason"] == "no citation"


def test_refused_and_failed_rows_are_not_checked():
    refused = answered(Q_EN, "Not found in the knowledge base.", None, refused=True)
    failed = answered(Q_EN, "", None, error="LLM timeout")
    for row in (refused, failed):
        assert check_grounding(row) == {"support": None, "unsupported": False, "flag_reason": None}


def test_citations_without_text_use_the_retrieved_passage():
    retrieved = [
        {"source": "policy.docx", "page": 1, "chunk_id": "c1", "text": "Refunds within 14 days."},
        {"source": "policy.docx", "page": 2, "chunk_id": "c2", "text": "Premium costs 42 euros."},
    ]
    assert cited_texts([{"source": "policy.docx", "page": 2}], retrieved) == ["Premium costs 42 euros."]
    assert cited_texts([{"source": "policy.docx", "page": 9, "chunk_id": "c1"}], retrieved) == [
        "Refunds within 14 days."
    ]
    assert cited_texts([], retrieved) is None
    row = answered(
        "What does premium cost?",
        "42 euros [1].",
        None,
        citations=[{"source": "policy.docx", "page": 2}],
        retrieved=retrieved,
    )
    assert check_grounding(row) == {"support": 1.0, "unsupported": False, "flag_reason": None}


REFUND = (
    "Customers may return a product bought in the Starling online store within 21 days after delivery. "
    "Once a return is registered, print the return label and send the parcel within 7 days."
)


def test_a_real_figure_beside_other_terms_is_flagged_and_the_right_one_is_not():
    question = "How many days after delivery can a customer return a product bought in the Starling online store?"
    wrong = check_grounding(answered(question, "7 days [1].", None, citations=[{"source": "r.docx", "text": REFUND}]))
    assert wrong["support"] == 1.0  # the figure is in the passage: a word check passes it
    assert wrong["unsupported"] is True
    assert wrong["flag_reason"] == (
        "7 belongs to another part of the passage; the passage's sentence closest to the question says 21"
    )
    right = check_grounding(answered(question, "21 days [1].", None, citations=[{"source": "r.docx", "text": REFUND}]))
    assert right == {"support": 1.0, "unsupported": False, "flag_reason": None}


def test_an_answer_without_a_mark_is_checked_against_the_passages_it_was_given():
    price = "Side brush set SP-S7-SB02 9.90 EUR"
    retrieved = [{"source": "prices.xlsx", "page": None, "chunk_id": "c1", "text": price}]
    row = answered("What is the part code of the side brush set?", "SP-S7-SB02", None, retrieved=retrieved)
    assert check_grounding(row) == {"support": 1.0, "unsupported": False, "flag_reason": None}
    invented = answered("What is the part code of the side brush set?", "SP-X9-ZZ77", None, retrieved=retrieved)
    assert check_grounding(invented)["unsupported"] is True


HOTELS = (
    "第三章　住宿标准\n住宿费按每人每晚的上限实报实销，超出部分由员工自行承担：\n北京、上海：每晚不超过600元；\n"
    "其他国内城市：每晚不超过350元；\n柏林、慕尼黑等德国城市：每晚不超过140欧元；\n其他欧洲城市：每晚不超过160欧元。"
)


def test_a_lead_in_sentence_without_a_figure_does_not_hide_which_figure_is_asked_for():
    # The sentence closest to the question (住宿费…每晚…员工) states no figure; the figures are judged against the
    # best sentence that does state one: Berlin's.
    question = "员工去柏林出差，酒店住宿费每晚最多可以报销多少？"
    cite = [{"source": "travel.docx", "text": HOTELS}]
    wrong = check_grounding(answered(question, "每晚最多可以报销600元。[1]", None, citations=cite))
    assert wrong["unsupported"] is True
    assert wrong["flag_reason"].startswith("600 belongs to another part of the passage")
    assert wrong["flag_reason"].endswith("says 140")
    right = check_grounding(answered(question, "每晚最多可以报销140欧元。[1]", None, citations=cite))
    assert right == {"support": 1.0, "unsupported": False, "flag_reason": None}


SLA = (
    "Support response times\n| Priority | Standard | Business | Enterprise |\n|---|---|---|---|\n"
    "| P1 (service down) | 4 hours | 1 hour | 30 minutes |\n"
    "| P2 (major feature broken) | 1 business day | 8 hours | 4 hours |"
)
CREDITS = (
    "The P1 response time for Enterprise customers was 45 minutes until 2024. A missed response earns a credit of 10% "
    "of the monthly fee."
)


def test_a_table_rows_figure_is_left_to_the_table_checks_not_matched_as_a_sentence():
    # The row "P1 (service down) | … | 30 minutes" lacks its column's header (Enterprise), so as a sentence it
    # shares fewer of the question's words than the credits' prose: a right cell was flagged "another part".
    question = "What is the P1 response time for Enterprise customers?"
    given = [{"source": "sla.md", "text": SLA}, {"source": "sla.md", "text": CREDITS}]
    said = "The P1 response time for Enterprise customers is 30 minutes [1]."
    row = answered(question, said, None, citations=given[:1])
    assert check_grounding({**row, "retrieved": given})["flag_reason"] is None
    # A prose figure of another thing is still flagged.
    wrong = answered(question, "The P1 response time for Enterprise customers is 10% [2].", None, citations=given[1:])
    assert "10 belongs to another part of the passage" in check_grounding({**wrong, "retrieved": given})["flag_reason"]


def test_a_figure_a_passage_in_the_other_language_states_is_not_judged_by_the_chinese_sentences():
    # The EU shop's 30 days is in the English passage; the Chinese passage states 30 only for exchanges.
    question = "科沃德欧盟网店的退货期是签收后多少天？"
    zh = "自签收之日起15天内，商品完好可申请退货。签收后30天内出现性能故障的，可申请换货一次。"
    en = "Return window\nYou may return any product within 30 days of delivery for a full refund."
    given = [{"source": "returns_zh.txt", "text": zh}, {"source": "returns_eu.md", "text": en}]
    row = {**answered(question, "30天 [2]", None, citations=given[1:]), "retrieved": given}
    assert check_grounding(row)["flag_reason"] is None
    alone = {**answered(question, "30天 [1]", None, citations=given[:1]), "retrieved": given[:1]}
    assert check_grounding(alone)["flag_reason"].startswith("30 belongs to another part of the passage")


def test_a_figure_beside_every_figure_of_the_question_is_where_the_question_points():
    # The first clause shares more of the question's words (员工…连续工作…年假) through its lead-in; the second
    # holds the question's own 5 and 10.
    rules = "员工在本公司连续工作满1年不满5年的，年假为7天；满5年不满10年的，年假为12天；满10年及以上的，年假为18天。"
    question = "在公司连续工作满5年不满10年的员工，年假有几天？"
    cite = [{"source": "leave_rules_zh.docx", "text": rules}]
    assert check_grounding(answered(question, "年假为12天。[1]", None, citations=cite))["flag_reason"] is None
    wrong = check_grounding(answered(question, "年假为18天。[1]", None, citations=cite))
    assert wrong["flag_reason"].startswith("18 belongs to another part of the passage")


DEALER_SLA = (
    "| Priority | Standard: first response | Premium: first response |\n|---|---|---|\n"
    "| P3 | 3 business days | 1 business day |\n| P4 | 5 business days | 2 business days |"
)


def test_a_figure_from_the_row_of_another_code_is_flagged_in_either_language():
    cite = [{"source": "dealer_sla.md", "text": DEALER_SLA}]
    zh = "欧洲经销商服务协议中，标准计划下P3级别工单的首次响应时间是多少？"
    assert check_grounding(answered(zh, "5 business days [1]", None, citations=cite))["flag_reason"] == (
        "5 is in the table's 'P4' row; the question asks about P3"
    )
    for question in (
        zh,
        "What is the Standard plan's first response time for a P3 case?",
    ):
        wrong = check_grounding(answered(question, "5 business days [1]", None, citations=cite))
        assert wrong["unsupported"] is True
        assert other_code_rows("5 business days [1]", question, [DEALER_SLA]) == [("5", "P4", "P3")]
        assert check_grounding(answered(question, "3 business days [1]", None, citations=cite))["flag_reason"] is None
    # The English question names the cell by its column too (table_cell); the Chinese one only by its row's code.
    # A figure of the question's own row too (P4's 2 business days is not P3's) is not this check's to judge.
    assert other_code_rows("2 business days [1]", "What is P4's Premium response?", [DEALER_SLA]) == []


RACES = (
    "Montero drove for Jordan from 2004. In 2005 Montero missed one race, the Brazilian Grand Prix, after a crash in "
    "practice. The team's best result that year came at the United States Grand Prix, where only six cars started."
)


def test_a_name_from_another_part_of_the_passage_is_flagged_and_the_right_one_is_not():
    question = "Which race did Montero miss in 2005?"
    cite = [{"source": "f1.txt", "text": RACES}]
    wrong = check_grounding(answered(question, "He missed the United States Grand Prix [1].", None, citations=cite))
    assert wrong["unsupported"] is True
    assert "said in the passage of something other than what was asked" in wrong["flag_reason"]
    right = check_grounding(answered(question, "He missed the Brazilian Grand Prix [1].", None, citations=cite))
    assert right == {"support": 1.0, "unsupported": False, "flag_reason": None}


def test_a_name_is_judged_within_its_own_passage_not_against_another_documents_closer_wording():
    # Another document's sentence shares more of the question's common words (可追溯到…时期); the answer's own
    # sentence (其制度可以追溯至西周时期) is still the closest in the passage that says it.
    question = "“乡里制”可追溯到什么时期？"
    own = "乡里制是中国古代农村的基层组织体系，县下有乡，乡下有里。其制度可以追溯至西周时期。乡里组织体系起于秦汉。"
    other = "阿尔坎塔拉是西班牙西部小城。阿尔坎塔拉城的历史可追溯到古罗马时期。中世纪时，该城市被阿拉伯人所征服。"
    retrieved = [{"source": "a.txt", "text": own}, {"source": "b.txt", "text": other}]
    right = answered(question, "乡里制可追溯到西周时期。[1]", None, citations=retrieved[:1], retrieved=retrieved)
    assert check_grounding(right) == {"support": 1.0, "unsupported": False, "flag_reason": None}


def test_an_answer_from_a_passage_about_another_year_is_flagged():
    question = "Who won the women's singles Wimbledon in 2019?"
    other = [{"source": "w2022.txt", "text": "Elena Rybakina won the women's singles title at Wimbledon 2022."}]
    own = [{"source": "w2019.txt", "text": "Simona Halep won the 2019 Wimbledon women's singles final."}]
    wrong = check_grounding(answered(question, "Elena Rybakina won it [1].", None, citations=other))
    assert wrong["unsupported"] is True
    assert "the question's year 2019 is not in the passage it rests on" in wrong["flag_reason"]
    right = check_grounding(answered(question, "Simona Halep won it [1].", None, citations=own))
    assert right == {"support": 1.0, "unsupported": False, "flag_reason": None}
    # A Chinese passage writes the year as 2019年; a question without a year is not judged this way.
    zh = [{"source": "w.txt", "text": "2019年温网女单冠军是哈勒普。"}]
    assert not check_grounding(answered("2019年温网女单冠军是谁？", "哈勒普。[1]", None, citations=zh))["unsupported"]
    # An amount of money is no year, whatever its figure.
    order = "What discount does a retailer get on a single order with a net value of 1500 EUR?"
    assert not check_grounding(answered(order, "8% [1].", None, citations=[{"source": "w.md", "text": "8% off"}]))[
        "unsupported"
    ]
    no_year = answered("Who won Wimbledon?", "Elena Rybakina [1].", None, citations=other)
    assert not check_grounding(no_year)["unsupported"]
    # The prompt shows each passage under its source path: a file named for the year states it, as the year look
    # that asked the model again reads it.
    named = [{"source": "wimbledon/2019_final.txt", "text": "Simona Halep won the women's singles final."}]
    assert check_grounding(answered(question, "Simona Halep won it [1].", None, citations=named))["flag_reason"] is None


def test_an_answer_from_a_passage_about_another_variant_the_question_names_in_brackets_is_flagged():
    """The question spells out 桂花糕（10枚装）; the answer's passage is about the 8-piece pastry, while another passage
    given names the 10-piece cake: flagged. A name no given passage holds is not judged this way."""
    question = "桂花糕（10枚装）的保质期是多久？"
    pastry = {"source": "launch.pptx", "chunk_id": "a", "text": "桂花龙井酥\n嘉兴工厂出品，8枚装\n保质期45天"}
    cake = {"source": "specs.csv", "chunk_id": "b", "text": "| YM-OC-10 | 桂花糕（10枚装） | 300 g | 7 days |"}
    wrong = check_grounding(answered(question, "保质期是45天。[1]", None, citations=[pastry], retrieved=[pastry, cake]))
    assert wrong["unsupported"] is True
    assert "the question's '10枚装' is not in the passage it rests on; another passage names it" in wrong["flag_reason"]
    right = check_grounding(answered(question, "保质期是7天。[2]", None, citations=[cake], retrieved=[pastry, cake]))
    assert "10枚装" not in (right["flag_reason"] or "")
    alone = check_grounding(answered(question, "保质期是45天。[1]", None, citations=[pastry], retrieved=[pastry]))
    assert "10枚装" not in (alone["flag_reason"] or "")


def test_a_phone_number_put_together_from_two_rows_is_flagged():
    rows = (
        "| city | partner | phone |\n|---|---|---|\n| Hamburg | Nordluft Service | +49 40 555 0927 |\n"
        "| Rotterdam | Corvid Service Centre | +31 10 555 0142 |"
    )
    question = "What is the phone number of the service partner in Hamburg?"
    cite = [{"source": "partners.csv", "text": rows}]
    wrong = check_grounding(answered(question, "It is +49 40 555 0142 [1].", None, citations=cite))
    assert wrong["unsupported"] is True
    assert "49 40 555 0142 is not stated as a whole in the passages" in wrong["flag_reason"]
    right = check_grounding(answered(question, "It is +49 40 555 0927 [1].", None, citations=cite))
    assert right == {"support": 1.0, "unsupported": False, "flag_reason": None}


SPECS = (
    "Corvid AP-60 and AP-90: technical specifications\n| Specification | AP-60 | AP-90 |\n|---|---|---|\n"
    "| Noise, sleep mode | 22 dB | 26 dB |\n| Noise, maximum speed | 52 dB | 58 dB |\n| Rated power | 45 W | 70 W |"
)


def test_a_figure_from_the_other_column_of_a_tables_row_is_flagged():
    question = "How loud is the Corvid AP-60 at maximum speed?"
    cite = [{"source": "specs.html", "text": SPECS}]
    wrong = check_grounding(
        answered(question, "The AP-60 is rated at 58 dB at maximum speed [1].", None, citations=cite)
    )
    assert wrong["unsupported"] is True
    assert "58 is in the table's 'AP-90' column; the question asks about 'AP-60'" in wrong["flag_reason"]
    right = check_grounding(
        answered(question, "The AP-60 is rated at 52 dB at maximum speed [1].", None, citations=cite)
    )
    assert right == {"support": 1.0, "unsupported": False, "flag_reason": None}
    # The prompt's cut of the table: rows left out are a line "…", and the header still names the columns.
    cut = "Corvid AP-60 and AP-90\n| Specification | AP-60 | AP-90 |\n|---|---|---|\n…\n"
    cut += "| Noise, maximum speed | 52 dB | 58 dB | …"
    assert wrong_column("58 dB", question, [cut]) == [("58", "AP-90", "AP-60")]
    # A question that names no column, or both, leaves the figure alone; so does a figure the prose states too.
    assert wrong_column("58 dB", "How loud is the purifier at maximum speed?", [SPECS]) == []
    assert wrong_column("58 dB", "How much louder is the AP-90 than the AP-60 at maximum speed?", [SPECS]) == []
    assert (
        wrong_column("58 dB", question, [SPECS + "\nAt maximum speed the AP-60 reaches 58 dB in a small room."]) == []
    )


def test_a_chinese_tables_column_is_told_by_the_words_its_header_alone_has():
    table = "| 职级 | 北京、上海 | 其他城市 |\n|---|---|---|\n| 普通员工 | 600元 | 400元 |\n| 经理 | 900元 | 600元 |"
    question = "普通员工在北京出差，每晚住宿标准是多少？"
    assert wrong_column("每晚400元。[1]", question, [table]) == [("400", "其他城市", "北京、上海")]
    assert wrong_column("每晚600元。[1]", question, [table]) == []  # also the other row's figure: not this check's


CODES = (
    "| code | device | meaning | steps | first_action |\n|---|---|---|---|---|\n"
    "| E21 | AP-90 | Fan speed sensor fault | 4 | Unplug for 30 seconds |\n"
    "| E21 | AP-60 | Fan motor stalled | 5 | Remove anything blocking the inlet |"
)


def test_a_figure_other_than_the_cell_the_question_names_is_flagged():
    question = "How many steps does the fix for error E21 on the AP-60 have?"
    cite = [{"source": "error_codes.csv", "text": CODES}]
    wrong = check_grounding(answered(question, "The fix has 4 steps [1].", None, citations=cite))
    assert wrong["unsupported"] is True
    assert "the table's 'E21' row gives '5' under 'steps'" in wrong["flag_reason"]
    right = check_grounding(answered(question, "The fix has 5 steps [1].", None, citations=cite))
    assert right == {"support": 1.0, "unsupported": False, "flag_reason": None}
    # A figure from prose about something else: the table's cell still says what the question asks.
    sla = (
        "The resolution target for P1 incidents is 24 hours on Enterprise.",
        "| Priority | Standard | Enterprise |\n|---|---|---|\n| P1 (service down) | 4 hours | 30 minutes |\n"
        "| P2 (major feature broken) | 1 business day | 4 hours |",
    )
    question = "What is the P1 response time for Enterprise customers?"
    assert table_cell("It is 24 hours [1].", question, list(sla)) == ("P1 (service down)", "Enterprise", "30 minutes")
    assert table_cell("It is 30 minutes [2].", question, list(sla)) is None


def test_a_table_cell_is_not_held_against_a_figure_stated_beside_more_of_the_question():
    # The row the question's other words point at (Hamburg, China) is not the one it asks about (Shanghai).
    hotels = (
        "| City | Hotel limit per night |\n|---|---|\n| Shanghai | 800 CNY |\n"
        "| Hamburg (visitors from China) | 130 EUR |"
    )
    question = "What is the nightly hotel limit in Shanghai for Hamburg staff travelling to China?"
    assert table_cell("It is 800 CNY [1].", question, [hotels]) is None
    # The figure's own sentence says the question's 熏制; the table's column is the brewing time.
    texts = [
        "「松烟」烟熏红茶\n采用松木烟熏工艺，熏制时间为12小时",
        "| 茶类 | 代表产品 | 水温 | 第一泡时间 |\n|---|---|---|---|\n| 红茶 | 「松烟」烟熏红茶 | 90℃ | 3分钟 |\n"
        "| 绿茶 | 西湖龙井 | 80℃ | 90秒 |",
    ]
    assert table_cell("12小时[1]", "「松烟」烟熏红茶的熏制时间是多少？", texts) is None
    # No row named (or two named alike): nothing to hold the answer to.
    assert table_cell("The fix has 4 steps [1].", "How many steps does the fix for error E21 have?", [CODES]) is None


def test_a_cell_without_a_figure_is_the_answer_and_a_verb_names_no_place():
    """The cell says 次日达 (next day); the prose's 2天 is stated beside 发往, a word of the question the cell
    lacks, but a verb says what is done, not which thing."""
    texts = [
        "配送时效\n| 收货地区 | 发货仓 | 茶叶（常温） | 糕点（冷链） |\n|---|---|---|---|\n"
        "| 江浙沪 | 嘉兴华东仓 | 1-2天 | 次日达 |\n| 华北、华中 | 嘉兴华东仓 | 2-4天 | 2天 |",
        "冷链订单使用泡沫保温箱加冰袋包装。因此冷链糕点只发往承诺时效在2天以内的地区。",
    ]
    question = "从嘉兴华东仓发往江浙沪的糕点冷链订单多久送达？"
    assert table_cell("2天[2]", question, texts) == ("江浙沪", "糕点（冷链）", "次日达")
    cite = [{"source": "delivery_zh.md", "text": texts[0]}]
    assert check_grounding(answered(question, "次日达 [1]", None, citations=cite))["flag_reason"] is None
    # A noun the cell lacks still excuses the figure (the row of another city, above); an empty cell names nothing.
    assert table_cell("2天[1]", question, [texts[0].replace("次日达", "—")]) is None


def test_a_word_in_most_places_of_the_passages_does_not_excuse_a_figure_from_another_row():
    """信息安全事件 is in every sentence of an incident policy: a sentence stating 24小时 beside it says nothing about
    where the SEC-3 row's figure is (RARE_PLACES)."""
    policy = [
        "| 级别 | 响应时限 | 处置完成时限 |\n|---|---|---|\n"
        "| SEC-1 | 30分钟 | 24小时内控制事态 |\n| SEC-3 | 8小时 | 5个工作日 |",
        "信息安全事件分为四级。发生信息安全事件后，须在24小时内提交报告。"
        "各级信息安全事件均须记录。信息安全事件关闭后须复盘。",
    ]
    question = "SEC-3级信息安全事件的处置完成时限是多久？"
    assert table_cell("24小时内控制事态[1]", question, policy) == ("SEC-3", "处置完成时限", "5个工作日")
    assert table_cell("5个工作日[1]", question, policy) is None


def test_a_figure_outside_the_tier_the_questions_quantity_falls_in_is_flagged():
    rules = "一、年假\n员工累计工作满1年不满5年的，年假为6天；满5年不满10年的，年假为10天；满10年及以上的，年假为15天。"
    question = "在苏州总部累计工作满6年的员工，每年有几天年假？"
    cite = [{"source": "leave_policy_zh.docx", "text": rules}]
    wrong = check_grounding(answered(question, "每年有15天年假。[1]", None, citations=cite))
    assert wrong["unsupported"] is True
    assert "the question's 6年 falls in '满5年不满10年的，年假为10天'" in wrong["flag_reason"]
    right = check_grounding(answered(question, "每年有10天年假。[1]", None, citations=cite))
    assert right["flag_reason"] is None  # not "belongs to another part": the first tier's sentence is no closer
    # The tier's own figure is read outside its range and its list number.
    listed = "1. 累计工作满1年不满3年的员工，每年享有带薪年假5天；\n"
    listed += "2. 累计工作满3年不满10年的员工，每年享有带薪年假10天；"
    assert outside_tier("每年有10天带薪年假。[1]", "累计工作满3年的员工有几天年假？", [listed]) is None
    # A tier named before a colon is judged by its name; a person who approves is not judged.
    levels = "银叶会员：累计消费满1000元，享受9.5折\n金叶会员：累计消费满5000元，享受9折\n墨叶会员：累计消费满20000元"
    asked = "累计消费满20000元的会员属于哪个等级？"
    assert outside_tier("属于钻石会员。[1]", asked, [levels]) == ("20000元", "墨叶会员：累计消费满20000元")
    assert outside_tier("属于墨叶会员。[1]", asked, [levels]) is None
    approval = "请假2天以内由直属主管审批；3天至7天由部门经理审批；超过7天由人力资源总监审批。"
    assert outside_tier("由部门经理审批。", "请假超过7天，由谁审批？", [approval]) is None
    assert outside_tier("每年有5天带薪年假。[1]", "累计工作满3年的员工有几天年假？", [listed]) == (
        "3年",
        "2. 累计工作满3年不满10年的员工，每年享有带薪年假10天",
    )
