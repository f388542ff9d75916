"""The residual codec (ColBERTv2; Santhanam et al., NAACL 2022): a token vector is its nearest
centroid plus a per-dimension residual quantised to ``nbits``; centroids stored as int8 + a scale.

The bucket cutoffs / weights are by default a Lloyd-Max quantiser of held-out residuals (Max, IRE
Trans. Inf. Theory 1960; ``fit="lloyd"``, started from the peers' quantiles; ``fit="quantile"`` is
the peers' codec): on SciFact cosine to the original vectors 0.9977 instead of 0.9921 at nbits 4,
which lifts the ceiling of top-10 overlap with exact search from 0.944 to ~0.963.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from harness.errors import InputError
from harness.plaid.centroids import nearest
from harness.plaid.kernels import pack_residuals
from harness.plaid.params import DEFAULT_MAX_MEMORY_BYTES, check_nbits

CodecFit = Literal["lloyd", "quantile"]
DECOMPRESS_ROWS = 1 << 13
_LLOYD_ITERS = 300


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
        check_nbits(self.nbits)
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
        scratch = np.empty((min(len(codes), DECOMPRESS_ROWS), self.dim), np.float32)
        for i in range(0, len(codes), DECOMPRESS_ROWS):
            o = out[i : i + DECOMPRESS_ROWS]
            np.take(self.centroids, np.asarray(codes[i : i + len(o)]), axis=0, out=o)
            o += self.residuals(packed[i : i + len(o)], scratch[: len(o)])
            if normalize:
                o /= np.maximum(np.sqrt(np.einsum("ij,ij->i", o, o)), 1e-12)[:, None]
        return out

    def inverse_norms(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """1 / |centroid + residual| per token (float32; 1e12 for a zero vector), in row chunks."""
        out = np.empty(len(codes), np.float32)
        for i in range(0, len(codes), DECOMPRESS_ROWS):
            v = self.decompress(
                codes[i : i + DECOMPRESS_ROWS], packed[i : i + DECOMPRESS_ROWS], normalize=False
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
