from __future__ import annotations

import pytest

from tasks.answer.tiers import mark_tiers, strip_marks, tier_alone

pytestmark = pytest.mark.unit

LEAVE = (
    "一、年假\n员工在本公司连续工作满1年不满5年的，年假为7天；满5年不满10年的，年假为12天；"
    "满10年及以上的，年假为18天。试用期为3个月（管理岗为6个月），试用期内不享受年假。"
)


def test_the_tier_that_holds_the_questions_years_is_marked_in_its_language():
    marked = mark_tiers("在杭州总部工龄满6年的员工每年有几天年假？", LEAVE, True)
    assert "满5年不满10年的，年假为12天（6年适用此条）；满10年" in marked
    assert strip_marks(marked) == LEAVE
    assert "年假为18天（12年适用此条）。" in mark_tiers("工作满12年的员工有几天年假？", LEAVE, True)
    english = mark_tiers("How many days of annual leave does an employee with 6 years of service get?", LEAVE, False)
    assert "年假为12天 (this applies to 6 years)；" in english
    assert strip_marks(english) == LEAVE


def test_a_tables_tier_and_a_figure_just_past_a_bound():
    table = (
        "| 假期 | 天数 |\n|---|---|\n| 年假（工龄满1年不满5年） | 7天 |\n| 年假（工龄满5年不满10年） | 12天 |\n"
        "| 年假（工龄满10年及以上） | 17天 |"
    )
    assert "| 年假（工龄满5年不满10年（6年适用此条）） | 12天 |" in mark_tiers("工龄满6年有几天年假？", table, True)
    approval = "请假2天以内由直属主管审批；3天至7天由部门经理审批；超过7天由人力资源总监审批。"
    assert "超过7天由人力资源总监审批（7天适用此条）" in mark_tiers("请假超过7天，由谁审批？", approval, True)
    assert "3天至7天由部门经理审批（7天适用此条）" in mark_tiers("请假7天由谁审批？", approval, True)
    discounts = "| Net order value | Discount |\n|---|---|\n| 1,000 to 2,999 EUR | 8% |\n| 3,000 to 9,999 EUR | 12% |"
    marked = mark_tiers("What discount does an order of 1,500 EUR get?", discounts, False)
    assert "| 1,000 to 2,999 EUR (this applies to 1,500 EUR) | 8% |" in marked


def test_thresholds_mark_the_highest_reached_only_when_each_is_its_own_line():
    levels = "银叶会员：累计消费满1000元，享受9.5折\n金叶会员：累计消费满5000元，享受9折\n"
    levels += "墨叶会员：累计消费满20000元，享受8.8折"
    marked = mark_tiers("近12个月累计消费满6000元的会员属于哪个等级？", levels, True)
    assert "金叶会员：累计消费满5000元，享受9折（6000元适用此条）" in marked
    assert marked.count("适用此条") == 1
    minimums = "The first order must be worth at least 300 EUR; repeat orders at least 150 EUR."
    assert mark_tiers("What discount does an order of 1,500 EUR get?", minimums, False) == minimums


def test_no_mark_without_a_list_of_tiers_or_with_a_calendar_year():
    one = "满10年的员工可申请长期服务奖。"
    assert mark_tiers("工作满12年的员工有什么奖励？", one, True) == one
    dates = "1997年至1998年任制作总监；2000年至2003年任行政总裁。"
    assert mark_tiers("他在2001年担任什么职务？", dates, True) == dates
    assert mark_tiers("公司有多少员工？", LEAVE, True) == LEAVE


def test_a_tier_alone_is_its_clause_or_its_row_under_the_tables_header():
    assert tier_alone("工龄满6年有几天年假？", LEAVE, True) == "满5年不满10年的，年假为12天（6年适用此条）"
    table = (
        "二、假期\n| 假期 | 天数 |\n|---|---|\n| 年假（工龄满1年不满5年） | 7天 |\n| 年假（工龄满5年不满10年） | 12天 |"
    )
    assert tier_alone("How many days for 6 years?", table, False) == (
        "| 假期 | 天数 |\n|---|---|\n| 年假（工龄满5年不满10年 (this applies to 6 years)） | 12天 |"
    )
    assert tier_alone("公司有多少员工？", LEAVE, True) is None
