"""What MTEB's results format and the harness share: the metric keys, the layout's placeholders, and
the MTEB tasks of each harness task (read from the task registry: ``Task.mteb``).

MTEB's results format (read from ``embeddings-benchmark/mteb``: ``mteb/results/task_result.py``
``TaskResult``, ``mteb/cache/result_cache.py``, ``mteb/_evaluators/retrieval_metrics.py``; and
from files in ``embeddings-benchmark/results``):

* Layout: ``<org>__<model>/<revision>/<TaskName>.json`` (``/`` -> ``__``, spaces -> ``_``;
  revision ``no_revision_available`` when unknown), beside ``model_meta.json`` (``ModelMeta.to_dict``:
  ``name``, ``revision``, ``n_parameters``, ...). The results repository puts it under ``results/``.
* A TaskResult file: ``{"dataset_revision", "task_name", "mteb_version", "scores",
  "evaluation_time", "kg_co2_emissions", "date"}`` where ``scores`` is ``{split: [{metric: value,
  ..., "main_score", "hf_subset", "languages"}]}``, one dict per HF subset (``"default"`` for
  monolingual tasks). Files before mteb 1.11 instead hold ``mteb_dataset_name`` and
  ``{split: {metric: value}}`` at the top level (MTEB still reads them; so does this package).
* Retrieval metrics are fractions (0.76333, not 76.333) computed by pytrec_eval, i.e. the harness's
  *trec* convention: ``ndcg_at_k`` (ndcg_cut), ``map_at_k`` (map_cut, / |R|), ``recall_at_k``,
  ``precision_at_k`` (P), for k in 1, 3, 5, 10, 20, 100, 1000, and ``mrr_at_k`` (1 / rank of the
  first relevant doc within k). Other keys (``nauc_*``, ``hit_rate_at_k``, ``accuracy``) are not
  harness metrics and are ignored; they may be ``NaN`` (non-standard JSON that MTEB writes).
* ``main_score`` copies the task's main metric (here: the harness task's ``main_metric`` under
  MTEB's key); where an MTEB task has several splits (one per harness subset, e.g. context
  lengths), the task score is the mean over the splits.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.metrics import TREC_K, TREC_MRR_K
from harness.tasks import list_tasks, report_groups

SOURCE_PREFIX = "MTEB results: "  # how an imported row's ``published.source`` begins
NO_REVISION = "no_revision_available"  # MTEB's revision folder for a model without one
# MTEB metric key -> the harness's trec-convention key (only metrics both sides compute).
METRICS = {
    **{f"{m}_at_{k}": f"{m}@{k}" for m in ("ndcg", "map", "recall", "precision") for k in TREC_K},
    f"mrr_at_{TREC_MRR_K}": f"mrr@{TREC_MRR_K}",
}
HARNESS_METRICS = {harness: mteb for mteb, harness in METRICS.items()}


@dataclass(frozen=True)
class MappedTask:
    """One MTEB task and where its figures go: ``splits`` pairs each MTEB split (its ``"default"``
    subset) with the subset of ``harness_task`` it scores; ``main_score`` is MTEB's main metric key."""

    name: str
    harness_task: str
    splits: tuple[tuple[str, str], ...]
    main_score: str = "ndcg_at_10"


def mteb_tasks() -> dict[str, MappedTask]:
    """MTEB task name -> its mapping, over the registered tasks (registration order)."""
    return {
        m.name: MappedTask(m.name, t.name, m.splits, t.main_metric.replace("@", "_at_"))
        for t in list_tasks()
        for m in t.mteb
    }


def mteb_tasks_for(harness_task: str) -> tuple[MappedTask, ...]:
    """The MTEB tasks whose files make up one harness task (several when MTEB splits it), in order."""
    return tuple(t for t in mteb_tasks().values() if t.harness_task == harness_task)


def mapped_families() -> str:
    """The report families with MTEB tasks, for messages: ``"A, B"``."""
    mapped = {t.name for t in list_tasks() if t.mteb}
    return ", ".join(g.name for g in report_groups() if mapped & set(g.members))
