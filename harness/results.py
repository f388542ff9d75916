"""Results files: one JSON document per (model, task), schema version 1.

Layout of a file (all keys always present; ``null`` where not applicable)::

    {
      "schema_version": 1,
      "harness_version": "0.1.0",
      "created": "2026-11-25T21:00:00+00:00",        # ISO 8601, UTC
      "model": {"id": str, "fingerprint": str|null,   # sha256 of weights+configs
                "revision": str|null,                   # the Hub commit its files came from
                "kind": "colbert"|"dense"|"bm25"|"published",
                "parameters": int|null, "size_group": str|null, "settings": {...},
                ["kernels": {"mode", "linear", ["glu"], "rotary"}]},  # the CPU kernels that ran
      "task": {"name": str, "convention": "card"|"trec", "main_metric": str,
               "split": str, "source": str, "dataset_fingerprints": {subset: sha256}},
      "retrieval": {"method": "exact"|"plaid"|"rerank"|"bm25"|"published", "k": int, ...params,
                    "index": {subset: {"disk_bytes", "bytes_per_token_total", "n_centroids"}} (PLAID)},
      "settings": {...},                                # every run setting (batch size, device, ...)
      "subsets": [{"name": str, "n_queries": int,
                   "card": {metric: float}|null,       # model-card convention
                   "trec": {metric: float}|null,       # trec_eval / BEIR convention
                   "per_query": {query_id: float},     # main metric, task convention
                   "per_query_metrics": {convention: {metric: {query_id: float}}}}],  # every metric
                                                         # (absent where not recorded: published)
      "main_score": float,                              # mean over subsets of main metric
      "timings": {"encode_queries_s", "encode_documents_s", "index_s", "retrieve_s",
                  "total_s", "retrieve_ms_per_query", ["index_build_s"]: float|null,
                  "sources": {timing: "measured"|"cache"|"partly cached"}},
      "tokens": {"queries": int|null, "documents": int|null,  # tokens the encoder read
                 "queries_truncated": int|null, "documents_truncated": int|null},  # texts cut
      "efficiency": {                                   # what the run cost (harness.efficiency);
                                                         # absent: published figures, older files
        "encode": {side: {"tokens": int|null, "seconds": float|null, "tokens_per_s": float|null,
                          "source": "measured"|"cache"|"partly cached"}}|null,  # side: queries,
                                                         # documents; null: no encoder (BM25)
        "index": {"build_s": float|null, "source": str, "peak_rss_bytes": int|null,
                  "peak_rss_note": str|null}|null,     # PLAID build; sizes in retrieval.index
        "search": {"warmup_queries": int,               # searched alone before any timing
                   "batched": {"queries": int, "seconds": float, "qps": float|null},
                   "single": {"limit": int, "queries": int, "of": int, "seconds": float,
                              "qps": float, "p50_ms": float, "p95_ms": float, "p99_ms": float,
                              "same_ranking": bool}|null},  # null: --latency-queries 0
        "peak_rss_bytes": int|null, "peak_rss_scope": str,  # the process's peak so far
        "hardware": {"cpu": str|null, "cpu_count": int|null, "torch_threads": int|null,
                     "device": str|null, "gpu": str|null}},
      "environment": {"python": str, "platform": str, "packages": {name: version}},
      "published": null | {"source": str, "note": str},  # figures transcribed, not run
      "fidelity": {                                     # an approximate run (PLAID, rerank, a compression
                                                         # variant) against exact search (harness.fidelity);
                                                         # absent: exact runs, BM25, older files
        "reference_source": "results file"|"computed", "reference_file": str|null,
        "reference_model": str, "reference_scoring": str|null, "queries": int,
        "overlap_at_10": float|null, "overlap_at_100": float|null,       # |A_k ∩ E_k| / |E_k|
        "recall_of_exact_at_10": float|null, "recall_of_exact_at_100": float|null,  # |A ∩ E_k| / |E_k|
        "metric": str, "reference_score": float, "delta": float,  # main metric: this - reference
        "ci_low": float|null, "ci_high": float|null, "level": float,  # the delta's bootstrap CI
        "p_value": float|null, "test": "permutation", "n_resamples": int, "seed": int}
    }

``main_score`` is recomputed on load and must agree with the subsets (1e-12),
so a hand-edited file cannot silently disagree with itself. The encode timings are the encoder's
seconds: measured by this run, or (``sources`` says "cache") carried from the cache entry that
measured them; ``index_build_s`` likewise for a reused PLAID index. A timing is null when unknown.
``efficiency`` derives its encode rates and build seconds from those timings (the same sources) and
measures the rest in the run (``harness.efficiency``: the single-query set, warm-up, percentiles).
Everything but ``created``, ``timings``, ``efficiency`` and ``environment`` is the same for the same
inputs; ``fidelity`` names where its exact reference came from (a results file found in the output
folder, or computed by the run).
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.fileio import read_text, write_json_atomic
from harness.ranking import drop_identical_ids
from harness.records import (
    EfficiencyRecord,
    FidelityRecord,
    ModelRecord,
    RetrievalRecord,
    SubsetScores,
    TaskRecord,
)
from harness.runfile import write_trec_run
from harness.types import Run
from harness.version import __version__

__all__ = [
    "EfficiencyRecord",
    "FidelityRecord",
    "ModelRecord",
    "Result",
    "Results",
    "RetrievalRecord",
    "SubsetScores",
    "TaskRecord",
    "load_result",
    "load_results",
    "save_result",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_TRACKED_PACKAGES = ("torch", "transformers", "numpy", "datasets", "safetensors", "tokenizers", "bm25s")


@dataclass(frozen=True)
class Result:
    """One evaluation of one model on one task; see the module docstring for the schema."""

    model: ModelRecord
    task: TaskRecord
    retrieval: RetrievalRecord
    subsets: Sequence[SubsetScores]  # kept as a tuple
    settings: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, Any] = field(default_factory=dict)  # seconds, and "sources" of each
    tokens: Mapping[str, int | None] = field(default_factory=dict)
    published: Mapping[str, str] | None = None
    efficiency: EfficiencyRecord | None = None  # None: a published figure, a file written before it
    fidelity: FidelityRecord | None = None  # None: not approximate (exact, BM25), a file written before it
    environment: Mapping[str, Any] = field(default_factory=lambda: environment_info())
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    harness_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    reused: bool = field(default=False, compare=False)  # in memory only: a run returned this finished file
    file: Path | None = field(default=None, compare=False)  # in memory only: the file it was loaded from

    def __post_init__(self) -> None:
        object.__setattr__(self, "subsets", tuple(self.subsets))  # a list given is kept as a tuple

    @property
    def main_score(self) -> float:
        """Unweighted mean over subsets of the task's main metric in the task's convention."""
        convention, metric = self.task.convention, self.task.main_metric
        values = [s.metrics(convention)[metric] for s in self.subsets]
        return sum(values) / len(values)

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def task_name(self) -> str:
        return self.task.name

    def __repr__(self) -> str:
        return (
            f"Result({self.model_id!r} on {self.task_name!r}: {self.task.main_metric} {self.main_score:.4f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The results file's JSON object, keys in the schema's order (``efficiency`` and ``fidelity``
        only when recorded, so an older file read and saved keeps its bytes)."""
        head = {
            "schema_version": self.schema_version,
            "harness_version": self.harness_version,
            "created": self.created,
            "model": self.model.to_dict(),
            "task": self.task.to_dict(),
            "retrieval": self.retrieval.to_dict(),
            "settings": dict(self.settings),
            "subsets": [s.to_dict() for s in self.subsets],
            "main_score": self.main_score,
            "timings": dict(self.timings),
            "tokens": dict(self.tokens),
        }
        cost = {} if self.efficiency is None else {"efficiency": self.efficiency.to_dict()}
        return (
            head
            | cost
            | {
                "environment": dict(self.environment),
                "published": None if self.published is None else dict(self.published),
            }
            | ({} if self.fidelity is None else {"fidelity": self.fidelity.to_dict()})
        )


def environment_info() -> dict[str, Any]:
    """Python, platform and versions of the packages that can move a number."""
    packages = {}
    for name in _TRACKED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": packages}


def result_filename(model_id: str, task_name: str) -> str:
    """``<model>__<task>.json`` with path separators made safe."""

    def safe(text: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)

    return f"{safe(model_id)}__{safe(task_name)}.json"


def save_result(result: Result, output_dir: Path, runs: Mapping[str, Run] | None = None) -> Path:
    """Write ``result`` atomically under ``output_dir`` (:func:`result_filename`), after its TREC
    runs when ``runs`` are given (one per subset, as the metrics saw them, in
    ``output_dir/runs/<stem>__<subset>.trec``): the results file is the commit record of a
    finished task. Returns the results file's path."""
    path = Path(output_dir) / result_filename(result.model_id, result.task_name)
    for name, run in (runs or {}).items():
        if result.task.ignore_identical_ids:
            run = drop_identical_ids(run)
        write_trec_run(run, run_file(path, name), "harness")
    write_json_atomic(path, result.to_dict())
    return path


def run_file(results_file: Path, subset: str) -> Path:
    """Where :func:`save_result` puts the TREC run of ``subset`` of the results file at that path."""
    return Path(results_file).parent / "runs" / f"{Path(results_file).stem}__{subset}.trec"


def recorded_owner(path: Path) -> tuple[str, str, str | None] | None:
    """(model id, task name, model fingerprint) the results file at ``path`` records; None when there
    is no such file or it cannot be read as one (it is then recomputed and replaced)."""
    try:
        data = read_json(path) if Path(path).is_file() else None
        model, task = data["model"], data["task"]  # type: ignore[index]
        return str(model["id"]), str(task["name"]), model.get("fingerprint")
    except (InputError, TypeError, KeyError):
        return None


def load_reusable(
    path: Path, model: ModelRecord, task: TaskRecord, retrieval: RetrievalRecord
) -> Result | None:
    """The finished result at ``path`` if this harness version made it from the same model,
    data (fingerprints) and settings; None otherwise (also when it is unreadable: it is then
    recomputed and overwritten atomically)."""
    if not Path(path).exists():
        return None
    try:
        old = load_result(path)
    except InputError:
        return None
    same = (
        old.harness_version == __version__
        and (old.model.fingerprint, old.model.settings) == (model.fingerprint, model.settings)
        and replace(old.task, source=task.source) == task  # the same data read from elsewhere
        and replace(old.retrieval, index=retrieval.index) == retrieval
    )
    return replace(old, reused=True) if same else None


def result_from_dict(data: Any, file: str = "<memory>") -> Result:
    """Validate a decoded results document; raises InputError naming file and field."""
    if not isinstance(data, dict):
        raise InputError("top level must be a JSON object", file=file)
    for key, kind in (("schema_version", int), ("model", dict), ("task", dict), ("retrieval", dict)):
        if not isinstance(data.get(key), kind) or isinstance(data[key], bool):
            found = (
                "missing" if key not in data else f"expected {kind.__name__}, got {type(data[key]).__name__}"
            )
            raise InputError(found, file=file, field=key)
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise InputError(
            f"unsupported schema version {version} (this harness reads {SCHEMA_VERSION})",
            file=file,
            field="schema_version",
        )
    task = TaskRecord.from_dict(data["task"], file)
    raw_subsets = data.get("subsets")
    if not isinstance(raw_subsets, list) or not raw_subsets:
        raise InputError("must be a list of at least one subset", file=file, field="subsets")
    subsets = []
    for i, raw in enumerate(raw_subsets):
        subset = SubsetScores.from_dict(raw, file, f"subsets[{i}].")
        if task.main_metric not in subset.metrics(task.convention):
            raise InputError(
                f"main metric {task.main_metric!r} missing from the {task.convention} table",
                file=file,
                field=f"subsets[{i}].{task.convention}",
            )
        subsets.append(subset)
    for key in ("created", "harness_version"):
        if not isinstance(data.get(key), str):
            raise InputError("missing" if key not in data else "expected str", file=file, field=key)
    result = Result(
        model=ModelRecord.from_dict(data["model"], file),
        task=task,
        retrieval=RetrievalRecord.from_dict(data["retrieval"], file),
        subsets=tuple(subsets),
        settings=data.get("settings") or {},
        timings=data.get("timings") or {},
        tokens=data.get("tokens") or {},
        published=data.get("published"),
        efficiency=None
        if data.get("efficiency") is None
        else EfficiencyRecord.from_dict(data["efficiency"], file),
        fidelity=None if data.get("fidelity") is None else FidelityRecord.from_dict(data["fidelity"], file),
        environment=data.get("environment") or {},
        created=data["created"],
        harness_version=data["harness_version"],
        schema_version=version,
    )
    stored = data.get("main_score")
    if stored is not None and (
        not isinstance(stored, (int, float)) or abs(stored - result.main_score) > 1e-12
    ):
        raise InputError(
            f"{stored!r} disagrees with the subsets' mean {result.main_score!r}",
            file=file,
            field="main_score",
        )
    return result


def read_json(path: Path, what: str = "results file") -> Any:
    """A JSON document (``NaN`` accepted, as Python's json does); a missing file or invalid JSON is
    an InputError naming ``what`` / the file, line and column."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON: {exc.msg} (column {exc.colno})", file=str(path), line=exc.lineno
        ) from None


def load_result(path: str | Path) -> Result:
    """Read and validate one results file (a folder is an InputError: see :func:`load_results`)."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder: load_results reads the results files in a folder", file=str(path))
    return replace(result_from_dict(read_json(path), str(path)), file=path)


class Results(list[Result]):
    """Results files as loaded (a list), with a pandas view."""

    def to_dataframe(self, *, wide: bool = False) -> Any:
        """Long (default): one row per model x task x subset x convention x metric, columns
        ``model, task, subset, convention, metric, value, published`` (``published``: the row comes
        from a figure transcribed from a model card). ``wide=True``: one row per (model, published),
        one column per task, the task's main score (the unweighted mean of its subsets' main metric).
        """
        import pandas as pd

        if wide:
            columns = ["model", "published", "task", "value"]
            wide_rows = [(r.model_id, r.published is not None, r.task_name, r.main_score) for r in self]
            frame = pd.DataFrame(wide_rows, columns=columns)
            return frame.pivot_table(index=columns[:2], columns="task", values="value", aggfunc="last")
        rows = [
            (r.model_id, r.task_name, s.name, convention, metric, value, r.published is not None)
            for r in self
            for s in r.subsets
            for convention in ("card", "trec")
            for metric, value in (s.metrics(convention) or {}).items()
        ]
        columns = ["model", "task", "subset", "convention", "metric", "value", "published"]
        return pd.DataFrame(rows, columns=columns)


def load_results(paths: str | Path | Iterable[str | Path]) -> Results:
    """Load files and every ``*.json`` under given folders (one path or several), sorted by path,
    each file once. In a folder, a JSON file that is not a results file (an object with neither
    ``schema_version`` nor ``model`` and ``task``, such as a ``harness check`` report) is skipped
    with a note; a results file that does not validate, a damaged one included, is an error."""
    out = Results()
    seen: set[Path] = set()  # a file named twice (a folder and its subfolder) is loaded once
    for path in map(Path, [paths] if isinstance(paths, (str, Path)) else paths):
        if not path.is_dir():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                out.append(load_result(path))
            continue
        for file in sorted(path.rglob("*.json")):
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            data = read_json(file)
            if isinstance(data, dict) and not ({"schema_version", "model", "task"} & set(data)):
                log.warning("%s: not a results file (no schema_version), skipped", file)
                continue
            out.append(replace(result_from_dict(data, str(file)), file=file))
    return out
