"""Retrieval: exact MaxSim / dense top-k, reranking of candidate lists, BM25, and Run conversion.

Every search returns ``(scores [n_queries, k'] float32, indices [n_queries, k'] int64)``, each row
sorted by score descending with **ties broken by the lower document index first**. (The metrics
re-sort a Run by their own rule; this one only decides which tied documents make the k-th cut.)

MaxSim, for query token vectors q_i and document token vectors d_j::

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

from harness.types import InputError, Run, TokenEmbeddings

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
    docs: TokenEmbeddings,
    k: int,
    *,
    scoring: Scoring = "masked",
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    pylate_chunk_size: int = 50_000,
    precision: Precision = "float64",
    show_progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents of every query by exact MaxSim over the whole corpus.

    Returns scores [nq, k'] float32 and doc indices [nq, k'] int64, k' = min(k, len(docs)), sorted
    by score descending, ties by lower doc index.

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
    block always holds at least one query and one document.
    """
    dtype = _check_options(queries, docs, scoring, precision)
    k = _check_k(k)
    if pylate_chunk_size < 1:
        raise InputError(f"must be >= 1, got {pylate_chunk_size}", field="pylate_chunk_size")
    clamp = _pylate_clamp(docs.lengths, pylate_chunk_size) if scoring == "pylate" else None
    return _search(queries, docs, k, clamp, dtype, max_block_bytes, show_progress)


def rerank(
    queries: TokenEmbeddings,
    docs: TokenEmbeddings,
    candidates: Sequence[np.ndarray],
    k: int | None = None,
    *,
    scoring: Scoring = "masked",
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    precision: Precision = "float64",
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
    width = _check_k(k) if k is not None else max((len(c) for c in cands), default=0)
    out_scores = np.full((len(queries), width), -np.inf, np.float32)
    out_indices = np.full((len(queries), width), -1, np.int64)
    for qi, cand in enumerate(tqdm(cands, desc="rerank", unit="query", disable=not show_progress)):
        if len(cand) == 0 or width == 0:
            continue
        sub_docs = docs if len(cand) == len(docs) else _gather(docs, cand)  # cand is then arange
        clamp = _pylate_clamp(sub_docs.lengths, len(cand)) if scoring == "pylate" else None
        # cand is sorted, so "lower position" ties are "lower doc index" ties.
        query = _gather(queries, np.array([qi]))
        s, local = _search(query, sub_docs, width, clamp, dtype, max_block_bytes, False)
        n = s.shape[1]
        out_scores[qi, :n], out_indices[qi, :n] = s[0], cand[local[0]]
    return out_scores, out_indices


def bm25_search(
    corpus_texts: Sequence[str],
    query_texts: Sequence[str],
    k: int,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    stem: bool | None = None,
    show_progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """BM25 top-k with ``bm25s`` (Lucene BM25 variant, Pyserini's k1=0.9, b=0.4).

    Tokenisation is bm25s's: lower-cased ``\\w\\w+`` words minus its English stopwords. Stemming
    (English Snowball via PyStemmer, close to Pyserini's Porter) is used when ``stem`` is True,
    or when it is None and PyStemmer is installed; without it rankings differ from Pyserini's
    (usually a slightly lower nDCG). Returns (scores float32, indices int64) [nq, min(k, n_docs)],
    sorted, ties by lower doc index (bm25s's own top-k leaves tie order unspecified, so the full
    score rows are ranked here).
    """
    import bm25s

    k = _check_k(k)
    stemmer = _english_stemmer(stem)
    n_docs, nq = len(corpus_texts), len(query_texts)
    kk = min(k, n_docs)
    out_scores = np.zeros((nq, kk), np.float32)
    out_indices = np.zeros((nq, kk), np.int64)
    if n_docs == 0 or nq == 0:
        return out_scores, out_indices
    corpus_tokens = bm25s.tokenize(
        list(corpus_texts), stopwords="en", stemmer=stemmer, show_progress=show_progress
    )
    index = bm25s.BM25(k1=k1, b=b, method="lucene")
    index.index(corpus_tokens, show_progress=show_progress)
    query_tokens = bm25s.tokenize(
        list(query_texts), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    rows = max(1, DEFAULT_MAX_BLOCK_BYTES // (16 * n_docs))
    for q0 in tqdm(range(0, nq, rows), desc="bm25", unit="block", disable=not show_progress):
        q1 = min(q0 + rows, nq)
        block = np.zeros((q1 - q0, n_docs), np.float32)
        for r, tokens in enumerate(query_tokens[q0:q1]):
            ids = index.get_tokens_ids(tokens)
            if ids:  # a query with no known term scores 0 everywhere
                block[r] = index.get_scores_from_ids(ids)
        out_scores[q0:q1], out_indices[q0:q1] = _top_k(block, _arange_rows(q1 - q0, 0, n_docs), kk)
    return out_scores, out_indices


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
    docs: TokenEmbeddings,
    k: int,
    clamp: np.ndarray | None,
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
    q_blocks = _plan_blocks(q_w, max(int(q_w.max()), elems // doc_tokens_wanted))
    d_blocks = [_plan_blocks(d_w, max(int(d_w.max()), elems // int(q_w[a:b].sum()))) for a, b in q_blocks]
    bar = tqdm(total=sum(map(len, d_blocks)), desc="MaxSim", unit="block", disable=not show_progress)
    q_off, d_off = queries.offsets, docs.offsets
    for (qa, qb), blocks in zip(q_blocks, d_blocks, strict=True):
        q = _as_finite(queries.vectors[q_off[qa] : q_off[qb]], dtype, "queries")
        buf = np.empty(len(q) * max(int(d_off[b] - d_off[a]) for a, b in blocks), dtype)
        top_s = np.full((qb - qa, 0), -np.inf, np.float32)
        top_i = np.zeros((qb - qa, 0), np.int64)
        for da, db in blocks:
            d = _as_finite(docs.vectors[d_off[da] : d_off[db]], dtype, "docs")
            block_clamp = None if clamp is None else clamp[da:db]
            s = _maxsim_block(q, q_lens[qa:qb], d, d_lens[da:db], block_clamp, buf).astype(np.float32)
            cat_s = np.concatenate([top_s, s], axis=1)
            cat_i = np.concatenate([top_i, _arange_rows(qb - qa, da, db)], axis=1)
            top_s, top_i = _top_k(cat_s, cat_i, min(kk, cat_s.shape[1]))
            bar.update()
        out_scores[qa:qb], out_indices[qa:qb] = top_s, top_i
    bar.close()
    return out_scores, out_indices


def _top_k(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best entries of each row of [n, m] (k <= m), by score descending then index ascending."""
    n, m = scores.shape
    if k < m:
        part = np.argpartition(scores, m - k, axis=1)
        kth = np.take_along_axis(scores, part[:, m - k : m - k + 1], axis=1)  # k-th largest per row
        keep = scores > kth
        tied = scores == kth
        need = k - keep.sum(axis=1)
        exact = tied.sum(axis=1) == need
        keep[exact] |= tied[exact]
        for r in np.flatnonzero(~exact):  # more ties at the cut than places: lowest indices win
            cols = np.flatnonzero(tied[r])
            keep[r, cols[np.argsort(indices[r, cols], kind="stable")[: need[r]]]] = True
        cols = np.nonzero(keep)[1].reshape(n, k)
        scores = np.take_along_axis(scores, cols, axis=1)
        indices = np.take_along_axis(indices, cols, axis=1)
    order = np.lexsort((indices, -scores), axis=-1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _plan_blocks(weights: np.ndarray, cap: int) -> list[tuple[int, int]]:
    """Consecutive [a, b) ranges whose weights sum to at most ``cap`` (at least one item each)."""
    cum = np.concatenate([[0], np.cumsum(weights)])
    blocks, a = [], 0
    while a < len(weights):
        b = max(a + 1, int(np.searchsorted(cum, cum[a] + cap, side="right")) - 1)
        blocks.append((a, b))
        a = b
    return blocks


def _pylate_clamp(lengths: np.ndarray, chunk_size: int) -> np.ndarray:
    """True for documents shorter than the longest one of their ``chunk_size`` chunk (corpus order)."""
    if len(lengths) == 0:
        return np.zeros(0, bool)
    starts = np.arange(0, len(lengths), chunk_size)
    chunk_max = np.maximum.reduceat(lengths, starts)
    return lengths < np.repeat(chunk_max, np.diff(np.append(starts, len(lengths))))


def _gather(pack: TokenEmbeddings, idx: np.ndarray) -> TokenEmbeddings:
    """A pack of texts ``idx`` (vectorised ``TokenEmbeddings.select``)."""
    lens = pack.lengths[idx]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    rows = np.repeat(pack.offsets[idx] - offsets[:-1], lens) + np.arange(offsets[-1])
    return TokenEmbeddings(np.asarray(pack.vectors[rows], np.float32), offsets)


def _arange_rows(n: int, a: int, b: int) -> np.ndarray:
    return np.broadcast_to(np.arange(a, b, dtype=np.int64), (n, b - a))


def _as_finite(vectors: np.ndarray, dtype: type, field: str) -> np.ndarray:
    out = np.asarray(vectors, dtype)
    if not np.isfinite(out).all():
        raise InputError("embeddings contain NaN or infinity", field=field)
    return out


def _check_options(queries: TokenEmbeddings, docs: TokenEmbeddings, scoring: str, precision: str) -> type:
    """Validate the options shared by exact_search and rerank; return the accumulation dtype."""
    if queries.dim != docs.dim:
        raise InputError(f"query dim {queries.dim} != document dim {docs.dim}", field="dim")
    if scoring not in SCORINGS:
        raise InputError(f"unknown scoring {scoring!r}; expected one of {SCORINGS}", field="scoring")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; expected one of {PRECISIONS}", field="precision")
    return np.float64 if precision == "float64" else np.float32


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}", field="k")
    return int(k)


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


def _english_stemmer(stem: bool | None):  # -> PyStemmer stemmer or None
    if stem is False:
        return None
    try:
        import Stemmer  # PyStemmer
    except ImportError:
        if stem:
            raise ImportError("bm25_search(stem=True) needs PyStemmer (pip install PyStemmer)") from None
        return None
    return Stemmer.Stemmer("english")
