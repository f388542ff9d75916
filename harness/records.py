"""The typed parts of a results file: what was evaluated (:class:`ModelRecord`), on what
(:class:`TaskRecord`), how it was ranked (:class:`RetrievalRecord`), the scores of each subset
(:class:`SubsetScores`), what the run cost (:class:`EfficiencyRecord`) and how far it is from exact
search (:class:`FidelityRecord`). Each is frozen and reads / writes its JSON object with ``from_dict``
/ ``to_dict``; ``to_dict`` writes the keys in the order the schema lists them (``harness.results``),
so a file read and written again keeps its bytes. ``from_dict`` validates and raises an
:class:`~harness.errors.InputError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_type_hints

from harness.errors import InputError

CONVENTIONS = ("card", "trec")
Scalars = TypeVar("Scalars")
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
        out: dict[str, Any] = {"id": self.id, "fingerprint": self.fingerprint, "revision": self.revision}
        out |= {"kind": self.kind, "parameters": self.parameters, "size_group": self.size_group}
        out["settings"] = dict(self.settings)
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
        out: dict[str, Any] = {"name": self.name, "convention": self.convention}
        out |= {"main_metric": self.main_metric, "split": self.split}
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
        out = {"name": self.name, "n_queries": self.n_queries, "card": _plain(self.card)}
        out |= {"trec": _plain(self.trec), "per_query": dict(self.per_query)}
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


@dataclass(frozen=True)
class EncodeRate:
    """One side's encoding: tokens the encoder read, its seconds, tokens per second, and where the
    seconds come from (``measured`` now, ``cache``: carried from the entry that measured them,
    ``partly cached``); a number is null where a part is unknown."""

    tokens: int | None
    seconds: float | None
    tokens_per_s: float | None
    source: str | None


@dataclass(frozen=True)
class IndexCost:
    """Building the index (PLAID): seconds (``source`` as for encoding: a reused index carries the
    seconds of the run that built it) and the process's peak RSS during the build (null when not
    built by this run), with ``peak_rss_note`` saying how exact it is. Sizes: ``retrieval.index``."""

    build_s: float | None
    source: str | None
    peak_rss_bytes: int | None
    peak_rss_note: str | None


@dataclass(frozen=True)
class BatchedSearch:
    """Every query of the task searched at once: ``queries`` / ``seconds`` (``timings.retrieve_s``)."""

    queries: int
    seconds: float
    qps: float | None


@dataclass(frozen=True)
class SingleQuerySearch:
    """Queries searched one at a time, after the warm-up: the first ``queries`` = min(``limit``, ``of``)
    of the task in file order (``limit``: ``--latency-queries``), their summed ``seconds``, QPS and
    latency percentiles in milliseconds; ``same_ranking``: their rows equal the batched search's."""

    limit: int
    queries: int
    of: int
    seconds: float
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    same_ranking: bool


@dataclass(frozen=True)
class Hardware:
    """Where the run ran: CPU model, logical CPUs, torch's threads, the torch device, its GPU."""

    cpu: str | None
    cpu_count: int | None
    torch_threads: int | None
    device: str | None
    gpu: str | None


@dataclass(frozen=True)
class EfficiencyRecord:
    """What a run cost, measured (``harness.efficiency``): encoding per side (None: no encoder),
    the index build (None: no index), the search batched and single-query (None: not measured),
    the queries searched alone before any timing (``warmup_queries``), the process's peak RSS so far
    and how it was read, and the hardware."""

    encode: Mapping[str, EncodeRate] | None
    index: IndexCost | None
    warmup_queries: int
    batched: BatchedSearch
    single: SingleQuerySearch | None
    peak_rss_bytes: int | None
    peak_rss_scope: str
    hardware: Hardware

    def to_dict(self) -> dict[str, Any]:
        plain = dataclasses.asdict
        search = {"warmup_queries": self.warmup_queries, "batched": plain(self.batched)}
        search["single"] = None if self.single is None else plain(self.single)
        encode = None if self.encode is None else {side: plain(r) for side, r in self.encode.items()}
        index = None if self.index is None else plain(self.index)
        out: dict[str, Any] = {"encode": encode, "index": index, "search": search}
        out |= {"peak_rss_bytes": self.peak_rss_bytes, "peak_rss_scope": self.peak_rss_scope}
        return out | {"hardware": plain(self.hardware)}

    @classmethod
    def from_dict(cls, data: Any, file: str = "<memory>") -> EfficiencyRecord:
        where = _Fields(data, file, "efficiency")
        search = _Fields(where.require("search", dict), file, "efficiency.search")

        def read(kind: type[Scalars], value: Any, name: str) -> Scalars:
            return _scalars(kind, value, file, f"efficiency.{name}")

        encode, index = where.optional("encode", dict), where.optional("index", dict)
        rates = {side: read(EncodeRate, rate, f"encode.{side}") for side, rate in (encode or {}).items()}
        single = search.optional("single", dict)
        return cls(
            encode=None if encode is None else rates,
            index=None if index is None else read(IndexCost, index, "index"),
            warmup_queries=search.require("warmup_queries", int),
            batched=read(BatchedSearch, search.require("batched", dict), "search.batched"),
            single=None if single is None else read(SingleQuerySearch, single, "search.single"),
            peak_rss_bytes=where.optional("peak_rss_bytes", int),
            peak_rss_scope=where.require("peak_rss_scope", str),
            hardware=read(Hardware, where.require("hardware", dict), "hardware"),
        )


@dataclass(frozen=True)
class FidelityRecord:
    """An approximate run against exact search of the same model and data (``harness.fidelity``):
    the reference (``source``: ``results file``, that ``file`` and its TREC runs, or ``computed`` by
    this run; its model and MaxSim scoring), the ``queries`` compared, overlap@k and recall of the
    exact top k at 10 and 100 (null: a ranking shallower than k), the main ``metric``'s reference
    score and delta with its ``level`` bootstrap CI, and the two-sided ``test``'s p-value (null:
    undefined)."""

    reference_source: str
    reference_file: str | None
    reference_model: str
    reference_scoring: str | None
    queries: int
    overlap_at_10: float | None
    overlap_at_100: float | None
    recall_of_exact_at_10: float | None
    recall_of_exact_at_100: float | None
    metric: str
    reference_score: float
    delta: float
    ci_low: float | None
    ci_high: float | None
    level: float
    p_value: float | None
    test: str
    n_resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, file: str = "<memory>") -> FidelityRecord:
        return _scalars(cls, data, file, "fidelity")


def _scalars(cls: type[Scalars], data: Any, file: str, where: str) -> Scalars:
    """A record of scalar fields read from its JSON object: every key present (unless its field has
    a default), each value checked against its annotation (``X | None``: may be null; an integer is
    accepted for a float)."""
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", file=file, field=where)
    hints, values = get_type_hints(cls), dict[str, Any]()
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        kinds = get_args(hints[item.name]) or (hints[item.name],)
        kind = next(k for k in kinds if k is not type(None))
        if item.name not in data and item.default is not dataclasses.MISSING:
            continue
        value = data.get(item.name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is None and type(None) in kinds and item.name in data:
            values[item.name] = None
        elif isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            values[item.name] = value
        else:
            found = "null" if value is None else type(value).__name__
            found = "missing" if item.name not in data else f"got {found}"
            raise InputError(f"expected {kind.__name__}, {found}", file=file, field=f"{where}.{item.name}")
    return cls(**values)


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
            message = f"expected {kind.__name__}, got {found}"
            raise InputError(message, file=self.file, field=self.prefix + key)
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
