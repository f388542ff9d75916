"""PLAID-style compressed multi-vector index (Santhanam et al., "ColBERTv2",
NAACL 2022; "PLAID", CIKM 2022).

Build (``build``): k-means centroids on a document sample (``centroids``: exact nearest centroid with a
bf16 screen), a residual codec with ``nbits`` per dimension (``codec``) and the token codes, written
to disk in bounded memory (``storage``: ``.npy`` arrays + a manifest with every file's sha256).
Search (``search``): the four PLAID stages; the final candidates are scored by exact MaxSim over
their decompressed vectors. ``params`` holds the defaults; ``kernels`` the numba inner loops.

Two deliberate departures from the peers, both measured on SciFact (``benchmarks/bench_plaid.py``):
a Lloyd-Max residual codec (``harness.plaid.codec``), and int8 centroids with derived (not stored)
doc -> centroid maps and inverted file (``harness.plaid.storage``).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule; loaded on first use, so ``harness.plaid.params`` (checked when a run is
# planned) does not pull in numba and torch
_EXPORTS = {
    **dict.fromkeys(
        (
            "Shards",
            "ShardSource",
            "TrainingSettings",
            "add_documents",
            "build_index",
            "open_or_build",
            "train_index_codec",
        ),
        "build",
    ),
    **dict.fromkeys(("CodecFit", "ResidualCodec", "quantize_centroids", "train_codec"), "codec"),
    **dict.fromkeys(("kmeans", "nearest"), "centroids"),
    **dict.fromkeys(
        (
            "DEFAULT_MAX_MEMORY_BYTES",
            "NBITS",
            "check_nbits",
            "default_n_centroids",
            "default_sample_docs",
            "default_search_settings",
        ),
        "params",
    ),
    "PlaidIndex": "search",
    **dict.fromkeys(("FORMAT", "FORMAT_VERSION", "MANIFEST"), "storage"),
}

__all__ = [
    "DEFAULT_MAX_MEMORY_BYTES",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "NBITS",
    "CodecFit",
    "PlaidIndex",
    "ResidualCodec",
    "ShardSource",
    "Shards",
    "TrainingSettings",
    "add_documents",
    "build_index",
    "check_nbits",
    "default_n_centroids",
    "default_sample_docs",
    "default_search_settings",
    "kmeans",
    "nearest",
    "open_or_build",
    "quantize_centroids",
    "train_codec",
    "train_index_codec",
]
assert set(__all__) == set(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.plaid.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.plaid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
