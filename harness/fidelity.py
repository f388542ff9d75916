"""How far an approximate run is from exact search of the same model and data, and the paired
comparison of two results that the fidelity record, ``harness check``, ``harness explain`` and the
trade-off table share.

A run is *approximate* when it did not rank every document by exact MaxSim with the model as
published: a PLAID index (any ``nbits`` / ``n_probe``), a rerank of another stage's candidates, or a
compression variant of the model (``VARIANT_KEYS`` in ``model.settings``: token pooling, truncated
dimensions, int8, a bf16 / fp16 encoder). Its *reference* is the exact run of the plain model on the
same data: a results file in the output folder (:func:`find_reference`: same model fingerprint, task,
split and data fingerprints, method ``exact``, model settings equal but for the variant keys, which
the reference has none of, and a saved TREC run per subset, ``--save-run``), otherwise exact search
run on the queries by the runner (``harness.run``, through the embedding cache).

Per query of the reference run, with ``E_k`` the exact top ``k`` and ``A_k`` the approximate one
(``harness.ranking.rank``, identical ids dropped where the task drops them):

* ``overlap@k = |A_k ∩ E_k| / |E_k|``;
* ``recall_of_exact@k = |A ∩ E_k| / |E_k|``, ``A`` the approximate run's whole ranking (its depth
  ``k`` of the results file): the part of the exact top ``k`` found at all (equal to overlap@k when
  the run is ``k`` deep);

each averaged over a subset's queries, then over the subsets (as the task score); null where either
run ranks fewer than ``k`` deep. The main metric's delta (approximate - exact) comes with its
bootstrap CI and the sign-flip test of :func:`paired_delta` (``LEVEL``, ``N_RESAMPLES``, seed 0).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError
from harness.ranking import drop_identical_ids, rank
from harness.records import FidelityRecord, ModelRecord, RetrievalRecord, TaskRecord
from harness.results import Result, read_json, result_from_dict, run_file
from harness.runfile import read_trec_run
from harness.stats import bootstrap_ci, paired_t_test, sign_flip_test
from harness.types import Run

logger = logging.getLogger(__name__)

# model settings that make a compression variant (harness.checkpoints.config.VARIANTS, the int8
# engine, the encoder's dtype): left out when matching a variant with its exact reference
VARIANT_KEYS = ("pool_factor", "truncate_dim", "quantize", "quantized_engine", "dtype")
PLAIN_DTYPE = "float32"
APPROXIMATE_METHODS = ("plaid", "rerank")
CUTOFFS = (10, 100)
LEVEL, N_RESAMPLES, SEED, TEST = 0.95, 10_000, 0, "permutation"


# --------------------------------------------------------------------------- paired comparison


def aligned_differences(baseline: Result, candidate: Result) -> tuple[list[np.ndarray], list[str]]:
    """Per subset in both, ``cand_q - base_q`` over the query ids in both (one array per subset with
    any), and notes on what could not be aligned."""
    notes: list[str] = []
    base = {s.name: s.per_query for s in baseline.subsets}
    cand = {s.name: s.per_query for s in candidate.subsets}
    if set(base) != set(cand):
        notes.append(f"subsets differ: baseline {sorted(base)}, candidate {sorted(cand)}")
    parts = []
    for name in [n for n in base if n in cand]:
        shared = [q for q in base[name] if q in cand[name]]
        dropped = len(base[name]) + len(cand[name]) - 2 * len(shared)
        if dropped:
            notes.append(f"subset {name!r}: {dropped} query id(s) on one side only, left out of the tests")
        if shared:
            parts.append(np.array([cand[name][q] - base[name][q] for q in shared], dtype=np.float64))
    return parts, notes


def reweighted(parts: list[np.ndarray]) -> np.ndarray:
    """The subsets' differences as one array ``d'`` whose mean is the task's delta: ``d_q`` scaled by
    ``N / (S n_s)`` (S subsets, n_s queries in the query's subset, N in all; one subset: unscaled)."""
    if not parts:
        return np.zeros(0)
    total = sum(len(p) for p in parts)
    return np.concatenate([p * (total / (len(parts) * len(p))) for p in parts])


def delta_ci(parts: list[np.ndarray], level: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """The task delta's percentile bootstrap CI, queries resampled within their subset."""
    return bootstrap_ci([(p, 1 / len(parts)) for p in parts], n_resamples=n_resamples, seed=seed, level=level)


@dataclass(frozen=True)
class PairedDelta:
    """``candidate - baseline`` on the task's main score, over the aligned queries: ``n`` of them, the
    delta's CI and both two-sided p-values (None with fewer than 2 aligned queries; a t-test's nan, all
    differences zero, is None too) and notes on the alignment."""

    delta: float
    n: int
    ci: tuple[float, float] | None
    t_p: float | None
    permutation_p: float | None
    notes: list[str] = field(default_factory=list)


def paired_delta(
    baseline: Result,
    candidate: Result,
    *,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> PairedDelta:
    """The paired comparison of two results of one task (``harness.check.compare``'s docstring)."""
    parts, notes = aligned_differences(baseline, candidate)
    d = reweighted(parts)
    delta = candidate.main_score - baseline.main_score
    if len(d) < 2:
        return PairedDelta(delta, len(d), None, None, None, notes)
    t_p, perm_p = paired_t_test(d), sign_flip_test(d, n_resamples=n_resamples, seed=seed)
    ci = delta_ci(parts, level, n_resamples, seed)
    return PairedDelta(delta, len(d), ci, _number(t_p), _number(perm_p), notes)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


# --------------------------------------------------------------------------- which runs


def variant_of(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The compression variant ``settings`` (a model's) ask for: its set ``VARIANT_KEYS`` (a float32
    dtype is no variant); empty for the plain model."""
    found = {key: settings[key] for key in VARIANT_KEYS if settings.get(key) is not None}
    if found.get("dtype") == PLAIN_DTYPE:
        del found["dtype"]
    return found


def shared_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A model's settings without the variant keys: what a variant and its reference share."""
    return {key: value for key, value in settings.items() if key not in VARIANT_KEYS}


def is_approximate(model: ModelRecord, retrieval: RetrievalRecord) -> bool:
    """Whether a run of ``model`` by ``retrieval`` has an exact reference to be measured against: a
    model run (not BM25, not a published figure) by PLAID, rerank, or a compression variant."""
    if model.kind not in ("colbert", "dense") or retrieval.method in ("bm25", "published"):
        return False
    return retrieval.method in APPROXIMATE_METHODS or bool(variant_of(model.settings))


def is_reference_of(candidate: Mapping[str, Any], model: ModelRecord, task: TaskRecord) -> bool:
    """Whether the results document ``candidate`` (decoded JSON) is the exact run of ``model``'s plain
    form on ``task``'s data (module docstring); cheap checks on the raw document."""
    try:
        ref_model, ref_task, retrieval = candidate["model"], candidate["task"], candidate["retrieval"]
        settings = ref_model.get("settings") or {}
        return bool(
            retrieval.get("method") == "exact"
            and model.fingerprint is not None
            and ref_model.get("fingerprint") == model.fingerprint
            and (ref_task.get("name"), ref_task.get("split")) == (task.name, task.split)
            and ref_task.get("dataset_fingerprints") == dict(task.dataset_fingerprints)
            and not variant_of(settings)
            and shared_settings(settings) == shared_settings(model.settings)
        )
    except (TypeError, KeyError, AttributeError):
        return False


def base_name(model_id: str) -> str:
    """A model id without its variant suffixes: ``"m (pool 2)"`` -> ``"m"``."""
    return model_id.split(" (", 1)[0]


def line_key(result: Result) -> str:
    """What joins the runs of one model (its variants, indexes, reranks): the model's fingerprint,
    else its id's :func:`base_name`."""
    return result.model.fingerprint or base_name(result.model_id)


def search_label(retrieval: RetrievalRecord) -> str:
    """How a run searched, briefly: ``exact``, ``PLAID 2-bit, n_probe 8``, ``rerank bm25 top 20``."""
    params = retrieval.params
    if retrieval.method == "plaid":
        probe = (params.get("search") or {}).get("n_probe")
        return f"PLAID {params.get('nbits')}-bit" + (f", n_probe {probe}" if probe is not None else "")
    if retrieval.method == "rerank":
        return f"rerank {Path(str(params.get('first_stage'))).name} top {params.get('rerank_depth')}"
    return retrieval.method


def run_label(result: Result) -> str:
    """The model id, and how it searched when not exactly: ``m (pool 2) · PLAID 2-bit, n_probe 8``."""
    how = search_label(result.retrieval)
    return result.model_id if how == "exact" else f"{result.model_id} · {how}"


def variant_label(result: Result) -> str:
    """A run among its model's others: the id's suffix and how it searched (``pool 2``, ``PLAID
    2-bit, n_probe 8``; the plain exact run: ``exact``)."""
    suffix = result.model_id[len(base_name(result.model_id)) :].strip().removeprefix("(").removesuffix(")")
    how = search_label(result.retrieval)
    return ", ".join(p for p in (suffix, "" if suffix and how == "exact" else how) if p)


def run_files(result: Result) -> dict[str, Path]:
    """Where ``harness.results.save_result`` put a result's TREC run of each subset."""
    assert result.file is not None, "a result loaded from a file"
    return {s.name: run_file(result.file, s.name) for s in result.subsets}


def find_reference(
    folder: Path, model: ModelRecord, task: TaskRecord
) -> tuple[Result, dict[str, Run]] | None:
    """The exact reference of a run of ``model`` on ``task`` among the results files in ``folder``
    (not its subfolders), with its TREC runs read back: the newest that matches
    (:func:`is_reference_of`) and has a run file for every subset; None when none does."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = read_json(path)
            if isinstance(data, dict) and is_reference_of(data, model, task):
                found.append(replace(result_from_dict(data, str(path)), file=path))
        except InputError:
            continue
    for result in sorted(found, key=lambda r: r.created, reverse=True):
        files = run_files(result)
        if all(p.is_file() for p in files.values()):
            return result, {name: read_trec_run(p) for name, p in files.items()}
        logger.info("%s: an exact run without its TREC runs (--save-run): not a reference", result.file)
    return None


# --------------------------------------------------------------------------- the record


def fidelity_record(
    approximate: Result,
    runs: Mapping[str, Run],
    reference: Result,
    reference_runs: Mapping[str, Run],
    computed: bool,
) -> FidelityRecord:
    """The fidelity of ``approximate`` (its rankings ``runs`` per subset, as scored) against the exact
    ``reference`` (its rankings ``reference_runs``; ``computed`` by this run, else read from
    ``reference.file``): module docstring."""
    depth = min(approximate.retrieval.k or 0, reference.retrieval.k or 0)
    overlap: dict[int, list[float]] = {k: [] for k in CUTOFFS}
    recall: dict[int, list[float]] = {k: [] for k in CUTOFFS}
    queries = 0
    for name, exact_run in reference_runs.items():
        exact, found = _cleaned(exact_run, approximate.task), _cleaned(runs.get(name, {}), approximate.task)
        exact_ranked, found_ranked = rank(exact), rank(found)
        ids = [q for q in exact_ranked if exact_ranked[q]]
        queries += len(ids)
        for k in CUTOFFS:
            per_query = [_agreement(exact_ranked[q][:k], found_ranked.get(q, []), k) for q in ids]
            overlap[k].append(float(np.mean([o for o, _ in per_query])) if ids else math.nan)
            recall[k].append(float(np.mean([r for _, r in per_query])) if ids else math.nan)
    paired = paired_delta(reference, approximate)

    def mean(values: Sequence[float], k: int) -> float | None:
        return float(np.mean(values)) if depth >= k and values and not np.isnan(values).any() else None

    return FidelityRecord(
        reference_source="computed" if computed else "results file",
        reference_file=None if computed or reference.file is None else str(reference.file),
        reference_model=reference.model_id,
        reference_scoring=reference.retrieval.params.get("scoring"),
        queries=queries,
        overlap_at_10=mean(overlap[10], 10),
        overlap_at_100=mean(overlap[100], 100),
        recall_of_exact_at_10=mean(recall[10], 10),
        recall_of_exact_at_100=mean(recall[100], 100),
        metric=approximate.task.main_metric,
        reference_score=reference.main_score,
        delta=paired.delta,
        ci_low=paired.ci[0] if paired.ci else None,
        ci_high=paired.ci[1] if paired.ci else None,
        level=LEVEL,
        p_value=paired.permutation_p,
        test=TEST,
        n_resamples=N_RESAMPLES,
        seed=SEED,
    )


def _cleaned(run: Run, task: TaskRecord) -> Run:
    """The run as its TREC file holds it: identical ids dropped where the task drops them."""
    return drop_identical_ids(run) if task.ignore_identical_ids else run


def _agreement(exact_top: list[str], found: list[str], k: int) -> tuple[float, float]:
    """(overlap@k, recall of the exact top k) of one query (module docstring)."""
    wanted = set(exact_top)
    return len(wanted.intersection(found[:k])) / len(wanted), len(wanted.intersection(found)) / len(wanted)
