"""Exact nearest centroid, fast: the build's one hot spot (every k-means step and every token's
code), and Lloyd's k-means on top of it."""

from __future__ import annotations

import functools

import numpy as np
from tqdm.auto import tqdm

from harness.plaid.kernels import cluster_sums, refine_screened_argmax
from harness.plaid.params import DEFAULT_MAX_MEMORY_BYTES


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


def kmeans(
    points: np.ndarray,
    k: int,
    iters: int,
    rng: np.random.Generator,
    max_memory_bytes: int,
    show_progress: bool = False,
) -> np.ndarray:
    """Lloyd's k-means (L2; Lloyd, IEEE Trans. Inf. Theory 1982), init from k distinct sampled points;
    empty clusters keep their centroid.
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
