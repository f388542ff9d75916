"""Shared data types that flow through the pipeline.

task -> Dataset -> encode (TokenEmbeddings) -> retrieve (Run) -> metrics -> results.
Every module below ``harness.run`` speaks in these types and nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

import numpy as np

from harness.errors import HarnessError, InputError
from harness.hashing import texts_sha256

__all__ = [
    "Dataset",
    "Encoder",
    "HarnessError",
    "InputError",
    "Qrels",
    "Run",
    "ShardedEmbeddings",
    "Texts",
    "TokenEmbeddings",
    "consecutive_ranges",
    "id_ranks",
    "sum_known",
    "token_rows",
]

# qrels: query id -> doc id -> graded relevance (0 = judged not relevant).
Qrels = dict[str, dict[str, int]]
# run: query id -> doc id -> score (the shape pytrec_eval takes).
Run = dict[str, dict[str, float]]


class Texts(Sequence[str]):
    """Texts in a fixed order with their ids. The sha256 of the texts (what embedding-cache keys
    are made of) and the ids' tie keys (``harness.ranking.id_ranks``) are computed once."""

    def __init__(self, ids: Iterable[str], texts: Iterable[str]) -> None:
        self.ids: tuple[str, ...] = tuple(ids)
        self._texts: tuple[str, ...] = tuple(texts)
        if len(self.ids) != len(self._texts):
            raise ValueError(f"{len(self.ids)} ids for {len(self._texts)} texts")

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return list(self._texts[i]) if isinstance(i, slice) else self._texts[i]  # slices: what encoders take

    def __len__(self) -> int:
        return len(self._texts)

    @functools.cached_property
    def sha256(self) -> str:
        """``harness.hashing.texts_sha256`` of the texts, computed on first use."""
        return texts_sha256(self._texts)

    @functools.cached_property
    def tie_keys(self) -> np.ndarray:
        """:func:`id_ranks` of the ids (the ranking rule's tie keys), computed on first use."""
        return id_ranks(self.ids)


@dataclass(frozen=True)
class Dataset:
    """One retrieval collection, fully in memory.

    ``corpus`` maps doc id -> text (BEIR title and body already joined as
    ``(title + " " + text).strip()``), ``queries`` maps query id -> text; both
    keep file order. ``qrels`` keeps graded scores; ids in qrels that are
    absent from the corpus are kept (they count in |R| for the card metrics).
    ``excluded`` maps query id -> doc ids removed from that query's ranking before any
    metric (BRIGHT's ``excluded_ids``; :func:`harness.ranking.drop_excluded`); empty for most.
    """

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels
    source: str = ""
    notes: tuple[str, ...] = field(default=())
    excluded: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @functools.cached_property
    def doc_texts(self) -> Texts:
        """The corpus as :class:`Texts` (file order), hashed at most once."""
        return Texts(self.corpus, self.corpus.values())

    @functools.cached_property
    def query_texts(self) -> Texts:
        """The queries as :class:`Texts` (file order)."""
        return Texts(self.queries, self.queries.values())

    def fingerprint(self) -> str:
        """sha256 over corpus, queries, qrels and (when any) the exclusions, order-independent,
        computed once: a dataset without exclusions keeps the fingerprint it had before they existed."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        for part in (self.corpus, self.queries):
            for key in sorted(part):
                h.update(key.encode() + b"\x00" + part[key].encode() + b"\x01")
            h.update(b"\x02")
        h.update(json.dumps(self.qrels, sort_keys=True).encode())
        excluded = {qid: sorted(ids) for qid, ids in self.excluded.items() if ids}
        if excluded:
            h.update(b"\x03" + json.dumps(excluded, sort_keys=True).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class TokenEmbeddings:
    """Variable-length embeddings packed in one matrix.

    Text ``i`` owns ``vectors[offsets[i]:offsets[i + 1]]``. A single-vector
    model is the special case of one row per text. ``vectors`` is float32
    (or a float32 memmap) of shape [total_tokens, dim]; ``offsets`` is int64
    of shape [n_texts + 1] starting at 0. ``input_tokens``: tokens the model read
    to make them (special tokens and query expansion included, batch padding
    excluded), or None when unknown; ``truncated``: how many of the texts were cut at the length
    limit, or None when unknown.
    """

    vectors: np.ndarray
    offsets: np.ndarray
    input_tokens: int | None = None
    truncated: int | None = None

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D, got shape {self.vectors.shape}")
        if self.offsets.ndim != 1 or self.offsets[0] != 0 or self.offsets[-1] != len(self.vectors):
            raise ValueError("offsets must start at 0 and end at len(vectors)")

    @classmethod
    def from_list(cls, arrays: Sequence[np.ndarray], dim: int | None = None) -> TokenEmbeddings:
        """Pack a list of [n_i, dim] arrays (n_i may be 0)."""
        if not arrays:
            return cls(np.zeros((0, dim or 0), np.float32), np.zeros(1, np.int64))
        lengths = np.array([len(a) for a in arrays], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        vectors = np.concatenate([np.asarray(a, np.float32) for a in arrays], axis=0)
        return cls(np.ascontiguousarray(vectors), offsets)

    @classmethod
    def concat(cls, parts: Sequence[TokenEmbeddings]) -> TokenEmbeddings:
        """Concatenate packs in order (``input_tokens``, ``truncated`` summed when every part knows them)."""
        if len(parts) == 1:
            return parts[0]
        vectors = np.concatenate([p.vectors for p in parts], axis=0)
        lengths = np.concatenate([p.lengths for p in parts])
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        known = sum_known(p.input_tokens for p in parts), sum_known(p.truncated for p in parts)
        return cls(vectors, offsets, *known)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.vectors[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Token rows ``start:stop`` in memory (:func:`read_rows`)."""
        return read_rows(self.vectors, start, stop)

    def select(self, indices: Sequence[int] | np.ndarray) -> TokenEmbeddings:
        """A new in-memory float32 pack holding texts ``indices`` in that order."""
        rows, lengths = token_rows(self.offsets, np.asarray(indices, np.int64))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return TokenEmbeddings(np.asarray(self.vectors[rows], np.float32), offsets)


class ShardedEmbeddings:
    """Several packs (the embedding cache's memory-mapped shards) read as one, in order, without
    loading them: global ``offsets`` (8 bytes a text) and :meth:`rows` read on demand, so resident
    memory is what a consumer holds at once, whatever the corpus size."""

    def __init__(self, shards: Sequence[TokenEmbeddings]) -> None:
        self.shards = list(shards)
        dims = {s.dim for s in self.shards if len(s.vectors)}
        if len(dims) > 1:
            raise ValueError(f"shards disagree on embedding dim: {sorted(dims)}")
        self.dim = dims.pop() if dims else max((s.dim for s in self.shards), default=0)
        lengths = [s.lengths for s in self.shards]
        self.offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [])])
        self.offsets = self.offsets.astype(np.int64)
        self._row_starts = np.cumsum([0] + [len(s.vectors) for s in self.shards])
        self.input_tokens = sum_known(s.input_tokens for s in self.shards)
        self.truncated = sum_known(s.truncated for s in self.shards)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Token rows ``start:stop`` of the concatenation, in memory (:func:`read_rows` per shard)."""
        first = int(np.searchsorted(self._row_starts, start, side="right")) - 1
        parts = []
        for i in range(max(first, 0), len(self.shards)):
            base = int(self._row_starts[i])
            if base >= stop:
                break
            lo, hi = max(start - base, 0), min(stop - base, len(self.shards[i].vectors))
            if hi > lo:
                parts.append(self.shards[i].rows(lo, hi))
        if not parts:
            return np.zeros((0, self.dim), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def read_rows(vectors: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``vectors[start:stop]`` as an in-memory array. Rows of a memory-mapped .npy file (as
    ``np.load(mmap_mode="r")`` returns it) are read with a plain file read, not through the map:
    pages touched through a map stay in this process's resident memory until the map is closed."""
    if (
        isinstance(vectors, np.memmap)
        and isinstance(vectors.base, mmap.mmap)
        and vectors.filename
        and vectors.mode == "r"
        and vectors.ndim == 2
        and vectors.flags.c_contiguous
    ):
        row = vectors.shape[1]
        count = max(stop - start, 0) * row
        offset = vectors.offset + start * row * vectors.itemsize
        return np.fromfile(vectors.filename, vectors.dtype, count, offset=offset).reshape(-1, row)
    return np.asarray(vectors[start:stop])


def id_ranks(ids: Sequence[str]) -> np.ndarray:
    """Each id's position in ascending string order (Python's code-point order, which is trec_eval's
    ``strcmp`` on UTF-8), int64: comparing these compares the ids (``harness.ranking``'s tie keys)."""
    keys = np.empty(len(ids), np.int64)
    keys[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return keys


Number = TypeVar("Number", int, float)


def sum_known(values: Iterable[Number | None]) -> Number | None:
    """The sum of ``values`` (token counts, seconds) in their order, or None when any is unknown."""
    items = list(values)
    known = [v for v in items if v is not None]
    return sum(known) if len(known) == len(items) else None


def token_rows(offsets: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``items`` in a packed (CSR) layout: the flat positions ``offsets[i]:offsets[i+1]`` of
    every item ``i`` of ``items`` in that order, and each item's length."""
    starts = np.asarray(offsets[items], np.int64)
    lengths = np.asarray(offsets[items + 1], np.int64) - starts
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + shift, lengths


def consecutive_ranges(offsets: np.ndarray, cap: int) -> list[tuple[int, int]]:
    """Consecutive item ranges [a, b) covering all items whose spans ``offsets[b] - offsets[a]``
    are at most ``cap`` (an item larger than ``cap`` gets a range of its own)."""
    ranges, a, n = [], 0, len(offsets) - 1
    while a < n:
        b = max(a + 1, int(np.searchsorted(offsets, offsets[a] + cap, side="right")) - 1)
        ranges.append((a, b))
        a = b
    return ranges


class Encoder(Protocol):
    """What the pipeline needs from a model (DESIGN.md "encode")."""

    name: str
    multi_vector: bool
    revision: str | None  # the Hub commit its files came from, None when unknown

    @property
    def fingerprint(self) -> str: ...

    def settings(self) -> dict[str, Any]: ...

    def parameter_count(self) -> int: ...

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings: ...
