"""Why two results of one task differ (``harness explain``): :func:`explain` lists every recorded
setting that differs, named as the flag that sets it (:class:`Difference`), the data each side saw
(:class:`SubsetComparison`), the metric conventions, the per-query delta distribution (B - A) with
a stratified bootstrap CI and paired tests (aligned as ``harness check`` aligns them:
``harness.check.compare``), and the subsets and queries that move the task score most.

A published row (a figure transcribed, no settings or per-query scores recorded) is compared on its
task fields only, and the run beside it against what the model registry records for the row's model
(:class:`RegistryCheck`: loader overrides, pinned revision, kind). It explains; it never judges."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.check.compare import aligned_differences, delta_ci, reweighted
from harness.errors import InputError
from harness.models import find_model, find_model_by_hub_id
from harness.report.catalogue import is_published
from harness.results import Result
from harness.settings import EvalSettings, flag_of
from harness.stats import paired_t_test, sign_flip_test

# EvalSettings fields that say where files go or how the work is spread, never what is computed
# (neither the embedding cache's key nor the reuse check of a results file looks at them).
BOOKKEEPING = frozenset(
    ("output_dir", "cache_dir", "data_dir", "overwrite", "save_run", "show_progress", "model_name")
    + ("batch_size", "max_memory", "attention", "kernels", "executor", "ray_address", "workers")
    + ("shard_size", "pylate_chunk_size", "latency_queries")
)
LOADER_SETTINGS = ("document_length", "query_length", "query_prompt", "document_prompt")
TASK_FIELDS = ("split", "convention", "main_metric", "ignore_identical_ids")
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)  # 0% and 100%: the extremes
_FIELDS = frozenset(f.name for f in dataclasses.fields(EvalSettings))
_ABSENT = object()


@dataclass(frozen=True)
class Difference:
    """A setting that differs: ``name`` (its flag's, or the record field's last part), A's and B's
    value (the effective one a record holds before the flag as typed; None where not recorded), the
    fields that differ and whether it can change the scores (False: bookkeeping, the same effective
    value asked for differently, or another name of the same weights: equal fingerprints)."""

    name: str
    a: Any
    b: Any
    fields: tuple[str, ...]
    changes_scores: bool


@dataclass(frozen=True)
class RegistryDifference:
    """A run's setting against a published row's registry entry: what the run asked for (None: the
    checkpoint's own), what the registry records (None: the checkpoint's own) and what the run's
    model recorded it ran with (None: not recorded)."""

    name: str
    run: Any
    registry: Any
    ran_with: Any = None


@dataclass(frozen=True)
class RegistryCheck:
    """The run against the registry entry of the published row's model (``entry`` None: the row's
    model is not registered, so there is nothing to compare)."""

    row_model: str
    entry: str | None
    hub_id: str | None
    differences: tuple[RegistryDifference, ...]


@dataclass(frozen=True)
class SubsetComparison:
    """One subset on both sides: queries scored (None: not on that side or not recorded), whether the
    data fingerprints agree (same, differs, unknown) and the main metric on each side."""

    name: str
    n_queries: tuple[int | None, int | None]
    fingerprint: str
    scores: tuple[float | None, float | None]

    @property
    def delta(self) -> float | None:
        a, b = self.scores
        return None if a is None or b is None else b - a


@dataclass(frozen=True)
class DeltaStats:
    """Per-query deltas (B - A) over the paired queries: ``mean`` is the task score's delta over them
    (subsets weighted as the task score weights them) with its 95% stratified bootstrap CI and the
    paired tests' p-values; the quantiles (``QUANTILES``) and the counts of queries better, worse
    and equal in B are of the raw deltas."""

    n_paired: int
    mean: float
    ci95: tuple[float, float]
    t_pvalue: float | None  # None: undefined (all deltas equal)
    permutation_pvalue: float | None
    quantiles: Mapping[str, float]
    better_worse_equal: tuple[int, int, int]


@dataclass(frozen=True)
class Mover:
    """A subset (``query`` None) or query and its share of the task score's delta (``contribution``;
    the contributions of all paired queries sum to the mean delta)."""

    subset: str
    query: str | None
    a: float
    b: float
    contribution: float


@dataclass(frozen=True)
class Side:
    """What one side is: its file (or model id), model, task score, convention and main metric."""

    label: str
    model: str
    score: float
    published: bool
    convention: str
    main_metric: str
    source: str


@dataclass(frozen=True)
class Explanation:
    """Everything :func:`explain` found (module docstring); ``delta`` is B's task score minus A's."""

    task: str
    a: Side
    b: Side
    differences: tuple[Difference, ...]
    registry: RegistryCheck | None
    subsets: tuple[SubsetComparison, ...]
    a_in_b_metric: float | None  # A's task score in B's convention and metric when theirs differ
    deltas: DeltaStats | None
    top_subsets: tuple[Mover, ...]
    top_queries: tuple[Mover, ...]
    notes: tuple[str, ...]

    @property
    def delta(self) -> float:
        return self.b.score - self.a.score

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``json.dumps`` (tuples become lists), with ``delta``."""
        return dataclasses.asdict(self) | {"delta": self.delta}


def explain(a: Result, b: Result, *, top: int = 10, n_resamples: int = 2000, seed: int = 0) -> Explanation:
    """Why ``b``'s score differs from ``a``'s (module docstring); InputError when they are results of
    different tasks. ``top`` bounds the subsets and queries listed; ``n_resamples`` and ``seed`` are
    the bootstrap's (the sign-flip test takes its defaults, seeded alike)."""
    if a.task_name != b.task_name:
        raise InputError(
            f"A is a result of task {a.task_name!r}, B of task {b.task_name!r}: explain compares two "
            "results of one task"
        )
    notes: list[str] = []
    deltas, queries = _per_query(a, b, top, n_resamples, seed, notes)
    subsets = subset_comparisons(a, b)
    return Explanation(
        task=a.task_name,
        a=_side(a),
        b=_side(b),
        differences=tuple(setting_differences(a, b)),
        registry=registry_check(a, b),
        subsets=tuple(subsets),
        a_in_b_metric=_score_in(a, b.task.convention, b.task.main_metric),
        deltas=deltas,
        top_subsets=tuple(_subset_movers(subsets, top)),
        top_queries=tuple(queries),
        notes=tuple(notes),
    )


def recorded_settings(result: Result) -> dict[str, Any]:
    """Every setting a result records, by field path: the model's identity and settings, the
    retrieval's method, depth and parameters, the task's split and conventions, then the run's
    settings (``settings.<field>``; nested objects flattened with dots)."""
    m, r, t = result.model, result.retrieval, result.task
    fields: dict[str, Any] = {"model.id": m.id, "model.revision": m.revision, "model.kind": m.kind}
    fields |= {"model.fingerprint": m.fingerprint, **_flat("model.settings", m.settings)}
    fields |= {"retrieval.method": r.method, "retrieval.k": r.k, **_flat("retrieval", r.params)}
    fields |= {f"task.{name}": getattr(t, name) for name in TASK_FIELDS}
    return fields | _flat("settings", result.settings)


def setting_name(path: str) -> str:
    """The name a field path goes by: a run setting's flag (``settings.plaid_nbits`` -> ``nbits``),
    ``model`` for ``model.id``, else the path's last part (``retrieval.k`` -> ``k``)."""
    if path == "model.id":
        return "model"
    head, _, leaf = path.rpartition(".")
    if head == "settings" and leaf in _FIELDS:
        return flag_of(leaf).lstrip("-").replace("-", "_")
    return leaf


def setting_values(result: Result) -> dict[str, Any]:
    """Each setting name's value (:func:`setting_name`): a record's (the effective value) before the
    run's flag as typed."""
    values: dict[str, Any] = {}
    for path, value in recorded_settings(result).items():
        values.setdefault(setting_name(path), value)
    return values


def setting_differences(a: Result, b: Result) -> list[Difference]:
    """The settings that differ, those that can change the scores first. With a published row on
    either side only the task's fields are compared (a row records no settings)."""
    fa, fb = recorded_settings(a), recorded_settings(b)
    if is_published(a) or is_published(b):  # the task's fields that both record
        shared = [p for p in fa if p.startswith("task.") and None not in (fa[p], fb.get(p))]
        fa, fb = {p: fa[p] for p in shared}, {p: fb[p] for p in shared}
    weights = fa.get("model.fingerprint")
    renamed = weights is not None and weights == fb.get("model.fingerprint")  # model: only its name
    by_name: dict[str, list[str]] = {}
    for path in dict.fromkeys([*fa, *fb]):
        by_name.setdefault(setting_name(path), []).append(path)
    out = []
    for name, paths in by_name.items():
        differing = [p for p in paths if fa.get(p, _ABSENT) != fb.get(p, _ABSENT)]
        if differing:
            shown = differing[0]  # a record's field comes before the run setting's
            records = [p for p in paths if not p.startswith("settings.")]
            leaf = shown.rpartition(".")[2]
            changes = any(p in differing for p in records) or (not records and leaf not in BOOKKEEPING)
            changes = changes and not (name == "model" and renamed)
            out.append(Difference(name, fa.get(shown), fb.get(shown), tuple(differing), changes))
    return sorted(out, key=lambda d: not d.changes_scores)


def distinguishing_settings(results: Iterable[Result]) -> list[str]:
    """The setting names that can change the scores and tell apart runs (published rows left out) of
    one model and task, in the order found: what a listing needs beyond model and task."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        if not is_published(r):
            groups.setdefault((r.model_id, r.task_name), []).append(r)
    names: dict[str, None] = {}
    for runs in groups.values():
        for other in runs[1:]:
            names |= {d.name: None for d in setting_differences(runs[0], other) if d.changes_scores}
    return list(names)


def subset_comparisons(a: Result, b: Result) -> list[SubsetComparison]:
    """A's subsets then B's others: queries, data fingerprints and main metric on each side."""
    out = []
    for name in dict.fromkeys(s.name for s in (*a.subsets, *b.subsets)):
        fingerprints = (a.task.dataset_fingerprints.get(name), b.task.dataset_fingerprints.get(name))
        same = "unknown" if None in fingerprints else "same" if len(set(fingerprints)) == 1 else "differs"
        (qa, sa), (qb, sb) = _subset_side(a, name), _subset_side(b, name)
        out.append(SubsetComparison(name, (qa, qb), same, (sa, sb)))
    return out


def _subset_side(result: Result, name: str) -> tuple[int | None, float | None]:
    """(queries scored, main metric) of subset ``name`` of ``result``; None where not known."""
    subset = next((s for s in result.subsets if s.name == name), None)
    if subset is None:
        return None, None
    score = subset.metrics(result.task.convention).get(result.task.main_metric)
    return (None if is_published(result) else subset.n_queries), score


def registry_check(a: Result, b: Result) -> RegistryCheck | None:
    """When one of ``a``, ``b`` is a published row, the other (a run) against what the model registry
    records for the row's model: loader overrides (what the run asked for: its own entry's overrides,
    then its flags; against what it ran with where recorded), pinned revision, kind and checkpoint.
    None unless exactly one side is a published row."""
    if is_published(a) == is_published(b):
        return None
    run, row = (b, a) if is_published(a) else (a, b)
    info = find_model(row.model_id)
    if info is None:
        return RegistryCheck(row.model_id, None, None, ())
    asked, used = _asked_overrides(run), run.model.settings
    found = []
    for key in dict.fromkeys([*info.overrides, *LOADER_SETTINGS]):
        expected = info.overrides.get(key)
        ran = used.get(key, asked.get(key)) if expected is not None else asked.get(key)
        if ran != expected:
            found.append(RegistryDifference(key, asked.get(key), expected, used.get(key)))
    if info.revision and run.model.revision != info.revision:
        found.append(RegistryDifference("revision", run.model.revision, info.revision))
    if run.model.kind != info.kind:
        found.append(RegistryDifference("kind", run.model.kind, info.kind))
    own = find_model(run.model_id) or find_model_by_hub_id(run.model_id)
    if (own.hub_id if own else run.model_id).lower() != info.hub_id.lower():
        found.append(RegistryDifference("model", run.model_id, info.hub_id))
    return RegistryCheck(row.model_id, info.name, info.hub_id, tuple(found))


def _asked_overrides(run: Result) -> dict[str, Any]:
    """What a run asked of the loader on top of its checkpoint: its registry entry's overrides (a
    registered name loads with them), then the loader flags it set."""
    info = find_model(run.model_id)
    asked = dict(info.overrides) if info else {}
    return asked | {k: run.settings[k] for k in LOADER_SETTINGS if run.settings.get(k) is not None}


def _per_query(
    a: Result, b: Result, top: int, n_resamples: int, seed: int, notes: list[str]
) -> tuple[DeltaStats | None, list[Mover]]:
    """The paired statistics and top queries; a note says why there are none."""
    missing = [side for side, r in (("A", a), ("B", b)) if not any(s.per_query for s in r.subsets)]
    if missing:
        notes.append(f"no per-query scores in {' and '.join(missing)}: no per-query deltas or tests")
        return None, []
    if (a.task.convention, a.task.main_metric) != (b.task.convention, b.task.main_metric):
        notes.append("the main metrics differ: per-query scores are not comparable, no paired tests")
        return None, []
    parts, align_notes = aligned_differences(a, b)
    notes.extend(align_notes)
    d = reweighted(parts)
    if len(d) < 2:
        notes.append("fewer than 2 queries scored on both sides: no paired tests")
        return None, []
    raw = np.concatenate(parts)
    stats = DeltaStats(
        n_paired=len(d),
        mean=float(np.mean(d)),
        ci95=delta_ci(parts, 0.95, n_resamples, seed),
        t_pvalue=None if math.isnan(p := paired_t_test(d)) else p,
        permutation_pvalue=None if math.isnan(p := sign_flip_test(d, seed=seed)) else p,
        quantiles={f"{q:.0%}": float(v) for q, v in zip(QUANTILES, np.quantile(raw, QUANTILES), strict=True)},
        better_worse_equal=(int(np.sum(raw > 0)), int(np.sum(raw < 0)), int(np.sum(raw == 0))),
    )
    return stats, _query_movers(a, b, top)


def _query_movers(a: Result, b: Result, top: int) -> list[Mover]:
    """The ``top`` queries of the largest share (not 0) of the task delta: ``d_q / (S * n_s)`` over the S
    subsets with paired queries (n_s of them in the query's subset)."""
    pb = {s.name: s.per_query for s in b.subsets}
    paired = {
        s.name: [(q, v, pb[s.name][q]) for q, v in s.per_query.items() if q in pb[s.name]]
        for s in a.subsets
        if s.name in pb
    }
    paired = {name: rows for name, rows in paired.items() if rows}
    movers = [
        Mover(name, q, va, vb, (vb - va) / (len(paired) * len(rows)))
        for name, rows in paired.items()
        for q, va, vb in rows
    ]
    return sorted((m for m in movers if m.contribution), key=lambda m: -abs(m.contribution))[:top]


def _subset_movers(subsets: list[SubsetComparison], top: int) -> list[Mover]:
    """The ``top`` subsets scored on both sides by the size of their share (not 0) of the task delta."""
    both = [(s.name, a, b) for s in subsets for a, b in [s.scores] if a is not None and b is not None]
    movers = [Mover(name, None, a, b, (b - a) / len(both)) for name, a, b in both]
    return sorted((m for m in movers if m.contribution), key=lambda m: -abs(m.contribution))[:top]


def _score_in(result: Result, convention: str, metric: str) -> float | None:
    """``result``'s task score in another convention and metric, when those differ from its own and
    every subset records it; else None."""
    if (result.task.convention, result.task.main_metric) == (convention, metric):
        return None
    values = [s.metrics(convention).get(metric) for s in result.subsets]
    return None if any(v is None for v in values) else float(np.mean(values))  # type: ignore[arg-type]


def _side(result: Result) -> Side:
    return Side(
        label=str(result.file) if result.file else result.model_id,
        model=result.model_id,
        score=result.main_score,
        published=is_published(result),
        convention=result.task.convention,
        main_metric=result.task.main_metric,
        source=(result.published or {}).get("source") or result.task.source,
    )


def _flat(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings as ``prefix.key.subkey`` -> value."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}.{key}"
        out |= _flat(path, value) if isinstance(value, Mapping) else {path: value}
    return out
