"""What more than one test module needs: the SciFact path and small datasets built from it, synthetic
BEIR / NanoBEIR / LongEmbed snapshots, results, a stand-in encoder, ``wait_until`` and ``peak_rss``.

Test modules import these and never each other (``tests/test_layout.py`` checks). Checkpoints and
encoder-parity helpers are in ``tests/model_fixtures.py``, pytest fixtures in ``tests/conftest.py``.
Nothing here imports harness at import time: the PyLate reference process (model_fixtures) loads this.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from harness.results import Result
    from harness.types import Texts, TokenEmbeddings

REPO_ROOT = Path(__file__).resolve().parents[1]
_SCIFACT_HERE = REPO_ROOT.parent / "shared" / "data" / "beir" / "scifact"
# The real SciFact in BEIR layout: beside the checkout, else this machine's shared copy (a worktree).
SCIFACT = _SCIFACT_HERE if _SCIFACT_HERE.is_dir() else Path("/work/shared/data/beir/scifact")
needs_scifact = pytest.mark.skipif(not SCIFACT.exists(), reason=f"{SCIFACT} missing")


# --------------------------------------------------------------------------- waiting


def wait_until(predicate: Callable[[], object], timeout: float, message: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` every ``interval`` seconds until it is true; an AssertionError naming
    ``message`` if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{message} (waited {timeout:g} s)"
        time.sleep(interval)


def peak_rss() -> int:
    """This process's peak RSS in bytes: ``VmHWM`` (``ru_maxrss`` would carry the peak of the
    process that forked it across exec on Linux)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) * 1024


# --------------------------------------------------------------------------- datasets


def pylate_evaluator_inputs(
    folder: Path, split: str = "train"
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """(queries, corpus, relevant docs) of a BEIR folder as PyLate's evaluator takes them: title and
    text joined, every qrels row relevant."""
    rows = map(json.loads, read_lines(folder / "corpus.jsonl"))
    corpus = {row["_id"]: (row.get("title", "") + " " + row["text"]).strip() for row in rows}
    queries = {row["_id"]: row["text"] for row in map(json.loads, read_lines(folder / "queries.jsonl"))}
    relevant: dict[str, set[str]] = {}
    for line in (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        qid, did, _ = line.split("\t")
        relevant.setdefault(qid, set()).add(did)
    return queries, corpus, relevant


def read_lines(path: Path) -> list[str]:
    """The file's lines (UTF-8), each with its line ending."""
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def small_beir(dest: Path, n_docs: int, n_queries: int, split: str = "test") -> Path:
    """The first queries of SciFact's test split with their relevant docs plus filler docs, BEIR layout."""
    qrels: dict[str, dict[str, str]] = {}
    lines = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]
    for line in lines:
        qid, did, score = line.split("\t")
        if len(qrels) < n_queries or qid in qrels:
            qrels.setdefault(qid, {})[did] = score
    wanted = {d for docs in qrels.values() for d in docs}
    corpus = []
    for line in read_lines(SCIFACT / "corpus.jsonl"):
        doc = json.loads(line)
        if doc["_id"] in wanted or len(corpus) < n_docs:
            corpus.append(line)
    queries = [line for line in read_lines(SCIFACT / "queries.jsonl") if json.loads(line)["_id"] in qrels]
    (dest / "qrels").mkdir(parents=True)
    (dest / "corpus.jsonl").write_text("".join(corpus))
    (dest / "queries.jsonl").write_text("".join(queries))
    rows = [f"{q}\t{d}\t{s}" for q, docs in qrels.items() for d, s in docs.items()]
    (dest / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return dest


CORPUS = [
    {"_id": "d1", "title": "Title one", "text": "body one"},
    {"_id": "d2", "text": "body two"},  # no title
    {"_id": "d3", "title": "", "text": ""},  # empty text: BEIR keeps it, NanoBEIR drops it
    {"_id": "d4", "title": "T4", "text": "body four"},
]
QUERIES = [
    {"_id": "q1", "text": "first query"},
    {"_id": "q2", "text": "second query"},
    {"_id": "q3", "text": "no qrels for me"},
    {"_id": "q4", "text": ""},
]
QRELS = [("q2", "d4", 2), ("q1", "d1", 1), ("q1", "d2", 0), ("q4", "d3", 1)]


def write_beir(
    folder: Path,
    corpus: list[dict] | str = CORPUS,
    queries: list[dict] | str = QUERIES,
    qrels: list[tuple] | str = QRELS,
    split: str = "test",
) -> Path:
    """A BEIR folder; a ``str`` argument is written verbatim (for malformed files)."""

    def jsonl(rows: list[dict] | str) -> str:
        return rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)

    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(jsonl(corpus), "utf-8")
    (folder / "queries.jsonl").write_text(jsonl(queries), "utf-8")
    tsv = (
        qrels
        if isinstance(qrels, str)
        else "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    )
    (folder / "qrels" / f"{split}.tsv").write_text(tsv, "utf-8")
    return folder


def write_parquet(path: Path, rows: list[dict]) -> None:
    """``rows`` as one parquet file (parent folders created)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


_NANO_README = """---
configs:
- config_name: corpus
  data_files:
  - split: train
    path: corpus/train-*
- config_name: queries
  data_files:
  - split: train
    path: queries/train-*
- config_name: qrels
  data_files:
  - split: train
    path: qrels/train-*
---
# NanoTest
"""


def write_nano_snapshot(folder: Path, readme: bool) -> Path:
    """NanoBEIR repo layout: ``<config>/train-00000-of-00001.parquet``; qrels without a score."""
    for config, rows in (
        ("corpus", [{"_id": r["_id"], "text": r["text"]} for r in CORPUS]),
        ("queries", QUERIES),
        ("qrels", [{"query-id": q, "corpus-id": d} for q, d, _ in QRELS]),
    ):
        write_parquet(folder / config / "train-00000-of-00001.parquet", rows)
    if readme:
        (folder / "README.md").write_text(_NANO_README, "utf-8")
    return folder


def write_longembed_snapshot(root: Path, lengths: tuple[int, ...] = (256, 512)) -> Path:
    """dwzhu/LongEmbed layout: ``<config>/{corpus,queries,qrels}.jsonl``."""

    def dump(path: Path, rows: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")

    dump(
        root / "qmsum" / "corpus.jsonl",
        [{"doc_id": "a", "text": "long a"}, {"doc_id": "b", "text": "long b"}],
    )
    dump(root / "qmsum" / "queries.jsonl", [{"qid": "x", "text": "summary of b"}])
    dump(root / "qmsum" / "qrels.jsonl", [{"qid": "x", "doc_id": "b"}])
    for config in ("passkey", "needle"):
        corpus, queries, qrels = [], [], []
        for n in lengths:
            for i in range(3):
                corpus.append({"doc_id": f"{n}-d{i}", "text": f"doc {i} at {n}", "context_length": n})
            queries.append({"qid": f"{n}-q", "text": f"key at {n}?", "context_length": n})
            qrels.append({"qid": f"{n}-q", "doc_id": f"{n}-d1", "context_length": n})
        dump(root / config / "corpus.jsonl", corpus)
        dump(root / config / "queries.jsonl", queries)
        dump(root / config / "qrels.jsonl", qrels)
    return root


# --------------------------------------------------------------------------- results


def make_result(
    model: str, task: str, per_query: dict[str, dict[str, float]], published: bool = False
) -> Result:
    """A trec-convention result whose subset nDCG@10 is the mean of its per-query scores."""
    from harness.results import ModelRecord, Result, RetrievalRecord, SubsetScores, TaskRecord

    subsets = [
        SubsetScores(
            name, len(pq), None, {"ndcg@10": float(np.mean(list(pq.values())))}, {} if published else pq
        )
        for name, pq in per_query.items()
    ]
    return Result(
        model=ModelRecord(model, kind="published" if published else "colbert"),
        task=TaskRecord(task, "trec", "ndcg@10", "test"),
        retrieval=RetrievalRecord("published" if published else "exact"),
        subsets=subsets,
        published={"source": "test", "note": ""} if published else None,
    )


def scores(values: np.ndarray, prefix: str = "q") -> dict[str, float]:
    """Per-query scores ``{prefix}0, {prefix}1, ...`` -> the values, as floats."""
    return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


# --------------------------------------------------------------------------- stand-in encoders


class BulkEncoder:
    """A fast stand-in model for big corpora: text ``"d<i>"`` -> 128 seeded unit vectors of dim 64
    (queries ``"q<i>"``: 16)."""

    name, multi_vector, revision, fingerprint = "bulk", True, None, "b" * 64

    def settings(self) -> dict:
        return {"dim": 64}

    def parameter_count(self) -> int:
        return 0

    def encode(self, texts, *, is_query, batch_size=32, show_progress=True) -> TokenEmbeddings:
        from harness.types import TokenEmbeddings

        n = 16 if is_query else 128
        arrays = []
        for text in texts:
            v = np.random.default_rng(int(text[1:])).standard_normal((n, 64), np.float32)
            arrays.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return TokenEmbeddings.from_list(arrays, 64)


def bulk_texts(n_docs: int, n_queries: int) -> tuple[Texts, Texts]:
    """(queries, documents) for ``BulkEncoder``: ids ``q<10**9 + i>`` and ``d<i>``."""
    from harness.types import Texts

    docs = Texts([f"doc{i}" for i in range(n_docs)], [f"d{i}" for i in range(n_docs)])
    return Texts([f"q{i}" for i in range(n_queries)], [f"q{10**9 + i}" for i in range(n_queries)]), docs
