"""Multilingual NanoBEIR: the 13 NanoBEIR samples (:mod:`tasks.nanobeir`) machine-translated, one Hub
repo per language in sentence-transformers' layout, evaluated as the model card evaluates English.

Task ``NanoBEIR-<lang>``: the 13 sets as subsets ``Nano<Name>``, model-card metrics, main metric
nDCG@10, task score their unweighted mean: what sentence-transformers'
``NanoBEIREvaluator(dataset_id=<repo>)`` reports as ``NanoBEIR_mean_..._ndcg@10``
(``sentence_transformers/evaluation/NanoBEIREvaluator.py``: configs corpus/queries/qrels, one split
``Nano<Name>`` per set; the NanoBEIR rules of :func:`tasks.nanobeir.load_nanobeir` apply).

Repos: ``sentence-transformers/NanoBEIR-en`` (the evaluator's default) and ``lightonai/NanoBEIR-<lang>``
(its documented translation, ``lightonai/NanoBEIR-de``, and the same name for ar, es, fr, it, no, pt,
sv); ja and ko are LiquidAI's ``LiquidAI/NanoBEIR-<lang>``. Where each id comes from: en and de from
``NanoBEIREvaluator``'s docstring (sentence-transformers 5.3), ja from sentence-transformers'
``examples/sentence_transformer/evaluation/evaluation_nano_dense_multidataset_macro.py``; the other
eight from the ``mnanobeir`` list of ``examples/sentence_transformer/evaluation/nano_eval.py`` in a
contributor's fork (``hotchpotch/sentence-transformers``), not yet from a release: unconfirmed until
one of them loads. The languages are those of MTEB's
``MultilingualNano<Name>Retrieval`` tasks (``mteb/tasks/retrieval/multilingual/nanobeir_multilingual.py``,
one HF subset per language, split ``test``), built from ``LiquidAI/nanobeir-multilingual-extended``:
an imported MTEB figure is this task's only where that copy holds the same translation.

Sizes: 649 queries and 56,723 documents in every language, counted from mteb's descriptive statistics
of the 13 ``MultilingualNano*Retrieval`` tasks (the English NanoBEIR's counts; empty texts, which the
card's rules drop, would lower what a run reads).

Local copy: ``DIR/NanoBEIR-<lang>`` holding a snapshot of the repo (``corpus/``, ``queries/``,
``qrels/`` data files named by split, with or without its README configs). The group
``NanoBEIR-multilingual`` is the report's family after MLDR's.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness.errors import InputError
from harness.tasks import MtebTask, Task, TaskGroup
from harness.types import Dataset
from tasks.nanobeir import MTEB_KEYS, NAMES, load_nanobeir

SPLIT = "test"  # MTEB's; the repos have one evaluation set per language
REPOS = {
    "ar": "lightonai/NanoBEIR-ar",
    "de": "lightonai/NanoBEIR-de",
    "en": "sentence-transformers/NanoBEIR-en",
    "es": "lightonai/NanoBEIR-es",
    "fr": "lightonai/NanoBEIR-fr",
    "it": "lightonai/NanoBEIR-it",
    "ja": "LiquidAI/NanoBEIR-ja",
    "ko": "LiquidAI/NanoBEIR-ko",
    "no": "lightonai/NanoBEIR-no",
    "pt": "lightonai/NanoBEIR-pt",
    "sv": "lightonai/NanoBEIR-sv",
}
QUERIES, DOCUMENTS = 649, 56_723  # per language: the module docstring's source


def _load(lang: str, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    if split != SPLIT:
        raise InputError(f"NanoBEIR-{lang} has one evaluation set (split {SPLIT!r})", field="--split")
    repo = REPOS[lang]
    hint = f"DIR/NanoBEIR-{lang}/ holding a snapshot of {repo} (corpus/, queries/, qrels/ files)"
    return [
        load_nanobeir(local or repo, f"Nano{n}", name=f"Nano{n}", cache_dir=cache_dir, local_hint=hint)
        for n in NAMES
    ]


def register() -> list[Task | TaskGroup]:
    tasks = [
        Task(
            name=f"NanoBEIR-{lang}",
            folder_name=f"NanoBEIR-{lang}",
            convention="card",
            main_metric="ndcg@10",
            eval_split=SPLIT,
            ignore_identical_ids=False,
            loader=partial(_load, lang),
            description=f"NanoBEIR in {lang} ({repo}, 13 sets, mean)",
            label=lang,
            n_queries=QUERIES,
            n_documents=DOCUMENTS,
            mteb=tuple(
                MtebTask(f"MultilingualNano{MTEB_KEYS.get(n, n)}Retrieval", ((SPLIT, f"Nano{n}"),), lang)
                for n in NAMES
            ),
        )
        for lang, repo in REPOS.items()
    ]
    return [*tasks, TaskGroup("NanoBEIR-multilingual", tuple(t.name for t in tasks), report_order=7)]
