"""Exact MaxSim / dense top-k over the whole corpus, and reranking of candidate lists.

Every search returns ``(scores [n_queries, k'] float32, indices [n_queries, k'] int64)``, each row
ordered by ``harness.ranking.top_k``: score descending, ties by the higher *tie key*. ``tie_keys``
(one int per document) default to ``harness.ranking.lower_index_first`` (ties by the lower document
index); the pipeline passes the corpus ids' ranks, so tied documents make the k-th cut in the
order the metrics rank them (doc id descending).

MaxSim (late interaction; Khattab & Zaharia, "ColBERT", SIGIR 2020), for query token vectors q_i
and document token vectors d_j::

    score(q, d) = sum_i max_j q_i . d_j

A single-vector model (one row per text) is the special case of one token per side: a plain dot
product (cosine, as those vectors are L2-normalised) and a plain matmul here.

Precision. By default (``precision="float64"``) dot products and sums run in float64 and each
score is rounded once to float32. BLAS float32 kernels round a dot product differently depending
on the block shape and the position in the block (measured: OpenBLAS and MKL both), so in float32
a score depends on ``max_block_bytes`` and duplicate documents can differ in the last bits; in
float64 a (query, doc) pair gets the same float32 score wherever it is computed (up to a ~1e-9
chance that two float64 values straddle a float32 rounding boundary), so duplicates tie exactly.
``precision="float32"`` is about 1.5-2x faster, with scores within ~1e-6 relative of float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from harness.errors import InputError, positive_int
from harness.ranking import check_depth, select_top, tie_keys_for
from harness.types import ShardedEmbeddings, TokenEmbeddings, consecutive_ranges

Scoring = Literal["masked", "pylate"]
SCORINGS: tuple[str, ...] = ("masked", "pylate")
Precision = Literal["float64", "float32"]
PRECISIONS: tuple[str, ...] = ("float64", "float32")

DEFAULT_MAX_BLOCK_BYTES = 256 * 2**20
# Smallest doc-token count per block worth a BLAS call; below it, queries are split instead.
_MIN_DOC_TOKENS_PER_BLOCK = 1024


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def exact_search(
    queries: TokenEmbeddings,
    docs: TokenEmbeddings | ShardedEmbeddings | Sequence[TokenEmbeddings],
    k: int,
    *,
    scoring: Scoring = "masked",
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    pylate_chunk_size: int = 50_000,
    precision: Precision = "float64",
    tie_keys: np.ndarray | None = None,
    show_progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents of every query by exact MaxSim over the whole corpus.

    Returns scores [nq, k'] float32 and doc indices [nq, k'] int64, k' = min(k, len(docs)), sorted
    by score descending, ties by the higher tie key (module docstring).

    ``scoring="masked"``: true MaxSim over each text's own tokens. A query or document with no
    tokens scores 0 against everything (the empty sum; also what PyLate's zero padding gives).
    ``scoring="pylate"``: PyLate's ``PyLateInformationRetrievalEvaluator``, which zero-pads every
    document of a corpus chunk (``pylate_chunk_size`` docs in corpus order) to the chunk's longest
    document and scores without masks; so for a document shorter than that, each query-token max
    is ``max(best real match, 0)``. Zero query padding adds exactly 0 and needs no mirroring.
    Scores agree with PyLate's float32 einsum to float32 rounding (~1e-6 relative), not bit for
    bit; which of several tied documents make the k-th cut follows the rule above, not PyLate's
    heap. A chunk whose documents are all empty scores 0 (PyLate itself fails there).

    Working memory is about ``max_block_bytes`` whatever the corpus size (the corpus is scored
    in blocks of documents, queries in blocks if needed, with a running top-k), except that a
    block always holds at least one query and one document. ``docs`` may be the embedding cache's
    shards (a sequence, or :class:`ShardedEmbeddings`): each block is then read from their files,
    so the corpus is never resident; results are the same as for one in-memory pack.
    """
    if not isinstance(docs, (TokenEmbeddings, ShardedEmbeddings)):
        docs = ShardedEmbeddings(docs)
    dtype = _check_options(queries, docs, scoring, precision)
    k = check_depth(k)
    positive_int(pylate_chunk_size, "pylate_chunk_size")
    clamp = _pylate_clamp(docs.lengths, pylate_chunk_size) if scoring == "pylate" else None
    keys = tie_keys_for(tie_keys, len(docs))
    return _search(queries, docs, k, clamp, keys, dtype, max_block_bytes, show_progress)


def rerank(
    queries: TokenEmbeddings,
    docs: TokenEmbeddings,
    candidates: Sequence[np.ndarray],
    k: int | None = None,
    *,
    scoring: Scoring = "masked",
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    precision: Precision = "float64",
    tie_keys: np.ndarray | None = None,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim of each query against its own candidate doc indices only (PyLate ``rank.rerank``).

    ``candidates[i]`` holds doc indices for query i; entries equal to -1 are ignored and duplicates
    are scored once. Returns scores / indices [nq, width] sorted as in ``exact_search``, where
    width = k, or the longest candidate list when k is None; a row with fewer candidates is
    padded with index -1 and score -inf. ``scoring="pylate"`` mirrors ``rank.rerank``, which
    zero-pads a query's candidates to the longest of them (see ``exact_search``).
    """
    dtype = _check_options(queries, docs, scoring, precision)
    if len(candidates) != len(queries):
        raise InputError(f"{len(candidates)} candidate lists for {len(queries)} queries", field="candidates")
    cands = [_clean_candidates(c, len(docs), qi) for qi, c in enumerate(candidates)]
    keys = tie_keys_for(tie_keys, len(docs))
    width = check_depth(k) if k is not None else max((len(c) for c in cands), default=0)
    out_scores = np.full((len(queries), width), -np.inf, np.float32)
    out_indices = np.full((len(queries), width), -1, np.int64)
    for qi, cand in enumerate(tqdm(cands, desc="rerank", unit="query", disable=not show_progress)):
        if len(cand) == 0 or width == 0:
            continue
        sub_docs = docs if len(cand) == len(docs) else docs.select(cand)  # cand is then arange
        clamp = _pylate_clamp(sub_docs.lengths, len(cand)) if scoring == "pylate" else None
        query = queries.select([qi])
        s, local = _search(query, sub_docs, width, clamp, keys[cand], dtype, max_block_bytes, False)
        n = s.shape[1]
        out_scores[qi, :n], out_indices[qi, :n] = s[0], cand[local[0]]
    return out_scores, out_indices


# ----------------------------------------------------------------------------------------------
# MaxSim kernel and blocked search (shared by exact_search and rerank)
# ----------------------------------------------------------------------------------------------


def _maxsim_block(
    q: np.ndarray,
    q_lens: np.ndarray,
    d: np.ndarray,
    d_lens: np.ndarray,
    clamp: np.ndarray | None,
    buf: np.ndarray,
) -> np.ndarray:
    """MaxSim scores [n_q, n_d] of packed query tokens ``q`` against packed doc tokens ``d``.

    score = sum_i max_j q_i . d_j, in the dtype of ``q`` and ``d``; a text with no tokens scores
    0. ``clamp[j]`` True makes every token max of doc j ``max(., 0)`` (PyLate's unmasked zero
    padding). ``buf`` (flat, >= len(q) * len(d) elements) receives the token similarities.
    """
    out = np.zeros((len(q_lens), len(d_lens)), q.dtype)
    q_has, d_has = q_lens > 0, d_lens > 0
    if not (q_has.any() and d_has.any()):
        return out
    sim = np.matmul(q, d.T, out=buf[: len(q) * len(d)].reshape(len(q), len(d)))
    if (d_lens[d_has] != 1).any():  # else single-vector docs: the matmul is the answer
        sim = np.maximum.reduceat(sim, (np.cumsum(d_lens) - d_lens)[d_has], axis=1)
    if clamp is not None and clamp[d_has].any():
        cols = clamp[d_has]
        sim[:, cols] = np.maximum(sim[:, cols], 0)
    if (q_lens[q_has] != 1).any():
        sim = np.add.reduceat(sim, (np.cumsum(q_lens) - q_lens)[q_has], axis=0)
    out[np.ix_(q_has, d_has)] = sim
    return out


def _search(
    queries: TokenEmbeddings,
    docs: TokenEmbeddings | ShardedEmbeddings,
    k: int,
    clamp: np.ndarray | None,
    tie_keys: np.ndarray,
    dtype: type,
    max_block_bytes: int,
    show_progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked exact search with a running top-k; see ``exact_search`` for the contract."""
    nq, n_docs = len(queries), len(docs)
    kk = min(k, n_docs)
    out_scores = np.zeros((nq, kk), np.float32)
    out_indices = np.zeros((nq, kk), np.int64)
    if nq == 0 or kk == 0:
        return out_scores, out_indices
    # Elements of the similarity matrix per block; the other half of the budget covers its
    # per-document reduction and the converted token vectors.
    elems = max(1, max_block_bytes // (2 * np.dtype(dtype).itemsize))
    q_lens, d_lens = queries.lengths, docs.lengths  # a property computing np.diff: read once
    q_w, d_w = np.maximum(q_lens, 1), np.maximum(d_lens, 1)
    doc_tokens_wanted = min(int(d_w.sum()), max(int(d_w.max()), _MIN_DOC_TOKENS_PER_BLOCK))
    q_cum, d_cum = _cumulative(q_w), _cumulative(d_w)
    q_blocks = consecutive_ranges(q_cum, max(int(q_w.max()), elems // doc_tokens_wanted))
    d_blocks = [
        consecutive_ranges(d_cum, max(int(d_w.max()), elems // int(q_w[a:b].sum()))) for a, b in q_blocks
    ]
    bar = tqdm(total=sum(map(len, d_blocks)), desc="exact search", unit="block", disable=not show_progress)
    q_off, d_off = queries.offsets, docs.offsets
    for (qa, qb), blocks in zip(q_blocks, d_blocks, strict=True):
        q = _as_finite(queries.vectors[q_off[qa] : q_off[qb]], dtype, "queries")
        buf: np.ndarray = np.empty(len(q) * max(int(d_off[b] - d_off[a]) for a, b in blocks), dtype)
        top_s = np.full((qb - qa, 0), -np.inf, np.float32)
        top_i = np.zeros((qb - qa, 0), np.int64)
        for da, db in blocks:
            d = _as_finite(docs.rows(int(d_off[da]), int(d_off[db])), dtype, "docs")
            block_clamp = None if clamp is None else clamp[da:db]
            s = _maxsim_block(q, q_lens[qa:qb], d, d_lens[da:db], block_clamp, buf).astype(np.float32)
            cat_s = np.concatenate([top_s, s], axis=1)
            cat_i = np.concatenate([top_i, arange_rows(qb - qa, da, db)], axis=1)
            top_s, top_i = select_top(cat_s, cat_i, tie_keys, kk)
            bar.update()
        out_scores[qa:qb], out_indices[qa:qb] = top_s, top_i
    bar.close()
    return out_scores, out_indices


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _cumulative(weights: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(weights)])


def _pylate_clamp(lengths: np.ndarray, chunk_size: int) -> np.ndarray:
    """True for documents shorter than the longest one of their ``chunk_size`` chunk (corpus order)."""
    if len(lengths) == 0:
        return np.zeros(0, bool)
    starts = np.arange(0, len(lengths), chunk_size)
    chunk_max = np.maximum.reduceat(lengths, starts)
    return lengths < np.repeat(chunk_max, np.diff(np.append(starts, len(lengths))))


def arange_rows(n: int, a: int, b: int) -> np.ndarray:
    """[n, b - a] rows of the indices a..b-1 (a read-only view)."""
    return np.broadcast_to(np.arange(a, b, dtype=np.int64), (n, b - a))


def _as_finite(vectors: np.ndarray, dtype: type, field: str) -> np.ndarray:
    out: np.ndarray = np.asarray(vectors, dtype)
    if not np.isfinite(out).all():
        raise InputError("embeddings contain NaN or infinity", field=field)
    return out


def _check_options(
    queries: TokenEmbeddings, docs: TokenEmbeddings | ShardedEmbeddings, scoring: str, precision: str
) -> type:
    """Validate the options shared by exact_search and rerank; return the accumulation dtype."""
    if queries.dim != docs.dim:
        raise InputError(f"query dim {queries.dim} != document dim {docs.dim}", field="dim")
    if scoring not in SCORINGS:
        raise InputError(f"unknown scoring {scoring!r}; expected one of {SCORINGS}", field="scoring")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; expected one of {PRECISIONS}", field="precision")
    return np.float64 if precision == "float64" else np.float32


def _clean_candidates(cand: np.ndarray, n_docs: int, qi: int) -> np.ndarray:
    """Sorted unique doc indices of one candidate list, -1 entries dropped."""
    cand = np.asarray(cand)
    if cand.ndim != 1 or (cand.size and not np.issubdtype(cand.dtype, np.integer)):
        raise InputError("must be a 1-D array of doc indices", field=f"candidates[{qi}]")
    cand = cand.astype(np.int64)
    cand = cand[cand != -1]
    if cand.size and (cand.min() < 0 or cand.max() >= n_docs):
        raise InputError(f"doc index out of range for {n_docs} documents", field=f"candidates[{qi}]")
    return np.unique(cand)
