"""Generation: numbered passages packed into the model's window, the answer generated, its citations checked."""

from __future__ import annotations

import re
import time

from prefect import task

from tasks.answer.backends import Backend, ContextTooLarge, GenerationError, LLMConfig, make_backend
from tasks.answer.confidence import HESITANT, figure_hesitation, name_hesitation
from tasks.answer.evidence import key_sentences, labelled_cells
from tasks.answer.prompts import _CITATION, REFUSAL, AnswerStyle, build_messages, clean_citations, language_of
from tasks.answer.tiers import TIER_MARK, mark_tiers, strip_marks, tier_alone
from tasks.report.grounding import (
    borrowed_figures,
    broken_compounds,
    misplaced_numbers,
    outside_tier,
    same_language,
    says_nothing,
    table_cell,
    unfinished,
    unnamed,
    unstated_years,
    within_tier,
    wrong_column,
)
from tasks.text import contains_answer, is_chinese, tokenize


def pack_context(
    backend: Backend,
    question: str,
    passages: list[dict],
    lang: str,
    max_tokens: int,
    style: AnswerStyle = "sentence",
    context_tokens: int = 0,
) -> tuple[list[dict], list[dict], int]:
    """Fit as many passages (best first) as the window holds after the answer's budget; cut the last one if needed.
    With context_tokens, a passage that would take the passages past it goes in as its key sentences only (those
    that match the question best), or not at all; the first passage always goes in whole, and so do a table, a
    passage in the other language and a list of the question's tiers (_whole_past_budget)."""
    budget = backend.n_ctx - max_tokens - 4
    base = backend.count_tokens(build_messages(question, [], lang, style))
    if base > budget:
        raise GenerationError(
            f"the question alone takes {base} tokens, more than the {budget} the context window leaves"
        )
    used: list[dict] = []
    tokens = tokenize(question)
    for p in passages:
        trial = used + [p]
        n_tokens = backend.count_tokens(build_messages(question, trial, lang, style))
        if used and context_tokens and n_tokens - base > context_tokens and not _whole_past_budget(question, p):
            # Past the passages' budget: only this passage's sentences that match the question best, if they fit.
            trial = used + [{**p, "text": key_sentences(p["text"], tokens)}]
            if backend.count_tokens(build_messages(question, trial, lang, style)) - base <= context_tokens:
                used = trial
            continue
        if n_tokens <= budget:
            used = trial
            continue
        # Cut this passage to the room that is left, if a useful part fits, and stop.
        room = budget - backend.count_tokens(build_messages(question, used + [{**p, "text": ""}], lang, style))
        if room >= 32:
            text = backend.truncate(p["text"], room)
            while (
                text
                and backend.count_tokens(build_messages(question, used + [{**p, "text": text}], lang, style)) > budget
            ):
                text = backend.truncate(text, int(room * 0.9))
                room = int(room * 0.9)
            if text:
                used.append({**p, "text": text})
        break
    messages = build_messages(question, used, lang, style)
    return messages, used, backend.count_tokens(messages)


def _whole_past_budget(question: str, passage: dict) -> bool:
    """A passage that goes in whole past the passages' budget: a table (its rows' figures are what a question asks,
    and its best-matching rows alone lose whose each figure is), one in the other language than the question's (its
    sentences cannot match the question's words, so a cut keeps the wrong ones), or one that lists the tiers the
    question's quantity falls in (marked, tasks/answer/tiers.py)."""
    text = passage["text"]
    return "\n|" in f"\n{text}" or is_chinese(text) != is_chinese(question) or TIER_MARK.search(text) is not None


def fit_all(
    backend: Backend, question: str, passages: list[dict], lang: str, max_tokens: int, style: AnswerStyle = "sentence"
) -> tuple[list[dict], int]:
    """The prompt with every passage uncut, or ContextTooLarge when it leaves no room for the answer's budget."""
    messages = build_messages(question, passages, lang, style)
    n_tokens = backend.count_tokens(messages)
    if n_tokens + max_tokens + 4 > backend.n_ctx:  # the margin pack_context keeps
        raise ContextTooLarge(
            f"the whole knowledge base ({len(passages)} chunks, {n_tokens} tokens) does not fit in n_ctx "
            f"{backend.n_ctx} "
            f"with max_tokens {max_tokens}: use hybrid retrieval or a longer-context model"
        )
    return messages, n_tokens


# A sentence's end: 。！？ or a full stop, ! or ? before a space (not a decimal point, nor "1." in a list).
_SENTENCE_END = re.compile(r"[。！？]|(?<!\d)[.!?](?=\s)")


def run_on(reply: str) -> bool:
    """A one-sentence answer that has gone on for three sentences: the model is copying its passage out (a CMRC
    answer ran to the 256-token cap that way, 7.7 s). Generation stops there; the answer keeps what it wrote."""
    return len(_SENTENCE_END.findall(reply)) >= 3


def _answer_alone(
    backend: Backend, question: str, used: list[dict], lang: str, max_tokens: int, temperature: float
) -> tuple[str, list[int], list[int], int, int]:
    """The answer alone, asked with the short style's prompt over the same passages: the span (citation marks
    removed), the passages it cites, the passages that hold it (as the reader sees them, without a tier's mark), and
    the prompt and completion tokens."""
    raw, prompt_tokens, completion_tokens = backend.chat(
        build_messages(question, used, lang, "short"), max_tokens, temperature
    )
    span, cited = clean_citations(strip_marks(raw), len(used))
    span = _CITATION.sub("", span).strip()
    holders = [i for i, p in enumerate(used, start=1) if span and contains_answer(strip_marks(p["text"]), span)]
    return span, cited, holders, prompt_tokens, completion_tokens


def _wrong(answer: str, question: str, shown: list[str]) -> bool:
    """An answer that is wrong whatever the model's confidence: a figure from a table's column the question does not
    ask about (judged over every passage shown, whatever its language: a column's header is often a code, AP-60),
    other than the cell of the row and column the question names or the tier its quantity falls in, nothing the
    question does not say, for an amount only the question's own figures, or a stop at a colon before what it was to
    say. Each was wrong every time it fired over our stored answers (the README's "Flags")."""
    return bool(
        wrong_column(answer, question, shown)
        or table_cell(answer, question, shown)
        or outside_tier(answer, question, shown)
        or says_nothing(answer, question)
        or borrowed_figures(answer, question)
        or unfinished(answer)
    )


def _doubtful_figures(answer: str, question: str, shown: list[str]) -> bool:
    """A figure the report would flag: one the passages state of something else, or a many-group number (a phone
    number) that no passage states as a whole (judged over the passages in the question's language)."""
    given = same_language(question, shown)
    misplaced = not within_tier(answer, question, given) and misplaced_numbers(answer, question, shown)
    return bool(misplaced or broken_compounds(answer, question, given))


def _shown(passage: dict) -> str:
    """A passage as the prompt shows it: its source path (which often names the year) and its text."""
    return f"{passage.get('source') or ''}\n{passage['text']}"


def _share(hesitation: dict | None) -> float:
    return 1.0 if hesitation is None else hesitation["share"]


def _hesitant(hesitation: dict | None) -> bool:
    return _share(hesitation) < HESITANT


def answer_question(
    backend: Backend,
    question: str,
    passages: list[dict],
    *,
    max_tokens: int,
    temperature: float,
    style: AnswerStyle = "sentence",
    whole: bool = False,
    context_tokens: int = 0,
) -> dict:
    """Answer one question from its passages: pack (or, whole, take all of them uncut), generate, check citations.

    The tier of a list of ranges that holds the question's quantity is marked in the prompt (tasks/answer/tiers.py);
    the checks and the citations read each passage without the mark, and an answer that copies it loses it."""
    lang = language_of(question)
    passages = [{**p, "text": mark_tiers(question, p["text"], lang == "zh")} for p in passages]
    if whole:
        messages, _ = fit_all(backend, question, passages, lang, max_tokens, style)
        used = passages
    else:
        messages, used, _ = pack_context(backend, question, passages, lang, max_tokens, style, context_tokens)
    started = time.perf_counter()
    until = run_on if style == "sentence" else None
    raw, prompt_tokens, completion_tokens = backend.chat(messages, max_tokens, temperature, until=until)
    tokens_of_answer = backend.last_tokens
    answer, cited = clean_citations(strip_marks(raw), len(used))
    if style == "sentence" and not _CITATION.sub("", answer).strip(" .。"):
        # A citation mark and nothing else: ask once more, for the answer alone. (An answer that puts the mark
        # where the figure should be, "shows the error code [1]", is left as it is: the report flags it. A second
        # try gave a wrong figure there that no check caught.)
        answer, cited, holders, more_prompt, more_completion = _answer_alone(
            backend, question, used, lang, max_tokens, temperature
        )
        tokens_of_answer = backend.last_tokens
        prompt_tokens, completion_tokens = prompt_tokens + more_prompt, completion_tokens + more_completion
        if answer and answer not in REFUSAL.values():
            cited = cited or holders[:1]
            answer = f"{answer.rstrip('。.')} [{cited[0]}]" if cited else answer
    second_look, year_look, name_look = False, None, None
    hesitation = figure_hesitation(tokens_of_answer, question)
    if style == "sentence" and not whole and answer and answer not in REFUSAL.values():
        # Judged as the report does (tasks/report/grounding.py).
        shown = [strip_marks(p["text"]) for p in used]
        wrong = _wrong(answer, question, shown)
        if wrong or _doubtful_figures(answer, question, shown):
            # A figure of the passage that belongs to something else than what was asked, a phone number put
            # together from two rows, or an answer that repeats the question (the report would flag each). Ask once
            # more with each passage cut to its sentences that match the question best, and keep the new answer if it
            # passes these checks and the model did not hesitate over its figures (or was surer than the first time,
            # or the first answer was _wrong: the AP-60's 52 dB, weighed against the AP-90's 58 it had written);
            # otherwise the first answer stays, flagged. A figure the model only hesitated over is flagged, not asked
            # again: on both held-out sets (132 questions, Qwen) a second look there changed no answer, and it cost a
            # generation each time it fired.
            tokens = tokenize(question)
            # A table's kept rows say whose each figure is (labelled_cells): its header is often far above them.
            # When it took another tier's figure, a passage that lists tiers gives only the one the question's
            # quantity falls in (tasks/answer/tiers.py).
            other_tier = bool(outside_tier(answer, question, shown))
            focused = [
                {
                    **p,
                    "text": labelled_cells(
                        (other_tier and tier_alone(question, strip_marks(p["text"]), lang == "zh"))
                        or key_sentences(p["text"], tokens)
                    ),
                }
                for p in used
            ]
            raw, more_prompt, more_completion = backend.chat(
                build_messages(question, focused, lang, style), max_tokens, temperature, until=until
            )
            prompt_tokens, completion_tokens = prompt_tokens + more_prompt, completion_tokens + more_completion
            again, cited_again = clean_citations(strip_marks(raw), len(used))
            doubt_again = figure_hesitation(backend.last_tokens, question)
            if (
                _CITATION.sub("", again).strip(" .。")
                and again not in REFUSAL.values()
                and not _wrong(again, question, shown)
                and not _doubtful_figures(again, question, shown)
                and (wrong or not _hesitant(doubt_again) or _share(doubt_again) > _share(hesitation))
            ):
                answer, cited, second_look = again, cited_again, True
                tokens_of_answer, hesitation = backend.last_tokens, doubt_again
                tiered = [i for i, p in enumerate(focused, start=1) if TIER_MARK.search(p["text"])]
                if not cited and other_tier and tiered:
                    # Given a tier alone, the model often answers with its figure and no mark: the tier is its source.
                    cited = tiered[:1]
                    answer = f"{answer.rstrip()} [{cited[0]}]"
    if style == "sentence" and not whole and answer not in REFUSAL.values() and says_nothing(answer, question):
        # Still nothing the question does not say, asked again too ("苏州员工每年病假的前几天按全额工资发放。"): the
        # answer alone, as the short style asks for it, kept when a passage holds it (and cited to that passage).
        span, _, holders, more_prompt, more_completion = _answer_alone(
            backend, question, used, lang, max_tokens, temperature
        )
        prompt_tokens, completion_tokens = prompt_tokens + more_prompt, completion_tokens + more_completion
        if span not in REFUSAL.values() and holders:
            answer, cited, second_look = f"{span.rstrip('。.').strip()} [{holders[0]}]", holders[:1], True
            tokens_of_answer = backend.last_tokens
            hesitation = figure_hesitation(tokens_of_answer, question)
    if style == "sentence" and not whole and not second_look and cited and answer not in REFUSAL.values():
        # The question names a year that no passage the answer cites states, while another passage given does: the
        # answer was most likely taken from a passage about another year (the 2022 champion named for 2019). So too
        # for a name it spells out in brackets (the 8-piece pastry's shelf life given for 桂花糕（10枚装）). Ask
        # once more with only the passages that state them; a refusal there keeps the first answer, which the report
        # flags.
        shown = [_shown(p) for p in used]
        years = unstated_years(question, [shown[i - 1] for i in cited])
        named = [] if years else unnamed(question, [shown[i - 1] for i in cited], shown)
        stating = [
            i
            for i, text in enumerate(shown, start=1)
            if not unstated_years(question, [text]) and not set(named) & set(unnamed(question, [text], shown))
        ]
        if stating and (years or named):
            raw, more_prompt, more_completion = backend.chat(
                build_messages(question, [used[i - 1] for i in stating], lang, style),
                max_tokens,
                temperature,
                until=until,
            )
            prompt_tokens, completion_tokens = prompt_tokens + more_prompt, completion_tokens + more_completion
            again, cited_again = clean_citations(strip_marks(raw), len(stating))
            if cited_again and _CITATION.sub("", again).strip(" .。") and again not in REFUSAL.values():
                # Its marks number the passages it was given: put back the numbers of the first prompt.
                answer = _CITATION.sub(lambda m: f"[{stating[int(m.group(1)) - 1]}]", again)
                cited, second_look = sorted(stating[i - 1] for i in cited_again), True
                year_look, name_look = years or None, named or None
                tokens_of_answer = backend.last_tokens
                hesitation = figure_hesitation(tokens_of_answer, question)
    if style == "short":
        # The answer alone: its citation marks are recorded, not shown; if the model gave none,
        # the passages that contain the answer support it.
        answer = _CITATION.sub("", answer).strip().rstrip("。.").strip()
        if not cited and answer and answer not in REFUSAL.values():
            cited = [i for i, p in enumerate(used, start=1) if contains_answer(p["text"], answer)][:1]
    return {
        "answer": answer,
        "cited": cited,
        "citations": [
            {
                "source": used[i - 1]["source"],
                "page": used[i - 1].get("page"),
                "chunk_id": used[i - 1].get("chunk_id"),
                "text": strip_marks(used[i - 1]["text"]),
            }
            for i in cited
        ],
        "passages_used": len(used),
        "second_look": second_look,
        "year_look": year_look,
        "name_look": name_look,
        "token_probs": [
            [piece, round(prob, 4), [[a, round(q, 4)] for a, q in alt]] for piece, prob, alt in tokens_of_answer
        ],
        "hesitation": hesitation,
        "name_hesitation": name_hesitation(tokens_of_answer, question),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "generation_ms": round((time.perf_counter() - started) * 1000, 1),
    }


@task(name="generate-answer")
def generate_answer(question: str, passages: list[dict], llm: LLMConfig, whole: bool = False) -> dict:
    """Generate one answer from its passages with the configured model (loaded once per process); whole: all passages
    or none."""
    return answer_question(
        make_backend(llm),
        question,
        passages,
        max_tokens=llm.max_tokens,
        temperature=llm.temperature,
        style=llm.answer_style,
        whole=whole,
        context_tokens=llm.context_tokens,
    )
