"""PLAID search (Santhanam et al., "PLAID: An Efficient Engine for Late Interaction Retrieval",
CIKM 2022) over an opened index: centroid probing, candidate generation from the inverted file,
centroid interaction with pruning, and exact MaxSim over the decompressed vectors of the survivors
(the same numbers as ``harness.retrieve.exact_search`` over ``decompress_docs()``, up to float32
rounding). Stages 3-4 run in ``harness.plaid.kernels`` (numba, GIL released, one query per thread).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from harness.errors import InputError
from harness.plaid.codec import ResidualCodec
from harness.plaid.kernels import centroid_interaction, decompressed_maxsim
from harness.plaid.params import DEFAULT_MAX_MEMORY_BYTES, default_search_settings
from harness.plaid.storage import DERIVED, MANIFEST, read_index, read_timings
from harness.ranking import tie_keys_for, top_k
from harness.types import TokenEmbeddings, token_rows


def _best(scores: np.ndarray, keys: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` best of ``scores`` [n] by the ranking rule (``keys`` [n] break ties)."""
    return top_k(scores[None], keys[None], min(m, len(scores)))[0]


def _top_columns(scores: np.ndarray, m: int) -> np.ndarray:
    """Column indices of the ``m`` highest scores of each row, in no particular order (repeated
    argmax for small ``m``: several times faster than argpartition over ~10^4 columns)."""
    if m > 4:
        return np.argpartition(scores, scores.shape[1] - m, axis=1)[:, -m:]
    rows, work, out = np.arange(len(scores)), scores, np.empty((len(scores), m), np.int64)
    for j in range(m):
        out[:, j] = np.argmax(work, axis=1)
        if j + 1 < m:
            work = work.copy() if work is scores else work
            work[rows, out[:, j]] = -np.inf
    return out


@dataclass
class PlaidIndex:
    """An opened index: memory-mapped stored arrays, the maps derived from them (``arrays`` holds
    both; ``harness.plaid.storage``) and the codec. Doc ids are 0..n_docs-1 in build order."""

    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    codec: ResidualCodec
    open_seconds: float = 0.0
    # sizes, from the manifest
    dim: int = field(init=False)
    nbits: int = field(init=False)
    n_docs: int = field(init=False)
    n_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        for key in ("dim", "nbits", "n_docs", "n_tokens"):
            setattr(self, key, int(self.manifest[key]))

    @classmethod
    def open(
        cls, path: str | Path, *, verify: bool = True, max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES
    ) -> PlaidIndex:
        """Open and validate an index folder (``harness.plaid.storage.read_index``: InputError
        naming the bad file; ``verify=True`` also checks every file's sha256)."""
        started = time.perf_counter()
        path = Path(path)
        manifest, arrays, codec = read_index(path, verify=verify, max_memory_bytes=max_memory_bytes)
        return cls(path, manifest, arrays, codec, time.perf_counter() - started)

    # -- properties -------------------------------------------------------------------------

    @property
    def n_pairs(self) -> int:
        return len(self.arrays["ivf"])

    def __len__(self) -> int:
        return self.n_docs

    def stats(self) -> dict[str, Any]:
        """Disk size, bytes per token vector (codes + residuals only, and whole index), build time,
        and the open cost (seconds; bytes of the maps derived in memory)."""
        files = self.manifest["files"]
        disk = sum(int(e["bytes"]) for e in files.values()) + (self.path / MANIFEST).stat().st_size
        return {
            "n_docs": self.n_docs,
            "n_tokens": self.n_tokens,
            "dim": self.dim,
            "nbits": self.nbits,
            "n_centroids": int(self.manifest["n_centroids"]),
            "n_doc_centroid_pairs": self.n_pairs,
            "disk_bytes": disk,
            "bytes_per_token_codes": self.codec.packed_width + self.codec.code_dtype.itemsize,
            "bytes_per_token_total": disk / max(self.n_tokens, 1),
            "build_seconds": read_timings(self.path).get("build_seconds"),
            "open_seconds": self.open_seconds,
            "derived_bytes": sum(self.arrays[name].nbytes for name in DERIVED),
        }

    # -- decompression and search -----------------------------------------------------------

    def decompress_docs(self, doc_ids: np.ndarray | None = None) -> TokenEmbeddings:
        """Decompressed token vectors of ``doc_ids`` (default: all docs), in that order."""
        doc_ids = np.arange(self.n_docs) if doc_ids is None else np.asarray(doc_ids, np.int64)
        offsets = self.arrays["doc_offsets"]
        if len(doc_ids) and np.all(doc_ids[1:] == doc_ids[:-1] + 1):  # a range: slice, no gather
            t0, t1 = int(offsets[doc_ids[0]]), int(offsets[doc_ids[-1] + 1])
            vectors = self.codec.decompress(self.arrays["codes"][t0:t1], self.arrays["residuals"][t0:t1])
            return TokenEmbeddings(vectors, np.asarray(offsets[doc_ids[0] : doc_ids[-1] + 2]) - t0)
        pos, lengths = token_rows(offsets, doc_ids)
        vectors = self.codec.decompress(self.arrays["codes"][pos], self.arrays["residuals"][pos])
        return TokenEmbeddings(vectors, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    def _approx_scores(self, scores_t: np.ndarray, docs: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
        """sum_q max_{c in C(d), keep[c]} S[c, q] for each doc d (PLAID centroid interaction), where
        C(d) is d's set of centroids and S = ``scores_t`` [K, Lq]; a doc with no kept centroid
        scores -inf (every query token then lacks one: a kept centroid scores for all of them)."""
        out = np.empty(len(docs), np.float32)
        keep = np.ones(len(scores_t), bool) if keep is None else keep
        a = self.arrays
        centroid_interaction(scores_t, keep, a["doc_centroid_offsets"], a["doc_centroids"], docs, out)
        return out

    def _candidates(
        self,
        scores_t: np.ndarray,
        probe: np.ndarray,
        threshold: float | None,
        n_full_scores: int,
        n_keep: int,
        tie_keys: np.ndarray,
    ) -> np.ndarray:
        """Stages 2-3 for one query (``scores_t`` [K, Lq], ``probe`` [Lq, n_probe]): sorted doc ids."""
        pos, _ = token_rows(self.arrays["ivf_offsets"], np.unique(probe))
        cand = np.unique(self.arrays["ivf"][pos]).astype(np.int64)
        # each cut is skipped when it would keep every candidate anyway
        if threshold is not None and len(cand) > n_full_scores:
            keep = scores_t.max(axis=1) >= threshold
            cand = cand[_best(self._approx_scores(scores_t, cand, keep), tie_keys[cand], n_full_scores)]
        if len(cand) > n_keep:
            cand = cand[_best(self._approx_scores(scores_t, cand, None), tie_keys[cand], n_keep)]
        return np.sort(cand)

    def _maxsim(
        self, q: np.ndarray, scores_t: np.ndarray, docs: np.ndarray, max_block_bytes: int
    ) -> np.ndarray:
        """Stage 4: exact MaxSim of one query [Lq, dim] with each doc of ``docs`` over the
        decompressed (normalised) vectors, float32: sum_i max_j q_i . d_j, computed without
        materialising d_j = (c_j + r_j) / |c_j + r_j| as q_i . d_j = (S[c_j, i] + q_i . r_j) * inv_j,
        with ``scores_t`` = S [K, Lq] from stage 1 and inv_j = ``token_inverse_norms`` (decompressed
        once, at the first search). The residuals of whole docs are unpacked into blocks of at most
        ``max_block_bytes`` (and 1024 tokens: larger blocks gain nothing) and scored by BLAS."""
        a, out = self.arrays, np.empty(len(docs), np.float32)
        block_tokens = max(1, min(1024, max_block_bytes // (4 * (self.dim + len(q)))))
        decompressed_maxsim(
            np.ascontiguousarray(q.T),
            scores_t,
            a["codes"],
            a["residuals"],
            self.codec.byte_table,
            self.token_inverse_norms(),
            a["doc_offsets"],
            docs,
            block_tokens,
            out,
        )
        return out

    def token_inverse_norms(self) -> np.ndarray:
        """1 / |centroid + residual| of every token [n_tokens] float32: the decompression's
        normalisation, derived once (a pass over the whole index, then 4 bytes per token in RAM)."""
        if "token_inverse_norms" not in self.arrays:  # inverse_norms reads the memmaps in row chunks
            norms = self.codec.inverse_norms(self.arrays["codes"], self.arrays["residuals"])
            self.arrays["token_inverse_norms"] = norms
        return self.arrays["token_inverse_norms"]

    def search(
        self, queries: TokenEmbeddings, k: int = 10, *, show_progress: bool = True, **knobs: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` docs per query: (scores [nq, k] float32, doc ids [nq, k] int64), rows padded -inf/-1.

        Stages (PLAID): (1) S = Q @ centroids^T, each query token probes its ``n_probe`` best
        centroids; (2) candidates = docs in the probed IVF cells; (3) approximate MaxSim from S over
        each doc's centroids, dropping centroids whose best query-token score is <
        ``centroid_score_threshold`` (None: no pruning), keep the top ``n_full_scores``; then
        re-score those without pruning and keep the top max(k, n_full_scores // 4) (stanford
        ColBERT's two steps); (4) exact float32 MaxSim over their decompressed vectors (``_maxsim``).
        Knobs left at None / "default" come from ``default_search_settings(k)``. Queries run in
        batches of ``batch_size`` (the progress bar's step), one query per thread on ``threads``
        threads (default: one per CPU) with single-threaded BLAS; results do not depend on either.
        ``max_block_bytes`` bounds each stage-4 similarity block (a single doc may exceed it).
        A document with no tokens is in no IVF cell and is never returned. Every cut ranks by
        ``harness.ranking.top_k`` with ``tie_keys`` (one per doc; default: lower doc id first).
        """
        with self.searcher(k, **knobs) as run:  # the knobs: n_probe, ..., tie_keys (searcher's)
            return run(queries, show_progress)

    @contextlib.contextmanager
    def searcher(
        self,
        k: int = 10,
        *,
        n_probe: int | None = None,
        centroid_score_threshold: float | None | Literal["default"] = "default",
        n_full_scores: int | None = None,
        batch_size: int = 32,
        max_block_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
        threads: int | None = None,
        tie_keys: np.ndarray | None = None,
    ) -> Iterator[Callable[[TokenEmbeddings, bool], tuple[np.ndarray, np.ndarray]]]:
        """:meth:`search` with its knobs fixed and its thread pool and single-threaded BLAS held open:
        ``run(queries, show_progress)`` is ``search(queries, ...)`` without setting them up again
        (a single-query search timed alone pays for the search, not for the set-up; same results)."""
        defaults = default_search_settings(k)
        n_probe = defaults["n_probe"] if n_probe is None else n_probe
        n_full_scores = defaults["n_full_scores"] if n_full_scores is None else n_full_scores
        threshold = centroid_score_threshold
        if threshold == "default":
            threshold = defaults["centroid_score_threshold"]
        n_probe = min(n_probe, len(self.codec.centroids))
        n_keep = max(k, n_full_scores // 4)
        keys = tie_keys_for(tie_keys, self.n_docs)

        def one(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if len(q) == 0:  # an empty query matches nothing
                return np.zeros(0, np.float32), np.zeros(0, np.int64)
            scores = q @ self.codec.centroids.T  # [Lq, K]
            probe = _top_columns(scores, n_probe)
            scores_t = np.ascontiguousarray(scores.T)  # [K, Lq]: a contiguous row per centroid
            cand = self._candidates(scores_t, probe, threshold, n_full_scores, n_keep, keys)
            exact = self._maxsim(q, scores_t, cand, max_block_bytes)
            top = _best(exact, keys[cand], k)
            return exact[top], cand[top]

        self.token_inverse_norms()  # derived once, before the threads start
        n_threads = max(1, threads or os.cpu_count() or 1)
        # one BLAS thread per query thread: BLAS's own threads would fight ours for the cores (2x
        # slower on 2 cores), and single-threaded BLAS rounds the same way whatever ``threads`` is
        with ThreadPoolExecutor(n_threads) as pool, threadpool_limits(1, user_api="blas"):
            map_ = pool.map if n_threads > 1 else map  # the kernels and BLAS release the GIL

            def run(queries: TokenEmbeddings, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
                if queries.dim != self.dim:
                    raise InputError(f"query dim {queries.dim} != index dim {self.dim}", field="queries")
                nq, qoff = len(queries), queries.offsets
                out_scores = np.full((nq, k), -np.inf, np.float32)
                out_ids = np.full((nq, k), -1, np.int64)
                bar = tqdm(total=nq, desc="plaid search", unit="query", disable=not show_progress)
                for b0 in range(0, nq, batch_size):
                    b1 = min(b0 + batch_size, nq)
                    jobs = [
                        np.ascontiguousarray(queries.vectors[qoff[i] : qoff[i + 1]], np.float32)
                        for i in range(b0, b1)
                    ]
                    for qi, (s, i) in enumerate(map_(one, jobs), start=b0):
                        out_scores[qi, : len(s)], out_ids[qi, : len(i)] = s, i
                    bar.update(b1 - b0)
                bar.close()
                return out_scores, out_ids

            yield run
