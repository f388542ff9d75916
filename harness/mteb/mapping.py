"""What MTEB's results format and the harness share: the metric keys, the layout's placeholders, the
MTEB tasks of each harness task (read from the task registry: ``Task.mteb``) and the registered
model an MTEB model name stands for.

MTEB's results format (read from ``embeddings-benchmark/mteb``: ``mteb/results/task_result.py``
``TaskResult``, ``mteb/cache/result_cache.py``, ``mteb/_evaluators/retrieval_metrics.py``; and
from files in ``embeddings-benchmark/results``):

* Layout: ``<org>__<model>/<revision>/<TaskName>.json`` (``/`` -> ``__``, spaces -> ``_``;
  revision ``no_revision_available`` when unknown), beside ``model_meta.json`` (``ModelMeta.to_dict``:
  ``name`` as ``org/model``, ``revision``, ``n_parameters``, ``max_tokens``, ...). The results
  repository puts it under ``results/``.
* A TaskResult file: ``{"dataset_revision", "task_name", "mteb_version", "scores",
  "evaluation_time", "kg_co2_emissions", "date"}`` where ``scores`` is ``{split: [{metric: value,
  ..., "main_score", "hf_subset", "languages"}]}``, one dict per HF subset (``"default"`` for
  monolingual tasks; a domain or a language otherwise: LoTTE's ``writing_search``, MLDR's ``fr``),
  ``languages`` the subset's language-script codes (``TaskMetadata.hf_subsets_to_langscripts``).
  Files before mteb 1.11 instead hold ``mteb_dataset_name`` and ``{split: {metric: value}}`` at the
  top level (MTEB still reads them; so does this package).
* One MTEB task may hold several harness tasks, one per HF subset (``LoTTE``: one per domain and
  query set): the mapping is keyed by (MTEB name, HF subset).
* Retrieval metrics are fractions (0.76333, not 76.333) computed by pytrec_eval, i.e. the harness's
  *trec* convention: ``ndcg_at_k`` (ndcg_cut), ``map_at_k`` (map_cut, / |R|), ``recall_at_k``,
  ``precision_at_k`` (P), ``mrr_at_k`` (1 / rank of the first relevant doc within k) and
  ``hit_rate_at_k`` (a relevant doc within k; ``cv_recall_at_k`` in files before mteb's rename),
  for k in 1, 3, 5, 10, 20, 100, 1000: the harness keys ``ndcg@k``, ..., ``mrr@k`` and ``success@k``
  (:func:`harness_metric`: MTEB's hit rate is Success@k, LoTTE's main metric ``hit_rate_at_5``).
  Other keys are not rank metrics of the run (``nauc_*``: confidence-calibration scores, often
  ``NaN``; ``accuracy``: a copy of ``recall_at_1``).
* ``main_score`` copies the task's main metric (here: the harness task's ``main_metric`` under
  MTEB's key); where an MTEB task has several splits (one per harness subset, e.g. context
  lengths), the task score is the mean over the splits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.models import ModelInfo, list_models
from harness.tasks import list_groups, list_tasks, report_groups

SOURCE_PREFIX = "MTEB results: "  # how an imported row's ``published.source`` begins
NO_REVISION = "no_revision_available"  # MTEB's revision (folder and model_meta.json) for a model without one
BOOKKEEPING = ("main_score", "hf_subset", "languages", "mteb_version", "evaluation_time")  # not metrics
LONG_DOCUMENTS = "LongEmbed"  # the group whose MTEB figures are read at the model's max_tokens
LENGTH_OVERRIDES = ("document_length", "query_length")  # overrides that make a registered length variant
_MTEB_KEY = re.compile(r"(ndcg|map|recall|precision|mrr|hit_rate|cv_recall)_at_([1-9][0-9]*)")
_HARNESS_KEY = re.compile(r"(ndcg|map|recall|precision|mrr|success)@([1-9][0-9]*)")
# MTEB's metric name -> the harness's, where they differ. ``cv_recall`` is the hit rate's name in files
# written before mteb renamed it (embeddings-benchmark/mteb PR #4128: "cv_recall which is actually
# hit_rate", the LoTTE main score; PR #4142 renamed it), e.g. ColBERTv2's LoTTE.json (mteb 2.8.3).
_HARNESS_NAME = {"hit_rate": "success", "cv_recall": "success"}
_MTEB_NAME = {"success": "hit_rate"}  # what the exporter writes: the current name
ENGLISH = ("eng-Latn",)
# MTEB's language-script code of each language subset of a mapped task (its tasks' eval_langs;
# tests/test_mteb_real.py checks every mapped subset against the installed mteb); other subsets
# ("default", LoTTE's domains) are English
_LANGUAGES = {
    "ar": "ara-Arab", "de": "deu-Latn", "en": "eng-Latn", "es": "spa-Latn", "fr": "fra-Latn",
    "hi": "hin-Deva", "it": "ita-Latn", "ja": "jpn-Jpan", "ko": "kor-Hang", "no": "nor-Latn",
    "pt": "por-Latn", "ru": "rus-Cyrl", "sv": "swe-Latn", "th": "tha-Thai", "zh": "cmn-Hans",
}  # fmt: skip
_KOREAN_KORE = "MultilingualNano"  # mteb's nanobeir_multilingual.py writes Korean as kor-Kore


def harness_metric(mteb_key: str) -> str | None:
    """The harness's trec-convention key of an MTEB metric key (``ndcg_at_20`` -> ``ndcg@20``,
    ``hit_rate_at_5`` -> ``success@5``), or None for a key that is not one of the shared rank
    metrics (``accuracy``, ``nauc_*``, ...)."""
    match = _MTEB_KEY.fullmatch(mteb_key)
    return f"{_HARNESS_NAME.get(match[1], match[1])}@{match[2]}" if match else None


def mteb_metric(harness_key: str) -> str | None:
    """MTEB's key of a harness trec-convention metric (``map@100`` -> ``map_at_100``, ``success@5``
    -> ``hit_rate_at_5``), or None."""
    match = _HARNESS_KEY.fullmatch(harness_key)
    return f"{_MTEB_NAME.get(match[1], match[1])}_at_{match[2]}" if match else None


def mteb_languages(mteb_task: str, hf_subset: str) -> tuple[str, ...]:
    """The ``languages`` MTEB writes for one HF subset of a mapped task (``("fra-Latn",)`` for MLDR's
    ``fr``); English for ``"default"`` and the other subsets that are no language code."""
    if hf_subset == "ko" and mteb_task.startswith(_KOREAN_KORE):
        return ("kor-Kore",)
    return (_LANGUAGES[hf_subset],) if hf_subset in _LANGUAGES else ENGLISH


@dataclass(frozen=True)
class MappedTask:
    """One MTEB task's HF subset and where its figures go: ``splits`` pairs each MTEB split (its
    ``hf_subset`` entry) with the subset of ``harness_task`` it scores; ``main_score`` is MTEB's main
    metric key, ``languages`` what MTEB writes as the subset's languages."""

    name: str
    harness_task: str
    splits: tuple[tuple[str, str], ...]
    main_score: str = "ndcg_at_10"
    hf_subset: str = "default"
    languages: tuple[str, ...] = ENGLISH

    @property
    def key(self) -> tuple[str, str]:
        """(MTEB name, HF subset): what the mapping is keyed by."""
        return self.name, self.hf_subset


def mteb_tasks() -> dict[tuple[str, str], MappedTask]:
    """(MTEB task name, HF subset) -> its mapping, over the registered tasks (registration order)."""
    mapped = (
        MappedTask(
            m.name,
            t.name,
            m.splits,
            mteb_metric(t.main_metric) or t.main_metric.replace("@", "_at_"),
            m.hf_subset,
            mteb_languages(m.name, m.hf_subset),
        )
        for t in list_tasks()
        for m in t.mteb
    )
    return {m.key: m for m in mapped}


def mteb_tasks_for(harness_task: str) -> tuple[MappedTask, ...]:
    """The MTEB tasks whose files make up one harness task (several when MTEB splits it), in order."""
    return tuple(t for t in mteb_tasks().values() if t.harness_task == harness_task)


def mapped_families() -> str:
    """The report families with MTEB tasks, for messages: ``"A, B"``."""
    mapped = {t.name for t in list_tasks() if t.mteb}
    return ", ".join(g.name for g in report_groups() if mapped & set(g.members))


def long_document_task(harness_task: str) -> bool:
    """Whether MTEB's figures of the task are read at the model's ``max_tokens`` (a LongEmbed task):
    they belong to the registered length variant at that length, not to the default-length model."""
    return harness_task in list_groups().get(LONG_DOCUMENTS, ())


def is_length_variant(info: ModelInfo) -> bool:
    """A registered entry loaded at another token length than the model's own (e.g. "(32k)")."""
    return any(key in info.overrides for key in LENGTH_OVERRIDES)


def registered_model(hub_id: str, *, document_length: int | None = None) -> ModelInfo | None:
    """The registered model MTEB's figures of ``hub_id`` are filed under, or None.

    With ``document_length``: the length variant of ``hub_id`` loaded at that many document tokens
    when one is registered (MTEB's GTE-ModernColBERT LongEmbed figure at 8192 -> its "(8k)" entry).
    Otherwise the entry loaded at the model's own lengths; prompt overrides do not count (MTEB
    applies a model's prompts too: ``ModelMeta.loader_kwargs``), the entry with fewest overrides
    wins."""
    entries = [m for m in list_models() if m.hub_id.lower() == hub_id.lower()]
    if document_length is not None:
        variant = next((m for m in entries if m.overrides.get("document_length") == document_length), None)
        if variant is not None:
            return variant
    plain = sorted((m for m in entries if not is_length_variant(m)), key=lambda m: len(m.overrides))
    return plain[0] if plain else None
