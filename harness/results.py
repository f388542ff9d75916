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
      "tokens": {"queries": int|null, "documents": int|null},
      "environment": {"python": str, "platform": str, "packages": {name: version}},
      "published": null | {"source": str, "note": str}  # figures transcribed, not run
    }

``main_score`` is recomputed on load and must agree with the subsets (1e-12),
so a hand-edited file cannot silently disagree with itself. The encode timings are the encoder's
seconds: measured by this run, or (``sources`` says "cache") carried from the cache entry that
measured them; ``index_build_s`` likewise for a reused PLAID index. A timing is null when unknown.
Everything but ``created``, ``timings`` and ``environment`` is the same for the same inputs.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.fileio import read_text, write_json_atomic
from harness.ranking import drop_identical_ids
from harness.runfile import write_trec_run
from harness.types import Run
from harness.version import __version__

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CONVENTIONS = ("card", "trec")
_TRACKED_PACKAGES = ("torch", "transformers", "numpy", "datasets", "safetensors", "tokenizers", "bm25s")


@dataclass
class SubsetScores:
    """Metrics of one subset (a whole dataset, a CQADupStack forum, a LongEmbed length)."""

    name: str
    n_queries: int
    card: dict[str, float] | None
    trec: dict[str, float] | None
    per_query: dict[str, float] = field(default_factory=dict)
    per_query_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def metrics(self, convention: str) -> dict[str, float]:
        table = self.card if convention == "card" else self.trec
        return table or {}


@dataclass
class Result:
    """One evaluation of one model on one task; see the module docstring for the schema."""

    model: dict[str, Any]
    task: dict[str, Any]
    retrieval: dict[str, Any]
    subsets: list[SubsetScores]
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float | None] = field(default_factory=dict)
    tokens: dict[str, int | None] = field(default_factory=dict)
    published: dict[str, str] | None = None
    environment: dict[str, Any] = field(default_factory=lambda: environment_info())
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    harness_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    reused: bool = field(default=False, compare=False)  # in memory only: a run returned this finished file

    @property
    def main_score(self) -> float:
        """Unweighted mean over subsets of the task's main metric in the task's convention."""
        convention, metric = self.task["convention"], self.task["main_metric"]
        values = [s.metrics(convention)[metric] for s in self.subsets]
        return sum(values) / len(values)

    @property
    def model_id(self) -> str:
        return self.model["id"]

    @property
    def task_name(self) -> str:
        return self.task["name"]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["reused"]
        for subset in out["subsets"]:
            if not subset["per_query_metrics"]:  # a published figure, a file of an earlier version
                del subset["per_query_metrics"]
        out["main_score"] = self.main_score
        order = [
            "schema_version",
            "harness_version",
            "created",
            "model",
            "task",
            "retrieval",
            "settings",
            "subsets",
            "main_score",
            "timings",
            "tokens",
            "environment",
            "published",
        ]
        return {key: out[key] for key in order}


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
        if result.task.get("ignore_identical_ids"):
            run = drop_identical_ids(run)
        write_trec_run(run, path.parent / "runs" / f"{path.stem}__{name}.trec", "harness")
    write_json_atomic(path, result.to_dict())
    return path


def load_reusable(
    path: Path, model: dict[str, Any], task: dict[str, Any], retrieval: dict[str, Any]
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
        and old.model.get("fingerprint") == model["fingerprint"]
        and old.model.get("settings") == model["settings"]
        and all(old.task.get(key) == value for key, value in task.items() if key != "source")
        and all(old.retrieval.get(key) == value for key, value in retrieval.items())
    )
    return old if same else None


def _require(data: dict, key: str, kind: type | tuple[type, ...], file: str, prefix: str = "") -> Any:
    name = f"{prefix}{key}"
    if not isinstance(data, dict) or key not in data:
        raise InputError("missing", file=file, field=name)
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise InputError(f"expected {_kind_name(kind)}, got {type(value).__name__}", file=file, field=name)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in _as_tuple(kind))


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


def result_from_dict(data: Any, file: str = "<memory>") -> Result:
    """Validate a decoded results document; raises InputError naming file and field."""
    if not isinstance(data, dict):
        raise InputError("top level must be a JSON object", file=file)
    version = _require(data, "schema_version", int, file)
    if version != SCHEMA_VERSION:
        raise InputError(
            f"unsupported schema version {version} (this harness reads {SCHEMA_VERSION})",
            file=file,
            field="schema_version",
        )
    model = _require(data, "model", dict, file)
    _require(model, "id", str, file, "model.")
    task = _require(data, "task", dict, file)
    for key in ("name", "convention", "main_metric", "split"):
        _require(task, key, str, file, "task.")
    if task["convention"] not in CONVENTIONS:
        raise InputError(f"must be one of {CONVENTIONS}", file=file, field="task.convention")
    retrieval = _require(data, "retrieval", dict, file)
    _require(retrieval, "method", str, file, "retrieval.")
    raw_subsets = _require(data, "subsets", list, file)
    if not raw_subsets:
        raise InputError("must hold at least one subset", file=file, field="subsets")
    subsets = []
    for i, raw in enumerate(raw_subsets):
        where = f"subsets[{i}]."
        per_query = _require(raw, "per_query", dict, file, where)
        subset = SubsetScores(
            name=_require(raw, "name", str, file, where),
            n_queries=_require(raw, "n_queries", int, file, where),
            card=_metric_table(raw.get("card"), file, where + "card"),
            trec=_metric_table(raw.get("trec"), file, where + "trec"),
            per_query=_metric_table(per_query, file, where + "per_query") or {},
            per_query_metrics=_per_query_metrics(raw.get("per_query_metrics"), file, where),
        )
        if task["main_metric"] not in subset.metrics(task["convention"]):
            raise InputError(
                f"main metric {task['main_metric']!r} missing from the {task['convention']} table",
                file=file,
                field=where + task["convention"],
            )
        subsets.append(subset)
    result = Result(
        model=model,
        task=task,
        retrieval=retrieval,
        subsets=subsets,
        settings=data.get("settings") or {},
        timings=data.get("timings") or {},
        tokens=data.get("tokens") or {},
        published=data.get("published"),
        environment=data.get("environment") or {},
        created=_require(data, "created", str, file),
        harness_version=_require(data, "harness_version", str, file),
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


def load_result(path: Path) -> Result:
    """Read and validate one results file."""
    return result_from_dict(read_json(Path(path)), str(path))


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


def load_results(paths: list[Path]) -> Results:
    """Load files and every ``*.json`` under given folders, sorted by path, each file once. In a
    folder, a JSON file that is not a results file (an object with neither ``schema_version`` nor
    ``model`` and ``task``, such as a ``harness check`` report) is skipped with a note; a results
    file that does not validate, a damaged one included, is an error."""
    out = Results()
    seen: set[Path] = set()  # a file named twice (a folder and its subfolder) is loaded once
    for path in map(Path, paths):
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
            out.append(result_from_dict(data, str(file)))
    return out
