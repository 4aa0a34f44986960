"""`kbflow ask QUESTIONS`: answer a question set from the knowledge base and write a report."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from kbflow.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    UsageError,
    print_json,
    readers_options,
    setting_option,
    settle_garbage_collector,
    store_options,
)

QUESTION_ENDS = ("?", "？", "吗", "呢")


def looks_like_a_question(text: str) -> bool:
    """An argument that is no file and reads like a question: asked as one, not opened as a question file."""
    return not Path(text).exists() and text.strip().endswith(QUESTION_ENDS)


def save_piped_questions(data: bytes, store: str | None) -> str:
    """Questions read from standard input (`kbflow ask -`), kept as STORE/questions/stdin-HASH.csv or .txt: the
    report names a file that stays, and the same set piped again is compared with its previous run."""
    from tasks.answer.questions import piped_suffix
    from tasks.ingest.decode import TextDecodeError, decode_text
    from tasks.settings import load_settings

    try:
        text = decode_text(data)
    except TextDecodeError as exc:
        raise UsageError(f"-: standard input: {exc}") from None
    if not text.strip():
        raise UsageError(
            "-: standard input is empty; pipe questions in, one a line or a CSV with a 'question' header: "
            "kbflow ask - < questions.txt"
        )
    folder = load_settings(store_dir=store).store_dir / "questions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stdin-{hashlib.sha256(data).hexdigest()[:12]}{piped_suffix(text)}"
    path.write_text(text, encoding="utf-8")
    return str(path)


def ask(
    questions: str | None,
    *,
    store: str | None = None,
    collection: str | None = None,
    question: str | None = None,
    **options,
) -> tuple[dict, int]:
    """Run the answer flow on a question file (or one question): its summary and the exit code (EXIT_PARTIAL when
    questions failed)."""
    from flows.answer import answer_flow
    from flows.errors import QuestionsFailed

    if question is None and not Path(questions).is_file():
        raise UsageError(
            f"{questions}: no such file; give a question set (.csv, .xlsx, .jsonl or .txt), "
            'or one question: kbflow ask "How long is the S7 battery covered?"'
        )
    from kbflow import progress

    progress.enable_terminal_progress(bar=not options.pop("quiet", False))
    settle_garbage_collector()
    try:
        return answer_flow(
            questions_path=questions, question=question, store_dir=store, collection=collection, **options
        ), EXIT_OK
    except QuestionsFailed as exc:
        return exc.summary, EXIT_PARTIAL


def print_one_answer(row: dict) -> None:
    """One question's answer for the terminal: the answer, its citations with source and page, its support."""
    from tasks.report.formats import fmt_rate

    if row.get("error"):
        print(f"error: {row['error']}")
        return
    print(row.get("answer") or "")
    for n, c in enumerate(row.get("citations") or [], start=1):
        page = f", page {c['page']}" if c.get("page") not in (None, -1, "") else ""
        print(f"  [{n}] {c.get('source')}{page}")
    if row.get("refused"):
        print("  (not found in the knowledge base: no passage was relevant enough)")
    elif row.get("unsupported"):
        print(f"  unsupported: {row.get('flag_reason')} (support {fmt_rate(row.get('support'))})")
    elif row.get("support") is not None:
        cited = "its cited passages" if row.get("citations") else "the passages it was given (it cites none)"
        print(f"  supported by {cited} (support {fmt_rate(row.get('support'))})")
    if row.get("answer_source") == "reused":
        print(f"  (reused from the answer cache: first made in run {row.get('first_run')})")


def print_answer_summary(s: dict) -> None:
    """The closing lines of `kbflow ask`: the headline figures, then where the report is."""
    from tasks.report.figures import headline_lines

    print(
        f"Answered {s['questions']} questions ({s['refused']} refused as not in the knowledge base, {s['errors']} "
        "errors)"
    )
    for line in headline_lines(s):
        print(f"  {line}")
    print(f"  report: {Path(s['report_dir']) / 'report.html'}")


def run(args: argparse.Namespace) -> int:
    question = args.question
    if question is None and args.questions and looks_like_a_question(args.questions):
        question = args.questions
    if question is None and not args.questions:
        raise UsageError("give a question file, or one question with --question TEXT")
    if args.groups and args.all_documents:
        raise UsageError("give --groups or --all-documents, not both")
    if question is None and args.questions == "-":
        args.questions = save_piped_questions(sys.stdin.buffer.read(), args.store)
    summary, code = ask(
        None if question is not None else args.questions,
        question=question,
        quiet=args.json,
        use_cache=False if args.no_cache else None,
        store=args.store,
        collection=args.collection,
        out_dir=args.out,
        top_k=args.top_k,
        mode=args.mode,
        retrieval_only=args.retrieval_only,
        min_score=args.min_score,
        source_prefix=args.source_prefix,
        llm_model=args.model,
        llm_backend=args.backend,
        answer_style=args.answer_style,
        lora=args.lora,
        lora_scale=args.lora_scale,
        groups=args.groups,
        all_documents=args.all_documents,
    )
    if "rows" in summary:  # one question, no report folder
        if args.json:
            print_json(summary["rows"][0])
        else:
            print_one_answer(summary["rows"][0])
        return code
    if args.json:
        print_json({k: v for k, v in summary.items() if k != "questions_file"})
        return code
    if question is not None:
        print_one_answer(_first_row(summary["report_dir"]))
    print_answer_summary(summary)
    return code


def preload(args: argparse.Namespace) -> list:
    """What a question loads first, to load while the store's Prefect server starts (kbflow.cli.main)."""

    def flow_modules() -> None:
        import flows.answer  # noqa: F401

    def store_client() -> None:
        import chromadb  # noqa: F401

    return [flow_modules, store_client]


def _first_row(report_dir: str) -> dict:
    import json

    with (Path(report_dir) / "rows.jsonl").open(encoding="utf-8") as fh:
        return json.loads(fh.readline())


def add_parser(sub) -> None:
    sp = sub.add_parser("ask", help="answer a question set and write a report")
    sp.add_argument(
        "questions",
        nargs="?",
        help="question file: .csv, .xlsx, .jsonl or .txt (one question per line); - to read them from standard "
        "input (one a line, or CSV with a 'question' header); or one question in quotes, "
        '"How long is the S7 battery covered?"',
    )
    sp.add_argument("--question", help="one question, answered and printed (no report folder unless --out)")
    sp.add_argument(
        "--no-cache",
        action="store_true",
        help="generate every answer, reusing none from the answer cache (KBFLOW_ANSWER_CACHE=off)",
    )
    store_options(sp)
    sp.add_argument("--out", help="report folder (default: a timestamped folder under STORE/reports)")
    setting_option(sp, "--top-k", "top_k")
    setting_option(sp, "--mode", "mode")
    sp.add_argument(
        "--retrieval-only", action="store_true", help="skip generation; still fill retrieval columns and metrics"
    )
    setting_option(sp, "--min-score", "min_score")
    sp.add_argument("--source-prefix", help="only retrieve from documents whose path starts with this")
    readers_options(sp)
    setting_option(sp, "--model", "llm_model")
    setting_option(sp, "--backend", "llm_backend")
    setting_option(sp, "--answer-style", "answer_style")
    setting_option(sp, "--lora", "llm_lora", metavar="PATH")
    setting_option(sp, "--lora-scale", "llm_lora_scale")
    sp.set_defaults(func=run, preload=preload)
