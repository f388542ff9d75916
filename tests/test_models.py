"""Every model of the card's tables loads as its reference library loads it: published layouts
(PyLate 1.6.0 / sentence-transformers as references, max abs 1e-5 = float32 noise), pinned Hub
revisions recorded in results, the model registry, and the names results are filed under."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tomllib

from harness.checkpoints.files import checkpoint_name, hub_snapshot
from harness.cli import main
from harness.encode import load_encoder
from harness.models import find_model, list_models
from harness.results import load_result
from harness.run import evaluate
from tests.helpers import make_result, needs_scifact, scores, small_beir
from tests.model_fixtures import TEXTS, assert_parity, minilm_model_dir, pylate_encode

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.pylate
def test_published_pylate_layouts_equal_pylate(gte_like_checkpoint, ettin_like_checkpoint):
    """GTE-ModernColBERT's layout (added_tokens.json, sentence_bert_config model_args, use_residual)
    and mxbai-edge-colbert's (ettin ModernBERT, two Dense) encode as PyLate does."""
    checkpoints = [gte_like_checkpoint, ettin_like_checkpoint]
    jobs = [{"checkpoint": str(c), "texts": TEXTS, "is_query": q} for c in checkpoints for q in (True, False)]
    reference = iter(pylate_encode(jobs))
    for checkpoint in checkpoints:
        encoder = load_encoder(checkpoint)
        for is_query in (True, False):
            ours = encoder.encode(TEXTS, is_query=is_query, batch_size=8, show_progress=False)
            assert_parity(ours, next(reference), TEXTS)


def test_granite_layout_equals_sentence_transformers(granite_like_checkpoint):
    """A ModernBERT sentence-transformers model with CLS pooling and Normalize (granite-embedding r2)."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(granite_like_checkpoint), device="cpu")
    encoder = load_encoder(granite_like_checkpoint)
    assert encoder.settings()["pooling"] == "cls" and encoder.settings()["normalize"]
    for is_query, st_encode in ((True, reference.encode_query), (False, reference.encode_document)):
        ours = encoder.encode(TEXTS, is_query=is_query, batch_size=8, show_progress=False)
        assert np.abs(ours.vectors - st_encode(TEXTS, batch_size=8)).max() <= 1e-5


def _fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: Path) -> list[dict]:
    """snapshot_download replaced: it records its arguments and serves ``source`` from a Hub-cache
    shaped folder (``models--org--name/snapshots/<sha>``) whose sha depends on the revision."""
    import huggingface_hub

    calls: list[dict] = []

    def snapshot_download(repo_id: str, revision: str | None = None, **kwargs) -> str:
        calls.append({"repo_id": repo_id, "revision": revision})
        sha = ("ab" if revision else "cd") * 20
        folder = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / sha
        if not folder.exists():
            shutil.copytree(source, folder)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


@needs_scifact
def test_revision_reaches_the_hub_and_lands_in_the_results(bert_checkpoint, tmp_path, monkeypatch):
    calls = _fake_hub(monkeypatch, tmp_path, bert_checkpoint)
    small_beir(tmp_path / "data" / "mini", n_docs=30, n_queries=3)
    kwargs = dict(
        data_dir=tmp_path / "data", output_dir=tmp_path / "out", cache_dir=None, show_progress=False
    )
    [pinned] = evaluate("some-org/some-colbert", ["mini"], revision="v1.0", **kwargs)
    assert calls == [{"repo_id": "some-org/some-colbert", "revision": "v1.0"}]
    assert pinned.model.id == "some-org/some-colbert" and pinned.model.revision == "ab" * 20
    assert load_result(tmp_path / "out" / "some-org_some-colbert__mini.json").model.revision == "ab" * 20
    # a local folder that is a Hub snapshot is recognised as such: its Hub id and commit
    snapshot = next((tmp_path / "hub").rglob("snapshots/*"))
    assert hub_snapshot(snapshot) == ("some-org/some-colbert", "ab" * 20)
    [local] = evaluate(str(snapshot), ["mini"], **{**kwargs, "output_dir": None})
    assert (local.model.id, local.model.revision) == ("some-org/some-colbert", "ab" * 20)
    with pytest.raises(Exception, match="revision applies to a Hub id"):
        evaluate(str(bert_checkpoint), ["mini"], revision="v1.0", **kwargs)


@needs_scifact
def test_registered_model_loads_by_name_with_its_settings(ettin_like_checkpoint, tmp_path, monkeypatch):
    """`--model "<registered name>"`: the registry's Hub id, its loader settings (a long-context
    variant's document length), its name and size group in the results; flags still win. (The Hub
    serves the ettin-shaped fixture: a ModernBERT, like the registered model.)"""
    calls = _fake_hub(monkeypatch, tmp_path, ettin_like_checkpoint)
    small_beir(tmp_path / "data" / "mini", n_docs=30, n_queries=3)
    args = [
        "evaluate",
        "--model",
        "mxbai-edge-colbert-v0-17m (4k)",
        "--tasks",
        "mini",
        "--data-dir",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "out"),
        "--no-cache",
        "--quiet",
    ]
    assert main(args) == 0
    assert calls[-1]["repo_id"] == "mixedbread-ai/mxbai-edge-colbert-v0-17m"
    [path] = (tmp_path / "out").glob("*.json")
    result = load_result(path)
    assert result.model.id == "mxbai-edge-colbert-v0-17m (4k)"
    assert result.model.settings["document_length"] == 4096
    assert result.model.size_group == "Small Models (<25M)"
    [flagged] = evaluate(
        "mxbai-edge-colbert-v0-17m (4k)",
        ["mini"],
        document_length=100,
        model_name="mine",
        data_dir=tmp_path / "data",
        output_dir=None,
        cache_dir=None,
        show_progress=False,
    )
    assert flagged.model.id == "mine" and flagged.model.settings["document_length"] == 100
    # the card's Hub id by itself files under the registry's name
    [by_id] = evaluate(
        "mixedbread-ai/mxbai-edge-colbert-v0-17m",
        ["mini"],
        data_dir=tmp_path / "data",
        output_dir=None,
        cache_dir=None,
        show_progress=False,
    )
    assert by_id.model.id == "mxbai-edge-colbert-v0-17m"


def test_registry_covers_the_cards_tables():
    """Every model of the card's BEIR and LongEmbed tables (results/published) is registered, with
    one size group per model across tables, and `harness models` lists them."""
    published = {
        json.loads(p.read_text())["model"]["id"] for p in (ROOT / "results" / "published").glob("*.json")
    }
    assert {m for m in published if find_model(m) is None} == set()
    assert len({m.name for m in list_models()}) == len(list_models()) >= 17
    groups = {find_model(m).name: find_model(m).size_group for m in published}
    assert (
        groups["mxbai-edge-colbert-v0-32m (32k)"]
        == groups["mxbai-edge-colbert-v0-32m"]
        == "Medium Models (<35M)"
    )
    assert find_model("bge-small-en-v1.5").overrides["query_prompt"].startswith("Represent this sentence")


def test_harness_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "colbert-ir/colbertv2.0" in out and "document_length=32768" in out


def test_model_names_come_from_the_model(tmp_path, bert_checkpoint):
    """Never a bare folder name like `model`: the model card's title, the Hub id of its usage
    example, or the parent of a generic folder."""
    assert checkpoint_name(minilm_model_dir()) == "all-MiniLM-L6-v2"  # the folder is called `model`
    assert load_encoder(minilm_model_dir()).name == "all-MiniLM-L6-v2"
    card = tmp_path / "pylate-card" / "model"
    shutil.copytree(bert_checkpoint, card)
    (card / "README.md").write_text(
        "---\ntags: [ColBERT]\n---\n# PyLate model based on something\n\n"
        '```python\nmodel = models.ColBERT(model_name_or_path="lightonai/GTE-ModernColBERT-v1")\n```\n'
    )
    assert checkpoint_name(card) == "lightonai/GTE-ModernColBERT-v1"
    (card / "README.md").unlink()
    assert checkpoint_name(card) == "pylate-card"  # `model` says nothing: the parent does


def test_transformers_floor_is_what_the_code_needs():
    """load_encoder passes ``dtype=`` to from_pretrained, which transformers accepts from 4.56."""
    from packaging.version import Version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [d for d in deps if d.startswith("transformers")]
    assert Version(spec.split(">=")[1].split(",")[0]) >= Version("4.56")


def test_revisions_show_in_check_and_leaderboard(tmp_path):
    """The commit a result was made with shows in the regression report and on the leaderboard."""
    from harness.check import check
    from harness.report import leaderboard_tables

    values = scores(np.linspace(0.2, 0.9, 40))
    base, cand = (
        make_result("m", "BEIR/scifact", {"scifact": values}),
        make_result("m", "BEIR/scifact", {"scifact": values}),
    )
    base = replace(base, model=replace(base.model, revision="a" * 40))
    cand = replace(cand, model=replace(cand.model, revision="b" * 40))
    report = check([base], [cand])
    assert f"model revisions: baseline {'a' * 40}, candidate {'b' * 40}" in report.to_text()
    assert json.loads(report.to_json())["tasks"][0]["candidate_revision"] == "b" * 40
    [table] = leaderboard_tables([cand], n_resamples=10)
    assert table.rows[0].label == "m @bbbbbbb"


@needs_scifact
def test_prompt_flags_are_recorded_and_key_the_cache(bert_checkpoint, tmp_path):
    """`--query-prompt` lands in the results' model settings and in the cache key (a new query
    entry; the documents' entry is reused), and changes the numbers."""
    small_beir(tmp_path / "data" / "mini", n_docs=40, n_queries=5)
    kwargs = dict(
        data_dir=tmp_path / "data", output_dir=None, cache_dir=tmp_path / "cache", show_progress=False
    )
    [plain] = evaluate(str(bert_checkpoint), ["mini"], **kwargs)
    [prompted] = evaluate(str(bert_checkpoint), ["mini"], query_prompt="search query: ", **kwargs)
    assert prompted.model.settings["query_prompt"] == "search query: "
    assert plain.model.settings["query_prompt"] == ""
    assert prompted.timings["sources"]["encode_documents_s"] == "cache"  # same documents' entry
    assert prompted.timings["sources"]["encode_queries_s"] == "measured"
    assert len([p for p in (tmp_path / "cache").iterdir() if len(p.name) == 64]) == 3
    assert prompted.subsets[0].per_query != plain.subsets[0].per_query


@needs_scifact
def test_a_local_snapshot_of_a_registered_model_is_that_model(bert_checkpoint, tmp_path):
    """A Hub-cache snapshot folder of a registered model files under the registry's name, with the
    snapshot's commit, as loading it by Hub id would (one leaderboard row, not two)."""
    snapshot = tmp_path / "hub" / "models--colbert-ir--colbertv2.0" / "snapshots" / ("e" * 40)
    shutil.copytree(bert_checkpoint, snapshot)
    small_beir(tmp_path / "data" / "mini", n_docs=30, n_queries=3)
    [result] = evaluate(
        str(snapshot),
        ["mini"],
        data_dir=tmp_path / "data",
        output_dir=None,
        cache_dir=None,
        show_progress=False,
    )
    assert (result.model.id, result.model.revision) == ("ColBERTv2", "e" * 40)
    assert result.model.size_group == "Large Models (>100M)"
