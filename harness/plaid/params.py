"""PLAID parameters and their defaults: residual bits, centroid count, k-means sample, search knobs
(ColBERTv2 / PLAID: Santhanam et al., "PLAID", CIKM 2022, and the stanford-futuredata/ColBERT
and lightonai/fast-plaid defaults). No heavy imports: the run's settings
are validated with these before anything is loaded."""

from __future__ import annotations

import math
from typing import Any

from harness.errors import InputError

NBITS = (1, 2, 4)
DEFAULT_MAX_MEMORY_BYTES = 1 << 30


def check_threshold(value: object, flag: str) -> None:
    """``--centroid-score-threshold``: a number, None (no pruning) or "default" (by the depth)."""
    if value not in (None, "default") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InputError(f"must be a number, 'none' or 'default'; got {value!r}", field=flag)


def parse_threshold(value: str) -> float | None | str:
    """--centroid-score-threshold: a float, 'none' (no pruning) or 'default' (by --k)."""
    return value if value == "default" else None if value.lower() == "none" else float(value)


def check_nbits(nbits: object, dim: int | None = None, *, field: str = "nbits") -> int:
    """``nbits`` when it is 1, 2 or 4 (and ``dim * nbits`` fills whole bytes), else InputError."""
    if isinstance(nbits, bool) or nbits not in NBITS:
        raise InputError(f"must be 1, 2 or 4, got {nbits!r}", field=field)
    if dim is not None and dim * nbits % 8:
        raise InputError(f"dim * nbits must be a multiple of 8 (dim={dim}, nbits={nbits})", field=field)
    return int(nbits)


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
