"""The A/B of a trained adapter: the dataset's held-out questions answered with and without it, compared."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.answer import answer_flow
from flows.errors import ConfigError, QuestionsFailed
from tasks.report.compare import compare_reports, comparison_markdown

# The adapter is recommended only when it answers more held-out questions right at no more than this times the base's
# time a question.
MAX_SLOWDOWN = 1.1


def _answer(**kwargs) -> dict:
    try:
        return answer_flow(**kwargs)
    except QuestionsFailed as exc:  # failed rows are counted as wrong in the comparison
        return exc.summary


def verdict(base: dict, adapter: dict) -> dict:
    """Whether the adapter is recommended: more right answers on unseen questions, at most 1.1x the time."""
    acc_base, acc_adapter = base.get("accuracy"), adapter.get("accuracy")
    t_base, t_adapter = base.get("latency_ms_p50"), adapter.get("latency_ms_p50")
    slowdown = t_adapter / t_base if t_base and t_adapter else None
    if acc_base is None or acc_adapter is None:
        recommended, why = False, "no expected answers to judge by"
    elif acc_adapter <= acc_base:
        recommended, why = False, f"it answers no more questions right ({acc_adapter:.0%} against {acc_base:.0%})"
    elif slowdown is not None and slowdown > MAX_SLOWDOWN:
        recommended, why = False, f"it is {slowdown:.2f}x slower a question (more than {MAX_SLOWDOWN}x)"
    else:
        recommended, why = (
            True,
            f"{acc_adapter:.0%} right against {acc_base:.0%}"
            + (f", {slowdown:.2f}x the base's time a question" if slowdown else ""),
        )
    return {
        "recommended": recommended,
        "why": why,
        "accuracy_base": acc_base,
        "accuracy_adapter": acc_adapter,
        "p50_ms_base": t_base,
        "p50_ms_adapter": t_adapter,
        "slowdown": slowdown,
    }


def ab_questions(dataset_dir: str, questions: str | None = None) -> Path:
    """The question file the A/B answers: the user's own (questions written by people, with expected answers, judge
    an adapter better than the pair writer's), else the dataset's held-out questions.csv."""
    if questions:
        path = Path(questions).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"question file {path} not found (--compare-questions)")
        return path
    folder = Path(dataset_dir).expanduser().resolve()
    path = folder / "questions.csv"
    if not path.is_file():
        raise ConfigError(f"dataset {folder} has no questions.csv (the eval split's questions): re-export it")
    return path


@flow(name="kb-adapter-ab")
def adapter_ab_flow(
    dataset_dir: str,
    adapter: str,
    model: str | None = None,
    store_dir: str | None = None,
    collection: str | None = None,
    questions: str | None = None,
) -> dict:
    """Answer the dataset's held-out questions (questions.csv), or the user's own question file, with the base model
    and with the adapter, and compare the two reports; recommend the adapter only when it gains."""
    questions_path = ab_questions(dataset_dir, questions)
    out = Path(adapter).expanduser().resolve()
    ab = out.parent / f"{out.name}.ab"
    common = dict(
        questions_path=str(questions_path), store_dir=store_dir, collection=collection, llm_model=model, use_cache=False
    )
    base = _answer(**common, out_dir=str(ab / "base"))
    with_adapter = _answer(**common, out_dir=str(ab / "adapter"), lora=str(out))
    comparison = compare_reports(ab / "base", ab / "adapter")
    result = {
        "questions": str(questions_path),
        "base_report": str(ab / "base"),
        "adapter_report": str(ab / "adapter"),
        **verdict(base, with_adapter),
    }
    (ab / "ab.json").write_text(json.dumps({**result, "comparison": comparison}, indent=2, ensure_ascii=False) + "\n")
    create_markdown_artifact(
        key="adapter-ab",
        markdown=f"# Adapter `{out.name}`: {'recommended' if result['recommended'] else 'not recommended'} "
        f"({result['why']})\n\n{comparison_markdown(comparison)}",
        description="The A/B's questions answered with and without the adapter",
    )
    return result
