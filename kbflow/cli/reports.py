"""`kbflow reports [list|compare OLD NEW|serve]`: past answer reports, what changed between two, or a read-only
server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kbflow.cli.common import EXIT_OK, UsageError, print_json, setting_option


def run(args: argparse.Namespace) -> int:
    from tasks.report.formats import fmt_num, fmt_rate
    from tasks.settings import load_settings

    cfg = load_settings(store_dir=args.store)
    if args.action == "compare":
        return compare(args)
    if args.action == "serve":
        from kbflow.serve import serve_reports

        return serve_reports(cfg.reports_dir, host=args.host, port=args.port)
    rows = []
    for path in sorted(cfg.reports_dir.glob("*/summary.json")):
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append(
            {
                "report": str(path.parent),
                **{
                    k: s.get(k)
                    for k in (
                        "created_at",
                        "questions",
                        "refused",
                        "errors",
                        "accuracy",
                        "recall_at_k",
                        "mrr",
                        "f1",
                        "model",
                    )
                },
            }
        )
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print(f"No reports under {cfg.reports_dir} yet: run `kbflow ask QUESTIONS`")
    for r in rows:
        print(
            f"{r['report']}\n  {r['created_at']}  {r['questions']} questions, accuracy {fmt_rate(r['accuracy'])}, "
            f"{r['refused']} refused, {r['errors']} errors, recall@k {fmt_rate(r['recall_at_k'])}, "
            f"MRR {fmt_num(r['mrr'], 2)}, F1 {fmt_rate(r['f1'])}, {r['model']}"
        )
    return EXIT_OK


def compare(args: argparse.Namespace) -> int:
    from tasks.report.compare import compare_reports, comparison_markdown

    for folder in (args.old, args.new):
        if not (Path(folder) / "summary.json").is_file():
            raise UsageError(
                f"{folder} is not a report folder (no summary.json): give two folders from `kbflow reports`"
            )
    cmp = compare_reports(args.old, args.new)
    if args.json:
        print_json(cmp)
    else:
        print(comparison_markdown(cmp))
    return EXIT_OK


def add_parser(sub) -> None:
    sp = sub.add_parser("reports", help="list past answer reports, compare two, or serve them to a browser")
    setting_option(sp, "--store", "store_dir", dest="store")
    sp.add_argument("--json", action="store_true", help="print the result as JSON")
    sp.set_defaults(func=run, action="list")
    rsub = sp.add_subparsers(dest="action")
    # Sub-commands accept the same options after their name; SUPPRESS keeps a value given before it.
    listing = rsub.add_parser("list", help="past reports with their headline figures (the default)")
    setting_option(listing, "--store", "store_dir", dest="store", default=argparse.SUPPRESS)
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
    cmp = rsub.add_parser("compare", help="what changed between two runs of a question set")
    cmp.add_argument("old", help="the earlier report folder")
    cmp.add_argument("new", help="the later report folder")
    setting_option(cmp, "--store", "store_dir", dest="store", default=argparse.SUPPRESS)
    cmp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
    serve = rsub.add_parser("serve", help="serve the reports folder read-only over HTTP (127.0.0.1 by default)")
    setting_option(serve, "--store", "store_dir", dest="store", default=argparse.SUPPRESS)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
