"""Retriever stages: ``search(queries, docs, k) -> (Ranking, SearchStats)``.

A stage takes a dataset's query and document :class:`harness.types.Texts`, encodes what it needs
through its :class:`Embedder` (the embedding cache), and returns the top ``k`` doc positions per
query plus what it cost. Statistics are returned values, never arguments filled in place. Every
cut follows ``harness.ranking`` with the corpus ids as tie keys. ``method`` and ``settings()``
are what a results file records under ``retrieval``. ``prepare(queries, docs, k)`` (a context)
gives the search made ready (:class:`Prepared`): its queries can then be ranked all at once
(``search``) or one at a time over the same embeddings and index, with the same rows. Stages:
:class:`ExactRetriever` (exact MaxSim, ``masked`` or PyLate's ``pylate`` scoring; exact dense top-k
for a single-vector model), :class:`PlaidRetriever` (a PLAID index, kept in the cache),
:class:`BM25Retriever`, :class:`RunFileRetriever` (a TREC run file read once, as a first stage),
:class:`RerankRetriever` (exact MaxSim over another stage's top ``depth``).
"""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from harness.cache import DEFAULT_SHARD_SIZE, LOCAL, CacheUse, cache_key, encode_entry, pack
from harness.errors import InputError
from harness.executor import Executor
from harness.ranking import rank
from harness.retrieve.bm25 import BM25Index
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
    limit (None: unknown or no encoder), and the facts of the index it used (PLAID sizes, the seconds
    its build took and, when built now, the process's peak RSS in bytes before and after it)."""

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
    index_build_rss: tuple[int, int] | None = None  # (peak before, peak after) of a build of this run


@dataclass(frozen=True)
class Prepared:
    """A search made ready (queries encoded, corpus embedded or indexed): ``rank(rows, show_progress)``
    ranks the queries at positions ``rows``, each on its own, so all at once or one at a time gives
    the same rows; from its embeddings (BM25: its text; encoding is not ranking). ``stats``: what
    getting ready cost (``retrieve_s`` 0: :meth:`search` times the ranking)."""

    n_queries: int
    rank: Callable[[np.ndarray, bool], Ranking]
    stats: SearchStats
    show_progress: bool = True

    def search(self) -> tuple[Ranking, SearchStats]:
        """Every query at once (the batched search), timed: the stage's ``search``."""
        started = time.perf_counter()
        ranking = self.rank(np.arange(self.n_queries), self.show_progress)
        return ranking, replace(self.stats, retrieve_s=time.perf_counter() - started)


class Retriever(Protocol):
    @property
    def method(self) -> str: ...
    def settings(self) -> dict[str, Any]: ...
    def prepare(self, queries: Texts, docs: Texts, k: int) -> AbstractContextManager[Prepared]: ...
    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]: ...


class _Staged:
    """``search``: ``prepare``, then every query at once."""

    prepare: Callable[[Texts, Texts, int], AbstractContextManager[Prepared]]

    def search(self, queries: Texts, docs: Texts, k: int) -> tuple[Ranking, SearchStats]:
        with self.prepare(queries, docs, k) as prepared:
            return prepared.search()


def _rows_of(queries: TokenEmbeddings, rows: np.ndarray) -> TokenEmbeddings:
    """The queries at ``rows`` (all of them in order: the pack itself, not a copy)."""
    every = len(rows) == len(queries) and bool(np.all(rows == np.arange(len(queries))))
    return queries if every else queries.select(rows)


def max_rss() -> int:
    """This process's peak resident memory so far, in bytes (``getrusage``'s ``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else 1024 * peak


Docs = TypeVar("Docs", TokenEmbeddings, ShardedEmbeddings)


@dataclass(frozen=True)
class Encoded(Generic[Docs]):
    """Query and document embeddings of one search and where each came from."""

    queries: TokenEmbeddings
    docs: Docs  # ShardedEmbeddings: the cache's shards, read as one, for a streamed search
    queries_use: CacheUse
    docs_use: CacheUse

    def stats(self) -> SearchStats:
        """The stats of these encodings (no index, no scoring yet)."""
        doc_parts = self.docs.shards if isinstance(self.docs, ShardedEmbeddings) else [self.docs]
        return SearchStats(
            encode_queries_s=self.queries_use.encode_seconds,
            encode_documents_s=self.docs_use.encode_seconds,
            query_tokens=self.queries.input_tokens,
            document_tokens=self.docs.input_tokens,
            query_truncated=truncated_texts([self.queries]),
            document_truncated=truncated_texts(doc_parts),
            sources={"encode_queries_s": self.queries_use.source, "encode_documents_s": self.docs_use.source},
        )


def truncated_texts(parts: Sequence[TokenEmbeddings]) -> int | None:
    """Texts the encoder cut at its length limit, summed over ``parts``; None when a part does not
    say (``TokenEmbeddings.truncated``: an encoder's output and the cache entries it fills know it; a
    stand-in encoder's output or a shard written before it was kept does not)."""
    return sum_known(part.truncated for part in parts)


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

    def embed_streamed(self, queries: Texts, docs: Texts) -> Encoded[ShardedEmbeddings]:
        """Both sides, the documents as the cache's memory-mapped shards (one pack without a cache)."""
        shards, doc_use = self._encode(docs, False)
        query_emb, query_use = self.embed(queries, is_query=True)
        return Encoded(query_emb, ShardedEmbeddings(shards), query_use, doc_use)

    def _encode(self, texts: Sequence[str], is_query: bool) -> tuple[list[TokenEmbeddings], CacheUse]:
        options: dict[str, Any] = {"cache_dir": self.cache_dir, "batch_size": self.batch_size}
        options |= {
            "shard_size": self.shard_size,
            "show_progress": self.show_progress,
            "executor": self.executor,
        }
        return encode_entry(self.encoder, texts, is_query=is_query, **options)


@dataclass(frozen=True)
class ExactRetriever(_Staged):
    """Exact MaxSim over the whole corpus (``harness.retrieve.maxsim.exact_search``), streamed from
    the embedding cache's shards: the corpus is never resident, and the scoring blocks take at most
    half of ``max_memory`` (bytes; None: ``maxsim``'s default block)."""

    embedder: Embedder
    scoring: Scoring = "masked"
    pylate_chunk_size: int = 50_000
    max_memory: int | None = None
    method: str = field(default="exact", init=False)

    def settings(self) -> dict[str, Any]:
        # the zero floor of ``pylate`` scoring depends on the longest document of each corpus chunk
        chunk = {"pylate_chunk_size": self.pylate_chunk_size} if self.scoring == "pylate" else {}
        return {"scoring": self.scoring} | chunk

    @contextlib.contextmanager
    def prepare(self, queries: Texts, docs: Texts, k: int) -> Iterator[Prepared]:
        encoded = self.embedder.embed_streamed(queries, docs)
        block = DEFAULT_MAX_BLOCK_BYTES if self.max_memory is None else self.max_memory // 2
        options: dict[str, Any] = {"scoring": self.scoring, "pylate_chunk_size": self.pylate_chunk_size}
        options |= {"k": k, "max_block_bytes": min(block, DEFAULT_MAX_BLOCK_BYTES), "tie_keys": docs.tie_keys}

        def ranked(rows: np.ndarray, show_progress: bool) -> Ranking:
            queries_at = _rows_of(encoded.queries, rows)
            return Ranking(*exact_search(queries_at, encoded.docs, show_progress=show_progress, **options))

        yield Prepared(len(queries), ranked, encoded.stats(), self.embedder.show_progress)


@dataclass(frozen=True)
class PlaidRetriever(_Staged):
    """A PLAID index of the corpus (``harness.plaid``), searched with ``knobs``; true MaxSim only.

    With a cache the index is built by streaming the cache's memory-mapped shards and kept at
    ``<cache_dir>/plaid/<corpus entry key>-nbits<n>`` (reused when it opens cleanly); without one,
    it is built in a temp folder and dropped. All queries: one ``PlaidIndex.search``; some: its
    held-open ``searcher`` (same results, without the set-up). ``index_s``: open or build, derive."""

    embedder: Embedder
    nbits: int = 4
    knobs: dict[str, Any] = field(default_factory=dict)  # n_probe, centroid_score_threshold, n_full_scores
    method: str = field(default="plaid", init=False)

    def settings(self) -> dict[str, Any]:
        return {"scoring": "masked", "nbits": self.nbits, "search": dict(self.knobs)}

    @contextlib.contextmanager
    def prepare(self, queries: Texts, docs: Texts, k: int) -> Iterator[Prepared]:
        from harness.plaid import open_or_build  # numba loads only when PLAID is used

        cache_dir, show = self.embedder.cache_dir, self.embedder.show_progress
        with contextlib.ExitStack() as stack:
            encoded = self.embedder.embed_streamed(queries, docs)
            if cache_dir is not None:
                key = cache_key(self.embedder.encoder, docs, is_query=False)
                index_dir = Path(cache_dir) / PLAID_DIR / f"{key}-nbits{self.nbits}"
            else:
                index_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plaid-"))) / "index"
            started, peak_before = time.perf_counter(), max_rss()
            index, built_now = open_or_build(
                index_dir, encoded.docs.shards, n_docs=len(docs), nbits=self.nbits, show_progress=show
            )
            peak_after, knobs = max_rss(), {"tie_keys": docs.tie_keys, **self.knobs}
            run = stack.enter_context(index.searcher(k, **knobs))  # derives the index's norms once
            opened, facts, stats = time.perf_counter() - started, index.stats(), encoded.stats()
            stats = replace(
                stats,
                index_s=opened,
                index={name: facts[name] for name in ("disk_bytes", "bytes_per_token_total", "n_centroids")},
                index_build_s=facts["build_seconds"],
                sources=stats.sources | {"index_build_s": "measured" if built_now else "cache"},
                index_build_rss=(peak_before, peak_after) if built_now else None,
            )

            def ranked(rows: np.ndarray, show_progress: bool) -> Ranking:
                chosen = _rows_of(encoded.queries, rows)
                if chosen is encoded.queries:  # the batched search
                    return Ranking(*index.search(chosen, k, show_progress=show_progress, **knobs))
                return Ranking(*run(chosen, show_progress))

            yield Prepared(len(queries), ranked, stats, show)


@dataclass(frozen=True)
class BM25Retriever(_Staged):
    """BM25 over the raw texts (as ``harness.retrieve.bm25.bm25_search``, Pyserini's k1 and b): the
    corpus is indexed once (``index_s``), each query tokenised and scored when ranked."""

    k1: float = 0.9
    b: float = 0.4
    show_progress: bool = True
    method: str = field(default="bm25", init=False)

    def settings(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b}

    @contextlib.contextmanager
    def prepare(self, queries: Texts, docs: Texts, k: int) -> Iterator[Prepared]:
        t0 = time.perf_counter()
        index = BM25Index.build(list(docs), k1=self.k1, b=self.b, show_progress=self.show_progress)

        def ranked(rows: np.ndarray, show_progress: bool) -> Ranking:
            texts = [queries[int(r)] for r in rows]
            return Ranking(*index.rank(texts, k, tie_keys=docs.tie_keys, show_progress=show_progress))

        stats = SearchStats(index_s=time.perf_counter() - t0)
        yield Prepared(len(queries), ranked, stats, self.show_progress)


@dataclass(frozen=True)
class RunFileRetriever(_Staged):
    """A TREC run read once (``harness.runfile.read_trec_run``): each query's ranked docs, cut to
    ``k`` by the ranking rule, docs absent from the corpus dropped after the cut."""

    path: Path
    run: Run
    method: str = field(default="run", init=False)

    def settings(self) -> dict[str, Any]:
        return {"run_file": str(self.path)}

    @contextlib.contextmanager
    def prepare(self, queries: Texts, docs: Texts, k: int) -> Iterator[Prepared]:
        position = {doc_id: i for i, doc_id in enumerate(docs.ids)}
        self._check_ids(queries, position)

        def ranked(rows: np.ndarray, show_progress: bool) -> Ranking:
            n = len(rows)
            scores, indices = np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
            for row, qid in enumerate(queries.ids[int(r)] for r in rows):
                hits = self.run.get(qid, {})
                kept = [d for d in rank({qid: hits}, k).get(qid, []) if d in position]
                scores[row, : len(kept)] = [hits[d] for d in kept]
                indices[row, : len(kept)] = [position[d] for d in kept]
            return Ranking(scores, indices)

        yield Prepared(len(queries), ranked, SearchStats(), False)

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
            message = f"none of its {len(doc_ids)} doc ids is in the corpus ({len(position)} documents)"
            raise InputError(message + ": a run of another dataset?", file=str(self.path))
        if unknown:
            message = "%s: %d of %d doc ids are not in the corpus; they are dropped"
            logger.warning(message, self.path, unknown, len(doc_ids))


@dataclass(frozen=True)
class RerankRetriever(_Staged):
    """Exact MaxSim (PyLate's ``rank.rerank``) over the top ``depth`` of ``first_stage``, whose own
    time is not counted (it is another system's; its candidates are made when preparing).
    ``first_stage_name`` is what the results record."""

    first_stage: Retriever
    first_stage_name: str
    embedder: Embedder
    depth: int = 100
    scoring: Scoring = "masked"
    method: str = field(default="rerank", init=False)

    def settings(self) -> dict[str, Any]:
        return {"scoring": self.scoring, "first_stage": self.first_stage_name, "rerank_depth": self.depth}

    @contextlib.contextmanager
    def prepare(self, queries: Texts, docs: Texts, k: int) -> Iterator[Prepared]:
        first, _ = self.first_stage.search(queries, docs, min(self.depth, len(docs)))
        candidates, encoded = first.candidates(), self.embedder.embed_pair(queries, docs)

        options: dict[str, Any] = {"k": k, "scoring": self.scoring, "tie_keys": docs.tie_keys}

        def ranked(rows: np.ndarray, show_progress: bool) -> Ranking:
            cands = [candidates[int(r)] for r in rows]
            return Ranking(*rerank(_rows_of(encoded.queries, rows), encoded.docs, cands, **options))

        yield Prepared(len(queries), ranked, encoded.stats(), self.embedder.show_progress)
