"""BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009),
Lucene's variant, through ``bm25s`` (Lù, 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from harness.ranking import check_depth, select_top, tie_keys_for
from harness.retrieve.maxsim import DEFAULT_MAX_BLOCK_BYTES, arange_rows


def bm25_search(
    corpus_texts: Sequence[str],
    query_texts: Sequence[str],
    k: int,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    stem: bool | None = None,
    tie_keys: np.ndarray | None = None,
    show_progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """BM25 top-k with ``bm25s`` (Lucene BM25 variant, Pyserini's k1=0.9, b=0.4): the corpus indexed
    once (:class:`BM25Index`), then every query ranked. Returns (scores float32, indices int64)
    [nq, min(k, n_docs)] (see :meth:`BM25Index.rank`)."""
    k = check_depth(k)
    index = BM25Index.build(corpus_texts, k1=k1, b=b, stem=stem, show_progress=show_progress)
    return index.rank(query_texts, k, tie_keys=tie_keys, show_progress=show_progress)


@dataclass(frozen=True)
class BM25Index:
    """A corpus indexed by ``bm25s`` (Lucene's BM25). Tokenisation is bm25s's: lower-cased
    ``\\w\\w+`` words minus its English stopwords. Stemming (English Snowball via PyStemmer, close
    to Pyserini's Porter) is used when ``stem`` is True, or when it is None and PyStemmer is
    installed; without it rankings differ from Pyserini's (usually a slightly lower nDCG)."""

    index: Any  # bm25s.BM25, None for an empty corpus
    stemmer: Any  # PyStemmer's (untyped) stemmer, or None
    n_docs: int

    @classmethod
    def build(
        cls,
        corpus_texts: Sequence[str],
        *,
        k1: float = 0.9,
        b: float = 0.4,
        stem: bool | None = None,
        show_progress: bool = True,
    ) -> BM25Index:
        import bm25s

        stemmer = _english_stemmer(stem)
        if not corpus_texts:
            return cls(None, stemmer, 0)
        tokens = bm25s.tokenize(
            list(corpus_texts), stopwords="en", stemmer=stemmer, show_progress=show_progress
        )
        index = bm25s.BM25(k1=k1, b=b, method="lucene")
        index.index(tokens, show_progress=show_progress)
        return cls(index, stemmer, len(corpus_texts))

    def rank(
        self,
        query_texts: Sequence[str],
        k: int,
        *,
        tie_keys: np.ndarray | None = None,
        show_progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32, indices int64) [nq, min(k, n_docs)], ordered by ``harness.ranking.top_k``
        with ``tie_keys`` (default: lower doc index first; bm25s's own top-k leaves tie order
        unspecified, so the full score rows are ranked here, in blocks of bounded memory)."""
        import bm25s

        n_docs, nq, kk = self.n_docs, len(query_texts), min(k, self.n_docs)
        out_scores, out_indices = np.zeros((nq, kk), np.float32), np.zeros((nq, kk), np.int64)
        if n_docs == 0 or nq == 0:
            return out_scores, out_indices
        keys = tie_keys_for(tie_keys, n_docs)
        words = bm25s.tokenize(
            list(query_texts), stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False
        )
        rows = max(1, DEFAULT_MAX_BLOCK_BYTES // (16 * n_docs))
        for q0 in tqdm(range(0, nq, rows), desc="bm25", unit="block", disable=not show_progress):
            q1 = min(q0 + rows, nq)
            block = np.zeros((q1 - q0, n_docs), np.float32)
            for r, tokens in enumerate(words[q0:q1]):
                if ids := self.index.get_tokens_ids(tokens):  # a query with no known term scores 0
                    block[r] = self.index.get_scores_from_ids(ids)
            out_scores[q0:q1], out_indices[q0:q1] = select_top(
                block, arange_rows(q1 - q0, 0, n_docs), keys, kk
            )
        return out_scores, out_indices


def _english_stemmer(stem: bool | None) -> Any:  # PyStemmer's (untyped) stemmer, or None
    if stem is False:
        return None
    try:
        import Stemmer  # PyStemmer
    except ImportError:
        if stem:
            raise ImportError("bm25_search(stem=True) needs PyStemmer (pip install PyStemmer)") from None
        return None
    return Stemmer.Stemmer("english")
