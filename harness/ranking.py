"""The harness's one ranking rule: **score descending, ties by doc id descending** (trec_eval's
order, which BEIR's numbers follow).

Every ranked list goes through :func:`top_k`: the metrics and TREC run files (:func:`rank` on a
``Run``), exact / dense / BM25 / PLAID retrieval (on score arrays, with the corpus ids' ranks as
tie keys, so which of several tied documents make the k-th cut follows the same rule), and a
run-file first stage. Arrays carry doc ids as *tie keys*: integers whose order is the ids' order
(``harness.types.id_ranks``), so "key descending" is "doc id descending". A caller without ids
(the retrieval functions called on bare arrays) passes ``-index``: ties by lower index first.
Docs a benchmark excludes per query leave the run before any metric (:func:`drop_excluded`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from harness.errors import InputError, positive_int
from harness.types import Run, id_ranks

_REAL = (int, float, np.integer, np.floating)


def check_depth(k: object) -> int:
    """``k`` as an int when it is a positive integer (a ranking depth), else InputError."""
    return positive_int(k, "k")


def tie_keys_for(tie_keys: np.ndarray | None, n_items: int) -> np.ndarray:
    """The caller's tie keys (one per item, checked), or :func:`lower_index_first` when None."""
    if tie_keys is None:
        return lower_index_first(n_items)
    tie_keys = np.asarray(tie_keys)
    if tie_keys.shape != (n_items,):
        raise InputError(f"{tie_keys.shape} tie keys for {n_items} documents", field="tie_keys")
    return tie_keys


def lower_index_first(n: int) -> np.ndarray:
    """Tie keys for items known only by position: ties go to the lower index."""
    return -np.arange(n, dtype=np.int64)


def top_k(scores: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Column positions of the ``k`` best entries of each row of ``scores`` [n, m] (k <= m), best
    first: score descending, then tie key (``keys``, [n, m] or [m]) descending.

    An argpartition picks the k best (ties at the cut settled by key), then only those are sorted.
    """
    scores = np.asarray(scores)
    n, m = scores.shape
    keys = np.broadcast_to(keys, scores.shape)
    cols: np.ndarray  # [n, min(k, m)] column indices
    if k < m:
        part = np.argpartition(scores, m - k, axis=1)
        kth = np.take_along_axis(scores, part[:, m - k : m - k + 1], axis=1)  # k-th largest per row
        keep = scores > kth
        tied = scores == kth
        need = k - keep.sum(axis=1)
        settled = tied.sum(axis=1) == need
        keep[settled] |= tied[settled]
        for r in np.flatnonzero(~settled):  # more ties at the cut than places: the higher keys win
            cols = np.flatnonzero(tied[r])
            keep[r, cols[np.argsort(-keys[r, cols], kind="stable")[: need[r]]]] = True
        cols = np.nonzero(keep)[1].reshape(n, k)
    else:
        cols = np.broadcast_to(np.arange(m), (n, m))
    best = np.lexsort((-np.take_along_axis(keys, cols, 1), -np.take_along_axis(scores, cols, 1)), axis=-1)
    return np.take_along_axis(cols, best, axis=1)


def select_top(
    scores: np.ndarray, items: np.ndarray, tie_keys: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (scores, items) of each row of ``scores`` / ``items`` [n, m] by :func:`top_k`,
    where an item's tie key is ``tie_keys[item]``."""
    cols = top_k(scores, tie_keys[items], min(k, scores.shape[1]))
    return np.take_along_axis(scores, cols, 1), np.take_along_axis(items, cols, 1)


def rank(run: Run, k: int | None = None) -> dict[str, list[str]]:
    """Each query's doc ids, best first by the one rule, cut to ``k`` (``None``: all)."""
    if k is not None:
        k = check_depth(k)
    out = {}
    for qid, docs in run.items():
        ids = list(docs)
        scores = np.array([_score(docs[d], qid, d) for d in ids], np.float64)
        cols = top_k(scores[None], id_ranks(ids)[None], len(ids) if k is None else min(k, len(ids)))
        out[qid] = [ids[c] for c in cols[0]]
    return out


def _score(value: object, qid: str, doc: str) -> float:
    if isinstance(value, bool) or not isinstance(value, _REAL) or not math.isfinite(value):
        raise InputError(f"score {value!r} is not a finite number", field=f"run[{qid!r}][{doc!r}]")
    return float(value)


def to_run(query_ids: Sequence[str], doc_ids: Sequence[str], scores: np.ndarray, indices: np.ndarray) -> Run:
    """``{query_id: {doc_id: score}}`` from search output; -1 indices are skipped, and a query
    with no result is left out of the Run (the metrics score an absent query 0)."""
    scores, indices = np.asarray(scores), np.asarray(indices)
    if scores.shape != indices.shape or scores.ndim != 2 or len(scores) != len(query_ids):
        raise InputError(
            f"scores {scores.shape} and indices {indices.shape} must both be [{len(query_ids)}, k]",
            field="indices",
        )
    if indices.size and (indices.max() >= len(doc_ids) or indices.min() < -1):
        raise InputError(f"doc index out of range for {len(doc_ids)} documents", field="indices")
    run: Run = {}
    for qid, row_s, row_i in zip(query_ids, scores.tolist(), indices.tolist(), strict=True):
        hits = {doc_ids[i]: float(s) for s, i in zip(row_s, row_i, strict=True) if i >= 0}
        if hits:
            run[qid] = hits
    return run


def drop_excluded(run: Run, excluded: Mapping[str, Collection[str]], k: int | None = None) -> Run:
    """The run without each query's excluded docs (``excluded[qid]``), each query then cut to its
    ``k`` best by the one rule (``None``: all kept).

    BRIGHT's rule (Su et al. 2024; ``xlang-ai/BRIGHT`` ``retrievers.py`` ``get_scores``): excluded
    docs are popped from a query's scores before the ranking is sorted and cut, so none counts in
    any metric and the ranking still holds ``k`` others. A searcher that fetched ``k`` plus the
    largest exclusion count gives the same top ``k`` as ranking the corpus without them.
    """
    out = {}
    for qid, docs in run.items():
        drop = excluded.get(qid, ())
        kept = {d: s for d, s in docs.items() if d not in drop}
        if k is not None and len(kept) > k:
            kept = {d: kept[d] for d in rank({qid: kept}, k)[qid]}
        if kept:  # as to_run: a query left with nothing is absent (the metrics score it 0)
            out[qid] = kept
    return out


def drop_identical_ids(run: Run) -> Run:
    """The run without any doc whose id equals its query's id (BEIR's ``ignore_identical_ids``)."""
    return {qid: {d: s for d, s in docs.items() if d != qid} for qid, docs in run.items()}
