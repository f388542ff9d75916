"""BEIR: every public dataset as ``BEIR/<name>`` (Thakur et al., NeurIPS 2021
Datasets), trec convention, nDCG@10.

``msmarco`` is scored on ``dev``, the others on ``test``; identical query/doc ids are
ignored as in BEIR's ``EvaluateRetrieval``. ``cqadupstack`` is 12 sub-forum subsets
(score = their mean).

Sources, in order:
1. ``DIR/<name>`` (``--data-dir DIR``): a BEIR folder (the unzipped BEIR zip; for
   cqadupstack one subfolder per forum), or a snapshot of the HF repo ``BeIR/<name>`` with
   the qrels in ``DIR/<name>/qrels/`` or a ``DIR/<name>-qrels`` snapshot of ``BeIR/<name>-qrels``.
2. The Hugging Face Hub, ``BeIR/<name>`` + ``BeIR/<name>-qrels`` (HF cache, mirrors and
   offline mode apply). Not for cqadupstack, whose forums are only in the zip.
3. Unless the Hub is in offline mode, the BEIR zip, downloaded and safely extracted into
   ``<cache_dir>/beir`` (default ``$XDG_CACHE_HOME/harness/beir``) and read from there later.

MTEB holds each dataset as one task (cqadupstack as 12, one per forum). Caveat: MTEB ignores
identical query/doc ids only for some tasks (ArguAna, FEVER, FiQA2018, MSMARCO, QuoraRetrieval);
the harness does for every BEIR task, so on the others a figure may differ where a query id is
also a document id. The group ``BEIR`` is the report's second family, its columns the model
card's BEIR table (the group ``BEIR-card``).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from harness.data import (
    HubUnavailableError,
    download_zip,
    is_beir_folder,
    load_beir_folder,
    load_beir_hf,
    load_beir_tree,
)
from harness.hub import hub_offline, hub_reachable, hub_state
from harness.tasks import MtebTask, Task, TaskGroup
from harness.types import Dataset, HarnessError

NAMES = (
    "msmarco",
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "cqadupstack",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
)
# The model card's BEIR table (mxbai-edge-colbert-v0-17m), in its order, with its column labels.
CARD = ("msmarco", "scifact", "webis-touche2020", "fiqa", "trec-covid", "nq", "dbpedia-entity")
LABELS = {
    "msmarco": "MS MARCO",
    "scifact": "SciFact",
    "webis-touche2020": "Touche",
    "fiqa": "FiQA",
    "trec-covid": "TREC-COVID",
    "nq": "NQ",
    "dbpedia-entity": "DBPedia",
}
CQADUPSTACK_FORUMS = (
    "android",
    "english",
    "gaming",
    "gis",
    "mathematica",
    "physics",
    "programmers",
    "stats",
    "tex",
    "unix",
    "webmasters",
    "wordpress",
)
HF_ORG = "BeIR"
ZIP_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
# MTEB's task names (mteb/tasks/retrieval/eng/*.py); cqadupstack's are CQADupstack<Forum>Retrieval
MTEB_NAMES = {
    "msmarco": "MSMARCO",
    "trec-covid": "TRECCOVID",
    "nfcorpus": "NFCorpus",
    "nq": "NQ",
    "hotpotqa": "HotpotQA",
    "fiqa": "FiQA2018",
    "arguana": "ArguAna",
    "webis-touche2020": "Touche2020",
    "quora": "QuoraRetrieval",
    "dbpedia-entity": "DBPedia",
    "scidocs": "SCIDOCS",
    "fever": "FEVER",
    "climate-fever": "ClimateFEVER",
    "scifact": "SciFact",
}
# (queries of the evaluation split, documents): Thakur et al., "BEIR", NeurIPS 2021 Datasets, Table 1
SIZES = {
    "msmarco": (6_980, 8_841_823),
    "trec-covid": (50, 171_332),
    "nfcorpus": (323, 3_633),
    "nq": (3_452, 2_681_468),
    "hotpotqa": (7_405, 5_233_329),
    "fiqa": (648, 57_638),
    "arguana": (1_406, 8_674),
    "webis-touche2020": (49, 382_545),
    "cqadupstack": (13_145, 457_199),
    "quora": (10_000, 522_931),
    "dbpedia-entity": (400, 4_635_922),
    "scidocs": (1_000, 25_657),
    "fever": (6_666, 5_416_568),
    "climate-fever": (1_535, 5_416_593),
    "scifact": (300, 5_183),
}


def download_beir_zip(
    name: str, dest_dir: str | Path, *, url_template: str = ZIP_URL, show_progress: bool = True
) -> Path:
    """Download and extract the BEIR zip of ``name`` into ``dest_dir``; return ``dest_dir/name``
    (nothing done when it exists; :func:`harness.data.download_zip`)."""
    hint = (
        f"Without network access, download and unzip it elsewhere and pass --data-dir DIR with "
        f"DIR/{name}/corpus.jsonl, queries.jsonl and qrels/<split>.tsv."
    )
    url = url_template.format(name=name)
    what = f"BEIR dataset '{name}'"
    return download_zip(url, dest_dir, name, what=what, hint=hint, show_progress=show_progress)


def default_download_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return cache_dir / "beir"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness" / "beir"


def _load_local(name: str, split: str, folder: Path, cache_dir: Path | None) -> list[Dataset]:
    if name == "cqadupstack":
        return load_beir_tree(folder, split, CQADUPSTACK_FORUMS)
    if not is_beir_folder(folder):
        return [load_beir_hf(folder, split, name=name, cache_dir=cache_dir)]
    sibling = folder.with_name(f"{folder.name}-qrels") / f"{split}.tsv"
    qrels = sibling if not (folder / "qrels").is_dir() and sibling.is_file() else None
    return [load_beir_folder(folder, split, name=name, qrels_file=qrels)]


def _load(name: str, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    if local is not None:
        return _load_local(name, split, local, cache_dir)
    downloads = default_download_dir(cache_dir)
    if (downloads / name).is_dir():
        return _load_local(name, split, downloads / name, cache_dir)
    sub = "<forum>/" if name == "cqadupstack" else ""
    layout = f"DIR/{name}/{sub} holding corpus.jsonl, queries.jsonl, qrels/{split}.tsv (unzipped BEIR zip)"
    hub_error: HarnessError | None = None
    if name != "cqadupstack":
        try:
            return [
                load_beir_hf(f"{HF_ORG}/{name}", split, name=name, cache_dir=cache_dir, local_hint=layout)
            ]
        except HubUnavailableError as e:
            hub_error = e
    if hub_offline() or not hub_reachable():
        raise hub_error or HarnessError(
            f"BEIR/{name} is only distributed as a zip and there is no network{hub_state()}: pass "
            f"--data-dir DIR with {layout}"
        )
    try:
        folder = download_beir_zip(name, downloads)
    except HarnessError as e:
        raise HarnessError(f"{hub_error}\nThe BEIR zip failed too: {e}" if hub_error else str(e)) from e
    return _load_local(name, split, folder, cache_dir)


def _split(name: str) -> str:
    return "dev" if name == "msmarco" else "test"


def _mteb(name: str) -> tuple[MtebTask, ...]:
    if name == "cqadupstack":
        return tuple(
            MtebTask(f"CQADupstack{f.capitalize()}Retrieval", (("test", f"cqadupstack_{f}"),))
            for f in CQADUPSTACK_FORUMS
        )
    return (MtebTask(MTEB_NAMES[name], ((_split(name), name),)),)


def register() -> list[Task | TaskGroup]:
    tasks = [
        Task(
            name=f"BEIR/{n}",
            folder_name=n,
            convention="trec",
            main_metric="ndcg@10",
            eval_split=_split(n),
            ignore_identical_ids=True,
            loader=partial(_load, n),
            description=f"BEIR {n}" + (" (12 sub-forums, mean)" if n == "cqadupstack" else ""),
            label=LABELS.get(n, ""),
            n_queries=SIZES[n][0],
            n_documents=SIZES[n][1],
            mteb=_mteb(n),
        )
        for n in NAMES
    ]
    card = tuple(f"BEIR/{n}" for n in CARD)
    return [
        *tasks,
        TaskGroup("BEIR", tuple(t.name for t in tasks), report_order=1, columns=card, card_table="columns"),
        TaskGroup("BEIR-card", card),
    ]
