"""Compiled (numba) inner loops of PLAID search stages 3 and 4 (``harness.plaid``).

Stage 3 walks each candidate doc's centroid list with O(query tokens) scratch; stage 4 unpacks the
residuals of whole docs into a cache-sized block, scores it with one BLAS matmul and takes each
doc's max per query token in place. The numpy version gathered [pairs or tokens, query tokens]
blocks and reduced them with ``reduceat``: memory-bound, and no faster on 2 threads than on one.
At the same knobs on SciFact these loops run 6x as many queries per second on 2 cores (35 -> 209;
``benchmarks/bench_plaid.py``). They release the GIL, so ``PlaidIndex.search`` runs one query per
thread. Results are float32; each query token's score is accumulated in a fixed order,
so a run is reproducible bit for bit on the same machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# "contract" lets LLVM fuse multiply-adds into FMA instructions (one rounding instead of two); no
# reassociation, so every score is a fixed function of its inputs
_JIT = {"nogil": True, "cache": True, "fastmath": {"contract"}}


@njit(**_JIT)
def centroid_interaction(
    scores_t: np.ndarray,
    keep: np.ndarray,
    dc_offsets: np.ndarray,
    doc_centroids: np.ndarray,
    docs: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[n] = sum_i max_{c in C(docs[n]), keep[c]} scores_t[c, i] (PLAID centroid interaction),
    C(d) = doc_centroids[dc_offsets[d]:dc_offsets[d+1]]; -inf when no centroid of the doc is kept.
    ``scores_t`` [K, Lq] float32, ``keep`` [K] bool."""
    lq = scores_t.shape[1]
    best = np.empty(lq, np.float32)
    for n in range(len(docs)):
        d = docs[n]
        best[:] = -np.inf
        hit = False
        for p in range(dc_offsets[d], dc_offsets[d + 1]):
            c = doc_centroids[p]
            if keep[c]:
                hit = True
                for i in range(lq):
                    best[i] = max(best[i], scores_t[c, i])
        total = np.float32(0.0)
        for i in range(lq):
            total += best[i]
        out[n] = total if hit else -np.inf


@njit(**_JIT)
def _unpack_residuals(
    residuals: np.ndarray, byte_table: np.ndarray, t0: int, t1: int, out: np.ndarray
) -> None:
    """out[:t1 - t0] = residual values of tokens t0..t1-1 (``byte_table`` [256, per]: a byte's values)."""
    per = byte_table.shape[1]
    for t in range(t0, t1):
        row = out[t - t0]
        if per == 2:  # nbits 4, the default: a fixed inner loop compiles to straight-line code
            for b in range(residuals.shape[1]):
                v = residuals[t, b]
                row[2 * b] = byte_table[v, 0]
                row[2 * b + 1] = byte_table[v, 1]
        else:
            for b in range(residuals.shape[1]):
                v = residuals[t, b]
                for j in range(per):
                    row[b * per + j] = byte_table[v, j]


@njit(**_JIT)
def decompressed_maxsim(
    q_t: np.ndarray,
    scores_t: np.ndarray,
    codes: np.ndarray,
    residuals: np.ndarray,
    byte_table: np.ndarray,
    inverse_norms: np.ndarray,
    doc_offsets: np.ndarray,
    docs: np.ndarray,
    block_tokens: int,
    out: np.ndarray,
) -> None:
    """out[n] = sum_i max_{t in docs[n]} q_i . (c_t + r_t) * inverse_norms[t]: MaxSim over the
    decompressed, normalised token vectors, with q_i . c_t read from ``scores_t`` [K, Lq] and r_t
    unpacked from ``residuals[t]`` (packed bytes) through ``byte_table`` [256, 8 / nbits] (a byte's
    residual values, high bits first). ``q_t`` [dim, Lq] float32; -inf for a doc with no tokens.
    Whole docs are unpacked into a block of about ``block_tokens`` rows and scored by one BLAS
    matmul (a single longer doc gets a block of its own)."""
    dim, lq = q_t.shape
    block = np.empty((max(block_tokens, 1), dim), np.float32)
    best = np.empty(lq, np.float32)
    n, n_docs = 0, len(docs)
    while n < n_docs:
        m, rows = n, 0  # docs n..m-1 fill the block
        while m < n_docs:
            length = doc_offsets[docs[m] + 1] - doc_offsets[docs[m]]
            if m > n and rows + length > block_tokens:
                break
            rows += length
            m += 1
        if rows > len(block):
            block = np.empty((rows, dim), np.float32)
        row = 0
        for x in range(n, m):
            t0, t1 = doc_offsets[docs[x]], doc_offsets[docs[x] + 1]
            _unpack_residuals(residuals, byte_table, t0, t1, block[row:])
            row += t1 - t0
        sim = block[:rows] @ q_t  # [rows, Lq]: q_i . r_t
        row = 0
        for x in range(n, m):
            best[:] = -np.inf
            for t in range(doc_offsets[docs[x]], doc_offsets[docs[x] + 1]):
                c, s = codes[t], inverse_norms[t]
                for i in range(lq):
                    best[i] = max(best[i], (sim[row, i] + scores_t[c, i]) * s)
                row += 1
            total = np.float32(0.0)
            for i in range(lq):
                total += best[i]
            out[x] = total
        n = m
