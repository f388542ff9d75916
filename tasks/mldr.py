"""MLDR (Chen et al., "BGE M3-Embedding: Multi-Lingual, Multi-Functionality, Multi-Granularity Text
Embeddings Through Self-Knowledge Distillation", Findings of ACL 2024, arXiv:2402.03216): multilingual
long-document retrieval, 13 languages of ``Shitao/MLDR`` (Wikipedia, Wudao, mC4 articles; questions
generated from one of their paragraphs), nDCG@10, trec convention.

Task ``MLDR/<lang>``: one subset ``<lang>``, split ``test`` (``--split dev``: 200 questions each).
Protocol, as FlagEmbedding's MLDR evaluation runs it (``FlagEmbedding/evaluation/mldr/data_loader.py``,
``FlagEmbedding/abc/evaluation/utils.py`` ``evaluate_metrics``): the corpus is ``corpus-<lang>``
(``{docid, text}``, no title); each question's ``positive_passages`` are relevant (grade 1) and its
``negative_passages`` judged 0 (dev and test have none); nDCG@10 by pytrec_eval's ``ndcg_cut``, no
identical-id rule. Documents run to tens of thousands of tokens: how many a model reads is its own
``document_length`` (the ``document_length`` setting overrides it).

Sizes: the ``Shitao/MLDR`` dataset card's table (#test, #corpus); mteb's descriptive statistics of
``MultiLongDocRetrieval`` give the same counts.

Sources, in order: ``DIR/MLDR`` (``--data-dir DIR``) holding a snapshot of ``Shitao/MLDR``
(``mldr-v1.0-<lang>/corpus.jsonl.gz``, ``<split>.jsonl.gz``, gzipped or not); then those two files
fetched from the Hub (the repo is a loading script, which ``datasets`` no longer runs, so the files are
read as they are). MTEB: the task ``MultiLongDocRetrieval``, one HF subset per language
(``mteb/tasks/retrieval/multilingual/multi_long_doc_retrieval.py``). The group ``MLDR`` is the
report's family after LoTTE's.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from harness.data import HubUnavailableError, Table, assemble, hf_table, id_text
from harness.errors import InputError
from harness.hub import hub_access, hub_failure, hub_state
from harness.tasks import MtebTask, Task, TaskGroup
from harness.types import Dataset, Qrels

REPO = "Shitao/MLDR"
FOLDER = "MLDR"
SPLITS = ("dev", "test")
# language -> (test questions, documents): the module docstring's sources
SIZES = {
    "ar": (200, 7_607),
    "de": (200, 10_000),
    "en": (800, 200_000),
    "es": (200, 9_551),
    "fr": (200, 10_000),
    "hi": (200, 3_806),
    "it": (200, 10_000),
    "ja": (200, 10_000),
    "ko": (200, 6_176),
    "pt": (200, 6_569),
    "ru": (200, 10_000),
    "th": (200, 10_000),
    "zh": (800, 200_000),
}
LANGUAGES = tuple(SIZES)


def load_mldr(
    language: str,
    split: str = "test",
    *,
    source: str | Path = REPO,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
) -> Dataset:
    """One MLDR language as a Dataset named ``language``: ``source`` is a ``Shitao/MLDR`` snapshot
    folder, or the Hub id whose two files (corpus, ``split``) are fetched first."""
    if split not in SPLITS:
        raise InputError(f"MLDR has splits {', '.join(SPLITS)}, not {split!r}", field="--split")
    config = f"mldr-v1.0-{language}"
    folder = (
        Path(source) if Path(source).is_dir() else _fetch(str(source), config, split, cache_dir, local_hint)
    )
    docs, questions = (hf_table(folder, config, part, cache_dir, local_hint) for part in ("corpus", split))
    where = {part: f"{source}:{config}/{part}" for part in ("corpus", split)}
    corpus = id_text(_renamed(docs, where["corpus"], "docid", "text"), where["corpus"], "id")
    queries = id_text(_renamed(questions, where[split], "query_id", "query"), where[split], "id")
    qrels = _judged(questions, where[split])
    return assemble(
        language, corpus, queries, qrels, source=f"{source} {config} ({split})", qrels_where=where[split]
    )


def _fetch(repo: str, config: str, split: str, cache_dir: str | Path | None, local_hint: str) -> Path:
    """The Hub snapshot folder holding ``<config>/corpus.jsonl.gz`` and ``<config>/<split>.jsonl.gz``."""
    from huggingface_hub import snapshot_download

    files = [f"{config}/corpus.jsonl.gz", f"{config}/{split}.jsonl.gz"]
    try:
        with hub_access():
            path = snapshot_download(repo, repo_type="dataset", allow_patterns=files, cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001 - any Hub failure becomes one actionable message
        raise HubUnavailableError(
            f"could not fetch {', '.join(files)} of '{repo}' from the Hugging Face Hub{hub_state()}: "
            f"{hub_failure(e)}. Without Hub access, download them elsewhere and pass --data-dir DIR, "
            f"with {local_hint or 'a local snapshot of ' + repo}."
        ) from e
    return Path(path)


def _renamed(table: Table, where: str, id_col: str, text_col: str) -> Table:
    """``{id, text}`` columns for :func:`id_text`, read from MLDR's ``id_col`` and ``text_col``."""
    for col in (id_col, text_col):
        if col not in table:
            raise InputError(f"missing column (columns: {sorted(table)})", file=where, field=col)
    return {"id": table[id_col], "text": table[text_col]}


def _judged(table: Table, where: str) -> Qrels:
    """Each question's ``positive_passages`` at grade 1 and ``negative_passages`` at 0 (FlagEmbedding's
    qrels); the passages are ``{docid, text}`` objects."""
    for col in ("query_id", "positive_passages", "negative_passages"):
        if col not in table:
            raise InputError(f"missing column (columns: {sorted(table)})", file=where, field=col)
    qrels: Qrels = {}
    for row, qid in enumerate(table["query_id"], 1):
        judged = qrels.setdefault(str(qid), {})
        for col, grade in (("negative_passages", 0), ("positive_passages", 1)):
            passages = table[col][row - 1]
            if not isinstance(passages, list) or not all(_docid(p) for p in passages):
                raise InputError("expected a list of {docid, text} objects", file=where, line=row, field=col)
            judged.update((str(p["docid"]), grade) for p in passages)
    return qrels


def _docid(passage: Any) -> bool:
    return (
        isinstance(passage, dict) and isinstance(passage.get("docid"), (str, int)) and passage["docid"] != ""
    )


def _load(language: str, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    hint = (
        f"DIR/{FOLDER}/ holding a snapshot of {REPO} (mldr-v1.0-{language}/corpus.jsonl.gz, {split}.jsonl.gz)"
    )
    return [load_mldr(language, split, source=local or REPO, cache_dir=cache_dir, local_hint=hint)]


def register() -> list[Task | TaskGroup]:
    tasks = [
        Task(
            name=f"MLDR/{lang}",
            folder_name=FOLDER,
            convention="trec",
            main_metric="ndcg@10",
            eval_split="test",
            ignore_identical_ids=False,
            loader=partial(_load, lang),
            description=f"MLDR {lang} ({REPO}, long documents)",
            label=lang,
            n_queries=SIZES[lang][0],
            n_documents=SIZES[lang][1],
            mteb=(MtebTask("MultiLongDocRetrieval", (("test", lang),), hf_subset=lang),),
        )
        for lang in LANGUAGES
    ]
    return [*tasks, TaskGroup("MLDR", tuple(t.name for t in tasks), report_order=6)]
