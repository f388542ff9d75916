"""Command line: ``harness evaluate | tasks | report | check | export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import __version__
from harness.types import HarnessError

DEFAULT_MODEL = "mixedbread-ai/mxbai-edge-colbert-v0-17m"


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model on tasks and write one results file per task")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"local folder, Hugging Face id or 'bm25' (default {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["NanoBEIR"],
        help="task names, groups (NanoBEIR, BEIR, BEIR-card, LongEmbed) or BEIR folders under --data-dir",
    )
    p.add_argument(
        "--data-dir", type=Path, help="folder holding datasets as <name>/ (looked at before the Hub)"
    )
    p.add_argument("--split", help="split to evaluate (default: the task's evaluation split)")
    p.add_argument("--output", type=Path, default=Path("results"), help="results folder (default results/)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument(
        "--scoring",
        choices=["masked", "pylate"],
        help="MaxSim mode (default: pylate for NanoBEIR so card numbers reproduce, masked elsewhere)",
    )
    p.add_argument("--index", choices=["exact", "plaid"], default="exact")
    p.add_argument("--nbits", type=int, choices=[1, 2, 4], default=4, help="PLAID residual bits")
    p.add_argument("--first-stage", help="rerank mode: 'bm25', a TREC run file, or a dense model")
    p.add_argument("--rerank-depth", type=int, default=100)
    p.add_argument("--k", type=int, help="ranking depth (default 100 for card tasks, 1000 for trec)")
    p.add_argument(
        "--cache-dir", type=Path, help="embedding cache (default $HARNESS_CACHE_DIR or ~/.cache/...)"
    )
    p.add_argument("--no-cache", action="store_true", help="encode cold and keep nothing")
    p.add_argument("--overwrite", action="store_true", help="recompute even when a matching result exists")
    p.add_argument("--save-run", action="store_true", help="also write TREC run files under <output>/runs/")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.run import EvalSettings, default_cache_dir, evaluate

    settings = EvalSettings(
        split=args.split,
        data_dir=args.data_dir,
        output_dir=args.output,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        scoring=args.scoring,
        index=args.index,
        plaid_nbits=args.nbits,
        first_stage=args.first_stage,
        rerank_depth=args.rerank_depth,
        k=args.k,
        cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
        overwrite=args.overwrite,
        save_run=args.save_run,
        show_progress=not args.quiet,
        trust_remote_code=args.trust_remote_code,
    )
    results = evaluate(args.model, args.tasks, settings)
    if args.quiet:
        from harness.run import summary_table

        print(summary_table(results))
    return 0


def _add_tasks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list registered tasks and groups")
    p.set_defaults(func=_cmd_tasks)


def _cmd_tasks(args: argparse.Namespace) -> int:
    from harness.tasks import list_groups, list_tasks

    for task in list_tasks():
        print(f"{task.name:32s} {task.convention:5s} {task.main_metric:8s} split={task.eval_split}")
    for name, members in list_groups().items():
        print(f"group {name}: {len(members)} tasks")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_evaluate(sub)
    _add_tasks(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
