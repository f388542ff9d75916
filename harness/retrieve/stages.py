"""Retriever stages: ``search(queries, docs, k) -> (Ranking, SearchStats)``.

A stage takes a dataset's query and document :class:`harness.types.Texts`, encodes what it needs
through its :class:`Embedder` (the embedding cache), and returns the top ``k`` doc positions per
query plus what it cost. Statistics are returned values, never arguments filled in place. Every
cut follows ``harness.ranking`` with the corpus ids as tie keys. ``method`` and ``settings()``
are what a results file records under ``retrieval``.

- :class:`ExactRetriever`: exact MaxSim (``masked`` or PyLate's ``pylate`` scoring) or, for a
  single-vector model, exact dense top-k.
- :class:`PlaidRetriever`: a PLAID index of the corpus, kept in the cache and reused.
- :class:`BM25Retriever`: the lexical baseline.
- :class:`RunFileRetriever`: a TREC run file read once, as a first stage.
- :class:`RerankRetriever`: exact MaxSim over another stage's top ``depth``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from harness.cache import DEFAULT_SHARD_SIZE, LOCAL, CacheUse, cache_key, encode_entry, pack
from harness.errors import InputError
from harness.executor import Executor
from harness.ranking import rank
from harness.retrieve.bm25 import bm25_search
from harness.retrieve.maxsim import DEFAULT_MAX_BLOCK_BYTES, Scoring, exact_search, rerank
from harness.types import Encoder, Run, ShardedEmbeddings, Texts, TokenEmbeddings, sum_known

logger = logging.getLogger(__name__)

PLAID_DIR = "plaid"  # under the embedding cache: one index per (corpus entry, nbits)


@dataclass(frozen=True)
class Ranking:
    """Top-k per query: ``scores`` [nq, k] float32 and ``indices`` [nq, k] int64 doc positions,
    best first; -1 / -inf pad a row with fewer results."""

    scores: np.ndarray
    indices: np.ndarray

    def candidates(self) -> list[np.ndarray]:
        """Each query's doc positions, padding dropped."""
        return [row[row >= 0] for row in self.indices]


@dataclass(frozen=True)
class SearchStats:
    """What one search cost: the encoder's seconds per side (measured now, or carried from the cache
    entry that measured them: ``sources`` says which; None when unknown), seconds opening or building
    an index and searching (measured now), tokens the encoder read and texts it cut at its length
    limit (None: unknown or no encoder), and the facts of the index it used (PLAID sizes, and the
    seconds its build took)."""

    encode_queries_s: float | None = 0.0
    encode_documents_s: float | None = 0.0
    index_s: float = 0.0
    retrieve_s: float = 0.0
    query_tokens: int | None = None
    document_tokens: int | None = None
    query_truncated: int | None = None
    document_truncated: int | None = None
    index: dict[str, Any] | None = None
    index_build_s: float | None = None
    sources: dict[str, str] = field(default_factory=dict)  # timing -> measured | cache | partly cached


class Retriever(Protocol):
    @property
    def method(self) -> str: ...

    def settings(self) -> dict[str, Any]: ...

    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]: ...


Docs = TypeVar("Docs", TokenEmbeddings, ShardedEmbeddings)


@dataclass(frozen=True)
class Encoded(Generic[Docs]):
    """Query and document embeddings of one search and where each came from."""

    queries: TokenEmbeddings
    docs: Docs  # ShardedEmbeddings: the cache's shards, read as one, for a streamed search
    queries_use: CacheUse
    docs_use: CacheUse

    def stats(self, retrieve_s: float) -> SearchStats:
        """The search's stats: these encodings plus ``retrieve_s`` seconds of scoring."""
        return SearchStats(
            encode_queries_s=self.queries_use.encode_seconds,
            encode_documents_s=self.docs_use.encode_seconds,
            retrieve_s=retrieve_s,
            query_tokens=self.queries.input_tokens,
            document_tokens=self.docs.input_tokens,
            query_truncated=truncated_texts([self.queries]),
            document_truncated=truncated_texts(
                self.docs.shards if isinstance(self.docs, ShardedEmbeddings) else [self.docs]
            ),
            sources=encode_sources(self.queries_use, self.docs_use),
        )


def truncated_texts(parts: Sequence[TokenEmbeddings]) -> int | None:
    """Texts the encoder cut at its length limit, summed over ``parts``; None when a part does not
    say (``TokenEmbeddings.truncated``: an encoder's output and the cache entries it fills know it; a
    stand-in encoder's output or a shard written before it was kept does not)."""
    return sum_known(part.truncated for part in parts)


def encode_sources(queries: CacheUse, docs: CacheUse) -> dict[str, str]:
    return {"encode_queries_s": queries.source, "encode_documents_s": docs.source}


@dataclass(frozen=True)
class Embedder:
    """The encode stage: an encoder behind the embedding cache (``cache_dir`` None: no cache)."""

    encoder: Encoder
    cache_dir: Path | None = None
    batch_size: int = 32
    show_progress: bool = True
    executor: Executor = LOCAL  # where missing shards are encoded (harness.executor)
    shard_size: int = DEFAULT_SHARD_SIZE  # texts per shard of a new cache entry

    def embed(self, texts: Sequence[str], *, is_query: bool) -> tuple[TokenEmbeddings, CacheUse]:
        """Embeddings of ``texts`` (cached) in one in-memory pack, and where they came from."""
        shards, use = self._encode(texts, is_query)
        return pack(shards), use

    def embed_pair(self, queries: Texts, docs: Texts) -> Encoded[TokenEmbeddings]:
        """Both sides of a search (documents first, as the cache fills them)."""
        doc_emb, doc_use = self.embed(docs, is_query=False)
        query_emb, query_use = self.embed(queries, is_query=True)
        return Encoded(query_emb, doc_emb, query_use, doc_use)

    def embed_shards(self, texts: Sequence[str]) -> tuple[list[TokenEmbeddings], CacheUse]:
        """Document embeddings as the cache's memory-mapped shards (one pack without a cache)."""
        return self._encode(texts, False)

    def _encode(self, texts: Sequence[str], is_query: bool) -> tuple[list[TokenEmbeddings], CacheUse]:
        return encode_entry(
            self.encoder,
            texts,
            is_query=is_query,
            cache_dir=self.cache_dir,
            batch_size=self.batch_size,
            shard_size=self.shard_size,
            show_progress=self.show_progress,
            executor=self.executor,
        )


def _scoring_settings(scoring: str, pylate_chunk_size: int) -> dict[str, Any]:
    # the zero floor of ``pylate`` scoring depends on the longest document of each corpus chunk
    return {"scoring": scoring} | ({"pylate_chunk_size": pylate_chunk_size} if scoring == "pylate" else {})


@dataclass(frozen=True)
class ExactRetriever:
    """Exact MaxSim over the whole corpus (``harness.retrieve.maxsim.exact_search``), streamed from
    the embedding cache's shards: the corpus is never resident, and the scoring blocks take at most
    half of ``max_memory`` (bytes; None: ``maxsim``'s default block)."""

    embedder: Embedder
    scoring: Scoring = "masked"
    pylate_chunk_size: int = 50_000
    max_memory: int | None = None
    method: str = field(default="exact", init=False)

    def settings(self) -> dict[str, Any]:
        return _scoring_settings(self.scoring, self.pylate_chunk_size)

    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]:
        shards, doc_use = self.embedder.embed_shards(docs)
        query_emb, query_use = self.embedder.embed(queries, is_query=True)
        encoded = Encoded(query_emb, ShardedEmbeddings(shards), query_use, doc_use)
        block = DEFAULT_MAX_BLOCK_BYTES if self.max_memory is None else self.max_memory // 2
        started = time.perf_counter()
        scores, indices = exact_search(
            encoded.queries,
            encoded.docs,
            k,
            scoring=self.scoring,
            pylate_chunk_size=self.pylate_chunk_size,
            max_block_bytes=min(block, DEFAULT_MAX_BLOCK_BYTES),
            tie_keys=docs.tie_keys,
            show_progress=self.embedder.show_progress,
        )
        return Ranking(scores, indices), encoded.stats(time.perf_counter() - started)


@dataclass(frozen=True)
class PlaidRetriever:
    """A PLAID index of the corpus (``harness.plaid``), searched with ``knobs``; true MaxSim only.

    With a cache the index is built by streaming the cache's memory-mapped shards and kept at
    ``<cache_dir>/plaid/<corpus entry key>-nbits<n>`` (reused when it opens cleanly); without one,
    it is built in a temp folder and dropped."""

    embedder: Embedder
    nbits: int = 4
    knobs: dict[str, Any] = field(default_factory=dict)  # n_probe, centroid_score_threshold, n_full_scores
    method: str = field(default="plaid", init=False)

    def settings(self) -> dict[str, Any]:
        return {"scoring": "masked", "nbits": self.nbits, "search": dict(self.knobs)}

    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]:
        from harness.plaid import open_or_build  # numba loads only when PLAID is used

        cache_dir = self.embedder.cache_dir
        with contextlib.ExitStack() as stack:
            shards, doc_use = self.embedder.embed_shards(docs)
            if cache_dir is not None:
                key = cache_key(self.embedder.encoder, docs, is_query=False)
                index_dir = Path(cache_dir) / PLAID_DIR / f"{key}-nbits{self.nbits}"
            else:
                index_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plaid-"))) / "index"
            query_emb, query_use = self.embedder.embed(queries, is_query=True)
            started = time.perf_counter()
            index, built_now = open_or_build(
                index_dir,
                shards,
                n_docs=len(docs),
                nbits=self.nbits,
                show_progress=self.embedder.show_progress,
            )
            built = time.perf_counter()
            scores, indices = index.search(
                query_emb, k, tie_keys=docs.tie_keys, show_progress=self.embedder.show_progress, **self.knobs
            )
            facts = index.stats()
        stats = SearchStats(
            encode_queries_s=query_use.encode_seconds,
            encode_documents_s=doc_use.encode_seconds,
            index_s=built - started,
            retrieve_s=time.perf_counter() - built,
            query_tokens=query_emb.input_tokens,
            document_tokens=sum_known(s.input_tokens for s in shards),
            query_truncated=truncated_texts([query_emb]),
            document_truncated=truncated_texts(shards),
            index={name: facts[name] for name in ("disk_bytes", "bytes_per_token_total", "n_centroids")},
            index_build_s=facts["build_seconds"],
            sources=encode_sources(query_use, doc_use)
            | {"index_build_s": "measured" if built_now else "cache"},
        )
        return Ranking(scores, indices), stats


@dataclass(frozen=True)
class BM25Retriever:
    """BM25 over the raw texts (``harness.retrieve.bm25.bm25_search``, Pyserini's k1 and b)."""

    k1: float = 0.9
    b: float = 0.4
    show_progress: bool = True
    method: str = field(default="bm25", init=False)

    def settings(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b}

    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]:
        started = time.perf_counter()
        scores, indices = bm25_search(
            docs, queries, k, k1=self.k1, b=self.b, tie_keys=docs.tie_keys, show_progress=self.show_progress
        )
        return Ranking(scores, indices), SearchStats(retrieve_s=time.perf_counter() - started)


@dataclass(frozen=True)
class RunFileRetriever:
    """A TREC run read once (``harness.runfile.read_trec_run``): each query's ranked docs, cut to
    ``k`` by the ranking rule, docs absent from the corpus dropped after the cut."""

    path: Path
    run: Run
    method: str = field(default="run", init=False)

    def settings(self) -> dict[str, Any]:
        return {"run_file": str(self.path)}

    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]:
        position = {doc_id: i for i, doc_id in enumerate(docs.ids)}
        self._check_ids(queries, position)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        indices = np.full((len(queries), k), -1, np.int64)
        for row, qid in enumerate(queries.ids):
            hits = self.run.get(qid, {})
            kept = [d for d in rank({qid: hits}, k).get(qid, []) if d in position]
            scores[row, : len(kept)] = [hits[d] for d in kept]
            indices[row, : len(kept)] = [position[d] for d in kept]
        return Ranking(scores, indices), SearchStats()

    def _check_ids(self, queries: Texts, position: dict[str, int]) -> None:
        """InputError when the run names none of the dataset's queries or none of its documents (it
        is another dataset's run); a warning with counts when some of its doc ids are unknown."""
        listed = [self.run[q] for q in queries.ids if q in self.run]
        if not listed:
            raise InputError(f"names none of the {len(queries)} queries of this dataset", file=str(self.path))
        doc_ids = {d for docs in listed for d in docs}
        if not doc_ids:
            raise InputError("lists no documents for this dataset's queries", file=str(self.path))
        unknown = sum(d not in position for d in doc_ids)
        if unknown == len(doc_ids):
            raise InputError(
                f"none of its {len(doc_ids)} doc ids is in the corpus ({len(position)} documents): "
                "a run of another dataset?",
                file=str(self.path),
            )
        if unknown:
            logger.warning(
                "%s: %d of %d doc ids are not in the corpus; they are dropped",
                self.path,
                unknown,
                len(doc_ids),
            )


@dataclass(frozen=True)
class RerankRetriever:
    """Exact MaxSim (PyLate's ``rank.rerank``) over the top ``depth`` of ``first_stage``, whose own
    time is not counted (it is another system's). ``first_stage_name`` is what the results record."""

    first_stage: Retriever
    first_stage_name: str
    embedder: Embedder
    depth: int = 100
    scoring: Scoring = "masked"
    method: str = field(default="rerank", init=False)

    def settings(self) -> dict[str, Any]:
        return {"scoring": self.scoring, "first_stage": self.first_stage_name, "rerank_depth": self.depth}

    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]:
        first, _ = self.first_stage.search(queries, docs, min(self.depth, len(docs)))
        encoded = self.embedder.embed_pair(queries, docs)
        started = time.perf_counter()
        scores, indices = rerank(
            encoded.queries,
            encoded.docs,
            first.candidates(),
            k=k,
            scoring=self.scoring,
            tie_keys=docs.tie_keys,
        )
        return Ranking(scores, indices), encoded.stats(time.perf_counter() - started)
