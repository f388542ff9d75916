"""Published BRIGHT and LoTTE rows from MTEB's results repository (``sources/mteb``,
``results/published/transcribe_mteb.py``): the copies are the repository's files, and every figure
of a row is the file's, read here with json and a key pattern of this test's own."""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import pytest

from harness import report
from harness.errors import InputError
from harness.results import load_results
from tests.helpers import REPO_ROOT

PUBLISHED = REPO_ROOT / "results" / "published"
SOURCES = REPO_ROOT / "sources" / "mteb"
RANK_KEY = re.compile(r"(ndcg|map|recall|precision|mrr)_at_(\d+)")  # same name on both sides
SUCCESS_KEY = re.compile(r"(?:hit_rate|cv_recall)_at_(\d+)")  # Success@k: mteb PR #4128 / #4142


@pytest.fixture(scope="module")
def transcriber():
    sys.dont_write_bytecode, before = True, sys.dont_write_bytecode  # no __pycache__ in results/published/
    try:
        spec = importlib.util.spec_from_file_location("transcribe_mteb", PUBLISHED / "transcribe_mteb.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


@pytest.fixture(scope="module")
def rows():
    return [r for r in load_results([PUBLISHED]) if (r.published or {}).get("source", "").startswith("MTEB")]


def test_copies_are_the_repositorys_files(transcriber, tmp_path):
    manifest = json.loads((SOURCES / "MANIFEST.json").read_text())
    listed = set(manifest["files"])
    assert listed == {p.relative_to(SOURCES).as_posix() for p in SOURCES.rglob("*.json")} - {"MANIFEST.json"}
    assert transcriber.read_manifest(SOURCES) == manifest  # every blob id checked
    assert transcriber.git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    # one byte changed in a copy: refused, naming the file, before anything is written
    copy = tmp_path / "mteb"
    for name in listed | {"MANIFEST.json"}:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((SOURCES / name).read_bytes())
    victim = next(n for n in sorted(listed) if n.endswith("BrightBiologyRetrieval.json"))
    (copy / victim).write_text((copy / victim).read_text().replace("0.33869", "0.33870", 1))
    with pytest.raises(InputError, match="BrightBiologyRetrieval.json"):
        transcriber.main(["--sources", str(copy), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def _source_entry(row) -> tuple[dict, str]:
    """The file a row names and the entry of its hf_subset (BRIGHT: split standard; LoTTE: test)."""
    address = row.published["source"]
    commit = json.loads((SOURCES / "MANIFEST.json").read_text())["commit"]
    path = address.split(f"/blob/{commit}/", 1)[1]
    data = json.loads((SOURCES / path).read_text())
    lotte = row.task_name.startswith("LoTTE")
    split, subset = ("test", row.subsets[0].name) if lotte else ("standard", "default")
    (entry,) = [e for e in data["scores"][split] if e["hf_subset"] == subset]
    return entry, path


def test_every_figure_is_the_files(rows):
    tasks = {r.task_name: r.model_id for r in rows}
    assert {t for t, m in tasks.items() if m == "Reason-ModernColBERT"} == {
        t for t in tasks if t.startswith("BRIGHT/")
    } and sum(t.startswith("BRIGHT/") for t in tasks) == 12
    assert {m for t, m in tasks.items() if t.startswith("LoTTE/")} == {"ColBERTv2"} and len(tasks) == 22
    for row in rows:
        entry, path = _source_entry(row)
        (subset,) = row.subsets
        expected = {f"{m[1]}@{m[2]}": v for k, v in entry.items() if (m := RANK_KEY.fullmatch(k))}
        expected |= {f"success@{m[1]}": v for k, v in entry.items() if (m := SUCCESS_KEY.fullmatch(k))}
        assert subset.trec == expected, path
        assert row.main_score == entry["main_score"], path  # nDCG@10 (BRIGHT), Success@5 (LoTTE)
        assert row.task.main_metric == ("success@5" if row.task_name.startswith("LoTTE") else "ndcg@10")
        assert row.model.revision in path and row.model.kind == "published"
        note = row.published["note"]
        assert note.startswith("MTEB figures") and "not a harness run" in note


def test_lotte_success_is_the_old_cv_recall(rows):
    """ColBERTv2's LoTTE.json (mteb 2.8.3) names Success@k cv_recall_at_k; its main score is
    cv_recall_at_5, which must land in success@5, not be dropped."""
    lotte = [r for r in rows if r.task_name.startswith("LoTTE/")]
    for row in lotte:
        entry, _ = _source_entry(row)
        assert "hit_rate_at_5" not in entry and row.subsets[0].trec["success@5"] == entry["cv_recall_at_5"]
        assert "cv_recall" not in row.published["note"]  # kept, so not listed as dropped
        assert row.published["note"].endswith("not read (not this task's split): dev")  # the file has dev too
    assert not any("not read" in r.published["note"] for r in rows if r.task_name.startswith("BRIGHT/"))


def test_leaderboard_shows_them_beside_their_benchmarks(rows, tmp_path):
    markdown, _ = report.render_leaderboard(load_results([PUBLISHED]), tmp_path, plots=False)
    text = markdown.read_text()
    for family, model, n in (("BRIGHT", "Reason-ModernColBERT", 12), ("LoTTE", "ColBERTv2", 10)):
        mine = [r for r in rows if r.model_id == model]
        mean = sum(r.main_score for r in mine) / n
        section = text.split(f"## {family}", 1)[1].split("\n## ", 1)[0]
        line = next(line for line in section.splitlines() if line.startswith(f"| {model}"))
        shown = line.rstrip(" |").rsplit("|", 1)[1].strip()  # the Mean column, as printed
        digits = len(shown.split(".")[1])
        assert abs(float(shown) - mean) <= 0.5 * 10**-digits + 1e-12, (family, line)
