"""Retrieval metrics over ``(Qrels, Run)`` in the two conventions that published numbers use.

``card_metrics``: sentence-transformers ``InformationRetrievalEvaluator.compute_metrics`` (what
PyLate model cards report; ``sentence_transformers/evaluation/InformationRetrievalEvaluator.py``).
``trec_metrics``: trec_eval (Buckley et al.), as pytrec_eval (Van Gysel & de Rijke, SIGIR 2018)
computes it and BEIR (Thakur et al., NeurIPS 2021 Datasets) reports it
(``beir/retrieval/evaluation.py``, ``EvaluateRetrieval.evaluate``).

Both rank each query's docs with :func:`harness.ranking.rank` (score descending, ties by doc id
descending: trec_eval's rule for both conventions; sentence-transformers >= 6 breaks exact ties by
doc id *ascending*, so card metrics can differ from it on exactly tied scores only), look up the
qrels grade of every ranked doc into a ``[queries, depth]`` matrix, and compute each metric as a
vectorised function of that matrix that returns one value per query. Ranks below are 1-based:
``rel_i`` is the relevance of the doc at rank ``i`` and ``R`` the query's relevant docs (grade > 0).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from harness.errors import InputError
from harness.ranking import drop_identical_ids, rank
from harness.types import Qrels, Run

CARD_K = (1, 3, 5, 10)
CARD_NDCG_K = CARD_MRR_K = 10
CARD_MAP_K = 100
TREC_K = (1, 3, 5, 10, 100, 1000)
TREC_MRR_K = 10
# Metrics a task may add to the trec table (``trec_metrics(extra=...)``, ``Task.metrics``): ``success@k``.
SUCCESS = "success"
# The card's metric keys, in the card's order (PyLate prefixes them with "MaxSim_").
CARD_METRICS = (
    *(f"accuracy@{k}" for k in CARD_K),
    *(f"precision@{k}" for k in CARD_K),
    *(f"recall@{k}" for k in CARD_K),
    f"ndcg@{CARD_NDCG_K}",
    f"mrr@{CARD_MRR_K}",
    f"map@{CARD_MAP_K}",
)

_LABELS = {
    "ndcg": "nDCG",
    "map": "MAP",
    "mrr": "MRR",
    "recall": "Recall",
    "precision": "P",
    "accuracy": "Accuracy",
    SUCCESS: "Success",
}
_INTEGER = (int, np.integer)


def metric_label(name: str) -> str:
    """The README's spelling of a metric key: ``ndcg@10`` -> ``nDCG@10``, ``map@100`` -> ``MAP@100``,
    ``precision@5`` -> ``P@5``; other names unchanged."""
    base, at, k = name.partition("@")
    return _LABELS.get(base, base) + at + k


@dataclass(frozen=True)
class MetricResult:
    """``means[metric]`` averages ``per_query[metric][query_id]`` over the evaluated queries."""

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]


# --- metric functions: matrices are [queries, ranks]; each returns one float64 per query ----------


def hits_at(rel: np.ndarray, k: int) -> np.ndarray:
    """|{i <= k : rel_i}|."""
    return rel[:, :k].sum(axis=1).astype(np.float64)


def success_at(rel: np.ndarray, k: int) -> np.ndarray:
    """Success@k: 1 if any of the top k is relevant, else 0. ir_measures' ``Success@k`` (relevant:
    grade >= 1); LoTTE's official metric (Santhanam et al., "ColBERTv2", NAACL 2022, Section 4;
    ColBERT's ``utility/evaluate/evaluate_lotte_rankings.py``: a query succeeds when one of its
    ``answer_pids`` is in its top k); sentence-transformers calls it ``accuracy@k``."""
    return (hits_at(rel, k) > 0).astype(np.float64)


def precision_at(rel: np.ndarray, k: int) -> np.ndarray:
    """hits@k / k (k even when fewer than k docs were retrieved)."""
    return hits_at(rel, k) / k


def recall_at(rel: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """hits@k / |R| (0 when |R| = 0)."""
    return _divide(hits_at(rel, k), n_rel)


def mrr_at(rel: np.ndarray, k: int) -> np.ndarray:
    """1 / (rank of the first relevant doc) if it is within the top k, else 0 (reciprocal rank;
    Voorhees, TREC-8 QA track, 1999)."""
    top = rel[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def average_precision_at(rel: np.ndarray, k: int, denominator: np.ndarray) -> np.ndarray:
    """Σ_{i <= k, rel_i} (hits@i / i) / denominator (0 when the denominator is 0).

    Card convention: denominator = min(k, |R|); trec_eval's map_cut: denominator = |R|
    (uninterpolated average precision; Buckley & Voorhees, "Evaluating evaluation measure
    stability", SIGIR 2000).
    """
    top = rel[:, :k].astype(np.float64)
    precision = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    return _divide((precision * top).sum(axis=1), denominator)


def ndcg_at(gains: np.ndarray, ideal_gains: np.ndarray, k: int) -> np.ndarray:
    """DCG@k / IDCG@k with DCG@k = Σ_{i <= k} gain_i / log2(i + 1) (0 when IDCG = 0): Järvelin &
    Kekäläinen, "Cumulated gain-based evaluation of IR techniques", TOIS 2002, with trec_eval's
    linear gains and log2(i + 1) discount from rank 1.

    ``ideal_gains`` holds each query's judged gains sorted descending (the best possible ranking).
    """
    return _divide(_dcg_at(gains, k), _dcg_at(ideal_gains, k))


def _dcg_at(gains: np.ndarray, k: int) -> np.ndarray:
    top = gains[:, :k]
    return (top / np.log2(np.arange(2, top.shape[1] + 2))).sum(axis=1)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    denominator = np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


# --- the two conventions -------------------------------------------------------------------------


def card_metrics(qrels: Qrels, run: Run) -> MetricResult:
    """sentence-transformers ``InformationRetrievalEvaluator.compute_metrics`` convention.

    Keys ``accuracy@{1,3,5,10}``, ``precision@{1,3,5,10}``, ``recall@{1,3,5,10}``, ``ndcg@10``,
    ``mrr@10``, ``map@100``. Relevance is binary: R = qrels docs with grade > 0 (ids absent from
    the corpus included). nDCG uses gain 1 per relevant doc and IDCG = Σ_{i <= min(k, |R|)}
    1/log2(i + 1); MAP@k divides by min(k, |R|). Averaged over the queries of ``qrels`` with
    |R| > 0, like the evaluator (it drops queries without relevant docs); a query absent from the
    run scores 0.
    """
    _check_qrels(qrels)
    qids = [qid for qid, judged in qrels.items() if any(g > 0 for g in judged.values())]
    if not qids:
        raise InputError("no query has a relevant document (grade > 0)", field="qrels")
    depth = max(max(CARD_K), CARD_NDCG_K, CARD_MRR_K, CARD_MAP_K)
    rel = _grades(qrels, rank(run, depth), qids, depth) > 0
    n_rel = np.array([sum(g > 0 for g in qrels[qid].values()) for qid in qids], np.float64)
    ideal = (np.arange(CARD_NDCG_K) < n_rel[:, None]).astype(np.float64)

    values = {f"accuracy@{k}": success_at(rel, k) for k in CARD_K}
    values |= {f"precision@{k}": precision_at(rel, k) for k in CARD_K}
    values |= {f"recall@{k}": recall_at(rel, n_rel, k) for k in CARD_K}
    values[f"ndcg@{CARD_NDCG_K}"] = ndcg_at(rel.astype(np.float64), ideal, CARD_NDCG_K)
    values[f"mrr@{CARD_MRR_K}"] = mrr_at(rel, CARD_MRR_K)
    values[f"map@{CARD_MAP_K}"] = average_precision_at(rel, CARD_MAP_K, np.minimum(CARD_MAP_K, n_rel))
    return _result(qids, values)


def trec_metrics(
    qrels: Qrels, run: Run, *, ignore_identical_ids: bool = False, extra: Iterable[str] = ()
) -> MetricResult:
    """trec_eval convention (pytrec_eval ``ndcg_cut``, ``map_cut``, ``recall``, ``P``), as BEIR.

    Keys ``ndcg@k``, ``map@k``, ``recall@k``, ``precision@k`` for k in (1, 3, 5, 10, 100, 1000),
    plus ``mrr@10`` and the ``extra`` keys a benchmark reports beyond them (``success@k``:
    :func:`success_at`; :func:`extra_metric_k` checks them). nDCG gains are the qrels grades
    (negative grades count as 0); a doc is relevant when its grade is >= 1; MAP@k divides by |R|.
    ``mrr@10`` is BEIR's ``mrr`` metric: 1/rank of the first relevant doc within the top 10
    (trec_eval's recip_rank cut at 10).
    ``ignore_identical_ids`` drops a retrieved doc whose id equals the query id before ranking
    (BEIR's ``EvaluateRetrieval.evaluate``).

    Queries: every query of ``qrels`` with at least one judgement, including queries judged only
    with grade <= 0, which score 0 (trec_eval evaluates them; BEIR averages over them). A query
    absent from the run scores 0 (pytrec_eval would skip it; BEIR's runs always hold every query).
    """
    _check_qrels(qrels)
    qids = [qid for qid, judged in qrels.items() if judged]
    if not qids:
        raise InputError("qrels judge no document", field="qrels")
    if ignore_identical_ids:
        run = drop_identical_ids(run)
    success = {name: extra_metric_k(name) for name in extra}
    depth = max(*TREC_K, TREC_MRR_K, *success.values())
    gains = np.maximum(_grades(qrels, rank(run, depth), qids, depth), 0.0)
    rel = gains > 0
    positive = [sorted((g for g in qrels[qid].values() if g > 0), reverse=True) for qid in qids]
    n_rel = np.array([len(p) for p in positive], np.float64)
    ideal = _pad([p[:depth] for p in positive])

    values = {f"ndcg@{k}": ndcg_at(gains, ideal, k) for k in TREC_K}
    values |= {f"map@{k}": average_precision_at(rel, k, n_rel) for k in TREC_K}
    values |= {f"recall@{k}": recall_at(rel, n_rel, k) for k in TREC_K}
    values |= {f"precision@{k}": precision_at(rel, k) for k in TREC_K}
    values[f"mrr@{TREC_MRR_K}"] = mrr_at(rel, TREC_MRR_K)
    values |= {name: success_at(rel, k) for name, k in success.items()}
    return _result(qids, values)


def extra_metric_k(name: str) -> int:
    """The cutoff k of an extra trec metric key ``success@k`` (k >= 1); InputError for any other key."""
    match = re.fullmatch(rf"{SUCCESS}@([1-9][0-9]*)", name)
    if match is None:
        raise InputError(f"unknown extra metric {name!r} (known: {SUCCESS}@k, k >= 1)", field="metrics")
    return int(match[1])


# --- helpers -------------------------------------------------------------------------------------


def _grades(qrels: Qrels, ranking: dict[str, list[str]], qids: list[str], depth: int) -> np.ndarray:
    """[len(qids), depth] qrels grade of the doc at each rank; 0 for unjudged docs and past the end."""
    return _pad([[qrels[qid].get(d, 0) for d in ranking.get(qid, [])[:depth]] for qid in qids])


def _pad(rows: list[list[int]]) -> np.ndarray:
    """Right-pad rows with zeros into a float64 matrix (at least one column)."""
    out = np.zeros((len(rows), max(1, max(map(len, rows), default=0))), np.float64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _result(qids: list[str], values: dict[str, np.ndarray]) -> MetricResult:
    return MetricResult(
        means={name: float(np.mean(v)) for name, v in values.items()},
        per_query={name: dict(zip(qids, v.tolist(), strict=True)) for name, v in values.items()},
    )


def _check_qrels(qrels: Qrels) -> None:
    for qid, judged in qrels.items():
        for doc, grade in judged.items():
            if isinstance(grade, bool) or not isinstance(grade, _INTEGER):
                raise InputError(f"grade {grade!r} is not an integer", field=f"qrels[{qid!r}][{doc!r}]")
