"""Compiled (numba) inner loops of ``harness.plaid``: PLAID search stages 3 and 4, and the build's
nearest-centroid screen, residual packing and k-means sums.

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

from harness.jit import njit

# "contract" lets LLVM fuse multiply-adds into FMA instructions (one rounding instead of two); no
# reassociation, so every score is a fixed function of its inputs
_JIT = {"nogil": True, "fastmath": {"contract"}}


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


_SCREEN_BLOCK = 128  # targets per block of the screen's max pass


@njit(**_JIT)
def _order_key(bits: np.int16) -> np.int16:
    """bf16 bit pattern -> int16 that sorts like the float value (and back: an involution)."""
    return bits ^ ((bits >> 15) & np.int16(0x7FFF))


@njit(**_JIT)
def _bf16_value(bits: np.int16, word: np.ndarray) -> float:
    """The float value of bf16 bits (``word``: 1-element uint32 scratch)."""
    word[0] = np.uint32(np.uint16(bits)) << np.uint32(16)
    return np.float64(word.view(np.float32)[0])


@njit(**_JIT)
def refine_screened_argmax(
    screen: np.ndarray,
    points: np.ndarray,
    targets: np.ndarray,
    margin: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[r] = argmax_j sum_i points[r, i] * targets[j, i], summed in float64 (the first j on ties),
    over the j whose screen score is at least (the row's best screen score - margin[r]).

    ``screen`` [rows, K] int16: bf16 bit patterns of approximate scores. The caller guarantees that
    every screen score is within margin[r] / 2 of the exact one, so the exact argmax is never ruled
    out. The screen's max is taken per block of targets on int16 order keys (vectorised); only the
    blocks whose max reaches the threshold are read again."""
    rows, k = screen.shape
    n_full = k // _SCREEN_BLOCK
    block_max = np.empty(n_full + 1, np.int16)
    word = np.empty(1, np.uint32)
    for r in range(rows):
        for b in range(n_full):  # a constant trip count: LLVM vectorises this loop
            m = np.int16(-32768)
            for j in range(b * _SCREEN_BLOCK, (b + 1) * _SCREEN_BLOCK):
                m = max(m, _order_key(screen[r, j]))
            block_max[b] = m
        m = np.int16(-32768)
        for j in range(n_full * _SCREEN_BLOCK, k):
            m = max(m, _order_key(screen[r, j]))
        block_max[n_full] = m
        threshold = _bf16_value(_order_key(block_max.max()), word) - margin[r]
        best, arg = -np.inf, 0
        for b in range(n_full + 1):
            if _bf16_value(_order_key(block_max[b]), word) < threshold:
                continue
            for j in range(b * _SCREEN_BLOCK, min(k, (b + 1) * _SCREEN_BLOCK)):
                if _bf16_value(screen[r, j], word) >= threshold:
                    s = 0.0
                    for i in range(points.shape[1]):
                        s += np.float64(points[r, i]) * np.float64(targets[j, i])
                    if s > best:
                        best, arg = s, j
        out[r] = arg


@njit(**_JIT)
def pack_residuals(
    vectors: np.ndarray,
    codes: np.ndarray,
    centroids: np.ndarray,
    cutoffs: np.ndarray,
    nbits: int,
    out: np.ndarray,
) -> None:
    """out[t] = packed bucket ids of vectors[t] - centroids[codes[t]] (float32), first dimension in
    the high bits; a residual's bucket is the number of cutoffs strictly below it
    (``np.searchsorted(cutoffs, r, "left")``). ``out`` [n, dim * nbits / 8] uint8."""
    per = 8 // nbits
    for t in range(len(vectors)):
        c = codes[t]
        for b in range(out.shape[1]):
            byte = 0
            for j in range(per):
                r = vectors[t, b * per + j] - centroids[c, b * per + j]
                bucket = 0
                for cut in cutoffs:
                    bucket += cut < r
                byte |= bucket << (nbits * (per - 1 - j))
            out[t, b] = byte


@njit(**_JIT)
def cluster_sums(points: np.ndarray, assign: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
    """sums[c] += points[i] (float64, in point order) and counts[c] += 1 for c = assign[i]."""
    for i in range(len(points)):
        c = assign[i]
        counts[c] += 1
        for d in range(points.shape[1]):
            sums[c, d] += points[i, d]
