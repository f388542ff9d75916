"""End-to-end runs through the CLI and the Python API.

References: the published all-MiniLM-L6-v2 SciFact nDCG@10 (0.6451, MTEB / REFERENCE.md §1),
and PyLate's own ``PyLateInformationRetrievalEvaluator`` for card-convention numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.plaid import PlaidIndex, default_search_settings
from harness.results import load_result
from harness.run import evaluate
from harness.types import InputError
from tests.helpers import REPO_ROOT, needs_scifact, pylate_evaluator_inputs, small_beir

BASELINE = REPO_ROOT / "results" / "baseline"


@pytest.mark.slow
@needs_scifact
@pytest.mark.parametrize("checkpoint", ["ettin_like_checkpoint", "stanford_checkpoint"])
def test_card_metrics_equal_pylate_evaluator(checkpoint, request, tmp_path):
    """`--scoring pylate` card metrics equal PyLate's evaluator to 1e-6 (float32 score noise), for a
    PyLate checkpoint and a Stanford ColBERT one."""
    from pylate import evaluation, models

    ettin_like_checkpoint = request.getfixturevalue(checkpoint)
    data = small_beir(tmp_path / "data" / "NanoSciFact", n_docs=200, n_queries=12, split="train")
    [result] = evaluate(
        str(ettin_like_checkpoint),
        ["NanoSciFact"],
        data_dir=tmp_path / "data",
        output_dir=None,
        cache_dir=None,
        show_progress=False,
    )
    assert result.retrieval.params["scoring"] == "pylate"

    queries, corpus, relevant = pylate_evaluator_inputs(data)
    model = models.ColBERT(model_name_or_path=str(ettin_like_checkpoint), device="cpu")
    evaluator = evaluation.PyLateInformationRetrievalEvaluator(
        queries=queries, corpus=corpus, relevant_docs=relevant, show_progress_bar=False
    )
    reference = evaluator(model)
    ours = result.subsets[0].card
    for key, value in reference.items():
        metric = key.split("MaxSim_", 1)[-1]
        if metric in ours:
            assert ours[metric] == pytest.approx(value, abs=1e-6), key
    assert sum(1 for k in reference if k.split("MaxSim_", 1)[-1] in ours) == 15


class CountingEncoder:
    """Wraps an encoder and counts encode calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, *args, **kwargs):
        self.calls += 1
        return self.inner.encode(*args, **kwargs)


@needs_scifact
def test_rerun_reuses_results_and_cache(bert_checkpoint, tmp_path):
    from harness.encode import load_encoder

    small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=5)
    kwargs = dict(
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        show_progress=False,
    )
    encoder = CountingEncoder(load_encoder(str(bert_checkpoint)))
    [first] = evaluate(encoder, ["mini"], **kwargs)
    assert encoder.calls >= 2
    calls = encoder.calls
    [again] = evaluate(encoder, ["mini"], **kwargs)  # results file matches: nothing recomputed
    assert encoder.calls == calls and again.to_dict() == first.to_dict()
    [forced] = evaluate(encoder, ["mini"], overwrite=True, **kwargs)  # cache hit: no encoding either
    assert encoder.calls == calls
    assert forced.subsets[0].trec == first.subsets[0].trec
    # token counts come with the embeddings (stored in the cache), not from tokenising again
    assert forced.tokens == first.tokens and first.tokens["documents"] > first.tokens["queries"] > 0


@needs_scifact
def test_token_length_flags_reach_the_encoder_and_the_record(bert_checkpoint, minilm_dense_model, tmp_path):
    """--document-length / --query-length replace the checkpoint's limits (PyLate's constructor
    arguments): recorded in the model settings, a new cache entry and, for a document limit shorter
    than the texts, different numbers. A dense model has no such limit: a clear error."""
    small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=5)
    kwargs = dict(
        data_dir=tmp_path / "data", output_dir=None, cache_dir=tmp_path / "cache", show_progress=False
    )
    [default] = evaluate(str(bert_checkpoint), ["mini"], **kwargs)
    [short] = evaluate(str(bert_checkpoint), ["mini"], document_length=8, query_length=12, **kwargs)
    assert default.model.settings["document_length"] != 8
    assert (short.model.settings["document_length"], short.model.settings["query_length"]) == (8, 12)
    assert short.subsets[0].trec != default.subsets[0].trec
    assert len(list((tmp_path / "cache").iterdir())) == 4  # docs and queries, twice
    with pytest.raises(InputError, match="unknown override"):
        evaluate(str(minilm_dense_model), ["mini"], document_length=8, **kwargs)


def test_failed_run_writes_nothing(bert_checkpoint, tmp_path):
    data = tmp_path / "data" / "broken"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text('{"_id": "d1", "text": "fine"}\n{"_id": "d2", "text": 5}\n')
    (data / "queries.jsonl").write_text('{"_id": "q1", "text": "a query"}\n')
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with pytest.raises(InputError, match=r"corpus\.jsonl:2.*text"):
        evaluate(
            str(bert_checkpoint),
            ["broken"],
            data_dir=tmp_path / "data",
            output_dir=tmp_path / "out",
            cache_dir=None,
            show_progress=False,
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(bert_checkpoint),
                "--tasks",
                "broken",
                "--data-dir",
                str(tmp_path / "data"),
                "--output",
                str(tmp_path / "out"),
                "--no-cache",
                "--quiet",
            ]
        )
        == 2
    )


@needs_scifact
def test_bm25_baseline_and_saved_run(tmp_path):
    import pytrec_eval

    from harness.runfile import read_trec_run

    data = small_beir(tmp_path / "data" / "mini", n_docs=300, n_queries=20)
    [result] = evaluate(
        "bm25",
        ["mini"],
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        save_run=True,
        show_progress=False,
    )
    [run_file] = (tmp_path / "out" / "runs").glob("*.trec")
    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(read_trec_run(run_file))
    reference = sum(v["ndcg_cut_10"] for v in per_query.values()) / len(per_query)
    assert result.main_score == pytest.approx(reference, abs=1e-9)
    assert result.main_score > 0.3  # lexical overlap finds SciFact's evidence far above chance


@needs_scifact
def test_rerank_over_exact_candidates_equals_exact(bert_checkpoint, tmp_path):
    """Rerank over a run file of exact MaxSim's own top 100 must reproduce exact MaxSim's metrics."""
    small_beir(tmp_path / "data" / "mini", n_docs=150, n_queries=8)
    kwargs = dict(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", show_progress=False, k=100)
    [exact] = evaluate(str(bert_checkpoint), ["mini"], output_dir=tmp_path / "exact", save_run=True, **kwargs)
    [run_file] = (tmp_path / "exact" / "runs").glob("*.trec")
    [reranked] = evaluate(
        str(bert_checkpoint), ["mini"], output_dir=None, first_stage=str(run_file), rerank_depth=100, **kwargs
    )
    assert reranked.retrieval.method == "rerank"
    assert reranked.subsets[0].trec == pytest.approx(exact.subsets[0].trec, abs=1e-9)


@needs_scifact
def test_plaid_index_is_built_once_and_recorded(bert_checkpoint, tmp_path, monkeypatch):
    small_beir(tmp_path / "data" / "mini", n_docs=200, n_queries=8)
    kwargs = dict(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", output_dir=None, show_progress=False
    )
    [exact] = evaluate(str(bert_checkpoint), ["mini"], **kwargs)
    [plaid] = evaluate(str(bert_checkpoint), ["mini"], index="plaid", plaid_nbits=4, **kwargs)
    [index_dir] = (tmp_path / "cache" / "plaid").iterdir()
    manifest_time = (index_dir / "manifest.json").stat().st_mtime_ns
    [again] = evaluate(str(bert_checkpoint), ["mini"], index="plaid", plaid_nbits=4, **kwargs)
    assert (index_dir / "manifest.json").stat().st_mtime_ns == manifest_time  # reused, not rebuilt
    assert again.subsets[0].trec == plaid.subsets[0].trec
    [(subset, index_stats)] = plaid.retrieval.index.items()  # one entry per subset
    assert subset == "mini" and index_stats["disk_bytes"] > 0 and "build_seconds" not in index_stats
    assert plaid.timings["index_s"] > 0 and plaid.timings["retrieve_ms_per_query"] > 0
    # the build's seconds are a timing, measured by the run that built it and carried by the next
    assert plaid.timings["index_build_s"] > 0 and plaid.timings["sources"]["index_build_s"] == "measured"
    assert again.timings["index_build_s"] == plaid.timings["index_build_s"]
    assert again.timings["sources"]["index_build_s"] == "cache"
    # with a cache the build streams the cache's memory-mapped shards; without, the in-memory pack:
    # the same embeddings and seed make the same index, so the same numbers (tolerance 0)
    [in_memory] = evaluate(
        str(bert_checkpoint), ["mini"], index="plaid", plaid_nbits=4, **(kwargs | {"cache_dir": None})
    )
    assert in_memory.subsets[0].trec == plaid.subsets[0].trec
    # the search knobs are recorded: defaults for the ranking depth, or the caller's; they do not
    # touch the index
    assert plaid.retrieval.params["search"] == default_search_settings(plaid.retrieval.k)
    knobs = {"n_probe": 1, "centroid_score_threshold": None, "n_full_scores": 16}
    seen: list[dict] = []
    search = PlaidIndex.search
    monkeypatch.setattr(
        PlaidIndex, "search", lambda self, *a, **kw: seen.append(kw) or search(self, *a, **kw)
    )
    [narrow] = evaluate(
        str(bert_checkpoint),
        ["mini"],
        index="plaid",
        plaid_nbits=4,
        plaid_n_probe=1,
        plaid_centroid_score_threshold=None,
        plaid_n_full_scores=16,
        **kwargs,
    )
    assert narrow.retrieval.params["search"] == knobs
    assert [{key: kw[key] for key in knobs} for kw in seen] == [knobs]  # what the index searched with
    assert (index_dir / "manifest.json").stat().st_mtime_ns == manifest_time
    # a compressed index of a tiny random model: close to exact, not equal (the quality bar is in test_plaid)
    assert abs(plaid.main_score - exact.main_score) < 0.15


@needs_scifact
def test_nanobeir_group_from_local_folders_writes_the_model_card(bert_checkpoint, tmp_path, capsys):
    """`--tasks NanoBEIR --data-dir` reads 13 local folders and writes the card beside the results; the
    card's model-index values are the results files' card metrics (the card format itself is checked
    against the seed card in test_report.py)."""
    import yaml

    from harness.report import nanobeir_datasets

    NANOBEIR_DATASETS = nanobeir_datasets()

    for name in NANOBEIR_DATASETS:
        small_beir(tmp_path / "data" / name, n_docs=12, n_queries=2, split="train")
    args = [
        "evaluate",
        "--model",
        str(bert_checkpoint),
        "--model-name",
        "tiny",
        "--tasks",
        "NanoBEIR",
        "--data-dir",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "out"),
        "--no-cache",
        "--quiet",
    ]
    assert main(args) == 0
    assert "model card:" in capsys.readouterr().out
    [card] = (tmp_path / "out").glob("*.md")
    front = yaml.safe_load(card.read_text().split("---")[1])
    [entry] = front["model-index"]
    assert [r["dataset"]["name"] for r in entry["results"]] == [*NANOBEIR_DATASETS, "NanoBEIR mean"]
    for block in entry["results"][:-1]:
        stored = load_result(next((tmp_path / "out").glob(f"tiny__{block['dataset']['name']}.json")))
        values = {m["type"].removeprefix("MaxSim_"): m["value"] for m in block["metrics"]}
        assert values == pytest.approx(stored.subsets[0].card, abs=0)


@needs_scifact
@pytest.mark.parametrize("full", ["cache", "output"])
def test_a_full_disk_is_found_before_encoding(bert_checkpoint, tmp_path, monkeypatch, full):
    """Too little free space where the cache or the results go: a DiskFullError naming that folder,
    before anything is encoded (the free-space figure is patched; estimates are in harness.cache)."""
    import harness.fileio
    from harness.encode import load_encoder
    from harness.fileio import DiskFullError

    small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=5)
    folder = tmp_path / full
    real = harness.fileio.free_bytes
    monkeypatch.setattr(
        harness.fileio,
        "free_bytes",
        lambda p: 1000 if folder in Path(p).absolute().parents or Path(p) == folder else real(p),
    )
    encoder = CountingEncoder(load_encoder(str(bert_checkpoint)))
    with pytest.raises(DiskFullError, match=f"^{folder}.*: no space left .* free") as err:
        evaluate(
            encoder,
            ["mini"],
            data_dir=tmp_path / "data",
            output_dir=tmp_path / "output",
            cache_dir=tmp_path / "cache",
            show_progress=False,
        )
    assert encoder.calls == 0 and str(folder) in str(err.value)
    assert not (tmp_path / "output").exists() or not any((tmp_path / "output").rglob("*.json"))


@needs_scifact
def test_a_write_that_hits_a_full_disk_names_the_folder(bert_checkpoint, tmp_path, monkeypatch, capsys):
    """ENOSPC at the first write (a patched writer: CI cannot mount a small tmpfs): the error names the
    folder, the CLI exits 2 with one line, and no temp or half-written file is left."""
    import errno

    import harness.fileio

    small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=5)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.fileio._HashingWriter, "write", full)
    args = [
        "evaluate",
        "--model",
        str(bert_checkpoint),
        "--tasks",
        "mini",
        "--data-dir",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "cache") in err and "no space left" in err
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("shard-*.npy"))


def _documented_keys() -> tuple[list[str], set[str]]:
    """Top-level keys and timing keys of the results schema in harness/results.py's docstring."""
    import re

    import harness.results

    layout = harness.results.__doc__.split("::", 1)[1].split("\n\n", 2)[1]
    top = re.findall(r'^      "(\w+)":', layout, re.M)
    timings = layout[layout.index('"timings"') : layout.index('"tokens"')]
    return top, set(re.findall(r'"(\w+)"', timings)) - {"timings", "measured", "cache"}


@needs_scifact
def test_same_inputs_same_results_files(bert_checkpoint, tmp_path):
    """Two PLAID runs from scratch (separate caches, so two builds): the results files are equal but
    for created and timings (no index build time outside timings, manifests byte-identical), and
    every file holds exactly the keys the schema in harness/results.py documents."""
    small_beir(tmp_path / "data" / "mini", n_docs=120, n_queries=6)
    texts = []
    for run in ("a", "b"):
        evaluate(
            str(bert_checkpoint),
            ["mini"],
            index="plaid",
            data_dir=tmp_path / "data",
            output_dir=tmp_path / run,
            cache_dir=tmp_path / f"cache-{run}",
            show_progress=False,
        )
        [path] = (tmp_path / run).glob("*.json")
        texts.append(json.loads(path.read_text()))
    top, timing_keys = _documented_keys()
    for data in texts:
        assert list(data) == top
        assert set(data["timings"]) <= timing_keys and set(data["timings"]["sources"]) <= timing_keys
    measured = ("created", "timings", "efficiency", "settings")  # wall times, dates; settings below
    a, b = ({k: v for k, v in d.items() if k not in measured} for d in texts)
    assert a == b
    assert {k: v for k, v in texts[0]["settings"].items() if not k.endswith("_dir")} == {
        k: v for k, v in texts[1]["settings"].items() if not k.endswith("_dir")
    }


@needs_scifact
def test_cache_hit_timings_are_carried_and_say_so(bert_checkpoint, tmp_path):
    """A cache hit records the encoder's seconds from the shards that measured them, marked "cache";
    a cold run's are "measured"; the leaderboard's throughput uses measured timings only."""
    from harness.report.tables import _throughput

    small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=5)
    kwargs = dict(
        data_dir=tmp_path / "data", output_dir=None, cache_dir=tmp_path / "cache", show_progress=False
    )
    [cold] = evaluate(str(bert_checkpoint), ["mini"], **kwargs)
    [hit] = evaluate(str(bert_checkpoint), ["mini"], **kwargs)
    assert cold.timings["sources"] == {"encode_queries_s": "measured", "encode_documents_s": "measured"}
    assert hit.timings["sources"] == {"encode_queries_s": "cache", "encode_documents_s": "cache"}
    for side in ("encode_queries_s", "encode_documents_s"):
        assert hit.timings[side] == pytest.approx(cold.timings[side], rel=0.05)  # sum of the shards' seconds
    assert _throughput([cold]) == pytest.approx(cold.tokens["documents"] / cold.timings["encode_documents_s"])
    assert _throughput([hit]) is None
