"""The runner: task -> dataset -> encode (cached) -> retrieve -> metrics -> results file.

``evaluate`` is the Python API behind ``harness evaluate``: it plans the whole run first
(``harness.plan``: settings checked, tasks resolved, model and first stage loaded, one retriever
per task), then walks each task in straight-line steps and returns one
:class:`harness.results.Result` per task. Each results file is written atomically as soon as its
task is finished, so a killed run that is started again skips the tasks whose results file still
matches the model, the data and the settings. An approximate run (PLAID, rerank, a compression
variant) records its fidelity to exact search of the plain model (``harness.fidelity``), after its
costs were measured. Nothing here prints: progress bars come from the
stages, messages go to the ``harness`` logger, and the CLI shows the summary.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from harness.efficiency import (
    SearchMeasurement,
    efficiency_record,
    measure_search,
)
from harness.executor import Executor
from harness.fidelity import fidelity_record, find_reference, is_approximate, variant_of
from harness.fileio import require_free_space
from harness.jit import default_cache_dir
from harness.metrics import card_metrics, trec_metrics
from harness.models import find_model
from harness.plan import (
    BM25_MODEL_ID,
    TaskPlan,
    is_bm25,
    load_executor,
    load_first_stage,
    load_model,
    plan_tasks,
    resolve,
)
from harness.ranking import drop_excluded, to_run
from harness.records import FidelityRecord, ModelRecord, RetrievalRecord, SubsetScores, TaskRecord
from harness.results import Result, Results, load_reusable, save_result
from harness.retrieve import ExactRetriever, Ranking, SearchStats
from harness.settings import CARD_DEPTH, TREC_DEPTH, EvalSettings
from harness.tasks import Task
from harness.types import Dataset, Encoder, Run, sum_known

__all__ = ["CARD_DEPTH", "TREC_DEPTH", "EvalSettings", "default_cache_dir", "evaluate", "score_run"]

logger = logging.getLogger(__name__)

ExactSearch = Callable[[Task], "ExactRetriever | None"]  # a task's exact search of the plain model


def evaluate(
    model: str | Encoder,
    tasks: str | Task | Sequence[str | Task],
    settings: EvalSettings | None = None,
    **overrides: Any,
) -> Results:
    """Evaluate ``model`` (path, HF id, ``"bm25"`` or an Encoder) on ``tasks`` (one name, task or
    group, or several); one result per task, as :func:`harness.results.load_results` gives them.

    ``overrides`` are EvalSettings fields, so notebooks can write
    ``evaluate("path", ["NanoSciFact"], data_dir="data", output_dir=None)``. Messages (a results
    file reused, ...) go to the ``harness`` logger: ``logging.basicConfig(level=logging.INFO)``
    shows them.
    """
    settings = (settings or EvalSettings()).replace(**overrides)
    resolved = resolve(tasks, settings)
    with contextlib.closing(load_executor(settings)) as executor:
        # a run file is checked now
        first_stage = None if is_bm25(model) else load_first_stage(settings, executor)
        encoder = load_model(model, settings)
        record = model_record(encoder, settings.model_name)
        plans = plan_tasks(encoder, record.id, resolved, settings, first_stage, executor)
        exact = exact_search(model, encoder, settings, executor)
        return Results(run_task(plan, record, settings, exact) for plan in plans)


def exact_search(
    model: str | Encoder, encoder: Encoder | None, settings: EvalSettings, executor: Executor
) -> ExactSearch:
    """The exact search of ``model``'s plain form (no compression variant, float32) for a task, as
    ``harness evaluate --index exact`` would run it (``plan_tasks``: same cache, scoring, memory
    bound), for the fidelity of an approximate run (``harness.fidelity``). The run's encoder when it is
    plain; else the plain model loaded on first use (once); None for a variant given as an Encoder."""
    plain = settings.replace(index="exact", first_stage=None, output_dir=None, dtype="float32")
    plain = plain.replace(pool_factor=None, truncate_dim=None, quantize=None)

    @functools.cache
    def plain_encoder() -> Encoder | None:
        if encoder is None or not variant_of(encoder.settings()):
            return encoder
        return load_model(model, plain) if isinstance(model, str) else None

    def search(task: Task) -> ExactRetriever | None:
        chosen = plain_encoder()
        if chosen is None:
            return None
        [plan] = plan_tasks(chosen, chosen.name, [task], plain, None, executor)
        assert isinstance(plan.retriever, ExactRetriever), plan.retriever
        return plan.retriever

    return search


def model_record(encoder: Encoder | None, bm25_name: str | None = None) -> ModelRecord:
    """What a results file records under ``model`` (the BM25 baseline: named ``bm25_name``)."""
    if encoder is None:
        return ModelRecord(bm25_name or BM25_MODEL_ID, kind="bm25")
    info = find_model(encoder.name)
    return ModelRecord(
        id=encoder.name,
        fingerprint=encoder.fingerprint,
        revision=getattr(encoder, "revision", None),  # the Hub commit, when known
        kind="colbert" if encoder.multi_vector else "dense",
        parameters=encoder.parameter_count(),
        size_group=info.size_group if info else None,
        settings=encoder.settings(),
        kernels=getattr(encoder, "kernels", None) or None,  # the CPU kernels that ran (--kernels)
    )


def task_record(plan: TaskPlan, datasets: Sequence[Dataset]) -> TaskRecord:
    """What a results file records under ``task``."""
    task = plan.task
    return TaskRecord(
        name=task.name,
        convention=task.convention,
        main_metric=task.main_metric,
        split=plan.split,
        ignore_identical_ids=task.ignore_identical_ids,
        source=", ".join(sorted({d.source for d in datasets})),
        dataset_fingerprints={d.name: d.fingerprint() for d in datasets},
    )


def run_task(
    plan: TaskPlan, model: ModelRecord, settings: EvalSettings, exact: ExactSearch | None = None
) -> Result:
    """Evaluate one task, or return its finished results file when it still matches. An approximate
    run gets its fidelity against ``exact`` search (:func:`measure_fidelity`; None: not measured)."""
    started = time.perf_counter()
    datasets = plan.task.load(split=plan.split, data_dir=settings.data_dir)
    if settings.output_dir:  # results (and TREC runs: ~64 bytes a line) must fit, known before the search
        lines = sum(len(d.queries) * min(plan.k, len(d.corpus)) for d in datasets) if settings.save_run else 0
        require_free_space(settings.output_dir, (1 << 20) + 64 * lines, "the results files")
    task = task_record(plan, datasets)
    if plan.output and not settings.overwrite:
        old = load_reusable(plan.output, model, task, plan.retrieval)
        timed = _latency_limit(old)
        if old is not None and timed not in (None, settings.latency_queries):  # not this run's timings
            logger.info(
                "%s: not reusing %s: its latency was timed with --latency-queries %d, this run asks %d",
                plan.task.name,
                plan.output,
                timed,
                settings.latency_queries,
            )
        elif old is not None:
            logger.info("%s: reusing %s (same model, data and settings)", plan.task.name, plan.output)
            return old

    runs: dict[str, Run] = {}
    subsets: list[SubsetScores] = []
    searches: list[SearchMeasurement] = []
    limit = settings.latency_queries  # the task's first `limit` queries are also timed alone
    for dataset in datasets:
        queries, docs = dataset.query_texts, dataset.doc_texts
        left = max(limit - sum(len(s.latencies) for s in searches), 0)
        with plan.retriever.prepare(queries, docs, search_depth(dataset, plan.k)) as prepared:
            searches.append(measure_search(prepared, left, warm_up=limit > 0))
        runs[dataset.name] = ranked_run(dataset, searches[-1].ranking, plan.k)
        subsets.append(score_run(dataset, runs[dataset.name], plan.task, plan.k))
    stats = [s.stats for s in searches]

    retrieval = plan.retrieval
    if any(s.index for s in stats):  # one entry per subset: a multi-corpus task builds one index each
        retrieval = replace(retrieval, index={d.name: s.index for d, s in zip(datasets, stats, strict=True)})
    timings = _timings(stats, time.perf_counter() - started, sum(len(d.queries) for d in datasets))
    tokens = _tokens(stats)
    result = Result(
        model=model,
        task=task,
        retrieval=retrieval,
        settings=settings.record(),
        subsets=subsets,
        timings=timings,
        tokens=tokens,
        efficiency=efficiency_record(timings, tokens, searches, limit=limit, device=settings.device),
    )
    if exact is not None and is_approximate(model, retrieval):
        result = replace(result, fidelity=measure_fidelity(plan, result, datasets, runs, settings, exact))
    if settings.output_dir:
        save_result(result, settings.output_dir, runs if settings.save_run else None)
    return result


def _latency_limit(result: Result | None) -> int | None:
    """The ``--latency-queries`` a finished result's single-query timings were taken with; None where
    it records none (none asked, or a file from before the record: no timings to contradict)."""
    single = result.efficiency.single if result is not None and result.efficiency is not None else None
    return single.limit if single is not None else None


def ranked_run(dataset: Dataset, ranking: Ranking, k: int) -> Run:
    """A subset's ranking as a Run, the dataset's excluded docs dropped (before the metrics and the
    TREC run file)."""
    run = to_run(dataset.query_texts.ids, dataset.doc_texts.ids, ranking.scores, ranking.indices)
    return drop_excluded(run, dataset.excluded, k) if dataset.excluded else run


def measure_fidelity(
    plan: TaskPlan,
    result: Result,
    datasets: Sequence[Dataset],
    runs: dict[str, Run],
    settings: EvalSettings,
    exact: ExactSearch,
) -> FidelityRecord | None:
    """``result`` (rankings ``runs``) against exact search of its plain model on the same data: the
    exact run's results file and TREC runs in the output folder when there
    (:func:`harness.fidelity.find_reference`), else exact search of each subset's queries now (through
    the embedding cache, under ``--max-memory``; after the run's costs were measured); None when
    neither can be had (a variant given as an Encoder object)."""
    folder = settings.output_dir
    found = find_reference(folder, result.model, result.task) if folder else None
    if found is not None:
        reference, reference_runs = found
        if plan.output is not None and reference.file == plan.output:
            logger.warning(
                "%s: this run replaces the exact run it is measured against (%s); name it with "
                "--model-name to keep both",
                plan.task.name,
                plan.output,
            )
        return fidelity_record(result, runs, reference, reference_runs, computed=False)
    retriever = exact(plan.task)
    if retriever is None:
        logger.warning("%s: no exact reference for a variant passed as an Encoder", plan.task.name)
        return None
    reference_runs, subsets = {}, []
    for dataset in datasets:
        ranking, _ = retriever.search(dataset.query_texts, dataset.doc_texts, search_depth(dataset, plan.k))
        reference_runs[dataset.name] = ranked_run(dataset, ranking, plan.k)
        subsets.append(score_run(dataset, reference_runs[dataset.name], plan.task, plan.k))
    encoder = retriever.embedder.encoder
    reference = Result(
        model=model_record(encoder),
        task=result.task,
        retrieval=RetrievalRecord("exact", plan.k, retriever.settings()),
        subsets=subsets,
    )
    return fidelity_record(result, runs, reference, reference_runs, computed=True)


def search_depth(dataset: Dataset, k: int) -> int:
    """How deep to search for a ranking of ``k``: ``k`` plus the largest number of docs the dataset
    excludes for one query (so each query still has ``k`` once they are dropped, as BRIGHT ranks the
    corpus without them), at most the corpus."""
    extra = max((len(ids) for ids in dataset.excluded.values()), default=0)
    return min(k + extra, len(dataset.corpus))


def score_run(dataset: Dataset, run: Run, task: Task, depth: int) -> SubsetScores:
    """Both metric conventions for one subset, plus per-query main scores.

    The dataset's excluded docs are dropped from ``run`` first (:func:`drop_excluded`), so they
    never score whoever built the run (:func:`run_task` has dropped them already, for its TREC run
    files too). Metrics at a cutoff deeper than the ranking ``depth`` are left out: they would only
    restate the shallower ranking (the card metrics stop at 100, PyLate's depth).
    """
    if dataset.excluded:
        run = drop_excluded(run, dataset.excluded, depth)
    card = card_metrics(dataset.qrels, run)
    trec = trec_metrics(
        dataset.qrels, run, ignore_identical_ids=task.ignore_identical_ids, extra=task.metrics
    )
    main = card if task.convention == "card" else trec
    per_query = main.per_query[task.main_metric]
    kept = [m for m in trec.means if int(m.rsplit("@", 1)[1]) <= depth]
    every = {"card": dict(card.per_query), "trec": {m: trec.per_query[m] for m in kept}}
    return SubsetScores(
        dataset.name, len(per_query), card.means, {m: trec.means[m] for m in kept}, dict(per_query), every
    )


def _timings(stats: Sequence[SearchStats], total_s: float, n_queries: int) -> dict[str, Any]:
    """Seconds per step summed over the subsets (None when a subset's is unknown), the task's wall
    time, search time per query, and where each timing comes from (``sources``: measured now, carried
    from the cache, or partly cached; steps without a source were measured now)."""
    steps = ["encode_queries_s", "encode_documents_s", "index_s", "retrieve_s"]
    if any(s.index_build_s is not None for s in stats):
        steps.append("index_build_s")
    out: dict[str, Any] = {}
    for step in steps:
        seconds = sum_known(getattr(s, step) for s in stats)
        out[step] = None if seconds is None else float(seconds)
    out["total_s"] = total_s
    out["retrieve_ms_per_query"] = 1000 * out["retrieve_s"] / max(n_queries, 1)
    sources: dict[str, str] = {}
    for name in dict.fromkeys(key for s in stats for key in s.sources):
        seen = {s.sources.get(name, "measured") for s in stats}
        sources[name] = seen.pop() if len(seen) == 1 else "partly cached"
    out["sources"] = sources
    return out


def _tokens(stats: Sequence[SearchStats]) -> dict[str, int | None]:
    """Tokens the encoder read and texts it cut at the length limit, summed over the subsets (None
    when not known for every subset)."""
    return {
        "queries": sum_known(s.query_tokens for s in stats),
        "documents": sum_known(s.document_tokens for s in stats),
        "queries_truncated": sum_known(s.query_truncated for s in stats),
        "documents_truncated": sum_known(s.document_truncated for s in stats),
    }
