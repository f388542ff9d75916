"""Issue 27, items 5, 11 and 14: a subset is never filed as the registered benchmark, task folders stay
inside --data-dir and errors quote only a short escaped excerpt of a file, and the free-space check of
the embedding cache is an upper bound of what the cache takes on disk."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path

import pytest

from harness.cache import MANIFEST, encode_cached, estimate_bytes, shard_bounds
from harness.cache.shards import DEFAULT_SHARD_CHARS, DEFAULT_SHARD_SIZE
from harness.cli import main
from harness.data import load_beir_folder
from harness.errors import InputError
from harness.tasks import get_task, resolve_tasks
from tests.helpers import SCIFACT, needs_scifact, small_beir, write_beir

# --------------------------------------------------------------------------- item 5: subsets


@needs_scifact
def test_a_50_query_copy_of_scifact_is_an_adhoc_task_and_the_log_says_why(tmp_path: Path, caplog) -> None:
    """``--tasks scifact`` over a 50-query copy: an ad-hoc task ``scifact`` (not BEIR/scifact), the warning
    naming the sizes found and published; its results file and leaderboard row are not BEIR's."""
    data = tmp_path / "data"
    small_beir(data / "scifact", n_docs=300, n_queries=50)
    with caplog.at_level(logging.INFO, logger="harness.tasks"):
        (task,) = resolve_tasks(["scifact"], data_dir=data)
    assert (task.name, task.n_queries, task.folder_name) == ("scifact", None, "scifact")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert str(data / "scifact") in message and "not the registered task BEIR/scifact" in message
    assert "50 queries" in message and "published: 300 queries, 5183 documents" in message

    out, report = tmp_path / "out", tmp_path / "report"
    args = ["evaluate", "--model", "bm25", "--tasks", "scifact", "--data-dir", str(data)]
    assert main([*args, "--output", str(out), "--quiet"]) == 0
    [path] = out.glob("*.json")
    result = json.loads(path.read_text())
    assert result["task"]["name"] == "scifact" and "BEIR" not in path.name
    assert main(["report", "leaderboard", str(out), "--output", str(report), "--no-plots"]) == 0
    page = (report / "leaderboard.md").read_text()
    assert "SciFact" not in page and "| scifact |" in page


@needs_scifact
def test_the_full_scifact_under_its_folder_name_is_the_registered_task(tmp_path: Path, caplog) -> None:
    """The real SciFact (300 test queries, 5183 documents), linked as ``DIR/scifact``: BEIR/scifact."""
    (tmp_path / "scifact").symlink_to(SCIFACT)
    with caplog.at_level(logging.INFO, logger="harness.tasks"):
        (task,) = resolve_tasks(["scifact"], data_dir=tmp_path)
    assert task is get_task("BEIR/scifact")
    assert "the registered task BEIR/scifact" in caplog.text and "published sizes" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@needs_scifact
def test_a_registered_name_over_a_subset_folder_warns(tmp_path: Path, caplog) -> None:
    """``--tasks BEIR/scifact`` (or the group) asks for the benchmark by name: it reads ``DIR/scifact``,
    and a warning says the folder is not the published data."""
    small_beir(tmp_path / "scifact", n_docs=40, n_queries=5)
    with caplog.at_level(logging.WARNING, logger="harness.tasks"):
        (task,) = resolve_tasks(["BEIR/scifact"], data_dir=tmp_path)
    assert task.name == "BEIR/scifact"
    assert f"{tmp_path / 'scifact'}: BEIR/scifact reads it, but it holds 5 queries" in caplog.text


def test_a_layout_counted_only_by_loading_is_checked_when_loaded(tmp_path: Path) -> None:
    """A BEIR Hub snapshot (``DIR/scifact`` + ``DIR/scifact-qrels``) cannot be counted before loading:
    loading its evaluation split is an InputError naming the folder and both sizes."""
    src = write_beir(tmp_path / "src")
    snap = tmp_path / "data" / "scifact"
    snap.mkdir(parents=True)
    for stem in ("corpus", "queries"):
        (snap / f"{stem}.jsonl.gz").write_bytes(gzip.compress((src / f"{stem}.jsonl").read_bytes()))
    (tmp_path / "data" / "scifact-qrels").mkdir()
    shutil.copy(src / "qrels" / "test.tsv", tmp_path / "data" / "scifact-qrels" / "test.tsv")
    (task,) = resolve_tasks(["scifact"], data_dir=tmp_path / "data")
    assert task.name == "BEIR/scifact"
    with pytest.raises(
        InputError, match="not the registered task BEIR/scifact: it holds 3 queries, 4 doc"
    ) as err:
        task.load(data_dir=tmp_path / "data")
    assert err.value.file == str(snap) and "published: 300 queries, 5183 documents" in str(err.value)


# --------------------------------------------------------------------------- item 11: paths, excerpts


@pytest.mark.parametrize("name", ["../../../../etc", "/etc", "sub/../../outside", "."])
def test_a_task_name_leading_out_of_data_dir_is_refused(tmp_path: Path, capsys, name: str) -> None:
    """Exit 2 naming --tasks before anything is read or written; the folder it names is not looked up."""
    data, out = tmp_path / "data", tmp_path / "out"
    write_beir(data / "mini")
    write_beir(tmp_path / "outside")  # a real BEIR folder beside --data-dir: still refused
    code = main(
        ["evaluate", "--model", "bm25", "--tasks", name, "--data-dir", str(data), "--output", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"--tasks: {name!r} is not a folder inside --data-dir {data}" in err
    assert "Traceback" not in err and not out.exists()
    with pytest.raises(InputError, match="not a folder inside --data-dir") as info:
        resolve_tasks([name], data_dir=data)
    assert info.value.field == "--tasks"


def test_a_nested_task_folder_inside_data_dir_loads_that_folder(tmp_path: Path) -> None:
    """``--tasks sub/../b/mini`` stays inside: the ad-hoc task of ``DIR/b/mini``, which it loads even when
    a ``DIR/mini`` exists."""
    write_beir(tmp_path / "b" / "mini", queries=[{"_id": "q1", "text": "nested"}], qrels=[("q1", "d1", 1)])
    write_beir(tmp_path / "mini")
    (task,) = resolve_tasks(["sub/../b/mini"], data_dir=tmp_path)
    assert (task.name, task.folder_name) == ("b/mini", "b/mini")
    (ds,) = task.load(data_dir=tmp_path)
    assert ds.queries == {"q1": "nested"}


def test_a_symlinked_qrels_file_is_quoted_only_as_a_short_escaped_excerpt(tmp_path: Path, capsys) -> None:
    """A qrels file linked to a file outside --data-dir (as to /etc/passwd): the error names the link,
    line 1, and quotes at most 40 characters of it, escaped (no terminal control bytes, no secret)."""
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\x1b[2J" + "s3cr3t" * 40 + "\nnext:line\n")
    data, out = tmp_path / "data", tmp_path / "out"
    write_beir(data / "leaky")
    (data / "leaky" / "qrels" / "test.tsv").unlink()
    (data / "leaky" / "qrels" / "test.tsv").symlink_to(secret)
    code = main(
        ["evaluate", "--model", "bm25", "--tasks", "leaky", "--data-dir", str(data), "--output", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"{data / 'leaky' / 'qrels' / 'test.tsv'}:1: missing header" in err
    assert "'root:x:0:0:root:/root:/bin/bash\\x1b[2Js3cr3'... (275 characters)" in err
    assert "\x1b" not in err and "s3cr3ts3cr3t" not in err and "next:line" not in err
    assert len(err.strip().splitlines()) == 1 and not any(out.rglob("*.json"))


@pytest.mark.parametrize(
    ("qrels", "quoted"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\t" + "9x" * 500 + "\n", "expected an integer, got '9x9x9x"),
        (
            "query-id\tcorpus-id\tscore\nq1\td1\t\x1b]0;pwned\x07" + "z" * 200 + "\n",
            "got '\\x1b]0;pwned\\x07z",
        ),
    ],
)
def test_a_bad_qrels_value_is_quoted_short_and_escaped(tmp_path: Path, qrels: str, quoted: str) -> None:
    write_beir(tmp_path, qrels=qrels)
    with pytest.raises(InputError) as info:
        load_beir_folder(tmp_path)
    message = str(info.value)
    assert quoted in message and "characters)" in message and len(message) < len(str(tmp_path)) + 150
    assert "\x1b" not in message and "\x07" not in message


# --------------------------------------------------------------------------- item 14: free space


def _disk_usage(folder: Path) -> int:
    """Bytes the shard files take on their device (whole blocks); the manifest is written before the check."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _estimate(encoder, texts: list[str], is_query: bool) -> int:
    bounds = shard_bounds(texts, DEFAULT_SHARD_SIZE, DEFAULT_SHARD_CHARS)
    spans = zip(bounds[:-1], bounds[1:], strict=True)
    return sum(estimate_bytes(encoder, texts[a:b], is_query) for a, b in spans)


@needs_scifact
@pytest.mark.parametrize(
    ("checkpoint", "n_docs", "n_queries"),
    [("bert_checkpoint", 200, 200), ("ettin_like_checkpoint", 12, 60)],  # expansion on / off
)
def test_the_cache_estimate_bounds_the_bytes_a_filled_cache_takes(
    request, tmp_path: Path, checkpoint: str, n_docs: int, n_queries: int
) -> None:
    """SciFact documents and queries cached by a WordPiece model with query expansion and by a small
    byte-BPE one without: bytes on disk <= the estimate the free-space check uses, and >= 1/1.5 of it."""
    from harness.encode import load_encoder
    from tests.model_fixtures import scifact_texts

    encoder = load_encoder(request.getfixturevalue(checkpoint))
    queries = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text().splitlines()]
    for side, texts in (("documents", scifact_texts(n_docs)), ("queries", queries[:n_queries])):
        cache = tmp_path / side
        encode_cached(encoder, texts, is_query=side == "queries", cache_dir=cache, show_progress=False)
        used, estimate = _disk_usage(cache), _estimate(encoder, texts, side == "queries")
        assert used <= estimate <= 1.5 * used, (side, used, estimate)


@needs_scifact
def test_the_free_space_check_refuses_what_would_not_fit(
    bert_checkpoint, tmp_path: Path, monkeypatch
) -> None:
    """Free space just under the estimate: a DiskFullError naming the cache folder and both sizes, and no
    shard written; just at it, the cache is filled and fits."""
    import harness.fileio
    from harness.encode import load_encoder
    from harness.fileio import DiskFullError
    from tests.model_fixtures import scifact_texts

    encoder, texts = load_encoder(bert_checkpoint), scifact_texts(200)
    estimate = _estimate(encoder, texts, False)
    monkeypatch.setattr(harness.fileio, "free_bytes", lambda folder: estimate - 1)
    with pytest.raises(DiskFullError, match=r"for the embedding cache: about .* needed, .* free") as err:
        encode_cached(encoder, texts, is_query=False, cache_dir=tmp_path, show_progress=False)
    assert str(tmp_path) in str(err.value) and not list(tmp_path.rglob("shard-*"))
    monkeypatch.setattr(harness.fileio, "free_bytes", lambda folder: estimate)
    encode_cached(encoder, texts, is_query=False, cache_dir=tmp_path, show_progress=False)
    assert 0 < _disk_usage(tmp_path) <= estimate
