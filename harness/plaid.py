"""PLAID-style compressed multi-vector index (ColBERTv2 engine, REFERENCE §6).

Build: k-means centroids on a document sample, a residual codec (``nbits`` per dimension) and the
token codes, written to disk in bounded memory. Search runs the four PLAID stages and scores the
final candidates with exact MaxSim over their *decompressed* vectors (the same numbers as
``harness.retrieve.exact_search`` over ``decompress_docs()``, up to float32 rounding).

Two deliberate departures from the peers (REFERENCE §6), both measured on SciFact (see
``benchmarks/bench_plaid.py``):

- the bucket cutoffs / weights are a Lloyd-Max quantiser of the held-out residuals (``fit="lloyd"``,
  started from the peers' quantiles; ``fit="quantile"`` gives the peers' codec): cosine to the
  original vectors 0.9977 instead of 0.9921 at nbits 4, which lifts the ceiling of top-10 overlap
  with exact search (exhaustive search over the decompressed vectors) from 0.944 to ~0.963;
- centroids are stored as int8 with one float32 scale per centroid (the codec works with exactly
  those de-quantised values), and the doc -> centroids map and the inverted file are not stored
  but derived when the index is opened, so the disk holds
  ``dim * nbits / 8 + code bytes`` per token plus ``K * (dim + 4)`` and 8 bytes per document.

On-disk format (a folder): ``manifest.json`` (format version, sizes, build parameters, sha256 of
every array file) plus one ``.npy`` file per stored array, opened with ``mmap_mode="r"``.
``build_index`` writes a temporary folder and renames it; ``add_documents`` writes new array files
next to the old ones and commits by atomically replacing the manifest, which is always written last.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from harness.fileio import file_sha256
from harness.plaid_kernels import (
    centroid_interaction,
    cluster_sums,
    decompressed_maxsim,
    pack_residuals,
    refine_screened_argmax,
)
from harness.types import InputError, TokenEmbeddings

FORMAT = "harness-plaid"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
DEFAULT_MAX_MEMORY_BYTES = 1 << 30
_CODEC_ARRAYS = (
    "centroid_codes",  # [K, dim] int8: centroid c = centroid_codes[c] * centroid_scales[c]
    "centroid_scales",  # [K] float32
    "bucket_cutoffs",  # [2^nbits - 1] float32
    "bucket_weights",  # [2^nbits] float32
)
_DOC_ARRAYS = (
    "doc_offsets",  # [n_docs + 1] int64: doc i owns tokens doc_offsets[i]:doc_offsets[i+1]
    "codes",  # [n_tokens] centroid id per token (uint16 when K <= 65536, else int32)
    "residuals",  # [n_tokens, dim * nbits / 8] uint8 packed bucket ids, first dimension high bits
)
_STORED = _CODEC_ARRAYS + _DOC_ARRAYS
# derived by PlaidIndex.open (in memory): doc_centroid_offsets [n_docs + 1] int64, doc_centroids
# [n_pairs] (each doc's distinct centroid ids, ascending), ivf_offsets [K + 1] int64, ivf [n_pairs]
# int32 (each centroid's doc ids, ascending)
_DECOMPRESS_ROWS = 1 << 13
_LLOYD_ITERS = 300

Shards = Iterable[TokenEmbeddings] | Callable[[], Iterable[TokenEmbeddings]]
CodecFit = Literal["lloyd", "quantile"]


def default_n_centroids(n_tokens: int) -> int:
    """K = 2^floor(log2(16 * sqrt(n_tokens))) (ColBERTv2 / fast-plaid)."""
    return 2 ** int(math.floor(math.log2(16 * math.sqrt(max(n_tokens, 1)))))


def default_sample_docs(n_docs: int) -> int:
    """Docs sampled for k-means: min(1 + 16 * sqrt(120 * n_docs), n_docs) (fast-plaid)."""
    return min(1 + int(16 * math.sqrt(120 * n_docs)), n_docs)


def default_search_settings(k: int) -> dict[str, Any]:
    """Search knobs for ``k`` results, k-dependent like stanford ColBERT's (ncells 1/2/4, threshold
    0.5/0.45/0.4, ndocs 256/1024/4096 for k <= 10 / <= 100 / more) but wider: stage 4 sees
    max(k, n_full_scores / 4) docs. On SciFact (MiniLM-ColBERT, nbits 4, k=10, 2 cores; exact
    search 14.4 QPS) stanford's (1, 0.5, 256) gives top-10 overlap with exact search 0.900 at
    630 QPS; (2, 0.45, 1536) 0.959 at 203; (4, 0.45, 2048) 0.962 at 163; (4, 0.45, 3072) 0.963 at
    116; (4, 0.45, 4096) 0.964 at 99; exhaustive search over the decompressed vectors (the codec's
    ceiling) 0.966. Stage 4 dominates the cost: it grows with n_full_scores
    (``benchmarks/bench_plaid.py``)."""
    if k <= 10:
        return {"n_probe": 4, "centroid_score_threshold": 0.45, "n_full_scores": 3072}
    if k <= 100:
        return {"n_probe": 4, "centroid_score_threshold": 0.4, "n_full_scores": 8192}
    return {"n_probe": 8, "centroid_score_threshold": 0.4, "n_full_scores": max(8192, 4 * k)}


# ---------------------------------------------------------------------------------------------
# nearest centroid


@functools.cache
def _bf16_dot() -> bool:
    """Whether the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX), on which torch's bf16
    matmul runs ~3x as fast as float32 (elsewhere it is emulated and slower)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


_SCREEN_BYTES = 8 << 20  # bf16 matmul runs 2-5x faster when its [rows, K] output stays in cache
_POINT_BLOCK = 8192


def _row_norms(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def nearest(
    points: np.ndarray,
    targets: np.ndarray,
    bias: np.ndarray | None = None,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> np.ndarray:
    """argmax_j <points[r], targets[j]> + bias[j] per row, exact: the sums are taken in float64 (the
    first j on ties), whatever the screen below does. Returns int64 [n].

    All targets are screened by a bf16 matmul (on CPUs without bf16 dot products: float32, rounded
    to bf16), and only the targets the screen cannot rule out are rescored exactly: those within
    twice the screen's error bound of the row's best screen score (~1.3 per token on SciFact). With
    p~, t~ the bf16-rounded vectors, <p~, t~> - <p, t> = <p~ - p, t~> + <p, t~ - t>, and the float32
    sum and its bf16 rounding add at most (d 2^-24 + 2^-9) |p~| |t~|, so every screen score is
    within |p~ - p| max|t~| + |p| max|t~ - t| + (d 2^-23 + 2^-8) |p~| max|t~| of the exact one
    (rounding terms doubled for headroom). ``bias`` is folded in as one more dimension (points get
    a 1). The working set is one [rows, K] screen of at most ``max_memory_bytes``. (The exact pass
    reads the screen once per row at memory speed: a second thread does not make it faster.)"""
    import torch  # here, not at the top: opening and searching an index do not need it

    points = np.asarray(points)
    targets = np.asarray(targets, np.float32)
    if bias is not None:
        targets = np.hstack([targets, np.asarray(bias, np.float32)[:, None]])
    k, dim = targets.shape
    targets_bf16 = torch.from_numpy(targets).to(torch.bfloat16)
    rounded = targets_bf16.float().numpy()
    t_max = _row_norms(rounded).max(initial=0.0)
    t_err = _row_norms(rounded - targets).max(initial=0.0)
    rounding = dim * 2.0**-23 + 2.0**-8
    rows = max(1, min(_SCREEN_BYTES // (2 * k), max_memory_bytes // (6 * k)))
    use_bf16 = _bf16_dot()
    out = np.empty(len(points), np.int64)
    block = np.ones((min(_POINT_BLOCK, len(points)), dim), np.float32)  # with a bias, the last column stays 1
    for i in range(0, len(points), _POINT_BLOCK):
        p = block[: min(_POINT_BLOCK, len(points) - i)]
        p[:, : points.shape[1]] = points[i : i + len(p)]
        p_bf16 = torch.from_numpy(p).to(torch.bfloat16)
        p_rounded = p_bf16.float().numpy()
        bound = (_row_norms(p_rounded - p) + rounding * _row_norms(p_rounded)) * t_max + _row_norms(p) * t_err
        margin = 2 * bound * (1 + 1e-6) + 2.0**-100  # + flushed subnormals' share
        for a in range(0, len(p), rows):
            b = min(len(p), a + rows)
            if use_bf16:
                screen = p_bf16[a:b] @ targets_bf16.T
            else:
                screen = torch.from_numpy(p[a:b] @ targets.T).to(torch.bfloat16)
            keys = screen.view(torch.int16).numpy()
            refine_screened_argmax(keys, p[a:b], targets, margin[a:b], out[i + a : i + b])
    return out


# ---------------------------------------------------------------------------------------------
# codec


def quantize_centroids(centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[K, dim] float -> (int8 codes, float32 scales) with codes = rint(c / scale) and
    scale = max|c| / 127 per row (1 for an all-zero row)."""
    centroids = np.asarray(centroids, np.float32)
    peak = np.abs(centroids).max(axis=1) if centroids.size else np.zeros(len(centroids), np.float32)
    scales = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    codes = np.clip(np.rint(centroids / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


@dataclass(frozen=True)
class ResidualCodec:
    """v ~ normalize(centroids[c] + weights[b]) with c = argmax_c <v, centroid_c> and, per dimension,
    b = number of cutoffs strictly below the residual (``np.searchsorted(cutoffs, r, "left")``).
    ``centroids`` = centroid_codes * centroid_scales[:, None] (float32), the values stored on disk."""

    centroid_codes: np.ndarray
    centroid_scales: np.ndarray
    cutoffs: np.ndarray
    weights: np.ndarray
    nbits: int
    centroids: np.ndarray = field(init=False, repr=False, compare=False)
    # [256, 8 / nbits]: the residual values of the dimensions one packed byte holds
    byte_table: np.ndarray = field(init=False, repr=False, compare=False)
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.nbits not in (1, 2, 4):
            raise InputError(f"nbits must be 1, 2 or 4, got {self.nbits}", field="nbits")
        centroids = np.asarray(self.centroid_codes, np.float32) * np.asarray(self.centroid_scales)[:, None]
        object.__setattr__(self, "centroids", centroids.astype(np.float32))
        # lookup table: a packed unit (two bytes, little-endian, or one byte when the packed width is
        # odd) -> the residual values of the dimensions it holds; decompression is then one table
        # gather per unit instead of per-dimension bit arithmetic
        per = 8 // self.nbits
        shifts = self.nbits * (per - 1 - np.arange(per))
        buckets = (np.arange(256)[:, None] >> shifts) & ((1 << self.nbits) - 1)
        table = np.asarray(self.weights, np.float32)[buckets]  # [256, per]
        object.__setattr__(self, "byte_table", np.ascontiguousarray(table))
        if self.packed_width % 2 == 0:
            table = np.concatenate([np.tile(table, (256, 1)), np.repeat(table, 256, axis=0)], axis=1)
        object.__setattr__(self, "_table", np.ascontiguousarray(table))

    @classmethod
    def from_centroids(
        cls, centroids: np.ndarray, cutoffs: np.ndarray, weights: np.ndarray, nbits: int
    ) -> ResidualCodec:
        """A codec whose centroids are ``centroids`` rounded to the stored int8 form."""
        return cls(
            *quantize_centroids(centroids),
            np.asarray(cutoffs, np.float32),
            np.asarray(weights, np.float32),
            nbits,
        )

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    @property
    def packed_width(self) -> int:
        return self.dim * self.nbits // 8

    @property
    def code_dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if len(self.centroids) <= 1 << 16 else np.int32)

    def assign(self, vectors: np.ndarray, max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES) -> np.ndarray:
        """Nearest centroid by inner product (``nearest``: exact, first on ties)."""
        return nearest(vectors, self.centroids, None, max_memory_bytes).astype(self.code_dtype)

    def compress(
        self, vectors: np.ndarray, max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES
    ) -> tuple[np.ndarray, np.ndarray]:
        """[n, dim] float32 -> (codes [n], packed residual buckets [n, dim * nbits / 8] uint8)."""
        vectors = np.ascontiguousarray(vectors, np.float32)
        codes = self.assign(vectors, max_memory_bytes)
        packed = np.empty((len(vectors), self.packed_width), np.uint8)
        pack_residuals(vectors, codes, self.centroids, self.cutoffs, self.nbits, packed)
        return codes, packed

    def residuals(self, packed: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Packed buckets [n, width] -> residual values weights[bucket] [n, dim] float32."""
        packed = np.ascontiguousarray(packed)
        units = packed.view("<u2" if self.packed_width % 2 == 0 else np.uint8)
        out = np.empty((len(packed), self.dim), np.float32) if out is None else out
        np.take(self._table, units, axis=0, out=out.reshape(units.shape + (-1,)))
        return out

    def decompress(self, codes: np.ndarray, packed: np.ndarray, *, normalize: bool = True) -> np.ndarray:
        """(codes, packed) -> float32 vectors [n, dim], centroid + residual, L2-normalised (as in
        ColBERTv2) unless ``normalize`` is False."""
        out = np.empty((len(codes), self.dim), np.float32)
        scratch = np.empty((min(len(codes), _DECOMPRESS_ROWS), self.dim), np.float32)
        for i in range(0, len(codes), _DECOMPRESS_ROWS):
            o = out[i : i + _DECOMPRESS_ROWS]
            np.take(self.centroids, np.asarray(codes[i : i + len(o)]), axis=0, out=o)
            o += self.residuals(packed[i : i + len(o)], scratch[: len(o)])
            if normalize:
                o /= np.maximum(np.sqrt(np.einsum("ij,ij->i", o, o)), 1e-12)[:, None]
        return out

    def inverse_norms(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """1 / |centroid + residual| per token (float32; 1e12 for a zero vector), in row chunks."""
        out = np.empty(len(codes), np.float32)
        for i in range(0, len(codes), _DECOMPRESS_ROWS):
            v = self.decompress(
                codes[i : i + _DECOMPRESS_ROWS], packed[i : i + _DECOMPRESS_ROWS], normalize=False
            )
            out[i : i + len(v)] = 1 / np.maximum(np.sqrt(np.einsum("ij,ij->i", v, v)), 1e-12)
        return out


def _lloyd_max(values: np.ndarray, n: int, iters: int = _LLOYD_ITERS) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd-Max scalar quantiser with ``n`` levels of ``values`` (minimum squared error), started at
    the quantile weights: repeat {cutoffs = midpoints of adjacent weights; weight_j = mean of the
    values in bucket j} until it stops moving or ``iters`` rounds. Returns (cutoffs, weights)."""
    v = np.sort(np.asarray(values, np.float64))
    prefix = np.concatenate([[0.0], np.cumsum(v)])
    weights = np.quantile(v, (np.arange(n) + 0.5) / n)
    for _ in range(iters):
        cutoffs = (weights[1:] + weights[:-1]) / 2
        # bucket j holds cutoffs[j-1] < v <= cutoffs[j] (searchsorted "left" at compress time)
        edges = np.concatenate([[0], np.searchsorted(v, cutoffs, side="right"), [len(v)]])
        count = np.diff(edges)
        means = (prefix[edges[1:]] - prefix[edges[:-1]]) / np.maximum(count, 1)
        new = np.where(count > 0, means, weights)
        if np.array_equal(new, weights):
            break
        weights = new
    return (weights[1:] + weights[:-1]) / 2, weights


def train_codec(
    heldout: np.ndarray, centroids: np.ndarray, nbits: int, fit: CodecFit = "lloyd"
) -> ResidualCodec:
    """Residual codec from held-out vectors, pooled over all dimensions (centroids are first rounded
    to their stored int8 form). ``fit="quantile"`` (the peers'): cutoffs at quantiles i/2^nbits
    (i = 1..2^nbits-1), weights at quantiles (i+0.5)/2^nbits (i = 0..2^nbits-1) of the residuals.
    ``fit="lloyd"``: the Lloyd-Max quantiser of the same residuals, started from those weights."""
    if fit not in ("lloyd", "quantile"):
        raise InputError(f"fit must be 'lloyd' or 'quantile', got {fit!r}", field="fit")
    n = 1 << nbits
    probe = ResidualCodec.from_centroids(centroids, np.zeros(0), np.zeros(n), nbits)
    residuals = (heldout - probe.centroids[probe.assign(heldout)]).ravel()
    if fit == "quantile":
        cutoffs = np.quantile(residuals, np.arange(1, n) / n)
        weights = np.quantile(residuals, (np.arange(n) + 0.5) / n)
    else:
        cutoffs, weights = _lloyd_max(residuals, n)
    return ResidualCodec(
        probe.centroid_codes,
        probe.centroid_scales,
        cutoffs.astype(np.float32),
        weights.astype(np.float32),
        nbits,
    )


def kmeans(
    points: np.ndarray,
    k: int,
    iters: int,
    rng: np.random.Generator,
    max_memory_bytes: int,
    show_progress: bool = False,
) -> np.ndarray:
    """Lloyd's k-means (L2), init from k distinct sampled points; empty clusters keep their centroid.
    Returns L2-normalised centroids [k, dim] float32."""
    centroids = points[np.sort(rng.choice(len(points), k, replace=False))].copy()
    for _ in tqdm(range(iters), desc="k-means", unit="step", disable=not show_progress):
        # argmin |x - c|^2 = argmax <x, c> - |c|^2 / 2
        half_sq = 0.5 * np.einsum("kd,kd->k", centroids, centroids)
        assign = nearest(points, centroids, -half_sq, max_memory_bytes)
        sums, counts = np.zeros(centroids.shape), np.zeros(k, np.int64)
        cluster_sums(points, assign, sums, counts)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# small array helpers


def _csr_positions(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of rows ``rows`` of a CSR map, and each row's length."""
    starts = np.asarray(offsets[rows], np.int64)
    lengths = np.asarray(offsets[rows + 1], np.int64) - starts
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + shift, lengths


def _top(scores: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` highest scores, sorted by score desc then index asc."""
    idx = np.arange(len(scores)) if len(scores) <= m else np.argpartition(-scores, m - 1)[:m]
    return idx[np.lexsort((idx, -scores[idx]))]


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


def _doc_chunks(offsets: np.ndarray, max_tokens: int) -> Iterator[tuple[int, int]]:
    """Consecutive doc ranges [a, b) of at most ``max_tokens`` tokens (at least one doc each)."""
    a, n = 0, len(offsets) - 1
    while a < n:
        b = int(np.searchsorted(offsets, offsets[a] + max_tokens, side="right")) - 1
        b = min(max(b, a + 1), n)
        yield a, b
        a = b


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_array(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)


def _copy_into(dst: np.ndarray, start: int, src: np.ndarray, step: int) -> None:
    for i in range(0, len(src), step):
        dst[start + i : start + i + len(src[i : i + step])] = src[i : i + step]


class _ShardSource:
    """Re-iterable view of the caller's shards (build reads them in up to three passes)."""

    def __init__(self, shards: Shards) -> None:
        if callable(shards):
            self._make: Callable[[], Iterable[TokenEmbeddings]] = shards
        elif iter(shards) is shards:  # type: ignore[arg-type]
            raise InputError(
                "shards must be re-iterable (a list, or a callable returning a fresh iterable): "
                "the index is built in several passes",
                field="shards",
            )
        else:
            self._make = lambda: shards  # type: ignore[return-value]

    def __iter__(self) -> Iterator[TokenEmbeddings]:
        for i, shard in enumerate(self._make()):
            if not isinstance(shard, TokenEmbeddings):
                raise InputError(
                    f"shard {i} is a {type(shard).__name__}, not TokenEmbeddings", field="shards"
                )
            yield shard

    def count(self, dim: int | None = None) -> tuple[int, int, int]:
        """(n_docs, n_tokens, dim), checking every shard has the same dim."""
        n_docs = n_tokens = 0
        for i, shard in enumerate(self):
            if dim is None:
                dim = shard.dim
            if shard.dim != dim:
                raise InputError(f"shard {i} has dim {shard.dim}, expected {dim}", field="vectors")
            n_docs, n_tokens = n_docs + len(shard), n_tokens + len(shard.vectors)
        if dim is None:
            raise InputError("no shards given", field="shards")
        return n_docs, n_tokens, dim


# ---------------------------------------------------------------------------------------------
# writing


def _write_doc_arrays(
    folder: Path,
    tag: str,
    codec: ResidualCodec,
    source: _ShardSource,
    n_new_docs: int,
    n_new_tokens: int,
    old: PlaidIndex | None,
    max_memory_bytes: int,
    show_progress: bool,
) -> dict[str, Path]:
    """Write doc offsets, codes and residuals of ``old``'s docs (copied) followed by the new ones.
    Returns array name -> file path."""
    n_old_docs = old.n_docs if old else 0
    n_old_tokens = old.n_tokens if old else 0
    n_docs, n_tokens = n_old_docs + n_new_docs, n_old_tokens + n_new_tokens
    paths = {name: folder / f"{name}-{tag}.npy" for name in _DOC_ARRAYS}
    codes = _new_array(paths["codes"], codec.code_dtype, (n_tokens,))
    residuals = _new_array(paths["residuals"], np.uint8, (n_tokens, codec.packed_width))
    doc_offsets = _new_array(paths["doc_offsets"], np.int64, (n_docs + 1,))
    step = max(1, max_memory_bytes // 64)
    doc_offsets[0] = 0
    if old is not None:  # copy the existing documents verbatim
        _copy_into(codes, 0, old.arrays["codes"], step)
        _copy_into(residuals, 0, old.arrays["residuals"], max(1, step // codec.packed_width))
        _copy_into(doc_offsets, 0, old.arrays["doc_offsets"], step)
    # tokens per chunk: the float32 vectors, residual buckets, and the [chunk, K] score block in assign
    max_tokens = max(1, max_memory_bytes // (16 * codec.dim + 32))
    doc, tok = n_old_docs, n_old_tokens
    bar = tqdm(total=n_new_tokens, desc="compress", unit="tok", disable=not show_progress)
    for shard in source:
        for a, b in _doc_chunks(shard.offsets, max_tokens):
            t0, t1 = int(shard.offsets[a]), int(shard.offsets[b])
            if doc + (b - a) > n_docs or tok + (t1 - t0) > n_tokens:
                raise InputError("shards changed between passes (more documents)", field="shards")
            vecs = np.ascontiguousarray(shard.vectors[t0:t1], dtype=np.float32)
            c, packed = codec.compress(vecs, max_memory_bytes)
            codes[tok : tok + len(c)], residuals[tok : tok + len(c)] = c, packed
            doc_offsets[doc + 1 : doc + 1 + b - a] = tok + np.cumsum(np.diff(shard.offsets[a : b + 1]))
            doc, tok = doc + b - a, tok + len(c)
            bar.update(len(c))
    bar.close()
    if doc != n_docs or tok != n_tokens:
        raise InputError("shards changed between passes (fewer documents)", field="shards")
    for arr in (codes, residuals, doc_offsets):
        arr.flush()
    return paths


def _derive_maps(
    doc_offsets: np.ndarray, codes: np.ndarray, k: int, max_memory_bytes: int, codes_file: str
) -> dict[str, np.ndarray]:
    """The doc -> distinct centroids CSR and the inverted file centroid -> docs (both ascending), from
    the token codes: a sort of (doc, centroid) keys per doc chunk, then a stable counting sort of
    the pairs by centroid. Temporary memory stays within about ``max_memory_bytes``."""
    n_docs = len(doc_offsets) - 1
    per_doc = np.zeros(n_docs, np.int64)
    parts = []
    for a, b in _doc_chunks(doc_offsets, max(1, max_memory_bytes // 40)):
        chunk = np.asarray(codes[doc_offsets[a] : doc_offsets[b]])
        if len(chunk) and int(chunk.max()) >= k:
            raise InputError(f"centroid id {int(chunk.max())} >= n_centroids {k}", file=codes_file)
        lengths = np.diff(doc_offsets[a : b + 1])
        key = np.unique(np.repeat(np.arange(b - a, dtype=np.int64) * k, lengths) + chunk)
        parts.append((key % k).astype(codes.dtype))
        per_doc[a:b] = np.bincount(key // k, minlength=b - a)
    doc_centroids = np.concatenate(parts) if parts else np.zeros(0, codes.dtype)
    dc_offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)
    counts = np.bincount(doc_centroids, minlength=k)
    ivf_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ivf = np.empty(len(doc_centroids), np.int32)
    cursor = ivf_offsets[:-1].copy()
    for a, b in _doc_chunks(dc_offsets, max(1, max_memory_bytes // 40)):
        cents = doc_centroids[dc_offsets[a] : dc_offsets[b]]
        docs = np.repeat(np.arange(a, b, dtype=np.int32), per_doc[a:b])
        order = np.argsort(cents, kind="stable")  # stable: docs stay ascending inside a centroid
        cents, docs = cents[order], docs[order]
        group = np.bincount(cents, minlength=k)
        rank = np.arange(len(cents)) - (np.cumsum(group) - group)[cents]
        ivf[cursor[cents] + rank] = docs
        cursor += group
    return {
        "doc_centroid_offsets": dc_offsets,
        "doc_centroids": doc_centroids,
        "ivf_offsets": ivf_offsets,
        "ivf": ivf,
    }


def _file_entry(path: Path) -> dict[str, Any]:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    _fsync(path)
    return {
        "path": path.name,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
    }


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / f".{MANIFEST}.tmp-{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    _fsync(tmp)
    os.replace(tmp, folder / MANIFEST)
    _fsync(folder)


def _save_codec(folder: Path, codec: ResidualCodec) -> dict[str, Path]:
    paths = {name: folder / f"{name}-g0.npy" for name in _CODEC_ARRAYS}
    np.save(paths["centroid_codes"], codec.centroid_codes)
    np.save(paths["centroid_scales"], codec.centroid_scales)
    np.save(paths["bucket_cutoffs"], codec.cutoffs)
    np.save(paths["bucket_weights"], codec.weights)
    return paths


# ---------------------------------------------------------------------------------------------
# build / add


def train_index_codec(
    shards: Shards,
    *,
    nbits: int = 4,
    n_centroids: int | None = None,
    kmeans_iters: int = 4,
    sample_docs: int | None = None,
    seed: int = 42,
    fit: CodecFit = "lloyd",
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> tuple[ResidualCodec, dict[str, Any]]:
    """k-means centroids + residual codec from a doc sample of ``shards`` -> (codec, build facts).

    ``n_centroids`` defaults to ``default_n_centroids(n_tokens)``, ``sample_docs`` to
    ``default_sample_docs(n_docs)``. The sampled tokens are shuffled; 5% (at most 50k) are held out
    for the codec (``train_codec``) and the rest, capped at 256 per centroid, train k-means. The
    sample is also capped at ``max_memory_bytes / (16 * dim)`` vectors (fewer docs are sampled to
    fit). The centroids do not depend on ``nbits`` or ``fit``.
    """
    source = _ShardSource(shards)
    return _train(
        source, *source.count(), nbits, n_centroids, kmeans_iters, sample_docs, seed, fit, max_memory_bytes
    )


def _train(
    source: _ShardSource,
    n_docs: int,
    n_tokens: int,
    dim: int,
    nbits: int,
    n_centroids: int | None,
    kmeans_iters: int,
    sample_docs: int | None,
    seed: int,
    fit: CodecFit,
    max_memory_bytes: int,
    centroids: np.ndarray | None = None,
    show_progress: bool = False,
) -> tuple[ResidualCodec, dict[str, Any]]:
    if n_tokens < 2:
        raise InputError(f"need at least 2 token vectors, got {n_tokens}", field="shards")
    if nbits not in (1, 2, 4) or dim * nbits % 8:
        raise InputError(f"nbits must be 1, 2 or 4 with dim * nbits % 8 == 0 (dim={dim})", field="nbits")
    rng = np.random.default_rng(seed)
    max_points = max(2, max_memory_bytes // (16 * dim))
    n_sample = min(sample_docs or default_sample_docs(n_docs), n_docs)
    n_sample = min(n_sample, max(1, int(max_points * n_docs / n_tokens)))
    chosen = np.sort(rng.choice(n_docs, n_sample, replace=False))
    parts, base = [], 0
    for shard in source:
        local = chosen[(chosen >= base) & (chosen < base + len(shard))] - base
        pos, _ = _csr_positions(shard.offsets, local)
        parts.append(np.asarray(shard.vectors[pos], np.float32))
        base += len(shard)
    sample = np.concatenate(parts)
    del parts
    sample = sample[rng.permutation(len(sample))[:max_points]]
    n_heldout = min(max(1, len(sample) // 20), 50_000)
    heldout, train = sample[:n_heldout], sample[n_heldout:]
    if len(train) == 0:
        train = heldout
    if centroids is None:
        k = min(n_centroids or default_n_centroids(n_tokens), len(train))
        train = train[: 256 * k]
        centroids = kmeans(train, k, kmeans_iters, rng, max_memory_bytes, show_progress)
    elif centroids.ndim != 2 or centroids.shape[1] != dim:
        raise InputError(f"centroids of shape {centroids.shape} for dim {dim}", field="centroids")
    else:
        k, train, kmeans_iters = len(centroids), train[:0], 0
    codec = train_codec(heldout, centroids, nbits, fit)
    facts = {
        "nbits": nbits,
        "n_centroids": k,
        "kmeans_iters": kmeans_iters,
        "sample_docs": n_sample,
        "kmeans_points": len(train),
        "heldout_points": n_heldout,
        "seed": seed,
        "fit": fit,
    }
    return codec, facts


def build_index(
    shards: Shards,
    out_dir: str | Path,
    *,
    nbits: int = 4,
    n_centroids: int | None = None,
    kmeans_iters: int = 4,
    sample_docs: int | None = None,
    seed: int = 42,
    fit: CodecFit = "lloyd",
    centroids: np.ndarray | None = None,
    codec: ResidualCodec | None = None,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    overwrite: bool = False,
    show_progress: bool = True,
) -> PlaidIndex:
    """Build a PLAID index of the docs in ``shards`` (doc ids 0..n_docs-1 in order) at ``out_dir``.

    ``shards``: a re-iterable of TokenEmbeddings (or a callable returning a fresh iterable); it is read
    in three passes (count, sample, compress), so memory-mapped cache shards keep RAM bounded: every
    chunked step keeps its working set within about ``max_memory_bytes`` (peak RSS ~2x that plus
    the interpreter). Training follows ``train_index_codec``; pass ``centroids`` to reuse k-means
    centroids (e.g. of another nbits: they do not depend on it; the codec is still fit here on the
    same held-out sample as without them), or ``codec`` to reuse a whole trained codec (then all
    training parameters are ignored). Deterministic for a given seed and input.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError("index folder already exists (pass overwrite=True)", file=str(out_dir))
    source = _ShardSource(shards)
    n_docs, n_tokens, dim = source.count(None if codec is None else codec.dim)
    if n_docs >= 2**31:
        raise InputError(f"{n_docs} documents: doc ids are int32", field="shards")
    if codec is None:
        args = (nbits, n_centroids, kmeans_iters, sample_docs, seed, fit, max_memory_bytes, centroids)
        codec, build = _train(source, n_docs, n_tokens, dim, *args, show_progress=show_progress)
    else:
        build = {"nbits": codec.nbits, "n_centroids": len(codec.centroids), "codec": "given"}
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        paths = _save_codec(tmp, codec)
        paths |= _write_doc_arrays(
            tmp, "g0", codec, source, n_docs, n_tokens, None, max_memory_bytes, show_progress
        )
        manifest = _manifest(paths, dim, codec.nbits, len(codec.centroids), n_docs, n_tokens, 0, build)
        manifest["timings"] = {"build_seconds": time.perf_counter() - started}
        _write_manifest(tmp, manifest)
        if out_dir.exists():
            trash = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex}"
            os.replace(out_dir, trash)
            os.replace(tmp, out_dir)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PlaidIndex.open(out_dir, verify=False, max_memory_bytes=max_memory_bytes)


def _manifest(
    paths: dict[str, Path],
    dim: int,
    nbits: int,
    k: int,
    n_docs: int,
    n_tokens: int,
    generation: int,
    build: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dim": dim,
        "nbits": nbits,
        "n_centroids": k,
        "n_docs": n_docs,
        "n_tokens": n_tokens,
        "generation": generation,
        "build": build,
        "files": {name: _file_entry(paths[name]) for name in _STORED},
    }


def add_documents(
    index_dir: str | Path,
    shards: Shards,
    *,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    show_progress: bool = True,
) -> PlaidIndex:
    """Append the docs in ``shards`` (new ids n_docs, n_docs+1, ...) without retraining: tokens are
    assigned to the existing centroids and encoded with the existing codec; the doc arrays are
    rewritten as a new generation, then the manifest is atomically replaced (readers of the old
    manifest keep working until they reopen). Not safe against two concurrent writers."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    old = PlaidIndex.open(index_dir, verify=True, max_memory_bytes=max_memory_bytes)
    source = _ShardSource(shards)
    n_new_docs, n_new_tokens, _ = source.count(old.dim)
    if old.n_docs + n_new_docs >= 2**31:
        raise InputError(f"{old.n_docs + n_new_docs} documents: doc ids are int32", field="shards")
    gen = old.manifest["generation"] + 1
    tag = f"g{gen}"
    stale = [index_dir / f"{name}-{tag}.npy" for name in _DOC_ARRAYS]
    for path in stale:  # leftovers of an interrupted add
        path.unlink(missing_ok=True)
    paths = {name: index_dir / old.manifest["files"][name]["path"] for name in _CODEC_ARRAYS}
    try:
        paths |= _write_doc_arrays(
            index_dir, tag, old.codec, source, n_new_docs, n_new_tokens, old, max_memory_bytes, show_progress
        )
        manifest = _manifest(
            paths,
            old.dim,
            old.nbits,
            len(old.codec.centroids),
            old.n_docs + n_new_docs,
            old.n_tokens + n_new_tokens,
            gen,
            old.manifest["build"],
        )
    except BaseException:
        for path in stale:
            path.unlink(missing_ok=True)
        raise
    manifest["timings"] = dict(old.manifest.get("timings", {}))
    manifest["timings"].setdefault("add_seconds", []).append(time.perf_counter() - started)
    previous = {index_dir / e["path"] for e in old.manifest["files"].values()}
    _write_manifest(index_dir, manifest)
    for path in previous - {index_dir / e["path"] for e in manifest["files"].values()}:
        path.unlink(missing_ok=True)
    return PlaidIndex.open(index_dir, verify=False, max_memory_bytes=max_memory_bytes)


# ---------------------------------------------------------------------------------------------
# the index


def _require(manifest: dict[str, Any], key: str, kind: type, file: str) -> Any:
    value = manifest.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"missing or not a {kind.__name__}", file=file, field=key)
    return value


@dataclass
class PlaidIndex:
    """An opened index: memory-mapped stored arrays, the maps derived from them (``arrays`` holds
    both; see ``_STORED``) and the codec. Doc ids are 0..n_docs-1 in build order."""

    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    codec: ResidualCodec
    open_seconds: float = 0.0

    @classmethod
    def open(
        cls, path: str | Path, *, verify: bool = True, max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES
    ) -> PlaidIndex:
        """Open and validate an index folder; raise InputError naming the bad file.

        Always checked: manifest format/version/fields, each file's size, .npy dtype and shape, the
        array sizes against each other, monotone doc offsets and centroid ids < n_centroids (read
        while deriving the maps: ~0.1 s per million tokens). ``verify=True`` also hashes every file
        (sha256), i.e. reads the whole index once more (~1 s per GB per core).
        """
        started = time.perf_counter()
        path = Path(path)
        mpath = path / MANIFEST
        try:
            manifest = json.loads(mpath.read_text())
        except FileNotFoundError:
            raise InputError("not a PLAID index: manifest missing", file=str(mpath)) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"manifest is not valid JSON: {e}", file=str(mpath)) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(f"not a {FORMAT} manifest", file=str(mpath), field="format")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"unsupported format version {manifest.get('format_version')!r} (expected "
                f"{FORMAT_VERSION}; rebuild the index)",
                file=str(mpath),
                field="format_version",
            )
        ints = {
            key: _require(manifest, key, int, str(mpath))
            for key in ("dim", "nbits", "n_centroids", "n_docs", "n_tokens", "generation")
        }
        files = _require(manifest, "files", dict, str(mpath))
        _require(manifest, "build", dict, str(mpath))
        dim, nbits, k, n_docs, n_tokens = (
            ints[x] for x in ("dim", "nbits", "n_centroids", "n_docs", "n_tokens")
        )
        arrays: dict[str, np.ndarray] = {}
        for name in _STORED:
            entry = files.get(name)
            if not isinstance(entry, dict) or not {"path", "bytes", "sha256", "dtype", "shape"} <= set(entry):
                raise InputError("missing or incomplete file entry", file=str(mpath), field=f"files.{name}")
            fpath = path / str(entry["path"])
            if Path(entry["path"]).name != entry["path"]:
                raise InputError("file path must be a bare name", file=str(mpath), field=f"files.{name}.path")
            if not fpath.is_file():
                raise InputError("array file missing", file=str(fpath))
            if fpath.stat().st_size != entry["bytes"]:
                raise InputError(
                    f"size {fpath.stat().st_size} != {entry['bytes']} in manifest (truncated?)",
                    file=str(fpath),
                )
            if verify and file_sha256(fpath) != entry["sha256"]:
                raise InputError("sha256 mismatch with manifest (corrupted or tampered)", file=str(fpath))
            try:
                arr = np.load(fpath, mmap_mode="r", allow_pickle=False)
            except ValueError as e:
                raise InputError(f"not a readable .npy file: {e}", file=str(fpath)) from None
            if arr.dtype.str != entry["dtype"] or list(arr.shape) != entry["shape"]:
                raise InputError(
                    f"dtype/shape {arr.dtype.str} {list(arr.shape)} differ from manifest", file=str(fpath)
                )
            arrays[name] = np.asarray(arr)  # a plain view of the map: memmap slicing is slow
        expected = {
            "centroid_codes": ((k, dim), np.int8),
            "centroid_scales": ((k,), np.float32),
            "bucket_cutoffs": (((1 << nbits) - 1,), np.float32),
            "bucket_weights": ((1 << nbits,), np.float32),
            "doc_offsets": ((n_docs + 1,), np.int64),
            "codes": ((n_tokens,), np.uint16 if k <= 1 << 16 else np.int32),
            "residuals": ((n_tokens, dim * nbits // 8), np.uint8),
        }
        for name, (shape, dtype) in expected.items():
            if arrays[name].shape != shape or arrays[name].dtype != dtype:
                raise InputError(
                    f"{arrays[name].dtype} {arrays[name].shape} != {np.dtype(dtype)} {shape} implied by "
                    "the manifest",
                    file=str(path / files[name]["path"]),
                )
        off = np.asarray(arrays["doc_offsets"])
        if off[0] != 0 or off[-1] != n_tokens or np.any(np.diff(off) < 0):
            raise InputError(
                "offsets not monotone from 0 to n_tokens", file=str(path / files["doc_offsets"]["path"])
            )
        codec = ResidualCodec(
            np.asarray(arrays["centroid_codes"]),
            np.asarray(arrays["centroid_scales"]),
            np.asarray(arrays["bucket_cutoffs"]),
            np.asarray(arrays["bucket_weights"]),
            nbits,
        )
        codes_file = str(path / files["codes"]["path"])
        arrays |= _derive_maps(off, arrays["codes"], k, max_memory_bytes, codes_file)
        return cls(path, manifest, arrays, codec, time.perf_counter() - started)

    # -- properties -------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def nbits(self) -> int:
        return int(self.manifest["nbits"])

    @property
    def n_docs(self) -> int:
        return int(self.manifest["n_docs"])

    @property
    def n_tokens(self) -> int:
        return int(self.manifest["n_tokens"])

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
        derived = ("doc_centroid_offsets", "doc_centroids", "ivf_offsets", "ivf")
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
            "build_seconds": self.manifest.get("timings", {}).get("build_seconds"),
            "open_seconds": self.open_seconds,
            "derived_bytes": sum(self.arrays[name].nbytes for name in derived),
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
        pos, lengths = _csr_positions(offsets, doc_ids)
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
    ) -> np.ndarray:
        """Stages 2-3 for one query (``scores_t`` [K, Lq], ``probe`` [Lq, n_probe]): sorted doc ids."""
        pos, _ = _csr_positions(self.arrays["ivf_offsets"], np.unique(probe))
        cand = np.unique(self.arrays["ivf"][pos]).astype(np.int64)
        # each cut is skipped when it would keep every candidate anyway
        if threshold is not None and len(cand) > n_full_scores:
            keep = scores_t.max(axis=1) >= threshold
            cand = cand[_top(self._approx_scores(scores_t, cand, keep), n_full_scores)]
        if len(cand) > n_keep:
            cand = cand[_top(self._approx_scores(scores_t, cand, None), n_keep)]
        return np.sort(cand)  # _top breaks score ties by the lower position, i.e. the lower doc id

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
        self,
        queries: TokenEmbeddings,
        k: int = 10,
        *,
        n_probe: int | None = None,
        centroid_score_threshold: float | None | Literal["default"] = "default",
        n_full_scores: int | None = None,
        batch_size: int = 32,
        max_block_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
        threads: int | None = None,
        show_progress: bool = True,
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
        A document with no tokens is in no IVF cell and is never returned.
        """
        if queries.dim != self.dim:
            raise InputError(f"query dim {queries.dim} != index dim {self.dim}", field="queries")
        defaults = default_search_settings(k)
        n_probe = defaults["n_probe"] if n_probe is None else n_probe
        n_full_scores = defaults["n_full_scores"] if n_full_scores is None else n_full_scores
        threshold = centroid_score_threshold
        if threshold == "default":
            threshold = defaults["centroid_score_threshold"]
        nq = len(queries)
        out_scores = np.full((nq, k), -np.inf, np.float32)
        out_ids = np.full((nq, k), -1, np.int64)
        n_probe = min(n_probe, len(self.codec.centroids))
        n_keep = max(k, n_full_scores // 4)

        def one(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if len(q) == 0:  # an empty query matches nothing
                return np.zeros(0, np.float32), np.zeros(0, np.int64)
            scores = q @ self.codec.centroids.T  # [Lq, K]
            probe = _top_columns(scores, n_probe)
            scores_t = np.ascontiguousarray(scores.T)  # [K, Lq]: a contiguous row per centroid
            cand = self._candidates(scores_t, probe, threshold, n_full_scores, n_keep)
            exact = self._maxsim(q, scores_t, cand, max_block_bytes)
            top = _top(exact, k)
            return exact[top], cand[top]

        qoff = queries.offsets
        self.token_inverse_norms()  # derived once, before the threads start
        bar = tqdm(total=nq, desc="plaid search", unit="query", disable=not show_progress)
        n_threads = max(1, threads or os.cpu_count() or 1)
        # one BLAS thread per query thread: BLAS's own threads would fight ours for the cores (2x
        # slower on 2 cores), and single-threaded BLAS rounds the same way whatever ``threads`` is
        with ThreadPoolExecutor(n_threads) as pool, threadpool_limits(1, user_api="blas"):
            run = pool.map if n_threads > 1 else map  # the kernels and BLAS release the GIL
            for b0 in range(0, nq, batch_size):
                b1 = min(b0 + batch_size, nq)
                jobs = [
                    np.ascontiguousarray(queries.vectors[qoff[i] : qoff[i + 1]], np.float32)
                    for i in range(b0, b1)
                ]
                for qi, (s, i) in enumerate(run(one, jobs), start=b0):
                    out_scores[qi, : len(s)], out_ids[qi, : len(i)] = s, i
                bar.update(b1 - b0)
        bar.close()
        return out_scores, out_ids
