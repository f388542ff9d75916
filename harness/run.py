"""The runner: task -> dataset -> encode (cached) -> retrieve -> metrics -> results file.

``evaluate`` is the Python API behind ``harness evaluate``. It returns one
:class:`harness.results.Result` per task and writes each one atomically as soon
as it is finished, so a killed run that is started again skips the tasks whose
results file already matches the model, the data and the settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness import __version__
from harness import metrics as metrics_mod
from harness.cache import cache_key, encode_cached, encode_cached_shards
from harness.encode import Encoder, load_encoder
from harness.results import Result, SubsetScores, load_result, result_filename, save_result
from harness.retrieve import bm25_search, exact_search, rerank, to_run
from harness.tasks import Task, resolve_tasks
from harness.types import Dataset, HarnessError, InputError, Run, TokenEmbeddings

logger = logging.getLogger(__name__)

BM25_MODEL_ID = "bm25"
CARD_DEPTH = 100  # PyLate's evaluator ranks the top 100 (max of its k values)
TREC_DEPTH = 1000  # BEIR ranks the top 1000


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR`` or ``~/.cache/colbert-eval-harness``."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "colbert-eval-harness"


@dataclass
class EvalSettings:
    """Everything besides model and tasks that decides the numbers or the run.

    ``scoring=None`` picks per task: ``pylate`` for model-card (NanoBEIR) tasks,
    so card numbers reproduce PyLate's evaluator to the last digit (it floors
    each query token's score at 0 for documents shorter than the longest one),
    and ``masked`` (the correct MaxSim) everywhere else.
    """

    split: str | None = None
    data_dir: Path | None = None
    output_dir: Path | None = Path("results")
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "float32"
    scoring: str | None = None
    pylate_chunk_size: int = 50_000
    index: str = "exact"
    first_stage: str | None = None
    rerank_depth: int = 100
    plaid_nbits: int = 4
    # PLAID search knobs; None: ``harness.plaid.default_search_settings(k)``
    plaid_n_probe: int | None = None
    plaid_centroid_score_threshold: float | None | Literal["default"] = "default"
    plaid_n_full_scores: int | None = None
    k: int | None = None
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    overwrite: bool = False
    save_run: bool = False
    show_progress: bool = True
    trust_remote_code: bool = False
    model_name: str | None = None  # id stored in results (default: folder name or Hub id)
    # ColBERT token limits replacing the checkpoint's (PyLate's constructor arguments); e.g.
    # LongEmbed's long-context rows are run with document_length 4096 or 32768
    document_length: int | None = None
    query_length: int | None = None

    def __post_init__(self) -> None:
        if self.scoring not in (None, "masked", "pylate"):
            raise HarnessError(f"--scoring must be masked or pylate, got {self.scoring!r}")
        if self.index not in ("exact", "plaid"):
            raise HarnessError(f"--index must be exact or plaid, got {self.index!r}")
        if self.plaid_nbits not in (1, 2, 4):
            raise HarnessError(f"--nbits must be 1, 2 or 4, got {self.plaid_nbits}")
        for flag, value in (("--n-probe", self.plaid_n_probe), ("--n-full-scores", self.plaid_n_full_scores)):
            if value is not None and value < 1:
                raise HarnessError(f"{flag} must be >= 1, got {value}")


def evaluate(
    model: str | Encoder,
    tasks: Sequence[str | Task],
    settings: EvalSettings | None = None,
    **overrides: Any,
) -> list[Result]:
    """Evaluate ``model`` (path, HF id, ``"bm25"`` or an Encoder) on ``tasks``.

    ``overrides`` are EvalSettings fields, so notebooks can write
    ``evaluate("path", ["NanoSciFact"], data_dir="data", output_dir=None)``.
    """
    settings = settings or EvalSettings()
    for key, value in overrides.items():
        if not hasattr(settings, key):
            raise TypeError(f"unknown setting {key!r}")
        setattr(settings, key, value)
    settings.__post_init__()
    resolved = [
        t
        for name in tasks
        for t in ([name] if isinstance(name, Task) else resolve_tasks([name], settings.data_dir))
    ]
    encoder = _load_model(model, settings)
    results = []
    for task in resolved:
        results.append(_evaluate_task(encoder, task, settings))
    if settings.show_progress:
        print(summary_table(results))
    return results


def _load_model(model: str | Encoder, settings: EvalSettings) -> Encoder | None:
    """An Encoder, or None for the BM25 baseline."""
    if not isinstance(model, str):
        return model
    if model.lower() == BM25_MODEL_ID:
        return None
    overrides = {
        "name": settings.model_name,
        "document_length": settings.document_length,
        "query_length": settings.query_length,
    }
    return load_encoder(
        model,
        device=settings.device,
        dtype=settings.dtype,
        trust_remote_code=settings.trust_remote_code,
        **{key: value for key, value in overrides.items() if value is not None},
    )


def _retrieval_settings(encoder: Encoder | None, task: Task, settings: EvalSettings) -> dict[str, Any]:
    depth = settings.k or (CARD_DEPTH if task.convention == "card" else TREC_DEPTH)
    if encoder is None:
        return {"method": "bm25", "k": depth, "k1": 0.9, "b": 0.4}
    scoring = settings.scoring or ("pylate" if task.convention == "card" else "masked")
    if not encoder.multi_vector or (settings.index == "plaid" and not settings.first_stage):
        scoring = "masked"  # one vector per text: both modes agree; PLAID scores true MaxSim only
    out: dict[str, Any] = {"method": settings.index, "k": depth, "scoring": scoring}
    if scoring == "pylate":  # the zero floor depends on the longest document of each corpus chunk
        out["pylate_chunk_size"] = settings.pylate_chunk_size
    if settings.first_stage:
        out.update(method="rerank", first_stage=settings.first_stage, rerank_depth=settings.rerank_depth)
    elif settings.index == "plaid":
        from harness.plaid import default_search_settings  # numba loads only when PLAID is used

        given = {
            "n_probe": settings.plaid_n_probe,
            "centroid_score_threshold": settings.plaid_centroid_score_threshold,
            "n_full_scores": settings.plaid_n_full_scores,
        }
        search = default_search_settings(depth)
        search |= {key: v for key, v in given.items() if v is not None and v != "default"}
        if settings.plaid_centroid_score_threshold is None:  # explicitly no pruning
            search["centroid_score_threshold"] = None
        out.update(nbits=settings.plaid_nbits, search=search)
    return out


def _model_record(encoder: Encoder | None, model: str | None = None) -> dict[str, Any]:
    if encoder is None:
        return {
            "id": BM25_MODEL_ID,
            "fingerprint": None,
            "kind": "bm25",
            "parameters": None,
            "size_group": None,
            "settings": {},
        }
    return {
        "id": encoder.name,
        "fingerprint": encoder.fingerprint,
        "kind": "colbert" if encoder.multi_vector else "dense",
        "parameters": encoder.parameter_count(),
        "size_group": None,
        "settings": encoder.settings(),
    }


def _task_record(task: Task, split: str, datasets: list[Dataset]) -> dict[str, Any]:
    return {
        "name": task.name,
        "convention": task.convention,
        "main_metric": task.main_metric,
        "split": split,
        "ignore_identical_ids": task.ignore_identical_ids,
        "source": ", ".join(sorted({d.source for d in datasets})),
        "dataset_fingerprints": {d.name: d.fingerprint() for d in datasets},
    }


def _reusable(path: Path, model: dict, task: dict, retrieval: dict) -> Result | None:
    """The finished result at ``path`` if the same harness version made it from the same model,
    data (fingerprints) and settings."""
    if not path.exists():
        return None
    try:
        old = load_result(path)
    except InputError:
        return None  # unreadable: recompute and overwrite atomically
    same = (
        old.harness_version == __version__
        and old.model.get("fingerprint") == model["fingerprint"]
        and old.model.get("settings") == model["settings"]
        and all(old.task.get(key) == value for key, value in task.items() if key != "source")
        and all(old.retrieval.get(key) == value for key, value in retrieval.items())
    )
    return old if same else None


def _evaluate_task(encoder: Encoder | None, task: Task, settings: EvalSettings) -> Result:
    """Evaluate one task, or return its finished result file when it still matches."""
    started = time.perf_counter()
    split = settings.split or task.eval_split
    model = _model_record(encoder)
    retrieval = _retrieval_settings(encoder, task, settings)
    datasets = task.load(split=split, data_dir=settings.data_dir)
    task_record = _task_record(task, split, datasets)
    out_path = settings.output_dir / result_filename(model["id"], task.name) if settings.output_dir else None
    if out_path and not settings.overwrite and (old := _reusable(out_path, model, task_record, retrieval)):
        if settings.show_progress:
            print(f"{task.name}: reusing {out_path} (same model, data and settings)")
        return old

    timings = {"encode_queries_s": 0.0, "encode_documents_s": 0.0, "index_s": 0.0, "retrieve_s": 0.0}
    tokens = {"queries": 0, "documents": 0}
    subsets, runs = [], {}
    for dataset in datasets:
        runs[dataset.name] = _retrieve(encoder, dataset, retrieval, settings, timings, tokens)
        subsets.append(score_run(dataset, runs[dataset.name], task, retrieval["k"]))
    timings["total_s"] = time.perf_counter() - started
    n_queries = sum(len(d.queries) for d in datasets)
    timings["retrieve_ms_per_query"] = 1000 * timings["retrieve_s"] / max(n_queries, 1)
    result = Result(
        model=model,
        task=task_record,
        retrieval=retrieval,
        settings=settings_dict(settings),
        subsets=subsets,
        timings=timings,
        tokens=tokens if encoder is not None else {"queries": None, "documents": None},
    )
    if out_path:
        if settings.save_run:
            _save_runs(runs, task, settings.output_dir / "runs", out_path.stem)
        save_result(result, settings.output_dir)
    return result


def _save_runs(runs: dict[str, Run], task: Task, folder: Path, stem: str) -> None:
    """TREC run files, one per subset, as the metrics saw them (identical ids dropped when the task does)."""
    from harness.export import write_trec_run

    for name, run in runs.items():
        if task.ignore_identical_ids:
            run = {qid: {d: s for d, s in docs.items() if d != qid} for qid, docs in run.items()}
        write_trec_run(run, folder / f"{stem}__{name}.trec", "harness")


def score_run(dataset: Dataset, run: Run, task: Task, depth: int) -> SubsetScores:
    """Both metric conventions for one subset, plus per-query main scores.

    Metrics at a cutoff deeper than the ranking ``depth`` are left out: they would only restate
    the shallower ranking (the card metrics stop at 100, PyLate's depth).
    """
    card = metrics_mod.card_metrics(dataset.qrels, run)
    trec = metrics_mod.trec_metrics(dataset.qrels, run, ignore_identical_ids=task.ignore_identical_ids)
    main = card if task.convention == "card" else trec
    per_query = main.per_query[task.main_metric]
    trec_means = {m: v for m, v in trec.means.items() if int(m.rsplit("@", 1)[1]) <= depth}
    return SubsetScores(dataset.name, len(per_query), card.means, trec_means, dict(per_query))


def _encode(encoder: Encoder, texts: list[str], is_query: bool, settings: EvalSettings) -> TokenEmbeddings:
    return encode_cached(
        encoder, texts, is_query=is_query, cache_dir=settings.cache_dir, **_encode_args(settings)
    )


def _encode_args(settings: EvalSettings) -> dict[str, Any]:
    return {"batch_size": settings.batch_size, "show_progress": settings.show_progress}


def _retrieve(
    encoder: Encoder | None,
    dataset: Dataset,
    retrieval: dict[str, Any],
    settings: EvalSettings,
    timings: dict[str, float],
    tokens: dict[str, int],
) -> Run:
    """Rank the corpus for every query of ``dataset`` as ``retrieval`` says."""
    doc_ids, doc_texts = list(dataset.corpus), list(dataset.corpus.values())
    query_ids, query_texts = list(dataset.queries), list(dataset.queries.values())
    k = min(retrieval["k"], len(doc_ids))
    if encoder is None:
        t0 = time.perf_counter()
        scores, indices = bm25_search(doc_texts, query_texts, k, show_progress=settings.show_progress)
        timings["retrieve_s"] += time.perf_counter() - t0
        return to_run(query_ids, doc_ids, scores, indices)

    t0 = time.perf_counter()
    docs: TokenEmbeddings | list[TokenEmbeddings]
    if retrieval["method"] == "plaid" and settings.cache_dir:  # stream the cache's shards into the build
        docs = encode_cached_shards(
            encoder, doc_texts, is_query=False, cache_dir=settings.cache_dir, **_encode_args(settings)
        )
    else:
        docs = _encode(encoder, doc_texts, False, settings)
    t1 = time.perf_counter()
    queries = _encode(encoder, query_texts, True, settings)
    t2 = time.perf_counter()
    timings["encode_documents_s"] += t1 - t0
    timings["encode_queries_s"] += t2 - t1
    tokens["documents"] += encoder.count_tokens(doc_texts, is_query=False)
    tokens["queries"] += encoder.count_tokens(query_texts, is_query=True)

    plaid_dir = None
    if retrieval["method"] == "plaid" and settings.cache_dir:
        key = cache_key(encoder, doc_texts, is_query=False)
        plaid_dir = Path(settings.cache_dir) / "plaid" / f"{key}-nbits{retrieval['nbits']}"
    scores, indices = _search(queries, docs, k, dataset, retrieval, settings, timings, plaid_dir)
    return to_run(query_ids, doc_ids, scores, indices)


def _search(
    queries: TokenEmbeddings,
    docs: TokenEmbeddings | list[TokenEmbeddings],
    k: int,
    dataset: Dataset,
    retrieval: dict[str, Any],
    settings: EvalSettings,
    timings: dict[str, float],
    plaid_dir: Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, doc indices) per query; adds index-build and search seconds to ``timings``.

    ``docs`` is one in-memory pack, or (PLAID only) the cache's shards in doc order. A PLAID index
    lives in ``plaid_dir`` (reused when it opens cleanly) or in a temp folder.
    """
    t0 = time.perf_counter()
    method = retrieval["method"]
    shards = docs if isinstance(docs, list) else [docs]
    if method != "plaid":
        assert isinstance(docs, TokenEmbeddings), "only PLAID streams shards"
    if method == "exact":
        out = exact_search(queries, docs, k, show_progress=settings.show_progress, **_scoring(retrieval))
    elif method == "rerank":
        candidates = _first_stage(retrieval["first_stage"], dataset, settings, retrieval["rerank_depth"])
        t0 = time.perf_counter()  # the first stage is not part of ColBERT's retrieval time
        out = rerank(queries, docs, candidates, k=k, **_scoring(retrieval))
    else:
        with contextlib.ExitStack() as stack:
            index_dir = plaid_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plaid-")))
            index = _open_or_build_plaid(
                shards, len(dataset.corpus), retrieval["nbits"], index_dir, settings.show_progress
            )
            t1 = time.perf_counter()
            timings["index_s"] += t1 - t0
            stats = index.stats()
            # one entry per subset: a multi-corpus task (CQADupStack) builds one index per forum
            retrieval.setdefault("index", {})[dataset.name] = {
                key: stats[key]
                for key in ("disk_bytes", "bytes_per_token_total", "n_centroids", "build_seconds")
            }
            out = index.search(queries, k=k, show_progress=settings.show_progress, **retrieval["search"])
            t0 = t1
    timings["retrieve_s"] += time.perf_counter() - t0
    return out


def _scoring(retrieval: dict[str, Any]) -> dict[str, Any]:
    """The MaxSim mode arguments that ``retrieval`` records (chunk size only matters in pylate mode)."""
    out = {"scoring": retrieval["scoring"]}
    if "pylate_chunk_size" in retrieval:
        out["pylate_chunk_size"] = retrieval["pylate_chunk_size"]
    return out


def _open_or_build_plaid(
    shards: list[TokenEmbeddings], n_docs: int, nbits: int, index_dir: Path, show_progress: bool
) -> Any:
    """The PLAID index in ``index_dir`` if it opens and verifies, else a fresh build from ``shards``
    (``n_docs`` docs in all) there."""
    from harness.plaid import PlaidIndex, build_index

    if (index_dir / "manifest.json").exists():
        try:
            index = PlaidIndex.open(index_dir)
            if index.n_docs == n_docs and index.nbits == nbits:
                return index
        except InputError as exc:
            logger.warning("rebuilding the PLAID index: %s", exc)
    return build_index(shards, index_dir, nbits=nbits, overwrite=True, show_progress=show_progress)


def _first_stage(source: str, dataset: Dataset, settings: EvalSettings, depth: int) -> list[np.ndarray]:
    """Candidate doc indices per query from BM25, a TREC run file or a dense model."""
    doc_ids = list(dataset.corpus)
    position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    depth = min(depth, len(doc_ids))
    if source.lower() == BM25_MODEL_ID:
        _, indices = bm25_search(
            list(dataset.corpus.values()),
            list(dataset.queries.values()),
            depth,
            show_progress=settings.show_progress,
        )
        return [row[row >= 0] for row in indices]
    if Path(source).is_file():
        from harness.export import read_trec_run

        run = read_trec_run(Path(source))
        out = []
        for qid in dataset.queries:
            ranked = sorted(run.get(qid, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
            out.append(np.array([position[d] for d, _ in ranked if d in position], np.int64))
        return out
    first = load_encoder(source, device=settings.device, dtype=settings.dtype)
    docs = _encode(first, list(dataset.corpus.values()), False, settings)
    queries = _encode(first, list(dataset.queries.values()), True, settings)
    _, indices = exact_search(queries, docs, depth, scoring="masked", show_progress=settings.show_progress)
    return list(indices)


def summary_table(results: Sequence[Result]) -> str:
    """Plain-text table: task, convention, main metric, score, queries, seconds."""
    rows = [("task", "metric", "score", "queries", "seconds")]
    for r in results:
        rows.append(
            (
                r.task_name,
                f"{r.task['convention']}:{r.task['main_metric']}",
                f"{r.main_score:.4f}",
                str(sum(s.n_queries for s in r.subsets)),
                f"{(r.timings.get('total_s') or 0):.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def settings_dict(settings: EvalSettings) -> dict[str, Any]:
    """EvalSettings as JSON-friendly values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
