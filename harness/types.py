"""Shared data types that flow through the pipeline.

task -> Dataset -> encode (TokenEmbeddings) -> retrieve (Run) -> metrics -> results.
Every module below ``harness.run`` speaks in these types and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# qrels: query id -> doc id -> graded relevance (0 = judged not relevant).
Qrels = dict[str, dict[str, int]]
# run: query id -> doc id -> score (the shape pytrec_eval takes).
Run = dict[str, dict[str, float]]


class HarnessError(Exception):
    """Base class for every error the harness raises on purpose."""


class InputError(HarnessError):
    """Bad input data or configuration; the message names file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.line, self.field = file, line, field
        where = ""
        if file is not None:
            where = f"{file}" + (f":{line}" if line is not None else "") + ": "
        what = f"field '{field}': " if field is not None else ""
        super().__init__(f"{where}{what}{message}")


@dataclass(frozen=True)
class Dataset:
    """One retrieval collection, fully in memory.

    ``corpus`` maps doc id -> text (BEIR title and body already joined as
    ``(title + " " + text).strip()``), ``queries`` maps query id -> text; both
    keep file order. ``qrels`` keeps graded scores; ids in qrels that are
    absent from the corpus are kept (they count in |R| for the card metrics).
    """

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    def fingerprint(self) -> str:
        """sha256 over corpus, queries and qrels (order-independent)."""
        h = hashlib.sha256()
        for part in (self.corpus, self.queries):
            for key in sorted(part):
                h.update(key.encode() + b"\x00" + part[key].encode() + b"\x01")
            h.update(b"\x02")
        h.update(json.dumps(self.qrels, sort_keys=True).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class TokenEmbeddings:
    """Variable-length embeddings packed in one matrix.

    Text ``i`` owns ``vectors[offsets[i]:offsets[i + 1]]``. A single-vector
    model is the special case of one row per text. ``vectors`` is float32
    (or a float32 memmap) of shape [total_tokens, dim]; ``offsets`` is int64
    of shape [n_texts + 1] starting at 0.
    """

    vectors: np.ndarray
    offsets: np.ndarray

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
        """Concatenate packs in order."""
        if len(parts) == 1:
            return parts[0]
        vectors = np.concatenate([p.vectors for p in parts], axis=0)
        lengths = np.concatenate([p.lengths for p in parts])
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(vectors, offsets)

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

    def select(self, indices: Sequence[int] | np.ndarray) -> TokenEmbeddings:
        """A new pack holding texts ``indices`` in that order."""
        return TokenEmbeddings.from_list([self[int(i)] for i in indices], self.dim)
