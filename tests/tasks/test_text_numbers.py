"""Numbers in answers as digits (normalize_numbers): what cn2an and text2num read, and the words they must leave."""

from __future__ import annotations

import pytest

from tasks.report.grounding import missing_numbers, support_score
from tasks.report.metrics import answer_correct
from tasks.text import chinese_numeral_value, normalize_numbers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text, expected",
    [
        ("三万五千", "35000"),
        ("1.2亿", "120000000"),
        ("一亿二千万", "120000000"),
        ("两千零五", "2005"),
        ("35万元", "350000元"),
        ("共二十亿元", "共2000000000元"),
        ("营收1.25万", "营收12500"),
        ("twelve thousand four hundred", "12400"),
        ("one million", "1000000"),
        ("3.5 million users", "3500000 users"),
        ("one thousand and one nights", "1001 nights"),
        ("two million three hundred thousand", "2300000"),
        # the 0-9999 / 0-999 cases read before stay as they were
        ("退款期限为三十天[1]。", "退款期限为30天[1]。"),
        ("百分之三十的员工", "30%的员工"),
        ("二〇二四年", "2024年"),
        ("one hundred and five days, not twenty-one", "105 days, not 21"),
        ("one and two", "1 and 2"),
        ("Hundreds of Twelve-year-olds", "Hundreds of 12-year-olds"),
        ("１,０００ 元", "1000 元"),
        ("The answer is one.", "The answer is 1."),
        # a lone numeral character is a number before a measure word, after 第, or standing alone
        ("一个人", "1个人"),
        ("第一章", "第1章"),
        ("答案是三。", "答案是3。"),
        ("结果一致，共三项", "结果一致,共3项"),
    ],
)
def test_numbers_become_digits(text, expected):
    assert normalize_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "一致",
        "统一",
        "一些",
        "唯一的",
        "之一",
        "万一",
        "千万不要",
        "三星",
        "星期三",
        "松本零士",
        "someone",
        "one of the",
        "one another",
        "no one came",
        "三四十",  # two digits in a row: not one numeral
        "1万5",  # left as written, not 10000 and 5
    ],
)
def test_words_without_a_number_are_left_as_written(text):
    assert normalize_numbers(text) == text


def test_chinese_numeral_values_past_9999():
    cases = {"三万五千": 35000, "一亿二千万": 120_000_000, "两千零五": 2005, "十一万": 110_000, "三万五": 35000}
    assert {text: chinese_numeral_value(text) for text in cases} == cases
    for not_a_number in ("万一", "千万", "亿", "一点五", "3万"):
        assert chinese_numeral_value(not_a_number) is None, not_a_number


def test_accuracy_reads_large_numbers_either_way():
    assert answer_correct("公司去年营收1.2亿元[1]。", "一亿二千万元")
    assert answer_correct("注册用户约三万五千人。", "35000人")
    assert answer_correct("The plant employs twelve thousand four hundred people.", "12,400 people")
    assert answer_correct("It sold one million copies.", "1,000,000 copies")
    assert not answer_correct("公司去年营收1.3亿元。", "一亿二千万元")


def test_grounding_reads_the_same_figure_written_two_ways_and_no_figure_in_a_word():
    passage = ["公司2025年的营收为1.2亿元，员工意见一致。"]
    assert support_score("公司2025年的营收为一亿二千万元[1]。", "公司2025年的营收是多少？", passage) == 1.0
    # 一致 holds no figure 1 that the passages would have to state (it used to be read as 1致)
    assert missing_numbers("大家意见一致，共三项[1]。", "意见如何？", ["意见相同的共3项。"]) == []
    assert missing_numbers("大家意见一致，共四项[1]。", "意见如何？", ["意见相同的共3项。"]) == ["4"]


def test_a_name_written_without_its_accents_is_the_same_name():
    assert answer_correct("Chloe Zhao won Best Director [3].", "Chloé Zhao")
    assert answer_correct("Tadej Pogačar won the 2021 Tour de France.", "Tadej Pogacar")
    assert not answer_correct("Chloe Zhang won Best Director.", "Chloé Zhao")
    # Kana keep their voicing marks: ガ is not カ.
    assert not answer_correct("カイド", "ガイド")
