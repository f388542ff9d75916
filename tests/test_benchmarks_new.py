"""Issue 30 for LoTTE, MLDR and the multilingual NanoBEIR: their tasks listed with published sizes,
snapshots built here in each layout loaded and run end to end with BM25, and each protocol rule
tested so that removing it fails a test: Success@5 is ir_measures' ``Success@5``; every LoTTE
question counts and any of its answers succeeds; a LoTTE passage whose id equals its question's
stays ranked; a question without answers is refused; MLDR's negative passages are judged 0.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path

import pytest

from harness import evaluate
from harness.cli import main
from harness.data import HubUnavailableError
from harness.errors import InputError
from harness.metrics import trec_metrics
from harness.tasks import get_task, list_groups, report_groups
from harness.types import Qrels, Run
from tasks import lotte, mldr, nanobeir_multilingual
from tests.helpers import write_parquet

# --------------------------------------------------------------------------- listing


@pytest.mark.parametrize(
    ("group", "sizes"),
    [
        ("LoTTE", {f"LoTTE/{d}/{q}": (n, lotte.PASSAGES[d]) for (d, q), n in lotte.QUESTIONS.items()}),
        ("MLDR", {f"MLDR/{lang}": sizes for lang, sizes in mldr.SIZES.items()}),
        (
            "NanoBEIR-multilingual",
            {f"NanoBEIR-{lang}": (649, 56_723) for lang in nanobeir_multilingual.REPOS},
        ),
    ],
)
def test_harness_tasks_lists_every_task_with_its_published_sizes(capsys, group: str, sizes) -> None:
    assert main(["tasks", "--group", group]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line}
    members = list_groups()[group]
    assert members and set(members) <= set(sizes)
    for name in members:
        assert rows[name][-2:] == [f"{sizes[name][0]:,}", f"{sizes[name][1]:,}"], name


def test_published_sizes_and_families() -> None:
    """The sizes the plugins hold (ir_datasets' LoTTE counts, the MLDR card's table), the ten LoTTE
    tasks in the paper's order (search, then forum), and the three families after BRIGHT's."""
    assert lotte.QUESTIONS["writing", "search"] == 1_071 and lotte.PASSAGES["science"] == 1_694_164
    assert mldr.SIZES["en"] == (800, 200_000) and mldr.SIZES["hi"] == (200, 3_806)
    members = list_groups()["LoTTE"]
    assert members[0] == "LoTTE/writing/search" and members[5] == "LoTTE/writing/forum" and len(members) == 10
    orders = {g.name: g.report_order for g in report_groups()}
    assert (orders["LoTTE"], orders["MLDR"], orders["NanoBEIR-multilingual"]) == (5, 6, 7)
    task = get_task("LoTTE/science/forum")
    assert (task.main_metric, task.metrics, task.convention) == ("success@5", ("success@5",), "trec")
    assert task.mteb[0].name == "LoTTE" and task.mteb[0].hf_subset == "science_forum"
    assert get_task("MLDR/ja").mteb[0].hf_subset == "ja"
    nano = get_task("NanoBEIR-ko").mteb
    assert len(nano) == 13 and {m.hf_subset for m in nano} == {"ko"}
    assert nano[1].name == "MultilingualNanoDBPediaRetrieval" and nano[1].splits == (("test", "NanoDBPedia"),)


# --------------------------------------------------------------------------- Success@k


def test_success_at_k_equals_ir_measures() -> None:
    """Per query and on average, for graded qrels (0 is not relevant), tied scores and queries the run
    misses (given an empty ranking, as the harness scores them 0)."""
    import ir_measures

    rng = random.Random(7)
    docs = [f"d{i}" for i in range(40)]
    qrels: Qrels = {f"q{i}": {d: rng.choice([0, 1, 2]) for d in rng.sample(docs, 4)} for i in range(60)}
    run: Run = {q: {d: float(rng.randint(0, 9)) for d in rng.sample(docs, 25)} for q in list(qrels)[:55]}
    cutoffs = (1, 3, 5, 10, 100)
    ours = trec_metrics(qrels, run, extra=[f"success@{k}" for k in cutoffs])
    full = {q: run.get(q, {}) for q in qrels}
    measures = [ir_measures.Success @ k for k in cutoffs]
    theirs = {(m, q): 0.0 for m in measures for q in qrels}
    theirs |= {(m.measure, m.query_id): m.value for m in ir_measures.iter_calc(measures, qrels, full)}
    for measure in measures:
        name = f"success@{measure['cutoff']}"
        assert ours.per_query[name] == {q: theirs[measure, q] for q in qrels}, name
        assert ours.means[name] == pytest.approx(ir_measures.calc_aggregate([measure], qrels, full)[measure])
    assert 0 < ours.means["success@5"] < 1


def test_extra_metrics_are_checked() -> None:
    with pytest.raises(InputError, match="unknown extra metric"):
        trec_metrics({"q": {"d": 1}}, {"q": {"d": 1.0}}, extra=["success@0"])
    with pytest.raises(InputError, match="unknown extra metric"):
        trec_metrics({"q": {"d": 1}}, {"q": {"d": 1.0}}, extra=["hits@5"])
    assert "success@5" not in trec_metrics({"q": {"d": 1}}, {"q": {"d": 1.0}}).means  # only when asked


# --------------------------------------------------------------------------- LoTTE

PASSAGES = {
    "0": "the cat sat on the mat",
    "1": "dogs bark loudly at night",
    "2": "a cat is a small feline",
    "3": "stock markets fell today",
    "4": "how to brew coffee at home",
    "5": "coffee beans roasting guide",
    **{str(i): f"filler passage number {i}" for i in range(6, 26)},
}
# qid 0's answer is passage 0 (same id); qid 1 has two answers, one found; qid 2's answer is never found
QUESTIONS = {"0": "cat on the mat", "1": "brew coffee at home", "2": "stock markets"}
ANSWERS = {"0": [0], "1": [3, 4], "2": [1]}
SUCCESS = {"0": 1.0, "1": 1.0, "2": 0.0}


def write_lotte(root: Path, answers: dict[str, list[int]] = ANSWERS, split: str = "test") -> Path:
    """ColBERT's layout: ``lotte/writing/<split>/`` collection, questions and qas of both query sets."""
    folder = root / "lotte" / "writing" / split
    folder.mkdir(parents=True)
    (folder / "collection.tsv").write_text("".join(f"{p}\t{t}\n" for p, t in PASSAGES.items()), "utf-8")
    for query_set in ("search", "forum"):
        lines = "".join(f"{q}\t{t}\n" for q, t in QUESTIONS.items())
        (folder / f"questions.{query_set}.tsv").write_text(lines, "utf-8")
        qas = [{"qid": int(q), "query": QUESTIONS[q], "answer_pids": a} for q, a in answers.items()]
        (folder / f"qas.{query_set}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qas), "utf-8")
    return root


def write_lotte_hub(root: Path) -> Path:
    """``mteb/LoTTE``'s layout: ``<domain>_<set>-{corpus,queries,qrels}/test-*.parquet``."""
    folder = root / "lotte"
    rows = {
        "corpus": [{"_id": p, "title": "", "text": t} for p, t in PASSAGES.items()],
        "queries": [{"_id": q, "text": t} for q, t in QUESTIONS.items()],
        "qrels": [{"query-id": q, "corpus-id": str(p), "score": 1} for q, ps in ANSWERS.items() for p in ps],
    }
    for part, table in rows.items():
        write_parquet(folder / f"writing_search-{part}" / "test-00000-of-00001.parquet", table)
    return root


def test_lotte_success_at_5_end_to_end_with_bm25(tmp_path: Path) -> None:
    """Every question of qas counts (2 of 3 succeed), any answer in the top 5 succeeds (question 1),
    and passage 0, the answer of question 0, is not dropped for sharing its id: Success@5 = 2/3,
    reported beside nDCG@10 and Recall@100, as the official script counts it."""
    write_lotte(tmp_path / "data")
    [result] = evaluate(
        "bm25", ["LoTTE/writing/search"], data_dir=tmp_path / "data", output_dir=None, show_progress=False
    )
    (subset,) = result.subsets
    assert subset.name == "writing_search" and result.task.main_metric == "success@5"
    assert subset.per_query == SUCCESS
    assert result.main_score == pytest.approx(2 / 3)
    assert subset.trec["success@5"] == pytest.approx(2 / 3) == subset.card["accuracy@5"]
    assert {"ndcg@10", "recall@100"} <= set(subset.trec)


def test_lotte_layouts_give_the_same_dataset(tmp_path: Path) -> None:
    """ColBERT's files and MTEB's Hub layout hold the same data; the forum set and the dev split load
    from their own files; the pooled corpus is only in ColBERT's distribution."""
    (colbert,) = get_task("LoTTE/writing/search").load(data_dir=write_lotte(tmp_path / "a"))
    (hub,) = get_task("LoTTE/writing/search").load(
        data_dir=write_lotte_hub(tmp_path / "b"), cache_dir=tmp_path
    )
    assert colbert.fingerprint() == hub.fingerprint()
    assert colbert.qrels == {q: dict.fromkeys(map(str, a), 1) for q, a in ANSWERS.items()}
    (forum,) = get_task("LoTTE/writing/forum").load(data_dir=tmp_path / "a")
    assert forum.name == "writing_forum" and forum.queries == QUESTIONS
    write_lotte(tmp_path / "c", {"0": [2]}, split="dev")
    (dev,) = get_task("LoTTE/writing/search").load("dev", data_dir=tmp_path / "c")
    assert dev.qrels == {"0": {"2": 1}}
    with pytest.raises(InputError, match="splits dev, test"):
        get_task("LoTTE/writing/search").load("train", data_dir=tmp_path / "a")
    with pytest.raises(InputError, match="only in ColBERT's distribution"):
        get_task("LoTTE/pooled/search").load(data_dir=tmp_path / "b")


def test_lotte_question_without_answers_is_refused(tmp_path: Path) -> None:
    """The official script counts it as a failure; dropping it (the shared rule for queries without
    qrels) would raise Success@5, so it is an error naming the line."""
    write_lotte(tmp_path, {**ANSWERS, "2": []})
    with pytest.raises(InputError, match="without answers") as info:
        get_task("LoTTE/writing/search").load(data_dir=tmp_path)
    assert info.value.line == 3 and info.value.field == "answer_pids"


def test_lotte_offline_names_the_local_layout(tmp_path: Path, hub_offline: None) -> None:
    with pytest.raises(HubUnavailableError, match="--data-dir DIR") as info:
        get_task("LoTTE/writing/search").load(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert "lotte/" in str(info.value) and "collection.tsv" in str(info.value)


# --------------------------------------------------------------------------- MLDR

DOCUMENTS = {"doc-ar-0": "the cat sat on the mat", "doc-ar-1": "cat food for cats", "doc-ar-2": "dogs bark"}
# q-ar-1's negative (doc-ar-1) ranks first, its positive second: judged 0, the negative adds no gain
MLDR_QUESTIONS = [
    ("q-ar-0", "mat", ["doc-ar-0"], []),
    ("q-ar-1", "cat food", ["doc-ar-0"], ["doc-ar-1"]),
]


def write_mldr(root: Path, gzipped: bool = True) -> Path:
    """``Shitao/MLDR``'s layout: ``mldr-v1.0-ar/corpus.jsonl.gz`` and ``test.jsonl.gz``."""
    folder = root / "MLDR" / "mldr-v1.0-ar"
    folder.mkdir(parents=True)

    def dump(name: str, rows: list[dict]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        path = folder / (name + (".jsonl.gz" if gzipped else ".jsonl"))
        path.write_bytes(gzip.compress(data) if gzipped else data)

    dump("corpus", [{"docid": d, "text": t} for d, t in DOCUMENTS.items()])
    questions = [
        {
            "query_id": q,
            "query": text,
            "positive_passages": [{"docid": d, "text": DOCUMENTS[d]} for d in positive],
            "negative_passages": [{"docid": d, "text": DOCUMENTS[d]} for d in negative],
        }
        for q, text, positive, negative in MLDR_QUESTIONS
    ]
    dump("test", questions)
    return root


def test_mldr_end_to_end_with_bm25_negatives_judged_zero(tmp_path: Path) -> None:
    write_mldr(tmp_path / "data")
    (dataset,) = get_task("MLDR/ar").load(data_dir=tmp_path / "data", cache_dir=tmp_path / "hf")
    assert dataset.qrels["q-ar-1"] == {"doc-ar-1": 0, "doc-ar-0": 1} and dataset.corpus == DOCUMENTS
    [result] = evaluate("bm25", ["MLDR/ar"], data_dir=tmp_path / "data", output_dir=None, show_progress=False)
    (subset,) = result.subsets
    assert subset.name == "ar" and result.task.main_metric == "ndcg@10"
    assert subset.per_query == pytest.approx({"q-ar-0": 1.0, "q-ar-1": 1 / math.log2(3)})


def test_mldr_reads_plain_jsonl_and_checks_splits(tmp_path: Path, hub_offline: None) -> None:
    write_mldr(tmp_path, gzipped=False)
    (dataset,) = get_task("MLDR/ar").load(data_dir=tmp_path, cache_dir=tmp_path / "hf")
    assert set(dataset.queries) == {"q-ar-0", "q-ar-1"}
    with pytest.raises(InputError, match="splits dev, test"):
        get_task("MLDR/ar").load("train", data_dir=tmp_path)
    with pytest.raises(HubUnavailableError, match="mldr-v1.0-de/corpus.jsonl.gz"):
        get_task("MLDR/de").load(data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- multilingual NanoBEIR


def write_translated_nanobeir(folder: Path) -> Path:
    """sentence-transformers' layout: configs corpus/queries/qrels, one split ``Nano<Name>`` per set;
    one qrels row lists two docs (the evaluator reads both forms), one text is empty."""
    for name in nanobeir_multilingual.NAMES:
        split = f"Nano{name}"
        corpus = [
            {"_id": "d1", "text": f"katze {name}"},
            {"_id": "d2", "text": "hund"},
            {"_id": "d3", "text": ""},
        ]
        queries = [{"_id": "q1", "text": f"katze {name}"}, {"_id": "q2", "text": "hund"}]
        qrels = [{"query-id": "q1", "corpus-id": ["d1", "d3"]}, {"query-id": "q2", "corpus-id": ["d2"]}]
        for config, rows in (("corpus", corpus), ("queries", queries), ("qrels", qrels)):
            write_parquet(folder / config / f"{split}-00000-of-00001.parquet", rows)
    return folder


def test_multilingual_nanobeir_end_to_end_with_bm25(tmp_path: Path) -> None:
    """13 subsets from one repo snapshot under the card's rules (empty text dropped, list qrels rows
    split, every row relevant); the task score is the mean over the 13 sets."""
    write_translated_nanobeir(tmp_path / "data" / "NanoBEIR-de")
    subsets = get_task("NanoBEIR-de").load(data_dir=tmp_path / "data", cache_dir=tmp_path / "hf")
    assert [d.name for d in subsets] == [f"Nano{n}" for n in nanobeir_multilingual.NAMES]
    assert subsets[0].qrels == {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 1}} and "d3" not in subsets[0].corpus
    [result] = evaluate(
        "bm25", ["NanoBEIR-de"], data_dir=tmp_path / "data", output_dir=None, show_progress=False
    )
    assert result.task.convention == "card" and len(result.subsets) == 13
    # q1: d1 first of its two relevant docs (d3 dropped, still in |R|); q2: d2 first
    ndcg_q1 = 1 / (1 + 1 / math.log2(3))
    assert result.main_score == pytest.approx((ndcg_q1 + 1) / 2)


def test_multilingual_nanobeir_offline_and_split(tmp_path: Path, hub_offline: None) -> None:
    with pytest.raises(HubUnavailableError, match="lightonai/NanoBEIR-fr"):
        get_task("NanoBEIR-fr").load(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(InputError, match="one evaluation set"):
        get_task("NanoBEIR-fr").load("train", data_dir=tmp_path)


# --------------------------------------------------------------------------- MTEB names


def test_the_real_mteb_knows_every_mteb_task_subset_and_split() -> None:
    """Each MTEB task these plugins name exists in the installed ``mteb`` with that HF subset and
    split, and its main score is the harness task's main metric (MTEB's ``hit_rate_at_5`` is Success@5)."""
    mteb = pytest.importorskip("mteb")
    same = {"success@5": "hit_rate_at_5", "ndcg@10": "ndcg_at_10"}
    for group in ("LoTTE", "MLDR", "NanoBEIR-multilingual"):
        for name in list_groups()[group]:
            task = get_task(name)
            assert task.mteb, name
            for mapped in task.mteb:
                metadata = mteb.get_task(mapped.name).metadata
                assert mapped.hf_subset in metadata.hf_subsets, (name, mapped)
                assert {split for split, _ in mapped.splits} <= set(metadata.eval_splits), (name, mapped)
                assert metadata.main_score == same[task.main_metric], (name, mapped)
