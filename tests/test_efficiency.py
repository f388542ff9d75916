"""The efficiency record (harness.efficiency): every results file a run writes holds it with the
documented keys; latency is measured one query at a time over the same prepared search and ranks
exactly as the batched search; numbers carried from the cache say so; older files still load; and
``harness results`` shows p95 latency and QPS. Rules only: no timing is compared with a threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import harness.results
from harness.cli import main
from harness.efficiency import SearchMeasurement, efficiency_record, measure_search
from harness.records import EfficiencyRecord
from harness.results import load_result, save_result
from harness.retrieve import BM25Retriever, Embedder, ExactRetriever, PlaidRetriever, SearchStats
from harness.retrieve.bm25 import bm25_search
from harness.retrieve.stages import Ranking
from harness.run import evaluate
from harness.settings import EvalSettings
from harness.tasks import resolve_tasks
from tests.helpers import REPO_ROOT, needs_scifact, small_beir
from tests.model_fixtures import minilm_model_dir

N_QUERIES = 10
SHORT = {"document_length": 64}  # the ettin-like model reads 64 tokens a document: fast on 2 cores
RUNS = {  # run name -> (model: "bm25", "dense" (all-MiniLM-L6-v2) or None (ettin-like), settings)
    "bm25": ("bm25", {}),
    "dense": ("dense", {}),
    "exact": (None, SHORT),
    "plaid": (None, SHORT | {"index": "plaid", "plaid_nbits": 2}),
    "rerank": (None, SHORT | {"first_stage": "bm25", "rerank_depth": 20}),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("efficiency")
    small_beir(root / "data" / "mini", n_docs=60, n_queries=N_QUERIES)
    return root / "data"


def _run(name: str, checkpoint: Path, data: Path, out: Path, cache: Path, **extra):
    model, settings = RUNS[name]
    if model != "bm25":
        model = str(minilm_model_dir() if model == "dense" else checkpoint)
    kwargs = dict(data_dir=data, output_dir=out, cache_dir=cache, show_progress=False)
    [result] = evaluate(model, ["mini"], **(kwargs | settings | extra))
    [path] = out.glob("*.json")
    return result, json.loads(path.read_text())


def _documented_keys() -> set[str]:
    """The keys the efficiency layout in harness/results.py's docstring names, at any depth."""
    layout = harness.results.__doc__.split('"efficiency": {', 1)[1].split('"environment"', 1)[0]
    return set(re.findall(r'"(\w+)":', layout))


@needs_scifact
@pytest.mark.parametrize("name", list(RUNS))
def test_every_results_file_records_the_run_cost(name, ettin_like_checkpoint, data, tmp_path):
    result, written = _run(name, ettin_like_checkpoint, data, tmp_path / "out", tmp_path / "cache")
    efficiency = written["efficiency"]
    assert list(written).index("efficiency") == list(written).index("tokens") + 1
    assert set(efficiency) == {"encode", "index", "search", "peak_rss_bytes", "peak_rss_scope", "hardware"}
    keys = _documented_keys()
    nested = [efficiency["search"], efficiency["search"]["batched"], efficiency["search"]["single"]]
    nested += [efficiency["hardware"], *(efficiency["encode"] or {}).values(), efficiency["index"] or {}]
    for part in nested:
        assert set(part) <= keys, set(part) - keys
    if name == "plaid":  # every part present: every documented key written
        assert set(efficiency).union(*nested) == keys
    search = efficiency["search"]
    single = search["single"]
    assert single["limit"] == 100 and single["queries"] == single["of"] == N_QUERIES  # min(N, queries)
    assert 0 < single["p50_ms"] <= single["p95_ms"] <= single["p99_ms"]
    assert single["qps"] > 0 and single["same_ranking"] is True
    assert search["batched"]["queries"] == N_QUERIES and search["batched"]["qps"] > 0
    assert search["batched"]["seconds"] == written["timings"]["retrieve_s"]  # one measurement, one place
    assert search["warmup_queries"] == 3
    assert efficiency["peak_rss_bytes"] > 0 and "process" in efficiency["peak_rss_scope"]
    hardware = efficiency["hardware"]
    assert hardware["cpu_count"] >= 1 and hardware["torch_threads"] >= 1 and hardware["device"] == "cpu"
    assert hardware["gpu"] is None
    if name == "bm25":
        assert efficiency["encode"] is None and efficiency["index"] is None
    else:
        for side in ("queries", "documents"):
            rate = efficiency["encode"][side]
            assert rate["source"] == "measured" and rate["tokens"] == written["tokens"][side]
            assert rate["tokens_per_s"] == pytest.approx(rate["tokens"] / rate["seconds"])
    if name == "plaid":
        index = efficiency["index"]
        assert index["source"] == "measured" and index["build_s"] == written["timings"]["index_build_s"]
        assert index["peak_rss_bytes"] > 0 and index["peak_rss_note"]
        assert "disk_bytes" in written["retrieval"]["index"]["mini"]  # sizes: one place
    else:
        assert efficiency["index"] is None
    # the file reads back to the same record
    assert load_result(next((tmp_path / "out").glob("*.json"))).efficiency == result.efficiency


def _texts(data: Path):
    [dataset] = resolve_tasks(["mini"], data_dir=data)[0].load(data_dir=data)
    return dataset.query_texts, dataset.doc_texts


@needs_scifact
def test_queries_searched_alone_rank_as_the_batched_search(ettin_like_checkpoint, data, tmp_path):
    """For every retriever, each query ranked alone over the prepared search has exactly the row
    (documents and scores) of the batched search, and BM25's stage ranks as ``bm25_search``."""
    from harness.encode import load_encoder

    queries, docs = _texts(data)
    encoder = load_encoder(str(ettin_like_checkpoint), **SHORT)
    embedder = Embedder(encoder, tmp_path / "cache", show_progress=False)
    retrievers = {
        "bm25": BM25Retriever(show_progress=False),
        "exact": ExactRetriever(embedder, "masked"),
        "exact-pylate": ExactRetriever(embedder, "pylate", pylate_chunk_size=7),
        "plaid": PlaidRetriever(embedder, 2, {"n_probe": 2, "centroid_score_threshold": 0.3}),
    }
    for name, retriever in retrievers.items():
        with retriever.prepare(queries, docs, 10) as prepared:
            batched, _ = prepared.search()
            for i in range(len(queries)):
                alone = prepared.rank(np.array([i]), False)
                np.testing.assert_array_equal(alone.indices[0], batched.indices[i], err_msg=name)
                np.testing.assert_array_equal(alone.scores[0], batched.scores[i], err_msg=name)
            some = prepared.rank(np.array([3, 1]), False)  # any subset, in any order
            np.testing.assert_array_equal(some.indices, batched.indices[[3, 1]], err_msg=name)
    scores, indices = bm25_search(docs, queries, 10, tie_keys=docs.tie_keys, show_progress=False)
    with retrievers["bm25"].prepare(queries, docs, 10) as prepared:
        ranked, _ = prepared.search()
    np.testing.assert_array_equal(ranked.indices, indices)
    np.testing.assert_array_equal(ranked.scores, scores)


class _Counting:
    """A prepared search that records which rows it was asked to rank, and when."""

    def __init__(self, n: int) -> None:
        self.n_queries, self.calls, self.show_progress = n, [], False
        self.stats = SearchStats()

    def rank(self, rows: np.ndarray, show_progress: bool) -> Ranking:
        self.calls.append(list(rows))
        return Ranking(np.asarray(rows, np.float32)[:, None], np.asarray(rows, np.int64)[:, None])

    def search(self):
        self.calls.append("batched")
        return self.rank(np.arange(self.n_queries), False), SearchStats(retrieve_s=1.0)


def test_warm_up_then_batched_then_each_query_alone_up_to_the_limit():
    prepared = _Counting(6)
    measured = measure_search(prepared, 4)
    assert prepared.calls[:5] == [[0], [1], [2], "batched", [0, 1, 2, 3, 4, 5]]
    assert prepared.calls[5:] == [[0], [1], [2], [3]]  # the first 4, in file order, one at a time
    assert len(measured.latencies) == 4 and measured.same_ranking and measured.warmup == 3
    skipped = _Counting(6)
    measured = measure_search(skipped, 0, warm_up=False)
    assert skipped.calls == ["batched", [0, 1, 2, 3, 4, 5]] and measured.latencies == ()


def _measurement(latencies, *, same=True, n=4, stats=None):
    ranking = Ranking(np.zeros((n, 1), np.float32), np.zeros((n, 1), np.int64))
    return SearchMeasurement(ranking, stats or SearchStats(), tuple(latencies), same, 3)


def test_the_record_pools_subsets_and_never_makes_a_rate_from_nothing():
    timings = {"retrieve_s": 0.5, "encode_queries_s": None, "encode_documents_s": 2.0}
    timings |= {"sources": {"encode_queries_s": "cache", "encode_documents_s": "partly cached"}}
    tokens = {"queries": 40, "documents": 1000}
    searches = [_measurement([0.004, 0.001]), _measurement([0.003], same=False)]
    record = efficiency_record(timings, tokens, searches, limit=3, device="cpu")
    assert record.encode["queries"].tokens_per_s is None and record.encode["queries"].source == "cache"
    assert (
        record.encode["documents"].tokens_per_s == 500
        and record.encode["documents"].source == "partly cached"
    )
    single = record.single
    assert (single.queries, single.of, single.limit) == (3, 8, 3) and single.same_ranking is False
    assert single.p50_ms == pytest.approx(3.0) and single.p50_ms <= single.p95_ms <= single.p99_ms <= 4.0
    assert record.batched.qps == 16 and record.warmup_queries == 6 and record.index is None
    assert efficiency_record(timings, tokens, searches, limit=0, device="cpu").single is None
    built = SearchStats(index={"disk_bytes": 1}, index_build_rss=(100, 300))
    reused = SearchStats(index={"disk_bytes": 1})
    timings |= {"index_build_s": 1.5, "sources": {"index_build_s": "partly cached"}}
    both = [_measurement([], stats=built), _measurement([], stats=reused)]
    index = efficiency_record(timings, {}, both, limit=3, device="cpu").index
    assert (index.build_s, index.source, index.peak_rss_bytes) == (1.5, "partly cached", 300)
    assert "1 of 2 indexes reused" in index.peak_rss_note
    lower = [_measurement([], stats=SearchStats(index={"disk_bytes": 1}, index_build_rss=(300, 300)))]
    assert "upper bound" in efficiency_record(timings, {}, lower, limit=3, device="cpu").index.peak_rss_note


@needs_scifact
def test_a_cache_hit_records_the_encode_rate_as_carried(ettin_like_checkpoint, data, tmp_path):
    """A second run reads the embeddings and the index from the cache: its encode rates and build
    seconds are the first run's, marked "cache" (or null), never fresh-looking; its build peak is
    unknown; latency is measured again."""
    cache = tmp_path / "cache"
    _, cold = _run("plaid", ettin_like_checkpoint, data, tmp_path / "a", cache)
    _, hit = _run("plaid", ettin_like_checkpoint, data, tmp_path / "b", cache)
    for side in ("queries", "documents"):
        rate = hit["efficiency"]["encode"][side]
        assert rate["source"] == "cache"
        assert rate["tokens_per_s"] is None or rate["tokens_per_s"] == pytest.approx(
            cold["efficiency"]["encode"][side]["tokens_per_s"], rel=0.05
        )
    index = hit["efficiency"]["index"]
    assert index["source"] == "cache" and index["peak_rss_bytes"] is None and index["peak_rss_note"] is None
    assert index["build_s"] == cold["efficiency"]["index"]["build_s"]
    assert hit["efficiency"]["search"]["single"]["queries"] == N_QUERIES


@needs_scifact
def test_latency_queries_bounds_the_single_query_set_and_zero_skips_it(ettin_like_checkpoint, data, tmp_path):
    """``--latency-queries`` (read with a default until settings carry it): N caps the set, 0 skips
    the warm-up and the single-query timings; the scores are the same either way."""
    settings = EvalSettings(data_dir=data, output_dir=None, show_progress=False)
    scores = []
    for limit, expected in ((4, 4), (0, None)):
        patched = settings.replace(latency_queries=limit)
        [result] = evaluate("bm25", ["mini"], patched)
        single = result.efficiency.single
        assert (single.queries if single else None) == expected
        assert result.efficiency.warmup_queries == (3 if limit else 0)
        scores.append(result.subsets[0].per_query_metrics)
    assert scores[0] == scores[1]
    # a finished file is reused only where its timings are the ones asked for
    saved = settings.replace(output_dir=tmp_path / "out")
    for limit, reused in ((4, False), (2, False), (2, True)):
        [result] = evaluate("bm25", ["mini"], saved.replace(latency_queries=limit))
        assert (result.reused, result.efficiency.single.limit, result.efficiency.single.queries) == (
            reused,
            limit,
            limit,
        )


def test_older_files_without_efficiency_load_and_keep_their_bytes(tmp_path):
    published = sorted((REPO_ROOT / "results" / "published").glob("*.json"))[0]
    result = load_result(published)
    assert result.efficiency is None
    assert save_result(result, tmp_path).read_bytes() == published.read_bytes()


def test_a_bad_efficiency_field_is_named(tmp_path):
    record = efficiency_record(
        {"retrieve_s": 1.0, "sources": {}}, {}, [_measurement([0.001])], limit=5, device="cpu"
    )
    data = record.to_dict()
    assert EfficiencyRecord.from_dict(json.loads(json.dumps(data))) == record
    data["search"]["single"]["p95_ms"] = "fast"
    with pytest.raises(harness.results.InputError, match=r"efficiency\.search\.single\.p95_ms"):
        EfficiencyRecord.from_dict(data, "f.json")
    data["search"]["single"]["p95_ms"] = 1.0
    del data["search"]["batched"]["qps"]
    with pytest.raises(harness.results.InputError, match="efficiency.search.batched.qps"):
        EfficiencyRecord.from_dict(data, "f.json")


@needs_scifact
def test_harness_results_shows_p95_latency_and_qps(data, tmp_path, capsys):
    _run("bm25", Path(), data, tmp_path / "out", tmp_path / "cache")
    assert main(["results", str(tmp_path / "out"), str(REPO_ROOT / "results" / "published")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert "p95 ms" in header and "QPS" in header
    row = next(line for line in out.splitlines() if line.startswith("bm25"))
    [path] = (tmp_path / "out").glob("*.json")
    single = json.loads(path.read_text())["efficiency"]["search"]["single"]
    assert f"{single['p95_ms']:.2f}" in row
