"""A standing question set, answered again after a sync that changed the knowledge base (the watcher's
`--questions`); every answer whose evidence is unchanged comes from the answer cache."""

from __future__ import annotations

import logging

logger = logging.getLogger("kbflow.watch")


def answer_standing_set(questions: str, store_dir: str, collection: str, groups: str | None = None) -> dict:
    """Answer the set in process, for `groups` (None: KBFLOW_GROUPS); what it made (report folder, generated,
    reused), or the error. Never raises."""
    from flows.answer import answer_flow
    from flows.errors import QuestionsFailed

    try:
        answers = answer_flow(questions_path=questions, store_dir=store_dir, collection=collection, groups=groups)
    except QuestionsFailed as exc:
        answers = exc.summary
    except Exception as exc:  # noqa: BLE001 - the watcher must outlive a failed answer run too
        logger.error("Answering %s failed: %s: %s", questions, type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    logger.info(
        "Answered %s: %s generated, %s reused; report %s",
        questions,
        answers.get("answers_generated"),
        answers.get("answers_reused"),
        answers.get("report_dir"),
    )
    return {k: answers.get(k) for k in ("report_dir", "answers_generated", "answers_reused")}
