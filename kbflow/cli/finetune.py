"""`kbflow finetune DATASET --model NAME --out ADAPTER.gguf`: a LoRA adapter trained on an exported dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from kbflow.cli.common import EXIT_OK, print_json, setting_option, store_options
from tasks.finetune.options import FinetuneOptions


def run(args: argparse.Namespace) -> int:
    """Run the flow with a progress bar; print where the adapter is, what it learned, and how to use it."""
    from flows.finetune import finetune_flow
    from kbflow import progress

    progress.enable_terminal_progress(bar=not args.json)
    if args.compare_questions:
        from flows.adapter_ab import ab_questions

        ab_questions(args.dataset, args.compare_questions)  # a missing file is said before an hour of training
    summary = finetune_flow(
        dataset_dir=args.dataset,
        out=args.out,
        model=args.model,
        store_dir=args.store,
        collection=args.collection,
        epochs=args.epochs,
        max_examples=args.max_examples,
        rank=args.rank,
        alpha=args.alpha,
        learning_rate=args.learning_rate,
        max_tokens=args.max_tokens,
        precision=args.precision,
        device=args.device,
        steps=args.steps,
        seed=args.seed,
    )
    if args.compare or args.compare_questions:
        from flows.adapter_ab import adapter_ab_flow

        summary["ab"] = adapter_ab_flow(
            dataset_dir=summary["dataset_dir"],
            adapter=summary["out"],
            model=args.model,
            store_dir=args.store,
            collection=args.collection,
            questions=args.compare_questions,
        )
    if args.json:
        print_json({k: v for k, v in summary.items() if k != "curve"})
        return EXIT_OK

    def loss(x):
        return "n/a" if x is None else f"{x:.4f}"

    verify = summary["verify"]
    print(f"Wrote LoRA adapter {summary['out']}")
    print(
        f"  {summary['steps']} steps on {summary['train_examples']} examples in {summary['train_seconds']:.0f} s "
        f"({summary['device']}, {summary['precision']}); eval loss {loss(summary['eval_loss_before'])} -> "
        f"{loss(summary['eval_loss_after'])} on {summary['eval_examples']} held-out examples"
    )
    print(
        f"  checked in llama.cpp: loss {verify['llama_cpp_loss']:.4f} against PyTorch's {verify['torch_loss']:.4f} "
        f"({verify['relative_difference']:.2%} apart)"
    )
    questions = Path(summary["dataset_dir"]) / "questions.csv"
    print(f"  answer with it: kbflow ask {questions} --model {args.model or 'auto'} --lora {summary['out']}")
    if "ab" in summary:
        ab = summary["ab"]
        print(
            f"  A/B on {ab['questions']}: {'recommended' if ab['recommended'] else 'NOT recommended'}: "
            f"{ab['why']}; compare: kbflow reports compare {ab['base_report']} {ab['adapter_report']}"
        )
    return EXIT_OK


def add_parser(subparsers) -> None:
    """Register `kbflow finetune DATASET ...`."""
    sp = subparsers.add_parser(
        "finetune", help="train a LoRA adapter on a dataset from `kbflow dataset export` (for `kbflow ask --lora`)"
    )
    sp.add_argument("dataset", help="the folder `kbflow dataset export --out` wrote")
    store_options(sp)
    sp.add_argument("--out", help="the adapter file (default: DATASET/adapter-<model>.gguf)")
    sp.add_argument("--model", help="base GGUF to train from (default KBFLOW_LLM_MODEL): the one you answer with")
    setting_option(sp, "--epochs", "epochs", FinetuneOptions)
    setting_option(sp, "--max-examples", "max_examples", FinetuneOptions)
    setting_option(sp, "--rank", "rank", FinetuneOptions)
    setting_option(sp, "--alpha", "alpha", FinetuneOptions)
    setting_option(sp, "--learning-rate", "learning_rate", FinetuneOptions)
    setting_option(sp, "--max-tokens", "max_tokens", FinetuneOptions)
    setting_option(sp, "--precision", "precision", FinetuneOptions)
    setting_option(sp, "--device", "device", FinetuneOptions)
    setting_option(sp, "--steps", "steps", FinetuneOptions)
    setting_option(sp, "--seed", "seed", FinetuneOptions)
    sp.add_argument(
        "--compare",
        action="store_true",
        help="then answer the dataset's held-out questions with and without the adapter and compare the reports",
    )
    sp.add_argument(
        "--compare-questions",
        metavar="FILE",
        help="compare on this question file instead (questions people ask, with expected answers); implies --compare",
    )
    sp.set_defaults(func=run)
