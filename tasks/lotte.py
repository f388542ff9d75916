"""LoTTE (Santhanam et al., "ColBERTv2: Effective and Efficient Retrieval via Lightweight Late
Interaction", NAACL 2022, Section 4): StackExchange answers in five topics, each asked by ``search``
queries (GooAQ) and ``forum`` queries (the forums' own question titles), with disjoint dev and test
corpora.

Task ``LoTTE/<domain>/<search|forum>``: one subset ``<domain>_<set>``, split ``test`` (``--split dev``
the dev corpus and questions). ``LoTTE/pooled/<set>`` ranks the five corpora pooled, as the paper's
"Pooled" column; it is outside the group, whose mean is over the ten per-domain tasks.

Protocol (ColBERT's ``utility/evaluate/evaluate_lotte_rankings.py``): every pid of a question's
``answer_pids`` is relevant (grade 1, as ir_datasets' ``LotteQrels``); the main metric is Success@5
(``harness.metrics.success_at``: an answer among the top 5), averaged over every question of
``qas.<set>.jsonl``, reported beside nDCG@10 and Recall@100 (the trec table). Report columns are
labelled by domain and query set, ``Writing S`` (search) and ``Writing F`` (forum). A question without
answers would count as a failure there but cannot be scored here, so it is an InputError (LoTTE has
none: mteb's statistics give at least one relevant passage per query). Question and passage ids are
separate numberings from 0, so a passage whose id equals its question's stays in the ranking.

Sizes: ir_datasets' ``etc/metadata.json`` (``lotte/<domain>/test/<set>`` queries, ``lotte/<domain>/test``
documents); mteb's descriptive statistics of ``LoTTE`` give the same counts.

Sources, in order: ``DIR/lotte`` (``--data-dir DIR``) as ColBERT distributes it (``lotte.tar.gz``:
``<domain>/<split>/collection.tsv`` ``pid \\t passage``, ``questions.<set>.tsv`` ``qid \\t question``,
``qas.<set>.jsonl`` ``{qid, answer_pids}``) or holding a snapshot of ``mteb/LoTTE``; then the Hub's
``mteb/LoTTE`` (MTEB's layout: configs ``<domain>_<set>-corpus`` / ``-queries`` / ``-qrels``, splits
``dev`` and ``test``; no pooled corpus) at the revision MTEB pins (``REVISION``, the task's
``dataset`` in mteb 2.26; the sizes above are mteb's statistics of that revision, checked in
``tests/test_mteb_real.py``). MTEB: the task ``LoTTE``, one HF subset ``<domain>_<set>``
per harness task (``mteb/tasks/retrieval/eng/lotte_retrieval.py``; its main score ``hit_rate_at_5``
is Success@5). The group ``LoTTE`` is the report's family after BRIGHT's.

Published rows: ColBERTv2 on the ten test sets (``results/published/``), MTEB's figures from its
results repository (``sources/mteb``: ``LoTTE.json`` of mteb 2.8.3, whose ``cv_recall_at_k`` is
Success@k, :mod:`harness.mteb.mapping`). The paper's own LoTTE table (PLAID search over
ColBERTv2's index) was not reachable when this was written and is not transcribed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from harness.data import Table, assemble, hf_table, hub_source, id_text, qrels_rows
from harness.errors import InputError
from harness.tasks import MtebTask, Task, TaskGroup
from harness.types import Dataset, Qrels

REPO = "mteb/LoTTE"
REVISION = "a887e9f8e3d24427fdff98c8bba3198a6853a929"  # MTEB's pin of REPO (module docstring)
FOLDER = "lotte"
DOMAINS = ("writing", "recreation", "science", "technology", "lifestyle")  # the paper's column order
POOLED = "pooled"
QUERY_SETS = ("search", "forum")
SPLITS = ("dev", "test")
MAIN = "success@5"
# (domain, query set) -> test questions; domain -> test passages (module docstring's sources)
QUESTIONS = {
    ("writing", "search"): 1_071,
    ("writing", "forum"): 2_000,
    ("recreation", "search"): 924,
    ("recreation", "forum"): 2_002,
    ("science", "search"): 617,
    ("science", "forum"): 2_017,
    ("technology", "search"): 596,
    ("technology", "forum"): 2_004,
    ("lifestyle", "search"): 661,
    ("lifestyle", "forum"): 2_002,
    ("pooled", "search"): 3_869,
    ("pooled", "forum"): 10_025,
}
PASSAGES = {
    "writing": 199_994,
    "recreation": 166_975,
    "science": 1_694_164,
    "technology": 638_509,
    "lifestyle": 119_461,
    "pooled": 2_819_103,
}


def load_lotte(
    domain: str,
    query_set: str,
    split: str = "test",
    *,
    source: str | Path = REPO,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
    revision: str | None = REVISION,
) -> Dataset:
    """One LoTTE domain and query set as a Dataset named ``<domain>_<set>``, from a folder in ColBERT's
    layout (``source/<domain>/<split>/``) or from ``mteb/LoTTE`` (a Hub id, read at ``revision``, or a
    snapshot folder)."""
    if split not in SPLITS:
        raise InputError(f"LoTTE has splits {', '.join(SPLITS)}, not {split!r}", field="--split")
    name = f"{domain}_{query_set}"
    folder = Path(source) / domain / split
    if folder.is_dir():
        corpus = _read_tsv(folder / "collection.tsv")
        queries = _read_tsv(folder / f"questions.{query_set}.tsv")
        qas = folder / f"qas.{query_set}.jsonl"
        return assemble(name, corpus, queries, _answers(qas), source=str(folder), qrels_where=str(qas))
    if domain == POOLED:  # not in MTEB's copy
        raise InputError(
            f"LoTTE's pooled corpus is only in ColBERT's distribution (lotte.tar.gz): pass --data-dir DIR "
            f"with DIR/{FOLDER}/{POOLED}/{split}/",
            file=str(folder),
        )
    tables = {
        part: hf_table(source, f"{name}-{part}", split, cache_dir, local_hint, revision)
        for part in ("corpus", "queries", "qrels")
    }
    source = hub_source(source, revision)
    where = {part: f"{source}:{name}-{part}/{split}" for part in tables}
    corpus = id_text(tables["corpus"], where["corpus"], _id_column(tables["corpus"]), title=True)
    queries = id_text(tables["queries"], where["queries"], _id_column(tables["queries"]))
    qrels = qrels_rows(tables["qrels"], where["qrels"], "query-id", "corpus-id")
    return assemble(
        name, corpus, queries, qrels, source=f"{source} {name} ({split})", qrels_where=where["qrels"]
    )


def _id_column(table: Table) -> str:
    """MTEB's tables name the id ``_id`` (BEIR's) or ``id``."""
    return "_id" if "_id" in table else "id"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line end) of each non-blank line, checked UTF-8."""
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise InputError(
                    f"not valid UTF-8 (byte {e.start} of the line)", file=str(path), line=lineno
                ) from None
            if line.strip():
                yield lineno, line


def _read_tsv(path: Path) -> dict[str, str]:
    """``id \\t text`` lines (ColBERT's ``collection.tsv`` / ``questions.*.tsv``) -> {id: text}; fields
    after the second are ignored, as ColBERT's readers do (``pid, passage, *rest = line.split("\\t")``)."""
    out: dict[str, str] = {}
    for lineno, line in _lines(path):
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0]:
            raise InputError("expected 'id<TAB>text'", file=str(path), line=lineno)
        if parts[0] in out:
            raise InputError("duplicate id", file=str(path), line=lineno, field="id")
        out[parts[0]] = parts[1]
    if not out:
        raise InputError("no rows", file=str(path))
    return out


def _answers(path: Path) -> Qrels:
    """``qas.<set>.jsonl`` -> qrels: each of a question's ``answer_pids`` relevant (grade 1)."""
    qrels: Qrels = {}
    for lineno, line in _lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON: {e.msg}", file=str(path), line=lineno) from None
        qid, pids = (row.get(key) if isinstance(row, dict) else None for key in ("qid", "answer_pids"))
        if isinstance(qid, bool) or not isinstance(qid, (int, str)) or str(qid) in qrels:
            raise InputError("missing or duplicate question id", file=str(path), line=lineno, field="qid")
        if not isinstance(pids, list) or not all(
            isinstance(p, (int, str)) and not isinstance(p, bool) for p in pids
        ):
            raise InputError(
                "expected a list of passage ids", file=str(path), line=lineno, field="answer_pids"
            )
        if not pids:  # evaluate_lotte_rankings.py counts it as a failure; no qrels can say that
            raise InputError(
                "a question without answers (LoTTE's script counts it as a failure)",
                file=str(path),
                line=lineno,
                field="answer_pids",
            )
        qrels[str(qid)] = dict.fromkeys(map(str, pids), 1)
    if not qrels:
        raise InputError("no questions", file=str(path))
    return qrels


def _load(
    domain: str, query_set: str, split: str, local: Path | None, cache_dir: Path | None
) -> list[Dataset]:
    hint = (
        f"DIR/{FOLDER}/ holding LoTTE as ColBERT distributes it (<domain>/<split>/collection.tsv, "
        f"questions.<set>.tsv, qas.<set>.jsonl) or a snapshot of {REPO}"
    )
    return [load_lotte(domain, query_set, split, source=local or REPO, cache_dir=cache_dir, local_hint=hint)]


def _task(domain: str, query_set: str) -> Task:
    subset = f"{domain}_{query_set}"
    return Task(
        name=f"LoTTE/{domain}/{query_set}",
        folder_name=FOLDER,
        convention="trec",
        main_metric=MAIN,
        eval_split="test",
        ignore_identical_ids=False,
        loader=partial(_load, domain, query_set),
        description=f"LoTTE {domain} {query_set} queries (Success@5)",
        label=f"{domain.capitalize()} {query_set[0].upper()}",  # "Writing S": ten columns fit a page
        n_queries=QUESTIONS[domain, query_set],
        n_documents=PASSAGES[domain],
        mteb=() if domain == POOLED else (MtebTask("LoTTE", (("test", subset),), hf_subset=subset),),
        metrics=(MAIN,),
    )


def register() -> list[Task | TaskGroup]:
    tasks = [_task(d, q) for q in QUERY_SETS for d in DOMAINS]  # the paper's table: search, then forum
    pooled = [_task(POOLED, q) for q in QUERY_SETS]
    return [
        *tasks,
        *pooled,
        TaskGroup("LoTTE", tuple(t.name for t in tasks), report_order=5),
        TaskGroup("LoTTE-pooled", tuple(t.name for t in pooled)),
    ]
