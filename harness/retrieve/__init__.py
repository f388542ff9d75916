"""Retrieval: exact MaxSim / dense top-k and reranking (``maxsim``), BM25 (``bm25``), and the
retriever stages the runner calls (``stages``). PLAID lives in ``harness.plaid``."""

from harness.ranking import to_run
from harness.retrieve.bm25 import bm25_search
from harness.retrieve.maxsim import PRECISIONS, SCORINGS, exact_search, rerank
from harness.retrieve.stages import (
    BM25Retriever,
    Embedder,
    ExactRetriever,
    PlaidRetriever,
    Ranking,
    RerankRetriever,
    Retriever,
    RunFileRetriever,
    SearchStats,
)

__all__ = [
    "PRECISIONS",
    "SCORINGS",
    "BM25Retriever",
    "Embedder",
    "ExactRetriever",
    "PlaidRetriever",
    "Ranking",
    "RerankRetriever",
    "Retriever",
    "RunFileRetriever",
    "SearchStats",
    "bm25_search",
    "exact_search",
    "rerank",
    "to_run",
]
