"""NanoBEIR: the 13 small BEIR samples the model card evaluates (the ``zeta-alpha-ai/Nano*`` datasets;
sentence-transformers' ``NanoBEIREvaluator``).

Task ``Nano<Name>``: HF ``zeta-alpha-ai/Nano<Name>``, split ``train``, model-card metrics,
main metric nDCG@10. Local copy: ``DIR/Nano<Name>`` holding either a snapshot of the HF
repo (corpus/, queries/, qrels/ parquet files) or a BEIR folder (corpus.jsonl,
queries.jsonl, qrels/train.tsv); the NanoBEIR rules (drop empty texts) apply to both.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness.data import is_beir_folder, load_beir_folder, load_nanobeir
from harness.tasks import Task, TaskGroup
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
        )
        for n in NAMES
    ]
    return [*tasks, TaskGroup("NanoBEIR", tuple(t.name for t in tasks))]
