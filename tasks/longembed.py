"""LongEmbed (Zhu et al., "LongEmbed", EMNLP 2024): 6 long-document tasks
``LongEmbed/<config>`` from ``dwzhu/LongEmbed``.

narrativeqa, summ_screen_fd, qmsum, 2wikimqa: nDCG@10. passkey, needle: nDCG@1, one subset
per context length (256 ... 32768), task score = mean over the 8. Trec convention.
The Hub repo is read at the revision MTEB's ``LEMB*Retrieval`` tasks pin (``REVISION``, mteb 2.26;
its passkey task reads its own copy, ``mteb/LEMBPasskeyRetrieval``); the sizes below are also mteb's
statistics of its tasks, checked in ``tests/test_mteb_real.py``.
Local copy: ``DIR/LongEmbed`` holding a snapshot of the HF repo (``<config>/corpus.jsonl``,
``queries.jsonl``, ``qrels.jsonl`` or parquet files, with or without its README configs).
MTEB names them ``LEMB<Name>Retrieval``; LEMBPasskeyRetrieval and LEMBNeedleRetrieval have one split
per context length (``test_256`` ... ``test_32768``), summ_screen_fd is scored on ``validation``.
The group ``LongEmbed`` is the report's third family; the model card shows its average.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness.data import Table, assemble, hf_table, hub_source, id_text, qrels_rows
from harness.errors import InputError
from harness.tasks import MtebTask, Task, TaskGroup
from harness.types import Dataset

REPO = "dwzhu/LongEmbed"
REVISION = "6e346642246bfb4928c560ee08640dc84d074e8c"  # MTEB's pin of REPO (module docstring)
CONFIGS = ("narrativeqa", "summ_screen_fd", "qmsum", "2wikimqa", "passkey", "needle")
SYNTHETIC = ("passkey", "needle")  # one subset per context length, scored by nDCG@1
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
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
# config -> (MTEB's LEMB<name>Retrieval, the MTEB split of a real task)
MTEB = {
    "narrativeqa": ("NarrativeQA", "test"),
    "summ_screen_fd": ("SummScreenFD", "validation"),
    "qmsum": ("QMSum", "test"),
    "2wikimqa": ("WikimQA", "test"),
    "passkey": ("Passkey", "test"),
    "needle": ("Needle", "test"),
}


def load_longembed(
    config: str,
    *,
    source: str | Path = REPO,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
    revision: str | None = REVISION,
) -> list[Dataset]:
    """LongEmbed (``dwzhu/LongEmbed`` at ``revision``, or a snapshot folder): config = task, splits
    corpus ``{doc_id,text}``, queries ``{qid,text}``, qrels ``{qid,doc_id}`` (relevance 1).

    passkey / needle rows carry ``context_length``: one Dataset per length, named
    ``<config>_<length>``, in increasing length; other configs give one Dataset named ``config``.
    """
    src = f"{hub_source(source, revision)}:{config}"
    tables = {
        part: hf_table(source, config, part, cache_dir, local_hint, revision)
        for part in ("corpus", "queries", "qrels")
    }
    if config not in SYNTHETIC:
        corpus = id_text(tables["corpus"], f"{src}/corpus", "doc_id")
        queries = id_text(tables["queries"], f"{src}/queries", "qid")
        qrels = qrels_rows(tables["qrels"], f"{src}/qrels", "qid", "doc_id")
        return [assemble(config, corpus, queries, qrels, source=src, qrels_where=f"{src}/qrels")]
    parts = {s: _split_by_length(t, f"{src}/{s}") for s, t in tables.items()}
    lengths = sorted(set(parts["corpus"]) | set(parts["queries"]) | set(parts["qrels"]))
    out = []
    for length in lengths:
        where = {s: f"{src}/{s}[context_length={length}]" for s in parts}
        corpus = id_text(parts["corpus"].get(length, {}), where["corpus"], "doc_id")
        queries = id_text(parts["queries"].get(length, {}), where["queries"], "qid")
        qrels = qrels_rows(parts["qrels"].get(length, {}), where["qrels"], "qid", "doc_id")
        out.append(
            assemble(
                f"{config}_{length}",
                corpus,
                queries,
                qrels,
                source=f"{src} {length}",
                qrels_where=where["qrels"],
            )
        )
    return out


def _split_by_length(table: Table, where: str) -> dict[int, Table]:
    if "context_length" not in table:
        raise InputError("missing column", file=where, field="context_length")
    out: dict[int, Table] = {}
    for i, length in enumerate(table["context_length"]):
        part = out.setdefault(int(length), {col: [] for col in table})
        for col, values in table.items():
            part[col].append(values[i])
    return out


def _load(config: str, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    # LongEmbed has one evaluation split per config; ``split`` is accepted for the Task contract.
    hint = f"DIR/{FOLDER}/ holding a snapshot of {REPO} ({config}/corpus.jsonl, queries.jsonl, ...)"
    return load_longembed(config, source=local or REPO, cache_dir=cache_dir, local_hint=hint)


def _mteb(config: str) -> MtebTask:
    name, split = MTEB[config]
    if config in SYNTHETIC:
        return MtebTask(f"LEMB{name}Retrieval", tuple((f"{split}_{n}", f"{config}_{n}") for n in LENGTHS))
    return MtebTask(f"LEMB{name}Retrieval", ((split, config),))


def register() -> list[Task | TaskGroup]:
    tasks = [
        Task(
            name=f"LongEmbed/{c}",
            folder_name=FOLDER,
            convention="trec",
            main_metric="ndcg@1" if c in SYNTHETIC else "ndcg@10",
            eval_split="test",
            ignore_identical_ids=False,
            loader=partial(_load, c),
            description=f"LongEmbed {c}" + (" (8 context lengths, mean)" if c in SYNTHETIC else ""),
            n_queries=SIZES[c][0],
            n_documents=SIZES[c][1],
            mteb=(_mteb(c),),
        )
        for c in CONFIGS
    ]
    names = tuple(t.name for t in tasks)
    return [*tasks, TaskGroup("LongEmbed", names, report_order=2, card_table="average")]
