"""Token pooling of document embeddings (``--pool-factor``): PyLate 1.6.0's
``ColBERT.pool_embeddings_hierarchical`` (``pylate/models/colbert.py``, lines 863-934, called by
``encode(pool_factor=..., protected_tokens=1)`` at lines 793-798 on documents only; Clavié et al.,
"Reducing the Footprint of Multi-Vector Retrieval with Minimal Performance Impact via Token Pooling",
2024), call for call on the same float32 inputs:

1. the first vector ([CLS]) is kept as it is (``protected_tokens=1``);
2. the other ``n`` vectors (L2-normalised) get ``k = max(n // factor, 1)`` clusters; ``k >= n``
   leaves the document as it is;
3. distances ``1 - v_i . v_j`` from ``torch.mm`` in float32, their upper triangle (row-major, as
   ``np.triu_indices(n, k=1)`` picks it) to ``scipy.cluster.hierarchy.linkage(method="ward")`` and
   ``fcluster(t=k, criterion="maxclust")``;
4. each cluster's vector is the float32 mean of its members (``scatter_add_``, by label), not
   renormalised; clusters that ``fcluster`` leaves empty are dropped.

One departure, where PyLate 1.6.0 fails: two vectors whose float32 cosine rounds above 1 (a token
repeated in the same context, e.g. "word word word ...") give a negative distance, Ward's first merge
is then below 0 and ``fcluster`` raises "Linkage 'Z' contains negative distances" for the whole
``encode`` call. Such distances are taken as 0 here (the vectors are equal to float32 precision).
Where PyLate succeeds every distance is already >= 0 (the smallest one is a merge height), so this
changes nothing there.

Ties: the same distances give the same clusters (scipy's nearest-neighbour chain prefers the chain's
previous element, then the lowest index, on equal distances; ``maxclust`` cuts at a merge height, so
tied heights may yield fewer than ``k`` clusters, as in PyLate): PyLate's own unpooled vectors pooled
here give its pooled vectors bit for bit. The harness's unpooled vectors differ from PyLate's by
~1e-7, enough to swap two near-equal merges (and the merges after them) now and then: on the test
fixtures the token counts always agree and 1% of the clusters hold other tokens
(tests/test_variants.py).

Fractional factors (e.g. 1.5) keep ``floor(n / factor)`` clusters by the same steps; PyLate 1.6
takes integers only (a float fails in ``torch.zeros``). Queries are never pooled.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from harness.errors import InputError
from harness.types import TokenEmbeddings
from harness.units import format_size

PROTECTED_TOKENS = 1  # PyLate's encode(protected_tokens=1): the [CLS] vector is never pooled
# bytes per squared token of one document's clustering: the float32 similarities (4), their condensed
# half (2), scipy's float64 copy of it and nn_chain's working copy (4 + 4), rounded up
BYTES_PER_TOKEN_PAIR = 16


def cluster_count(tokens: int, factor: float) -> int:
    """Clusters for ``tokens`` poolable vectors: PyLate's ``max(n // pool_factor, 1)``."""
    return max(int(tokens // factor), 1)


def cluster_labels(to_pool: torch.Tensor, k: int) -> np.ndarray:
    """The cluster (1 to ``k``) of each of the [n, dim] float32 vectors ``to_pool``: PyLate's Ward
    linkage of ``1 - cosine`` cut into at most ``k`` clusters."""
    distances = torch.mm(to_pool, to_pool.t()).numpy()
    np.subtract(1, distances, out=distances)  # PyLate's `1 - cos_sim`, in place: the same float32 values
    condensed = squareform(distances, checks=False)  # the upper triangle, row-major: triu_indices(n, k=1)
    del distances
    np.maximum(condensed, 0, out=condensed)  # where PyLate raises (see the module's docstring)
    return hierarchy.fcluster(hierarchy.linkage(condensed, method="ward"), t=k, criterion="maxclust")


def pool_document(vectors: np.ndarray, factor: float) -> np.ndarray:
    """One document's [n, dim] float32 token vectors pooled as PyLate 1.6.0 pools them: the
    protected first vector, then one mean per cluster of :func:`cluster_labels`, by label."""
    protected, to_pool = vectors[:PROTECTED_TOKENS], torch.from_numpy(vectors[PROTECTED_TOKENS:])
    n = len(to_pool)
    k = cluster_count(n, factor)
    if k >= n:
        return vectors
    index = torch.from_numpy(cluster_labels(to_pool, k).astype(np.int64)) - 1
    sums = torch.zeros(k, to_pool.shape[1], dtype=to_pool.dtype)
    counts = torch.zeros(k, dtype=torch.long)
    sums.scatter_add_(0, index.unsqueeze(1).expand_as(to_pool), to_pool)
    counts.scatter_add_(0, index, torch.ones(n, dtype=torch.long))
    used = counts > 0
    pooled = sums[used] / counts[used].unsqueeze(1)
    return np.concatenate([protected, pooled.numpy()])


def pool_embeddings(embeddings: TokenEmbeddings, factor: float) -> TokenEmbeddings:
    """Every document of ``embeddings`` pooled (:func:`pool_document`); the tokens read and texts cut
    are carried over."""
    docs = [pool_document(embeddings[i], factor) for i in range(len(embeddings))]
    pooled = TokenEmbeddings.from_list(docs, embeddings.dim)
    return TokenEmbeddings(pooled.vectors, pooled.offsets, embeddings.input_tokens, embeddings.truncated)


def require_pooling_fits(tokens: int, max_memory: int, setting: str) -> None:
    """InputError naming ``--pool-factor`` when clustering one document of ``tokens`` vectors (the
    longest ``setting`` allows) needs more than ``max_memory``: Ward's linkage holds every pair."""
    needed = BYTES_PER_TOKEN_PAIR * tokens**2
    if needed > max_memory:
        raise InputError(
            f"pooling a document of {tokens} tokens ({setting}) clusters every pair of its tokens: about "
            f"{format_size(needed)}, above --max-memory {format_size(max_memory)}: raise it, or lower "
            f"{setting}",
            field="--pool-factor",
        )
