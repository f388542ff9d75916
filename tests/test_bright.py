"""BRIGHT (tasks/bright.py; issue 30): ``harness tasks`` lists every task with its published sizes and
MTEB names the real ``mteb`` knows; both splits load from a snapshot the tests build in the Hub layout
(``<config>/<domain>-00000-of-00001.parquet``, with or without README configs); excluded ids never
count: a relevant document planted at rank 1 and excluded scores as if absent (pytrec_eval on the
run without it), the run keeps its depth, and ``--data-dir`` runs end to end with BM25."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.data import assemble
from harness.errors import InputError
from harness.ranking import drop_excluded
from harness.run import search_depth
from harness.runfile import read_trec_run
from harness.tasks import Task, get_task, list_groups
from harness.types import Dataset
from tasks.bright import DOMAINS, LONG, SIZES, load_bright
from tests.helpers import write_parquet

# A query whose text is one document's, word for word: BM25's rank 1 (BRIGHT excludes such a doc:
# the same problem, in the leetcode / aops / theoremqa corpora).
SUM = "two sum return indices of the two numbers that add up to target"
LEETCODE_DOCS = {
    "leetcode/own": SUM,  # excluded: rank 1 unless dropped
    "leetcode/near": "two numbers add up to target sum",  # excluded too: rank 2
    "leetcode/gold": "use a hash map of seen numbers to return indices in one pass",
    "leetcode/f1": "reverse a linked list in place",
    "leetcode/f2": "binary search over a sorted array of numbers",
    "leetcode/f3": "count islands in a grid with depth first search",
    **{f"leetcode/filler{i}": f"unrelated problem number {i}" for i in range(8)},  # 14 docs: > k + 2
}
BIOLOGY = (
    {"id": "b0", "content": "insects fly toward artificial light at night"},
    {"id": "b1", "content": "the nasal cycle alternates airflow between nostrils"},
    {"id": "b2", "content": "photosynthesis in leaves"},
)
BIOLOGY_LONG = (
    {"id": "long/insects", "content": "a long page: insects, moths and light " * 20},
    {"id": "long/nose", "content": "a long page: the nose and the nasal cycle " * 20},
)
README = """---
configs:
""" + "".join(
    f"- config_name: {c}\n  data_files:\n"
    + "".join(f"  - split: {d}\n    path: {c}/{d}-*\n" for d in domains)
    for c, domains in (
        ("documents", ("biology", "leetcode")),
        ("long_documents", ("biology",)),
        ("examples", ("biology", "leetcode")),
    )
) + "---\n# BRIGHT\n"  # fmt: skip


def _example(qid: str, query: str, gold: list[str], gold_long: list[str], excluded: list[str]) -> dict:
    return {"query": query, "reasoning": "", "id": qid, "excluded_ids": excluded,
            "gold_ids_long": gold_long, "gold_ids": gold}  # fmt: skip


def write_bright_snapshot(root: Path, readme: bool = False) -> Path:
    """xlangai/BRIGHT layout under ``root/BRIGHT``: biology (both splits, no exclusions: ``N/A``) and
    leetcode (standard only; the query's own problem and a near copy excluded)."""
    folder = root / "BRIGHT"
    part = "-00000-of-00001.parquet"
    write_parquet(folder / "documents" / f"biology{part}", list(BIOLOGY))
    write_parquet(folder / "long_documents" / f"biology{part}", list(BIOLOGY_LONG))
    write_parquet(folder / "examples" / f"biology{part}", [
        _example("0", "why do insects fly to light", ["b0"], ["long/insects"], ["N/A"]),
        _example("1", "why does one nostril breathe more", ["b1"], ["long/nose"], ["N/A"]),
    ])  # fmt: skip
    write_parquet(
        folder / "documents" / f"leetcode{part}", [{"id": i, "content": t} for i, t in LEETCODE_DOCS.items()]
    )
    write_parquet(folder / "examples" / f"leetcode{part}", [
        _example("lc1", SUM, ["leetcode/gold"], [], ["leetcode/own", "leetcode/near", "N/A"]),
    ])  # fmt: skip
    if readme:
        (folder / "README.md").write_text(README, "utf-8")
    return folder


# --------------------------------------------------------------------------- the registry


def test_harness_tasks_lists_every_bright_task_with_its_published_sizes(capsys) -> None:
    groups = (
        ("BRIGHT", "standard", "ndcg@10", list(DOMAINS)),
        ("BRIGHT-long", "long", "recall@1", list(LONG)),
    )
    for group, split, metric, names in groups:
        assert main(["tasks", "--group", group]) == 0
        rows = {
            line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[2:] if line
        }
        for domain in names:
            queries, documents, long_documents = SIZES[domain]
            n_docs = long_documents if split == "long" else documents
            assert rows[f"{group}/{domain}"] == ["trec", metric, split, f"{queries:,}", f"{n_docs:,}"]
        assert list_groups()[group] == tuple(f"{group}/{d}" for d in names)
    assert [*DOMAINS][:7] + ["pony"] == list(LONG)  # the StackExchange domains and pony have long docs
    assert sum(q for q, _, _ in SIZES.values()) == 1_384  # the paper's query count


def test_every_mteb_name_is_one_the_real_mteb_knows_with_the_same_split() -> None:
    mteb = pytest.importorskip("mteb")
    tasks = [get_task(f"BRIGHT/{d}") for d in DOMAINS] + [get_task(f"BRIGHT-long/{d}") for d in LONG]
    for task in tasks:
        (mapped,) = task.mteb
        meta = mteb.get_task(mapped.name).metadata
        main = task.main_metric.replace("@", "_at_")  # nDCG@10; Recall@1 on long documents
        assert (meta.eval_splits, meta.main_score) == ([task.eval_split], main), mapped.name
        assert mapped.splits == ((task.eval_split, task.name.split("/")[1]),)


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("readme", [False, True], ids=["data-files", "readme-configs"])
def test_both_splits_load_from_a_hub_layout_snapshot(tmp_path: Path, readme: bool) -> None:
    write_bright_snapshot(tmp_path, readme)
    (standard,) = get_task("BRIGHT/biology").load(data_dir=tmp_path, cache_dir=tmp_path / "hf")
    (long,) = get_task("BRIGHT-long/biology").load(data_dir=tmp_path, cache_dir=tmp_path / "hf")
    assert standard.name == long.name == "biology"
    assert list(standard.corpus) == ["b0", "b1", "b2"] and list(long.corpus) == ["long/insects", "long/nose"]
    assert standard.qrels == {"0": {"b0": 1}, "1": {"b1": 1}}  # gold_ids
    assert long.qrels == {"0": {"long/insects": 1}, "1": {"long/nose": 1}}  # gold_ids_long
    assert standard.queries == long.queries and dict(standard.excluded) == {}  # "N/A": nothing excluded
    (leetcode,) = get_task("BRIGHT/leetcode").load(data_dir=tmp_path, cache_dir=tmp_path / "hf")
    assert dict(leetcode.excluded) == {"lc1": frozenset({"leetcode/own", "leetcode/near"})}


def test_a_split_a_task_does_not_have_and_bad_rows_are_input_errors(tmp_path: Path) -> None:
    root = write_bright_snapshot(tmp_path)
    with pytest.raises(InputError, match="BRIGHT-long tasks") as err:
        get_task("BRIGHT/biology").load(split="long", data_dir=tmp_path)
    assert err.value.field == "--split"
    with pytest.raises(InputError, match="unknown BRIGHT split"):
        load_bright("biology", "test", source=root)
    write_parquet(root / "examples" / "biology-00000-of-00001.parquet", [
        _example("0", "q", ["b0"], [], ["b0"]),  # excluded and gold: the official run.py asserts neither
    ])  # fmt: skip
    with pytest.raises(InputError, match="excludes its relevant doc 'b0'"):
        load_bright("biology", source=root, cache_dir=tmp_path / "hf")
    write_parquet(
        root / "examples" / "biology-00000-of-00001.parquet", [{"id": "0", "query": "q", "gold_ids": "b0"}]
    )
    with pytest.raises(InputError) as err:
        load_bright("biology", source=root, cache_dir=tmp_path / "hf")
    assert err.value.field == "gold_ids" and err.value.line == 1


def test_the_fingerprint_counts_exclusions_only_when_there_are_some() -> None:
    plain = Dataset("d", {"a": "alpha", "b": "beta"}, {"q": "query"}, {"q": {"a": 1}})
    assert (
        plain.fingerprint() == "5d97a57d0b76c19225e22a9d459c2a0b99d74a89ae228154c5ce003935858c97"
    )  # as before
    excluding = Dataset("d", plain.corpus, plain.queries, plain.qrels, excluded={"q": frozenset({"b"})})
    assert excluding.fingerprint() != plain.fingerprint()
    built = assemble("d", plain.corpus, plain.queries, plain.qrels, source="s", qrels_where="w",
                     excluded={"q": ["b"], "gone": ["a"], "q2": []})  # fmt: skip
    assert dict(built.excluded) == {"q": frozenset({"b"})}  # only the kept queries' exclusions


# --------------------------------------------------------------------------- excluded ids never count


def _ndcg10(qrels: dict, run: dict) -> float:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return sum(v["ndcg_cut_10"] for v in per_query.values()) / len(per_query)


def test_an_excluded_relevant_doc_at_rank_1_scores_as_if_absent() -> None:
    """The query's text is doc ``x``'s (BM25 rank 1) and ``x`` is relevant, but excluded: nDCG@10 is
    pytrec_eval's on the BM25 run without ``x`` (``x`` still counts in the ideal ranking), not on the
    run with it. Built in memory: a BRIGHT file with such a row is refused (run.py asserts it)."""
    from harness.retrieve import bm25_search
    from harness.run import evaluate

    corpus = {"x": SUM, "g": "return indices with a hash map", "f": "reverse a linked list"}
    qrels = {"q": {"x": 1, "g": 1}}
    dataset = Dataset("planted", corpus, {"q": SUM}, qrels, excluded={"q": frozenset({"x"})})
    task = Task("Planted", "planted", "trec", "ndcg@10", "test", False, lambda *_: [dataset])
    (result,) = evaluate("bm25", task, output_dir=None, cache_dir=None, show_progress=False)

    scores, indices = bm25_search(list(corpus.values()), [SUM], 3, tie_keys=dataset.doc_texts.tie_keys)
    full = {"q": {list(corpus)[i]: float(s) for s, i in zip(scores[0], indices[0], strict=True)}}
    assert max(full["q"], key=full["q"].__getitem__) == "x"  # planted at rank 1
    without = {"q": {d: s for d, s in full["q"].items() if d != "x"}}
    expected = _ndcg10(qrels, without)
    assert result.subsets[0].trec["ndcg@10"] == pytest.approx(expected)
    assert expected != pytest.approx(_ndcg10(qrels, full))  # kept at rank 1, it would score


def test_drop_excluded_keeps_each_querys_k_best_by_the_ranking_rule() -> None:
    run = {"q": {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}, "r": {"a": 1.0}, "s": {"x": 1.0}}
    kept = drop_excluded(run, {"q": frozenset({"a"}), "s": frozenset({"x"})}, k=2)
    assert kept == {"q": {"c": 2.0, "b": 2.0}, "r": {"a": 1.0}}  # ties by doc id descending; "s" left empty
    dataset = Dataset("d", dict.fromkeys("abcdef", "t"), {"q": "t"}, {"q": {"a": 1}},
                      excluded={"q": frozenset("bc"), "r": frozenset("d")})  # fmt: skip
    assert (search_depth(dataset, 3), search_depth(dataset, 5)) == (5, 6)  # k + 2, at most the corpus


def test_data_dir_end_to_end_with_bm25_drops_excluded_ids_and_keeps_the_depth(tmp_path: Path, capsys) -> None:
    """``--model bm25 --k 10`` on the snapshot: leetcode's excluded docs (ranks 1 and 2 by BM25) are in
    neither the metrics nor the TREC run, which still holds 10 of the 14 documents (searched 12 deep);
    the gold doc ranks first."""
    write_bright_snapshot(tmp_path / "data")
    out = tmp_path / "out"
    args = ["evaluate", "--model", "bm25", "--tasks", "BRIGHT/leetcode,BRIGHT-long/biology"]
    args += ["--data-dir", str(tmp_path / "data"), "--output", str(out), "--k", "10", "--save-run", "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    results = {
        json.loads(p.read_text())["task"]["name"]: json.loads(p.read_text()) for p in out.glob("*.json")
    }
    leetcode = results["BRIGHT/leetcode"]["subsets"][0]
    assert leetcode["name"] == "leetcode" and leetcode["trec"]["ndcg@10"] == pytest.approx(1.0)
    (run_file,) = (out / "runs").glob("*leetcode.trec")
    run = read_trec_run(run_file)
    assert list(run) == ["lc1"] and len(run["lc1"]) == 10
    assert not {"leetcode/own", "leetcode/near"} & set(run["lc1"])
    assert max(run["lc1"], key=run["lc1"].__getitem__) == "leetcode/gold"
    long = results["BRIGHT-long/biology"]
    assert long["task"]["split"] == "long" and long["subsets"][0]["n_queries"] == 2
