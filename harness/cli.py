"""Command line: ``harness evaluate | tasks | report | check | export``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from pathlib import Path

from harness import __version__
from harness.types import HarnessError, InputError

DEFAULT_MODEL = "mixedbread-ai/mxbai-edge-colbert-v0-17m"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs kept as written (the examples); every option's default appended to its help unless
    the help already states it (or there is none to state: no value, a flag off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or not action.option_strings
            or isinstance(action, argparse._HelpAction | argparse._VersionAction)
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
        return f"{text} (default: {shown})"


def _command(
    sub: argparse._SubParsersAction, name: str, help: str, examples: list[str], description: str = ""
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with its examples (each a command line, # comment)."""
    lines = "\n".join(f"  {line}" for line in examples)
    return sub.add_parser(
        name,
        help=help,
        description=_wrap(description or help[0].upper() + help[1:] + "."),
        epilog=f"examples:\n{lines}",
        formatter_class=_HelpFormatter,
    )


def _wrap(text: str) -> str:
    """A description filled to the terminal's usual width (the formatter keeps text as written)."""
    return textwrap.fill(text, width=88)


def _output_file(path: Path) -> Path:
    """``--output`` naming a file to write: a folder there is an error, before any work."""
    if path.is_dir():
        raise InputError(f"{path} is a folder: name the file to write", field="--output")
    return path


def _threshold(value: str) -> float | None | str:
    """--centroid-score-threshold: a float, 'none' (no pruning) or 'default' (by --k)."""
    return value if value == "default" else None if value.lower() == "none" else float(value)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "evaluate",
        "evaluate a model on tasks and write one results file per task",
        [
            "harness evaluate   # mxbai-edge-colbert-v0-17m on NanoBEIR (Hub), results/ + model card",
            "harness evaluate --model ./my-colbert --tasks scifact --data-dir ../shared/data/beir",
            "harness evaluate --model ./my-colbert --tasks BEIR/msmarco --index plaid --executor ray",
        ],
    )
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"local folder, Hugging Face id or 'bm25' (default {DEFAULT_MODEL})",
    )
    p.add_argument("--model-name", help="model id stored in the results (default: folder name or Hub id)")
    p.add_argument("--document-length", type=int, help="ColBERT: max document tokens (default: checkpoint's)")
    p.add_argument("--query-length", type=int, help="ColBERT: query tokens (default: checkpoint's)")
    p.add_argument("--query-prompt", help="text put before every query (default: the checkpoint's prompts)")
    p.add_argument("--document-prompt", help="text put before every document (default: the checkpoint's)")
    p.add_argument(
        "--revision",
        help="Hub model: the branch, tag or commit to load (default: a registered pin, else main)",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["NanoBEIR"],
        help="task names, groups (NanoBEIR, BEIR, BEIR-card, LongEmbed: see 'harness tasks') or BEIR "
        "folders under --data-dir (a folder named as a registered dataset is that task)",
    )
    p.add_argument(
        "--data-dir", type=Path, help="folder holding datasets as <name>/ (looked at before the Hub)"
    )
    p.add_argument("--split", help="split to evaluate (default: the task's evaluation split)")
    _output_option(p, Path("results"), "results folder: one JSON file per model and task")
    p.add_argument("--batch-size", type=int, default=32, help="texts per encoder batch, at most")
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device the encoder runs on: cpu (default), cuda, cuda:1; with --executor ray, "
        "cuda means one worker per GPU of the cluster",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="encoder weights and activations (default float32, what card numbers use; recorded)",
    )
    p.add_argument(
        "--max-memory",
        default="4GiB",
        help="activations one encoder batch may take, e.g. 4GiB, 512MB (default 4GiB): batches of "
        "long documents are cut below it; a text that alone exceeds it is refused before any work",
    )
    p.add_argument(
        "--attention",
        choices=["auto", "blockwise", "sdpa", "eager"],
        default="auto",
        help="attention kernel: blockwise = memory linear in length (ModernBERT, BERT); sdpa / eager = "
        "transformers' own; auto (default) = blockwise where supported, else sdpa",
    )
    p.add_argument(
        "--kernels",
        choices=["auto", "default", "onednn"],
        default="auto",
        help="CPU kernels: auto = oneDNN's linear layers with the feed-forward GELU (and ModernBERT's "
        "gate) fused in on CPUs where torch runs AVX-512 kernels, torch's elsewhere, and a compiled "
        "rotary embedding; default = torch's and transformers' own; onednn = force oneDNN. Same "
        "numbers (1e-6); what ran is recorded in the results (model.kernels)",
    )
    p.add_argument(
        "--scoring",
        choices=["masked", "pylate"],
        help="MaxSim mode (default: pylate for NanoBEIR so card numbers reproduce, masked elsewhere)",
    )
    p.add_argument(
        "--index",
        choices=["exact", "plaid"],
        default="exact",
        help="retrieval: exact MaxSim over every document, or a PLAID compressed index",
    )
    p.add_argument("--nbits", type=int, default=4, help="PLAID residual bits: 1, 2 or 4 (default 4)")
    p.add_argument("--n-probe", type=int, help="PLAID: centroids probed per query token (default by --k)")
    p.add_argument(
        "--centroid-score-threshold",
        type=_threshold,
        default="default",
        help="PLAID: prune centroids scoring below this in stage 3 ('none': no pruning; default by --k)",
    )
    p.add_argument("--n-full-scores", type=int, help="PLAID: stage-3 candidates kept (default by --k)")
    p.add_argument("--first-stage", help="rerank mode: 'bm25', a TREC run file, or a dense model")
    p.add_argument("--rerank-depth", type=int, default=100, help="rerank mode: first-stage hits rescored")
    p.add_argument("--k", type=int, help="ranking depth (default 100 for card tasks, 1000 for trec)")
    p.add_argument(
        "--cache-dir", type=Path, help="embedding cache (default $HARNESS_CACHE_DIR or ~/.cache/...)"
    )
    p.add_argument("--no-cache", action="store_true", help="encode cold and keep nothing")
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where encoding runs: local (default, this process) or ray (workers that each hold the "
        "model; shards land in the cache; needs the [ray] extra)",
    )
    p.add_argument(
        "--ray-address",
        help="ray: the cluster to join ('auto': the running one; default: start a local one)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="ray: CPU workers (default: one per CPU); on --device cuda, GPUs to use (default all)",
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=4096,
        help="texts per embedding-cache shard, the unit of work on Ray (default 4096; an existing "
        "cache entry keeps its own)",
    )
    p.add_argument("--overwrite", action="store_true", help="recompute even when a matching result exists")
    p.add_argument("--save-run", action="store_true", help="also write TREC run files under <output>/runs/")
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run Python code shipped with a Hub model (off: such a model is refused)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final summary (no bars, no notes)")
    p.set_defaults(func=_cmd_evaluate)


def _output_option(p: argparse.ArgumentParser, default: Path | None, help: str, **kw) -> None:
    """``--output`` (the one spelling of an output folder or file; ``--out`` still accepted)."""
    p.add_argument("--output", type=Path, default=default, help=help, **kw)
    p.add_argument("--out", dest="output", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


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
        plaid_n_probe=args.n_probe,
        plaid_centroid_score_threshold=args.centroid_score_threshold,
        plaid_n_full_scores=args.n_full_scores,
        first_stage=args.first_stage,
        rerank_depth=args.rerank_depth,
        k=args.k,
        cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
        overwrite=args.overwrite,
        save_run=args.save_run,
        show_progress=not args.quiet,
        trust_remote_code=args.trust_remote_code,
        model_name=args.model_name,
        document_length=args.document_length,
        query_length=args.query_length,
        query_prompt=args.query_prompt,
        document_prompt=args.document_prompt,
        revision=args.revision,
        max_memory=args.max_memory,
        attention=args.attention,
        kernels=args.kernels,
        executor=args.executor,
        ray_address=args.ray_address,
        workers=args.workers,
        shard_size=args.shard_size,
    )
    if args.quiet and args.executor == "ray":
        import ray  # noqa: F401  (it sets its loggers' levels when imported)

        logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notices
    results = evaluate(args.model, args.tasks, settings)
    print(summary_table(results))
    _write_card_if_nanobeir(results, args.output)
    print(_results_line(results, args.output))
    return 0


def _results_line(results: list, output: Path) -> str:
    """Where the results went: the file of a single task, else the folder and how many files."""
    from harness.results import result_filename

    if len(results) == 1:
        return f"results: {output / result_filename(results[0].model_id, results[0].task_name)}"
    return f"results: {output}/ ({len(results)} files)"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a message comes (it may be replaced, e.g. in tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def _log_to_terminal(*, quiet: bool) -> None:
    """The harness's own messages (a reused results file, a skipped file, ...) on stdout, warnings
    only when ``quiet``, which also silences the libraries' progress bars (transformers, datasets,
    the Hub)."""
    logger = logging.getLogger("harness")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # every tqdm bar, ours and the libraries' (also in Ray workers)
        import datasets
        import huggingface_hub.utils
        import transformers

        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        huggingface_hub.utils.disable_progress_bars()


def _metric_text(result) -> str:
    """``nDCG@10 (trec_eval)``: a task's main metric as the README spells it, with its convention."""
    from harness.metrics import metric_label

    convention = {"card": "card", "trec": "trec_eval"}[result.task["convention"]]
    return f"{metric_label(result.task['main_metric'])} ({convention})"


def summary_table(results: list) -> str:
    """Plain-text table: task, metric (convention), score, queries, seconds ("reused" for a finished
    results file the run returned as it was)."""
    from harness.console import plain_table

    rows = [
        (
            r.task_name,
            _metric_text(r),
            f"{r.main_score:.4f}",
            str(sum(s.n_queries for s in r.subsets)),
            "reused" if r.reused else f"{(r.timings.get('total_s') or 0):.1f}",
        )
        for r in results
    ]
    return plain_table(("task", "metric", "score", "queries", "seconds"), rows)


def _write_card_if_nanobeir(results: list, output: Path | None) -> None:
    """After a full NanoBEIR run: the model card (model-index YAML + tables) next to the results."""
    from harness.fileio import write_text_atomic
    from harness.report import nanobeir_datasets, render_model_card
    from harness.results import result_filename

    by_model: dict[str, set[str]] = {}
    for r in results:
        by_model.setdefault(r.model_id, set()).add(r.task_name)
    datasets = set(nanobeir_datasets())
    for model, tasks in by_model.items():
        if output and datasets and datasets <= tasks:
            path = output / result_filename(model, "model_card").replace(".json", ".md")
            write_text_atomic(path, render_model_card(results, model))
            print(f"model card: {path}")


def _add_tasks(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "tasks",
        "list registered tasks (convention, metric, split, published size) and groups with members",
        ["harness tasks", "harness tasks --group NanoBEIR"],
    )
    p.add_argument("--group", help="only this group's tasks")
    p.set_defaults(func=_cmd_tasks)


def _cmd_tasks(args: argparse.Namespace) -> int:
    from harness.console import plain_table
    from harness.tasks import get_task, list_groups, list_tasks

    groups = list_groups()
    if args.group:
        match = next((g for g in groups if g.lower() == args.group.lower()), None)
        if match is None:
            raise InputError(f"unknown group (known: {', '.join(groups)})", field="--group")
        groups = {match: groups[match]}
        tasks = [get_task(name) for name in groups[match]]
    else:
        tasks = list_tasks()

    def size(n: int | None) -> str:
        return "-" if n is None else f"{n:,}"

    rows = [
        (t.name, t.convention, t.main_metric, t.eval_split, size(t.n_queries), size(t.n_documents))
        for t in tasks
    ]
    print(plain_table(("task", "convention", "metric", "split", "queries", "documents"), rows))
    for name, members in groups.items():
        print(f"\ngroup {name} ({len(members)} tasks): {', '.join(members)}")
    print(
        "\nsizes: the evaluation split as published (- where not recorded); "
        "any BEIR-layout folder under --data-dir is a task too"
    )
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "models",
        "list registered models (evaluate --model <name> loads one at its pinned revision)",
        ["harness models", "harness evaluate --model GTE-ModernColBERT-v1 --tasks NanoBEIR"],
    )
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from harness.console import plain_table
    from harness.models import list_models

    rows = [
        (
            m.name,
            m.kind,
            m.hub_id + (f"@{m.revision[:12]}" if m.revision else ""),
            f"{m.parameters / 1e6:.1f}M" if m.parameters else "-",
            m.size_group or "-",
            ", ".join(f"{k}={v!r}" for k, v in m.overrides.items()) or "-",
        )
        for m in list_models()
    ]
    print(plain_table(("name", "kind", "hub id", "parameters", "size group", "loader settings"), rows))
    return 0


def _add_results(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "results",
        "list what results files or folders hold: model, task, main metric and score, when",
        ["harness results results/", "harness results results/ results/published"],
    )
    p.add_argument("paths", nargs="+", type=Path, help="results files or folders (searched recursively)")
    p.set_defaults(func=_cmd_results)


def _cmd_results(args: argparse.Namespace) -> int:
    from harness.console import plain_table
    from harness.results import load_results

    results = load_results(args.paths)
    if not results:
        raise InputError("no results files there", field=" ".join(map(str, args.paths)))
    rows = [
        (
            r.model_id + (" †" if r.published else ""),
            r.task_name,
            _metric_text(r),
            f"{r.main_score:.4f}",
            str(sum(s.n_queries for s in r.subsets) or "-"),  # a published figure: not known
            r.retrieval.get("method", "-"),
            r.created[:10],
        )
        for r in sorted(results, key=lambda r: (r.model_id, r.task_name, r.created))
    ]
    print(plain_table(("model", "task", "metric", "score", "queries", "retrieval", "created"), rows))
    models = len({r.model_id for r in results})
    print(f"{len(results)} results files, {models} models; † published figures (transcribed, not run)")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="model card, leaderboard page or tables from results files",
        description=_wrap(
            "Reports from results files: a model card, a leaderboard page with figures, or "
            "the leaderboard's tables as CSV / LaTeX / markdown."
        ),
        formatter_class=_HelpFormatter,
        epilog="examples:\n"
        "  harness report card results/ results/published --model mxbai-edge-colbert-v0-17m\n"
        "  harness report leaderboard results/ results/published --output reports/\n"
        "  harness report table results/ results/published --format latex --output tables/",
    )
    kinds = p.add_subparsers(dest="kind", required=True)
    card = _command(
        kinds,
        "card",
        "model-index YAML + NanoBEIR/BEIR/LongEmbed tables for one model, in the model card's format",
        [
            "harness report card results/ results/published --model mxbai-edge-colbert-v0-17m",
            "harness report card results/ --model my-colbert --display-name 'My ColBERT' --output card.md",
        ],
    )
    card.add_argument("results", nargs="+", type=Path, help="results files or folders (published rows too)")
    card.add_argument("--model", required=True, help="model id as stored in the results files")
    card.add_argument("--display-name", help="name shown in the card (default: last part of --model)")
    _output_option(card, None, "markdown file to write (default: print it)")
    card.set_defaults(func=_cmd_report_card)
    board = _command(
        kinds,
        "leaderboard",
        "leaderboard as markdown + one self-contained HTML page + figures (PNG, SVG)",
        [
            "harness report leaderboard results/ results/published",
            "harness report leaderboard results/ --output site/ --title 'Edge ColBERT models' --no-plots",
        ],
    )
    board.add_argument("results", nargs="+", type=Path, help="results files or folders (published rows too)")
    _output_option(board, Path("reports"), "folder for leaderboard.md, leaderboard.html and the figures")
    board.add_argument("--title", default="Retrieval leaderboard", help="page title")
    board.add_argument("--no-plots", action="store_true", help="tables only (no figures)")
    board.set_defaults(func=_cmd_report_leaderboard)
    table = _command(
        kinds,
        "table",
        "the leaderboard's tables as CSV, LaTeX or markdown",
        [
            "harness report table results/ results/published --format latex --output tables/",
            "harness report table results/ --format markdown   # to standard output",
        ],
    )
    table.add_argument("results", nargs="+", type=Path, help="results files or folders (published rows too)")
    table.add_argument("--format", choices=["csv", "latex", "markdown"], default="csv", help="table format")
    _output_option(
        table, Path("-"), "folder for one file per table (<benchmark>.csv|tex|md), or - for stdout"
    )
    table.set_defaults(func=_cmd_report_table)


def _cmd_report_table(args: argparse.Namespace) -> int:
    from harness.fileio import write_text_atomic
    from harness.report import TABLE_FORMATS, format_table, leaderboard_tables
    from harness.results import load_results

    tables = leaderboard_tables(load_results(args.results))
    if not tables:
        raise InputError("no results files there", field=" ".join(map(str, args.results)))
    for table in tables:
        text = format_table(table, args.format)
        if str(args.output) == "-":
            print(f"# {table.family}\n{text}")
        else:
            path = args.output / f"{table.slug}.{TABLE_FORMATS[args.format]}"
            write_text_atomic(path, text)
            print(f"wrote {path}")
    return 0


def _cmd_report_card(args: argparse.Namespace) -> int:
    from harness.fileio import write_text_atomic
    from harness.report import render_model_card
    from harness.results import load_results

    text = render_model_card(load_results(args.results), args.model, display_name=args.display_name)
    if args.output:
        write_text_atomic(_output_file(args.output), text)
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _cmd_report_leaderboard(args: argparse.Namespace) -> int:
    from harness.report import render_leaderboard
    from harness.results import load_results

    md, html = render_leaderboard(
        load_results(args.results), args.output, title=args.title, plots=not args.no_plots
    )
    print(f"wrote {md} and {html}")
    return 0


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "check",
        "regression gate: candidate results vs a baseline (exit 1 on regression)",
        [
            "harness check --baseline results/main --candidate results/pr",
            "harness check --baseline base/ --candidate new/ --abs-tol 0.01 --tolerance BEIR/nq=0.02 "
            "--junit gate.xml",
        ],
        description="Compare candidate results with a baseline, task by task, with paired tests. Exit "
        "codes: 0 the gate passes; 1 a task regressed (or is inconclusive with --fail-on inconclusive, "
        "or is missing from the candidate without --allow-missing); 2 bad input or usage, including "
        "a comparison of nothing (an empty side, no task in common).",
    )
    p.add_argument("--baseline", nargs="+", type=Path, required=True, help="results files or folders")
    p.add_argument("--candidate", nargs="+", type=Path, required=True, help="results files or folders")
    p.add_argument("--baseline-model", help="pick one model when the baseline folder holds several")
    p.add_argument("--candidate-model", help="pick one model when the candidate folder holds several")
    p.add_argument("--abs-tol", type=float, default=0.005, help="allowed absolute drop (default 0.005)")
    p.add_argument("--rel-tol", type=float, help="allowed relative drop (the larger of the two applies)")
    p.add_argument(
        "--tolerance", action="append", default=[], metavar="TASK=DROP", help="per-task allowed drop"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument(
        "--test",
        choices=["permutation", "t"],
        default="permutation",
        help="paired test over per-query scores: sign-flip permutation or paired t-test",
    )
    p.add_argument("--resamples", type=int, default=10000, help="permutation test: random sign flips")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation test's flips")
    p.add_argument(
        "--fail-on",
        choices=["regression", "inconclusive"],
        default="regression",
        help="'inconclusive' also fails on a drop beyond the tolerance that is not significant "
        "(default: regression only)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="pass even when the candidate lacks a task of the baseline",
    )
    p.add_argument("--fail-on-missing", action="store_true", help=argparse.SUPPRESS)  # now the default
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument("--junit", type=Path, help="also write the report as JUnit XML")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.check import check, select_model
    from harness.fileio import write_text_atomic
    from harness.results import load_results

    baseline, candidate = load_results(args.baseline), load_results(args.candidate)
    if args.baseline_model:
        baseline = select_model(baseline, args.baseline_model, "--baseline-model")
    if args.candidate_model:
        candidate = select_model(candidate, args.candidate_model, "--candidate-model")
    per_task = {}
    for item in args.tolerance:
        task, _, value = item.rpartition("=")
        try:
            per_task[task] = float(value)
        except ValueError:
            raise HarnessError(f"--tolerance {item!r}: expected TASK=NUMBER") from None
    report = check(
        baseline,
        candidate,
        abs_tol=args.abs_tol,
        rel_tol=args.rel_tol,
        per_task_tol=per_task,
        alpha=args.alpha,
        n_resamples=args.resamples,
        seed=args.seed,
        test=args.test,
        fail_on=("regression", "inconclusive") if args.fail_on == "inconclusive" else ("regression",),
        allow_missing=args.allow_missing,
    )
    print(report.to_text())
    if args.json:
        write_text_atomic(args.json, report.to_json())
    if args.junit:
        write_text_atomic(args.junit, report.to_junit_xml())
    return report.exit_code


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "export",
        "per-query scores of results files as CSV (TREC run files: evaluate --save-run)",
        [
            "harness export results/ --output per_query.csv",
            "harness export results/m__BEIR_scifact.json --output - | head",
        ],
    )
    p.add_argument("results", type=Path, nargs="+", help="results files, or folders holding them")
    _output_option(p, None, "CSV file to write, or - for standard output (required)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from harness.export import per_query_csv, write_per_query_csv
    from harness.results import load_results

    if args.output is None:
        raise InputError("required: the CSV file to write, or - for standard output", field="--output")
    results = load_results(args.results)
    if not results:
        raise InputError("no results files there", field=" ".join(map(str, args.results)))
    if str(args.output) == "-":
        sys.stdout.write(per_query_csv(results))
    else:
        path = write_per_query_csv(results, _output_file(args.output))
        print(f"wrote {path} ({len(results)} results files)")
    return 0


def _add_mteb(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mteb",
        help="MTEB results files: import as leaderboard rows, export a run for an MTEB submission",
        description=_wrap(
            "MTEB interop: 'import' reads MTEB results files (their results-repository layout) "
            "into harness results files marked as published figures with their source; 'export' writes "
            "harness runs in MTEB's layout (<org>__<model>/<revision>/<Task>.json + model_meta.json)."
        ),
        formatter_class=_HelpFormatter,
        epilog="examples:\n"
        "  harness mteb import ../results/results/lightonai__GTE-ModernColBERT-v1 --output results/mteb\n"
        "  harness mteb export results/ --output mteb-submission/",
    )
    kinds = p.add_subparsers(dest="kind", required=True)
    imp = _command(
        kinds,
        "import",
        "MTEB results files or folders -> harness results files (published rows, trec convention)",
        [
            "harness mteb import results-repo/results/lightonai__GTE-ModernColBERT-v1 --output results/mteb",
            "harness mteb import SciFact.json --model-name my-model --output results/mteb",
        ],
    )
    imp.add_argument("paths", nargs="+", type=Path, help="MTEB results files or folders")
    imp.add_argument(
        "--model-name", help="model id for the rows (default: model_meta.json, else the folders)"
    )
    _output_option(imp, Path("results/mteb"), "folder for the harness results files")
    imp.set_defaults(func=_cmd_mteb_import)
    exp = _command(
        kinds,
        "export",
        "harness runs -> MTEB results files, ready for a pull request to MTEB's results repository",
        [
            "harness mteb export results/ --output mteb-submission/",
            "harness mteb export results/m__BEIR_scifact.json --model-name org/my-model --output out/",
        ],
    )
    exp.add_argument("results", nargs="+", type=Path, help="harness results files or folders")
    exp.add_argument(
        "--model-name", help="MTEB model name, org/name (default: the registered Hub id, else the id)"
    )
    _output_option(exp, Path("mteb-results"), "folder for <org>__<model>/<revision>/<Task>.json")
    exp.set_defaults(func=_cmd_mteb_export)


def _cmd_mteb_import(args: argparse.Namespace) -> int:
    from harness.mteb import import_mteb_results
    from harness.results import save_result

    rows = [r for path in args.paths for r in import_mteb_results(path, model_id=args.model_name)]
    if not rows:
        raise InputError("no MTEB retrieval results there", field=" ".join(map(str, args.paths)))
    for r in rows:
        save_result(r, args.output)
    print(f"wrote {len(rows)} results files (published rows from MTEB) to {args.output}/")
    return 0


def _cmd_mteb_export(args: argparse.Namespace) -> int:
    from harness.mteb import export_mteb
    from harness.results import load_results

    runs = [r for r in load_results(args.results) if r.published is None]
    if not runs:
        raise InputError("no harness runs there (published figures are not exported)", field="results")
    written = [p for r in runs for p in export_mteb(r, args.output, model_name=args.model_name)]
    print(f"wrote {len(written)} MTEB files under {args.output}/")
    return 0


EPILOG = """examples:
  harness evaluate --model ./my-colbert --tasks scifact --data-dir ../shared/data/beir
  harness report leaderboard results/ results/published
  harness <command> --help      # each command's options, defaults and examples

exit codes: 0 success; 1 'harness check' found a failure (a regression, ...); 2 bad input or usage"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description=_wrap(
            "Evaluate retrieval models (ColBERT first) on NanoBEIR, BEIR and LongEmbed; report and "
            "check the results."
        ),
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_evaluate(sub)
    _add_tasks(sub)
    _add_models(sub)
    _add_results(sub)
    _add_report(sub)
    _add_check(sub)
    _add_export(sub)
    _add_mteb(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bars = os.environ.get("TQDM_DISABLE")
    _log_to_terminal(quiet=getattr(args, "quiet", False))
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:  # --quiet is this command's: a caller in the same process (a notebook, a test) keeps its bars
        if bars is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = bars


if __name__ == "__main__":
    sys.exit(main())
