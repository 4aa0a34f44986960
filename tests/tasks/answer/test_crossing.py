"""The other-language look's decisions: which passages, when it is worth an answer, when its answer is kept."""

from __future__ import annotations

import pytest

from tasks.answer.crossing import in_other_language, look_kept, other_language, wants_look, worth_a_look
from tasks.answer.prompts import REFUSAL

pytestmark = pytest.mark.unit

ROTTERDAM = {"text": "Rotterdam staff receive an internet allowance of EUR 25 a month.", "score": 0.30}
HANGZHOU = {"text": "杭州员工每月网络补贴为100元，随工资发放。", "score": 0.355}


def test_the_other_language_is_the_one_the_question_is_not_written_in():
    assert other_language("鹿特丹办公室员工每月的网络补贴是多少？") == "en"
    assert other_language("What is the monthly internet allowance in Rotterdam?") == "zh"
    assert in_other_language("鹿特丹办公室员工每月的网络补贴是多少？", [HANGZHOU, ROTTERDAM]) == [ROTTERDAM]
    assert in_other_language("What is the internet allowance?", [HANGZHOU, ROTTERDAM]) == [HANGZHOU]


def test_only_a_flagged_answer_the_model_hesitated_over_is_looked_past():
    flag = "number 100 not in cited passages"
    assert wants_look(flag, {"figure": "100", "share": 0.596}, None)
    assert wants_look(flag, None, {"name": "Jonas", "share": 0.41})
    # Written surely: a grounding flag alone is not worth an answer ("3年" was right, and the look's "两年" wrong).
    assert not wants_look("3 belongs to another part of the passage", {"figure": "3", "share": 1.0}, None)
    assert not wants_look(flag, None, None)  # no token probabilities (a model server): never
    assert not wants_look(None, {"figure": "100", "share": 0.5}, None)  # not flagged


def test_the_other_languages_best_passage_must_be_close_to_the_best_on_the_dense_scale():
    # 0.30 x 1.25 = 0.375 against 0.8 x 0.355 = 0.284: the Rotterdam passage is worth an answer.
    assert worth_a_look([ROTTERDAM], [HANGZHOU, ROTTERDAM], keep_ratio=0.8)
    # A charging-time question: the best English passage 0.203 against a Chinese 0.376 (0.254 < 0.301).
    far = {**ROTTERDAM, "score": 0.203}
    assert not worth_a_look([far], [{**HANGZHOU, "score": 0.376}, far], keep_ratio=0.8)
    assert not worth_a_look([], [HANGZHOU], keep_ratio=0.8)


def test_the_looks_answer_is_kept_only_when_it_cites_a_passage_and_is_not_flagged():
    cited = [{"source": "hr/remote_work_policy.txt"}]
    assert look_kept("鹿特丹办公室员工每月的网络补贴是25 EUR。[1]", cited, None)
    assert not look_kept("鹿特丹办公室员工每月的网络补贴是25 EUR。", [], None)
    assert not look_kept(REFUSAL["zh"], cited, None)
    assert not look_kept("每公里报销0.19 EUR。[1]", cited, "0.19 belongs to another part of the passage")


def test_a_look_that_states_the_first_answers_figures_again_replaces_nothing():
    cited = [{"source": "products/price_list_zh.xlsx"}]
    first = "The AP-90 has a warranty of 6 months, as stated in [1]."
    assert not look_kept("The AP-90 has 6 months of warranty [2].", cited, None, first)
    assert look_kept("The AP-90 has 36 months of warranty [2].", cited, None, first)
    assert look_kept("鹿特丹办公室员工每月的网络补贴是25 EUR。[2]", cited, None, "每月的网络补贴是100欧元。[2]")
