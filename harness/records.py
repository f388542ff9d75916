"""The typed parts of a results file: what was evaluated (:class:`ModelRecord`), on what
(:class:`TaskRecord`), how it was ranked (:class:`RetrievalRecord`) and the scores of each subset
(:class:`SubsetScores`). Each is frozen and reads / writes its JSON object with ``from_dict`` /
``to_dict``; ``to_dict`` writes the keys in the order the schema lists them (``harness.results``),
so a file read and written again keeps its bytes. ``from_dict`` validates and raises an
:class:`~harness.errors.InputError` naming the file and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import InputError

CONVENTIONS = ("card", "trec")
Convention = Literal["card", "trec"]


@dataclass(frozen=True)
class ModelRecord:
    """The model a result scores: ``kind`` is ``colbert``, ``dense``, ``bm25`` or ``published``;
    ``fingerprint`` the sha256 of its weights and configs; ``revision`` the Hub commit its files came
    from; ``settings`` what changes its embeddings (the cache key); ``kernels`` the CPU kernels that
    ran (they give the same numbers, so they are not settings; absent when not recorded)."""

    id: str
    fingerprint: str | None = None
    revision: str | None = None
    kind: str = "colbert"
    parameters: int | None = None
    size_group: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    kernels: Mapping[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "revision": self.revision,
            "kind": self.kind,
            "parameters": self.parameters,
            "size_group": self.size_group,
            "settings": dict(self.settings),
        }
        return out | ({"kernels": dict(self.kernels)} if self.kernels is not None else {})

    @classmethod
    def from_dict(cls, data: Any, file: str = "<memory>") -> ModelRecord:
        where = _Fields(data, file, "model")
        return cls(
            id=where.require("id", str),
            fingerprint=where.optional("fingerprint", str),
            revision=where.optional("revision", str),
            kind=where.optional("kind", str) or "colbert",
            parameters=where.optional("parameters", int),
            size_group=where.optional("size_group", str),
            settings=where.optional("settings", dict) or {},
            kernels=where.optional("kernels", dict),
        )


@dataclass(frozen=True)
class TaskRecord:
    """The task a result scores: its metric ``convention`` (``card`` or ``trec``) and
    ``main_metric``, the ``split``, whether a document with the query's id is dropped from the
    ranking (``ignore_identical_ids``; absent in transcribed rows), where the data came from and the
    sha256 of each subset's data."""

    name: str
    convention: Convention
    main_metric: str
    split: str
    ignore_identical_ids: bool | None = None
    source: str = ""
    dataset_fingerprints: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "convention": self.convention,
            "main_metric": self.main_metric,
            "split": self.split,
        }
        if self.ignore_identical_ids is not None:
            out["ignore_identical_ids"] = self.ignore_identical_ids
        return out | {"source": self.source, "dataset_fingerprints": dict(self.dataset_fingerprints)}

    @classmethod
    def from_dict(cls, data: Any, file: str = "<memory>") -> TaskRecord:
        where = _Fields(data, file, "task")
        convention = where.require("convention", str)
        if convention not in CONVENTIONS:
            raise InputError(f"must be one of {CONVENTIONS}", file=file, field="task.convention")
        return cls(
            name=where.require("name", str),
            convention=convention,
            main_metric=where.require("main_metric", str),
            split=where.require("split", str),
            ignore_identical_ids=where.optional("ignore_identical_ids", bool),
            source=where.optional("source", str) or "",
            dataset_fingerprints=where.optional("dataset_fingerprints", dict) or {},
        )


@dataclass(frozen=True)
class RetrievalRecord:
    """How a result's rankings were made: ``method`` (``exact``, ``plaid``, ``rerank``, ``bm25``,
    ``published``), the ranking depth ``k``, the method's own ``params`` (its retriever's
    ``settings()``) and, for an index, ``index`` facts per subset (disk bytes, bytes per token,
    centroids). In the file the params sit beside ``method`` and ``k``."""

    method: str
    k: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    index: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.k is not None:
            out["k"] = self.k
        out |= self.params
        return out | ({"index": dict(self.index)} if self.index is not None else {})

    @classmethod
    def from_dict(cls, data: Any, file: str = "<memory>") -> RetrievalRecord:
        where = _Fields(data, file, "retrieval")
        method, k = where.require("method", str), where.optional("k", int)
        index = where.optional("index", dict)
        params = {key: value for key, value in data.items() if key not in ("method", "k", "index")}
        return cls(method=method, k=k, params=params, index=index)


@dataclass(frozen=True)
class SubsetScores:
    """Metrics of one subset (a whole dataset, a CQADupStack forum, a LongEmbed length): the means
    in each convention (None where not computed), the main metric per query, and every metric per
    query (``{convention: {metric: {query id: value}}}``; empty for transcribed figures)."""

    name: str
    n_queries: int
    card: Mapping[str, float] | None
    trec: Mapping[str, float] | None
    per_query: Mapping[str, float] = field(default_factory=dict)
    per_query_metrics: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)

    def metrics(self, convention: str) -> Mapping[str, float]:
        table = self.card if convention == "card" else self.trec
        return table or {}

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "n_queries": self.n_queries,
            "card": _plain(self.card),
            "trec": _plain(self.trec),
            "per_query": dict(self.per_query),
        }
        if self.per_query_metrics:  # absent for a published figure, a file of an earlier version
            out["per_query_metrics"] = _plain(self.per_query_metrics)
        return out

    @classmethod
    def from_dict(cls, data: Any, file: str = "<memory>", where: str = "") -> SubsetScores:
        fields = _Fields(data, file, where.rstrip("."))
        per_query = fields.require("per_query", dict)
        return cls(
            name=fields.require("name", str),
            n_queries=fields.require("n_queries", int),
            card=_metric_table(data.get("card"), file, where + "card"),
            trec=_metric_table(data.get("trec"), file, where + "trec"),
            per_query=_metric_table(per_query, file, where + "per_query") or {},
            per_query_metrics=_per_query_metrics(data.get("per_query_metrics"), file, where),
        )


def _plain(value: Any) -> Any:
    """Nested mappings as plain dicts (what json writes)."""
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


class _Fields:
    """Typed reads of one JSON object's keys; errors name the file and ``prefix.key``."""

    def __init__(self, data: Any, file: str, prefix: str) -> None:
        if not isinstance(data, dict):
            raise InputError("expected a JSON object", file=file, field=prefix or None)
        self.data, self.file, self.prefix = data, file, f"{prefix}." if prefix else ""

    def require(self, key: str, kind: type) -> Any:
        if key not in self.data:
            raise InputError("missing", file=self.file, field=self.prefix + key)
        return self._checked(key, kind)

    def optional(self, key: str, kind: type) -> Any:
        """The value at ``key`` (None when absent or null), of type ``kind``."""
        return None if self.data.get(key) is None else self._checked(key, kind)

    def _checked(self, key: str, kind: type) -> Any:
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            found = "null" if value is None else type(value).__name__
            raise InputError(
                f"expected {kind.__name__}, got {found}", file=self.file, field=self.prefix + key
            )
        return value


def _metric_table(value: Any, file: str, name: str) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError("expected an object of metric -> number", file=file, field=name)
    for metric, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise InputError(f"expected a finite number, got {number!r}", file=file, field=f"{name}.{metric}")
    return {metric: float(number) for metric, number in value.items()}


def _per_query_metrics(value: Any, file: str, where: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{convention: {metric: {query id: number}}}``, validated; {} when absent (older files)."""
    name = where + "per_query_metrics"
    if value is None:
        return {}
    if not isinstance(value, dict) or not set(value) <= set(CONVENTIONS):
        raise InputError(f"expected an object keyed by {CONVENTIONS}", file=file, field=name)
    out = {}
    for convention, metrics in value.items():
        if not isinstance(metrics, dict):
            raise InputError(
                "expected an object of metric -> scores", file=file, field=f"{name}.{convention}"
            )
        out[convention] = {
            metric: _metric_table(scores, file, f"{name}.{convention}.{metric}") or {}
            for metric, scores in metrics.items()
        }
    return out
