"""LongEmbed (Zhu et al., "LongEmbed", EMNLP 2024): 6 long-document tasks
``LongEmbed/<config>`` from ``dwzhu/LongEmbed``.

narrativeqa, summ_screen_fd, qmsum, 2wikimqa: nDCG@10. passkey, needle: nDCG@1, one subset
per context length (256 ... 32768), task score = mean over the 8. Trec convention.
Local copy: ``DIR/LongEmbed`` holding a snapshot of the HF repo (``<config>/corpus.jsonl``,
``queries.jsonl``, ``qrels.jsonl`` or parquet files, with or without its README configs).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness.data import LONGEMBED_REPO, LONGEMBED_SYNTHETIC, load_longembed
from harness.tasks import Task, TaskGroup
from harness.types import Dataset

CONFIGS = ("narrativeqa", "summ_screen_fd", "qmsum", "2wikimqa", "passkey", "needle")
FOLDER = "LongEmbed"
# (queries, documents) over all subsets: Zhu et al., "LongEmbed", 2024, Table 1 (passkey / needle:
# 50 queries and 100 documents at each of the 8 lengths)
SIZES = {
    "narrativeqa": (10_449, 355),
    "summ_screen_fd": (336, 336),
    "qmsum": (1_527, 197),
    "2wikimqa": (300, 300),
    "passkey": (400, 800),
    "needle": (400, 800),
}


def _load(config: str, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    # LongEmbed has one evaluation split per config; ``split`` is accepted for the Task contract.
    hint = f"DIR/{FOLDER}/ holding a snapshot of {LONGEMBED_REPO} ({config}/corpus.jsonl, queries.jsonl, ...)"
    return load_longembed(config, source=local or LONGEMBED_REPO, cache_dir=cache_dir, local_hint=hint)


def register() -> list[Task | TaskGroup]:
    tasks = [
        Task(
            name=f"LongEmbed/{c}",
            folder_name=FOLDER,
            convention="trec",
            main_metric="ndcg@1" if c in LONGEMBED_SYNTHETIC else "ndcg@10",
            eval_split="test",
            ignore_identical_ids=False,
            loader=partial(_load, c),
            description=f"LongEmbed {c}" + (" (8 context lengths, mean)" if c in LONGEMBED_SYNTHETIC else ""),
            n_queries=SIZES[c][0],
            n_documents=SIZES[c][1],
        )
        for c in CONFIGS
    ]
    return [*tasks, TaskGroup("LongEmbed", tuple(t.name for t in tasks))]
