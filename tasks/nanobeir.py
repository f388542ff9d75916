"""NanoBEIR: the 13 small BEIR samples the model card evaluates (the ``zeta-alpha-ai/Nano*`` datasets;
sentence-transformers' ``NanoBEIREvaluator``).

Task ``Nano<Name>``: HF ``zeta-alpha-ai/Nano<Name>``, split ``train``, model-card metrics,
main metric nDCG@10. Local copy: ``DIR/Nano<Name>`` holding either a snapshot of the HF
repo (corpus/, queries/, qrels/ parquet files) or a BEIR folder (corpus.jsonl,
queries.jsonl, qrels/train.tsv); the NanoBEIR rules (drop empty texts) apply to both.
MTEB names them ``Nano<Name>Retrieval`` (``NanoClimateFeverRetrieval``, ``NanoQuoraRetrieval``).
The group ``NanoBEIR`` is the report's first family and the model card's metrics table.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness.data import (
    Table,
    assemble,
    drop_empty,
    hf_table,
    id_text,
    is_beir_folder,
    load_beir_folder,
    qrels_rows,
)
from harness.tasks import MtebTask, Task, TaskGroup
from harness.types import Dataset

HF_ORG = "zeta-alpha-ai"
# The model card's order (mxbai-edge-colbert-v0-17m's NanoBEIR table).
NAMES = (
    "ClimateFEVER",
    "DBPedia",
    "FEVER",
    "FiQA2018",
    "HotpotQA",
    "MSMARCO",
    "NFCorpus",
    "NQ",
    "QuoraRetrieval",
    "SCIDOCS",
    "ArguAna",
    "SciFact",
    "Touche2020",
)
SPLIT = "train"
# Published sizes (from the datasets on the Hub): queries 50 except Touche2020; documents where recorded.
QUERIES = {"Touche2020": 49}
DOCUMENTS = {
    "SciFact": 2_919,
    "NFCorpus": 2_953,
    "ClimateFEVER": 3_408,
    "DBPedia": 6_045,
    "FiQA2018": 4_598,
    "SCIDOCS": 2_210,
    "NQ": 5_035,
}
# MTEB's Nano<key>Retrieval where its key differs from ours (mteb/tasks/retrieval/eng/*.py)
MTEB_KEYS = {"ClimateFEVER": "ClimateFever", "QuoraRetrieval": "Quora"}


def load_nanobeir(
    source: str | Path,
    split: str = SPLIT,
    *,
    name: str | None = None,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
) -> Dataset:
    """NanoBEIR layout (``zeta-alpha-ai/Nano*``): configs corpus/queries/qrels, split ``train``.

    As sentence-transformers' ``NanoBEIREvaluator``: rows ``{_id, text}`` (no title), every
    qrels row ``{query-id, corpus-id}`` means relevance 1 (a score column is ignored), empty
    texts are dropped and queries without qrels are skipped. ``source`` is a Hub id or a
    local snapshot folder. sentence-transformers' own repos (``sentence-transformers/NanoBEIR-en``
    and the translations, :mod:`tasks.nanobeir_multilingual`) hold the 13 sets in one repo, one
    split ``Nano<Name>`` each, and may list several doc ids in one qrels row.
    """
    src = str(source)
    tables = {
        cfg: hf_table(source, cfg, split, cache_dir, local_hint) for cfg in ("corpus", "queries", "qrels")
    }
    corpus = id_text(tables["corpus"], f"{src}:corpus", "_id")
    queries = id_text(tables["queries"], f"{src}:queries", "_id")
    qrels = qrels_rows(
        _one_doc_per_row(tables["qrels"]), f"{src}:qrels", "query-id", "corpus-id", binary=True
    )
    corpus, queries, notes = drop_empty(corpus, queries, [])
    return assemble(
        name or Path(src).name, corpus, queries, qrels, source=src, qrels_where=f"{src}:qrels", notes=notes
    )


def _one_doc_per_row(table: Table) -> Table:
    """Qrels rows whose ``corpus-id`` is a list of doc ids (sentence-transformers' evaluator reads both
    forms) split into one row per doc."""
    if "query-id" not in table or not any(isinstance(d, list) for d in table.get("corpus-id", ())):
        return table  # nothing to split (a missing column is qrels_rows' error)
    rows = [
        (q, d)
        for q, docs in zip(table["query-id"], table["corpus-id"], strict=True)
        for d in (docs if isinstance(docs, list) else [docs])
    ]
    return {"query-id": [q for q, _ in rows], "corpus-id": [d for _, d in rows]}


def _load(task_name: str, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    if local is not None and is_beir_folder(local):
        return [load_beir_folder(local, split, name=task_name, nanobeir_rules=True)]
    hint = f"DIR/{task_name}/ holding a snapshot of {HF_ORG}/{task_name} (corpus/, queries/, qrels/ files)"
    source = local if local is not None else f"{HF_ORG}/{task_name}"
    return [load_nanobeir(source, split, name=task_name, cache_dir=cache_dir, local_hint=hint)]


def register() -> list[Task | TaskGroup]:
    tasks = [
        Task(
            name=f"Nano{n}",
            folder_name=f"Nano{n}",
            convention="card",
            main_metric="ndcg@10",
            eval_split=SPLIT,
            ignore_identical_ids=False,
            loader=partial(_load, f"Nano{n}"),
            description=f"NanoBEIR {n} ({HF_ORG}/Nano{n})",
            label=n,
            n_queries=QUERIES.get(n, 50),
            n_documents=DOCUMENTS.get(n),
            mteb=(MtebTask(f"Nano{MTEB_KEYS.get(n, n)}Retrieval", ((SPLIT, f"Nano{n}"),)),),
        )
        for n in NAMES
    ]
    names = tuple(t.name for t in tasks)
    return [*tasks, TaskGroup("NanoBEIR", names, report_order=0, card_table="metrics")]
