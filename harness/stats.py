"""Statistics over per-query scores, shared by reports (confidence intervals) and the CI gate
(paired tests): the stratified percentile bootstrap (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993), the paired t-test (Student, 1908) and the sign-flip permutation test (Fisher,
1935; as used for IR by Smucker, Allan & Carterette, CIKM 2007)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def bootstrap_ci(
    strata: Sequence[tuple[np.ndarray, float]], *, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Stratified percentile bootstrap CI of ``sum_s w_s * mean(x_s)``.

    Queries are resampled with replacement within each stratum (a dataset or subset) and the
    weighted sum recomputed; the CI is the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the
    ``n_resamples`` replicates (numpy's linear interpolation). Seeded, so deterministic.
    """
    rng = np.random.default_rng(seed)
    replicates = np.zeros(n_resamples)
    for values, weight in strata:
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        block = max(1, (1 << 21) // max(n, 1))
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            replicates[start : start + size] += weight * values[rng.integers(0, n, size=(size, n))].mean(
                axis=1
            )
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_t_test(d: np.ndarray) -> float:
    """Two-sided p-value of the one-sample t-test of mean(d) = 0 (= ``ttest_rel``); nan if undefined."""
    n = len(d)
    if n < 2:
        return math.nan
    mean, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    if sd == 0.0:
        return math.nan if mean == 0.0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(2.0 * stats.t.sf(abs(t), df=n - 1))


def sign_flip_test(d: np.ndarray, *, n_resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of mean(d) (``scipy.stats.permutation_test`` definitions).

    p = 2 * min(P(null <= obs), P(null >= obs)), clipped to 1; exact enumeration (no +1)
    when 2^n <= n_resamples, else (count + 1) / (n_resamples + 1) over seeded random flips.
    """
    n = len(d)
    if n == 0:
        return math.nan
    observed = float(np.mean(d))
    gamma = abs(observed) * np.finfo(np.float64).eps * 100  # scipy's tolerance for ties
    exact = n < 63 and 2**n <= n_resamples
    less = greater = 0
    if exact:
        total, adjustment = 2**n, 0
        bits = (np.arange(total)[:, None] >> np.arange(n)[None, :]) & 1
        null = ((1 - 2 * bits) @ d) / n
        less, greater = int(np.sum(null <= observed + gamma)), int(np.sum(null >= observed - gamma))
    else:
        total, adjustment = n_resamples, 1
        rng = np.random.default_rng(seed)
        block = max(1, (1 << 22) // n)
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
            null = (signs @ d) / n
            less += int(np.sum(null <= observed + gamma))
            greater += int(np.sum(null >= observed - gamma))
    p_less = (less + adjustment) / (total + adjustment)
    p_greater = (greater + adjustment) / (total + adjustment)
    return float(min(1.0, 2.0 * min(p_less, p_greater)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (Holm, "A simple sequentially rejective multiple test
    procedure", Scand. J. Statistics, 1979), in the input's order.

    With the m non-nan p-values sorted ascending, ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``;
    rejecting where ``p~ < alpha`` controls the family-wise error rate at ``alpha``. nan stays nan
    and does not count in m.
    """
    values = np.asarray(p_values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    known = np.flatnonzero(~np.isnan(values))
    order = known[np.argsort(values[known], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * values[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out.tolist()
