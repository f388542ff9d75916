"""BRIGHT (Su et al., "BRIGHT: A Realistic and Challenging Benchmark for Reasoning-Intensive
Retrieval", ICLR 2025, arXiv:2407.12883): 12 domains of ``xlangai/BRIGHT``, trec convention.

``BRIGHT/<domain>`` ranks the ``documents`` config (split ``standard``, relevant: ``gold_ids``),
main metric nDCG@10; ``BRIGHT-long/<domain>`` the ``long_documents`` config (split ``long``,
relevant: ``gold_ids_long``), which only the seven StackExchange domains and pony have, main metric
Recall@1: the paper's long-document metric (``xlang-ai/BRIGHT`` issue #22 asks for more) and the
main score of mteb's ``Bright<Domain>LongRetrieval``; nDCG@10 is recorded beside it. Queries are the
``examples`` config; configs are split by domain: ``documents/<domain>-*.parquet`` ``{id, content}``,
``examples/<domain>-*.parquet`` ``{id, query, gold_ids, gold_ids_long, excluded_ids, ...}``.

Protocol, as the official evaluation runs it (``xlang-ai/BRIGHT``: ``run.py``, ``retrievers.py``):
every gold id has relevance 1; each query's ``excluded_ids`` (``"N/A"``: none) are popped from its
scores before the ranking is sorted and cut (``get_scores``), so they count in no metric and the
ranking still holds its depth (``Dataset.excluded``, ``harness.ranking.drop_excluded``,
``harness.run.search_depth``); an excluded id that is also gold is an error (``run.py`` asserts it);
metrics are pytrec_eval's (``calculate_retrieval_metrics``), no identical-id rule.

Prompts: the official code gives instruction-following models a per-domain query instruction
(``configs/<model>/<domain>.json``; mteb's v1.1 tasks the same as task prompts). No registered model
defines per-domain prompts, so the harness applies each model's own prompts, as on every task.

Revision: the Hub repo's default branch, not pinned. MTEB's ``BrightRetrieval`` pins ``xlangai/BRIGHT`` at
``a75a0eb``, whose aops and theoremqa sets differ from the card's and the paper's counts below (mteb's
statistics of that revision: 188,113, 188,207 and 23,904 documents plus queries, against 188,288,
188,371 and 23,915 here), so that pin is not this task's data; the results record the data's
fingerprints, which tell revisions apart.

Sizes: documents from the dataset card's ``dataset_info`` (``xlangai/BRIGHT`` README on ``main``),
long documents from mteb's descriptive statistics of the ``Bright<Domain>LongRetrieval`` tasks, queries
from the card's per-domain example counts (1,384 in all, the paper's count). Revisions differ on
theoremqa (mteb's ``mteb/BRIGHT`` copy counts other query and document numbers there).

MTEB: the v1.1 tasks ``Bright<Domain>Retrieval`` (split ``standard``) and
``Bright<Domain>LongRetrieval`` (split ``long``) of ``mteb/tasks/retrieval/eng/bright_v1_1_retrieval.py``,
which rank every document but the excluded ones (``top_ranked``). The older ``BrightRetrieval`` /
``BrightLongRetrieval`` (one HF subset per domain) rank the excluded documents too, so their figures
are not this protocol's and are not mapped.

Published rows: Reason-ModernColBERT on the 12 domains (``results/published/``), MTEB's v1.1 figures
from its results repository (``sources/mteb``, ``results/published/transcribe_mteb.py``). The model's
card and the BRIGHT paper were not reachable when this was written, so their tables are not
transcribed; a card figure that differs from MTEB's (PyLate issue #209 on Biology) is another row,
another protocol, for ``harness explain``.

Local copy: ``DIR/BRIGHT`` holding a snapshot of the Hub repo (``examples/``, ``documents/``,
``long_documents/`` data files, with or without its README configs). The groups ``BRIGHT`` and
``BRIGHT-long`` are the report's fourth and fifth families.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness.data import Table, assemble, hf_table, id_text
from harness.errors import InputError
from harness.tasks import MtebTask, Task, TaskGroup
from harness.types import Dataset

REPO = "xlangai/BRIGHT"
FOLDER = "BRIGHT"
NONE = "N/A"  # ``excluded_ids`` of a query that excludes nothing (retrievers.py skips it)
# split -> (documents config, relevance column)
SPLITS = {"standard": ("documents", "gold_ids"), "long": ("long_documents", "gold_ids_long")}
# domain -> (MTEB's Bright<name>Retrieval, the paper's column label), in the paper's table order
DOMAINS = {
    "biology": ("Biology", "Bio."),
    "earth_science": ("EarthScience", "Earth."),
    "economics": ("Economics", "Econ."),
    "psychology": ("Psychology", "Psy."),
    "robotics": ("Robotics", "Rob."),
    "stackoverflow": ("Stackoverflow", "Stack."),
    "sustainable_living": ("SustainableLiving", "Sus."),
    "leetcode": ("Leetcode", "Leet."),
    "pony": ("Pony", "Pony"),
    "aops": ("Aops", "AoPS"),
    "theoremqa_questions": ("TheoremQAQuestions", "TheoQ."),
    "theoremqa_theorems": ("TheoremQATheorems", "TheoT."),
}
# domain -> (queries, documents, long documents or None): module docstring's sources
SIZES = {
    "biology": (103, 57_359, 524),
    "earth_science": (116, 121_249, 601),
    "economics": (103, 50_220, 516),
    "psychology": (101, 52_835, 512),
    "robotics": (101, 61_961, 508),
    "stackoverflow": (117, 107_081, 1_858),
    "sustainable_living": (108, 60_792, 554),
    "leetcode": (142, 413_932, None),
    "pony": (112, 7_894, 577),
    "aops": (111, 188_177, None),
    "theoremqa_questions": (194, 188_177, None),
    "theoremqa_theorems": (76, 23_839, None),
}
LONG = tuple(d for d, sizes in SIZES.items() if sizes[2] is not None)


def load_bright(
    domain: str,
    split: str = "standard",
    *,
    source: str | Path = REPO,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
) -> Dataset:
    """One BRIGHT domain (``xlangai/BRIGHT`` layout; ``source`` a Hub id or a snapshot folder) as a
    Dataset named ``domain``: split ``standard`` (``documents``, ``gold_ids``) or ``long``
    (``long_documents``, ``gold_ids_long``), with each query's ``excluded_ids`` as ``excluded``."""
    if split not in SPLITS:
        raise InputError(f"unknown BRIGHT split {split!r} (known: {', '.join(SPLITS)})", field="--split")
    config, gold = SPLITS[split]
    docs_where, ex_where = f"{source}:{config}/{domain}", f"{source}:examples/{domain}"
    docs = hf_table(source, config, domain, cache_dir, local_hint)
    examples = hf_table(source, "examples", domain, cache_dir, local_hint)
    corpus = id_text(_id_text(docs, docs_where, "content"), docs_where, "id")
    queries = id_text(_id_text(examples, ex_where, "query"), ex_where, "id")
    # id_text kept every row in order (a duplicate id is an error), so its keys line up with the rows
    golds, drops = _lists(examples, gold, ex_where), _lists(examples, "excluded_ids", ex_where)
    rows = list(zip(queries, golds, drops, strict=True))
    qrels = {qid: dict.fromkeys(golds, 1) for qid, golds, _ in rows if golds}
    excluded = {qid: [d for d in ids if d != NONE] for qid, _, ids in rows}
    return assemble(
        domain,
        corpus,
        queries,
        qrels,
        source=docs_where,
        qrels_where=f"{ex_where} ({gold})",
        excluded=excluded,
    )


def _id_text(table: Table, where: str, text_col: str) -> Table:
    """``{id, text}`` columns for :func:`id_text`, the text read from ``text_col``."""
    for col in ("id", text_col):
        if col not in table:
            raise InputError(f"missing column (columns: {sorted(table)})", file=where, field=col)
    return {"id": table["id"], "text": table[text_col]}


def _lists(table: Table, col: str, where: str) -> list[list[str]]:
    """Column ``col`` of lists of string ids, one list per row (InputError naming the row)."""
    if col not in table:
        raise InputError(f"missing column (columns: {sorted(table)})", file=where, field=col)
    for row, ids in enumerate(table[col], 1):
        if not isinstance(ids, list) or not all(isinstance(d, str) and d for d in ids):
            raise InputError("expected a list of non-empty string ids", file=where, line=row, field=col)
    return table[col]


def _load(domain: str, own: str, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    if split != own:
        sibling = "BRIGHT-long" if own == "standard" else "BRIGHT"
        raise InputError(
            f"BRIGHT tasks have one split each ({own!r} here); split {split!r}: the {sibling} tasks",
            field="--split",
        )
    hint = f"DIR/{FOLDER}/ holding a snapshot of {REPO} (examples/, documents/, long_documents/ files)"
    return [load_bright(domain, split, source=local or REPO, cache_dir=cache_dir, local_hint=hint)]


def _task(domain: str, split: str) -> Task:
    mteb_name, label = DOMAINS[domain]
    queries, documents, long_documents = SIZES[domain]
    long = split == "long"
    return Task(
        name=f"BRIGHT{'-long' if long else ''}/{domain}",
        folder_name=FOLDER,
        convention="trec",
        main_metric="recall@1" if long else "ndcg@10",
        eval_split=split,
        ignore_identical_ids=False,
        loader=partial(_load, domain, split),
        description=f"BRIGHT {domain} ({REPO}, {SPLITS[split][0]})",
        label=label,
        n_queries=queries,
        n_documents=long_documents if long else documents,
        mteb=(MtebTask(f"Bright{mteb_name}{'Long' if long else ''}Retrieval", ((split, domain),)),),
    )


def register() -> list[Task | TaskGroup]:
    standard = [_task(d, "standard") for d in DOMAINS]
    long = [_task(d, "long") for d in LONG]
    return [
        *standard,
        *long,
        TaskGroup("BRIGHT", tuple(t.name for t in standard), report_order=3),
        TaskGroup("BRIGHT-long", tuple(t.name for t in long), report_order=4),
    ]
