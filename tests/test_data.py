"""Loaders: BEIR folders, HF snapshots (parquet / jsonl), BEIR zips, bad input, offline Hub (the
formats in harness.data, the benchmarks' loaders in their plugins).

References: the real SciFact folder (BEIR's published sizes: 5183 documents, 300 test queries)
re-read with BEIR's documented GenericDataLoader rules (json per line, csv qrels with a header);
otherwise fixtures whose expected content follows from how they were built. All comparisons are exact.
"""

from __future__ import annotations

import csv
import gzip
import json
import time
import zipfile
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest

from harness.data import HubUnavailableError, load_beir_folder, load_beir_hf, read_qrels_tsv, safe_extract_zip
from harness.types import HarnessError, InputError
from tasks.beir import download_beir_zip
from tasks.longembed import load_longembed
from tasks.nanobeir import load_nanobeir
from tests.helpers import (
    CORPUS,
    QRELS,
    QUERIES,
    SCIFACT,
    needs_scifact,
    write_beir,
    write_longembed_snapshot,
    write_nano_snapshot,
    write_parquet,
)

# --------------------------------------------------------------------------- BEIR folder


def test_beir_folder_semantics(tmp_path: Path) -> None:
    ds = load_beir_folder(write_beir(tmp_path / "mini"))
    assert ds.name == "mini"
    assert ds.corpus == {"d1": "Title one body one", "d2": "body two", "d3": "", "d4": "T4 body four"}
    # Queries with qrels only, in file order (q3 has none); empty texts kept as in BEIR.
    assert list(ds.queries) == ["q1", "q2", "q4"] and ds.queries["q4"] == ""
    assert ds.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"d4": 2}, "q4": {"d3": 1}}
    assert ds.notes == ()


def test_beir_folder_nanobeir_rules(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "mini")
    graded = load_beir_folder(folder)
    ds = load_beir_folder(folder, nanobeir_rules=True)
    assert "d3" not in ds.corpus and list(ds.queries) == ["q1", "q2"]
    # q4's text was empty: its qrels go with it. d3's qrels would stay (they count in |R|).
    assert "q4" not in ds.qrels
    assert any("empty text" in n for n in ds.notes)
    # every qrels row is relevant, as PyLate's NanoBEIR loader has it (qrels carry no score there)
    assert ds.qrels == {q: dict.fromkeys(docs, 1) for q, docs in graded.qrels.items() if q in ds.queries}


def test_beir_folder_gz_and_other_split(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "gz", split="dev")
    for stem in ("corpus", "queries"):
        raw = (folder / f"{stem}.jsonl").read_bytes()
        (folder / f"{stem}.jsonl").unlink()
        (folder / f"{stem}.jsonl.gz").write_bytes(gzip.compress(raw))
    gz = load_beir_folder(folder, "dev")
    plain = load_beir_folder(write_beir(tmp_path / "plain", split="dev"), "dev")
    assert (gz.corpus, gz.queries, gz.qrels) == (plain.corpus, plain.queries, plain.qrels)


def _beir_reference(folder: Path, split: str) -> tuple[dict, dict, dict]:
    """BEIR GenericDataLoader.load, re-stated: json per line, csv qrels after a header row."""
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        corpus[row["_id"]] = (row.get("title", "") + " " + row["text"]).strip()
    queries = {}
    for line in (folder / "queries.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    qrels: dict = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        next(reader)
        for q, d, s in reader:
            qrels.setdefault(q, {})[d] = int(s)
    return corpus, {q: queries[q] for q in qrels}, qrels


@needs_scifact
@pytest.mark.parametrize(("split", "n_queries", "n_rows"), [("test", 300, 339), ("train", 809, 919)])
def test_real_scifact(split: str, n_queries: int, n_rows: int) -> None:
    start = time.perf_counter()
    ds = load_beir_folder(SCIFACT, split)
    seconds = time.perf_counter() - start
    # Published sizes (BEIR's dataset table).
    assert len(ds.corpus) == 5183
    assert len(ds.queries) == n_queries
    assert sum(len(d) for d in ds.qrels.values()) == n_rows
    corpus, queries, qrels = _beir_reference(SCIFACT, split)
    assert ds.corpus == corpus and ds.queries == queries and ds.qrels == qrels
    assert ds.notes == ()
    # "Well under a second": measured ~0.05 s here; 1 s leaves room for a loaded 2-core box.
    assert seconds < 1.0, seconds


def test_qrels_unknown_ids_are_counted(tmp_path: Path) -> None:
    qrels = [("q1", "d1", 1), ("q1", "ghost-doc", 1), ("ghost-q", "d2", 1)]
    ds = load_beir_folder(write_beir(tmp_path / "m", qrels=qrels))
    assert ds.qrels == {"q1": {"d1": 1, "ghost-doc": 1}}  # unknown doc kept, unknown query dropped
    assert any("1 of 3 qrels rows name a query" in n for n in ds.notes)
    assert any("1 of 3 qrels rows name a doc" in n for n in ds.notes)


def test_repeated_qrels_pair_keeps_last(tmp_path: Path) -> None:
    ds = load_beir_folder(write_beir(tmp_path / "m", qrels=[("q1", "d1", 1), ("q1", "d1", 2)]))
    assert ds.qrels == {"q1": {"d1": 2}}
    assert any("repeated" in n for n in ds.notes)


BAD_CASES = {
    # name: (file to corrupt, content, expected (file name, line, field, message part))
    "malformed json": (
        "corpus",
        '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n',
        ("corpus.jsonl", 2, None, "malformed JSON"),
    ),
    "not an object": (
        "queries",
        '{"_id": "q1", "text": "a"}\n["q2"]\n',
        ("queries.jsonl", 2, None, "JSON object"),
    ),
    "missing _id": (
        "corpus",
        '{"_id": "d1", "text": "a"}\n{"text": "b"}\n',
        ("corpus.jsonl", 2, "_id", "missing"),
    ),
    "int _id": ("queries", '{"_id": 7, "text": "a"}\n', ("queries.jsonl", 1, "_id", "expected a string")),
    "missing text": ("queries", '{"_id": "q1"}\n', ("queries.jsonl", 1, "text", "missing")),
    "null text": (
        "corpus",
        '{"_id": "d1", "text": null}\n',
        ("corpus.jsonl", 1, "text", "expected a string"),
    ),
    "list title": (
        "corpus",
        '{"_id": "d1", "title": ["x"], "text": "a"}\n',
        ("corpus.jsonl", 1, "title", "string"),
    ),
    "duplicate doc": (
        "corpus",
        '{"_id": "d1", "text": "a"}\n\n{"_id": "d1", "text": "b"}\n',
        ("corpus.jsonl", 3, "_id", "duplicate"),
    ),
    "duplicate query": (
        "queries",
        '{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "a"}\n',
        ("queries.jsonl", 2, "_id", "duplicate"),
    ),
    "empty corpus": ("corpus", "\n\n", ("corpus.jsonl", None, None, "no rows")),
    "empty queries": ("queries", "", ("queries.jsonl", None, None, "no rows")),
    "score not int": (
        "qrels",
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0.5\n",
        ("test.tsv", 3, "score", "integer"),
    ),
    "column count": (
        "qrels",
        "query-id\tcorpus-id\tscore\nq1\td1 1\n",
        ("test.tsv", 2, None, "3 tab-separated"),
    ),
    "missing header": ("qrels", "q1\td1\t1\n", ("test.tsv", 1, None, "missing header")),
    "empty qrels id": (
        "qrels",
        "query-id\tcorpus-id\tscore\nq1\t\t1\n",
        ("test.tsv", 2, "corpus-id", "empty id"),
    ),
    "header only": ("qrels", "query-id\tcorpus-id\tscore\n", ("test.tsv", None, None, "no qrels rows")),
    "all qrels unknown": (
        "qrels",
        "query-id\tcorpus-id\tscore\nx\td1\t1\nq1\ty\t1\n",
        ("test.tsv", None, None, "none of the 2"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_beir_input(tmp_path: Path, case: str) -> None:
    which, content, (fname, line, field, part) = BAD_CASES[case]
    args = {"corpus": CORPUS, "queries": QUERIES, "qrels": QRELS}
    args[which] = content
    if which != "qrels":  # keep the qrels pointing at ids that exist in the corrupted file
        args["qrels"] = [("q1", "d1", 1)]
    folder = write_beir(tmp_path / "bad", **args)
    with pytest.raises(InputError) as info:
        load_beir_folder(folder)
    err = info.value
    assert Path(err.file).name == fname and err.line == line and err.field == field, str(err)
    assert part in str(err)
    assert fname in str(err) and (line is None or f":{line}:" in str(err))
    assert field is None or f"'{field}'" in str(err)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "bad")
    good = (folder / "corpus.jsonl").read_bytes().splitlines(keepends=True)
    (folder / "corpus.jsonl").write_bytes(good[0] + good[1] + b'{"_id": "d9", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"corpus\.jsonl:3: .*UTF-8") as info:
        load_beir_folder(folder)
    assert info.value.line == 3


@pytest.mark.parametrize("missing", ["folder", "corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_files(tmp_path: Path, missing: str) -> None:
    folder = write_beir(tmp_path / "m")
    if missing == "folder":
        folder = tmp_path / "nope"
    else:
        (folder / missing).unlink()
    with pytest.raises(InputError, match="not found") as info:
        load_beir_folder(folder)
    assert Path(info.value.file).name == ("nope" if missing == "folder" else Path(missing).name)


def test_qrels_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_bytes(b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\r\nq1\td1\t3\r\n")
    assert read_qrels_tsv(path) == ({"q1": {"d1": 3}}, [])


# --------------------------------------------------------------------------- HF snapshots


@pytest.mark.parametrize("readme", [True, False], ids=["readme-configs", "bare-files"])
def test_nanobeir_snapshot(tmp_path: Path, readme: bool) -> None:
    folder = write_nano_snapshot(tmp_path / "NanoTest", readme)
    ds = load_nanobeir(folder, cache_dir=tmp_path / "hf")
    # sentence-transformers NanoBEIREvaluator: no title, empty texts dropped, relevance 1.
    assert ds.corpus == {"d1": "body one", "d2": "body two", "d4": "body four"}
    assert list(ds.queries) == ["q1", "q2"]
    assert ds.qrels == {"q1": {"d1": 1, "d2": 1}, "q2": {"d4": 1}}
    assert ds.name == "NanoTest"


def test_nanobeir_int_ids_and_missing_column(tmp_path: Path) -> None:
    folder = tmp_path / "NanoInt"
    write_parquet(folder / "corpus" / "train-0.parquet", [{"_id": 10, "text": "x"}, {"_id": 11, "text": "y"}])
    write_parquet(folder / "queries" / "train-0.parquet", [{"_id": 1, "text": "q"}])
    # A score column is ignored: PyLate's NanoBEIREvaluator counts every qrels row as relevant.
    write_parquet(folder / "qrels" / "train-0.parquet", [{"query-id": 1, "corpus-id": 11, "score": 0}])
    ds = load_nanobeir(folder, cache_dir=tmp_path / "hf")
    assert ds.qrels == {"1": {"11": 1}} and ds.corpus == {"10": "x", "11": "y"}
    write_parquet(folder / "queries" / "train-0.parquet", [{"id": 1, "text": "q"}])
    with pytest.raises(InputError) as info:
        load_nanobeir(folder, cache_dir=tmp_path / "hf")
    assert info.value.field == "_id" and "queries" in info.value.file
    write_parquet(folder / "queries" / "train-0.parquet", [{"_id": 1, "text": "q"}, {"_id": 2, "text": None}])
    with pytest.raises(InputError, match=r"queries:2: field 'text'") as info:
        load_nanobeir(folder, cache_dir=tmp_path / "hf")
    assert (info.value.line, info.value.field) == (2, "text")


def test_beir_hf_snapshot_matches_beir_folder(tmp_path: Path) -> None:
    """Two code paths (datasets parquet + qrels TSV vs. the jsonl folder) give the same Dataset."""
    folder = write_beir(tmp_path / "mini")
    snap = tmp_path / "snap" / "mini"
    write_parquet(snap / "corpus" / "corpus-00000-of-00001.parquet", CORPUS)
    write_parquet(snap / "queries" / "queries-00000-of-00001.parquet", QUERIES)
    (tmp_path / "snap" / "mini-qrels").mkdir()
    (tmp_path / "snap" / "mini-qrels" / "test.tsv").write_text((folder / "qrels" / "test.tsv").read_text())
    via_hf = load_beir_hf(snap, "test", cache_dir=tmp_path / "hf")
    via_folder = load_beir_folder(folder)
    assert via_hf.fingerprint() == via_folder.fingerprint()
    assert (via_hf.corpus, via_hf.queries, via_hf.qrels) == (
        via_folder.corpus,
        via_folder.queries,
        via_folder.qrels,
    )
    with pytest.raises(InputError, match="split 'dev'"):
        load_beir_hf(snap, "dev", cache_dir=tmp_path / "hf")


def test_longembed_snapshot(tmp_path: Path) -> None:
    root = write_longembed_snapshot(tmp_path / "LongEmbed", (512, 256))
    (real,) = load_longembed("qmsum", source=root, cache_dir=tmp_path / "hf")
    assert real.name == "qmsum" and real.qrels == {"x": {"b": 1}} and len(real.corpus) == 2
    parts = load_longembed("passkey", source=root, cache_dir=tmp_path / "hf")
    assert [p.name for p in parts] == ["passkey_256", "passkey_512"]
    for p, n in zip(parts, (256, 512), strict=True):
        assert p.corpus == {f"{n}-d{i}": f"doc {i} at {n}" for i in range(3)}
        assert p.queries == {f"{n}-q": f"key at {n}?"} and p.qrels == {f"{n}-q": {f"{n}-d1": 1}}


# --------------------------------------------------------------------------- offline Hub


@pytest.mark.parametrize(
    ("call", "repo"),
    [
        (lambda c: load_nanobeir("zeta-alpha-ai/NanoSciFact", cache_dir=c), "zeta-alpha-ai/NanoSciFact"),
        (lambda c: load_beir_hf("BeIR/scifact", cache_dir=c), "BeIR/scifact"),
        (lambda c: load_longembed("needle", cache_dir=c), "dwzhu/LongEmbed"),
    ],
    ids=["nanobeir", "beir", "longembed"],
)
def test_offline_hub_error(tmp_path: Path, hub_offline: None, call, repo: str) -> None:
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError) as info:
        call(tmp_path / "hf")
    message = str(info.value)
    assert repo in message and "--data-dir DIR" in message and "offline mode is on" in message
    assert time.perf_counter() - start < 10  # no network retries in offline mode


@pytest.mark.parametrize("repo", ["BeIR/scifact", "org/some-model"])
def test_unreachable_hub_fails_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: str) -> None:
    """No network and no offline flag: one quick probe, then the call runs in offline mode and fails
    at once (the libraries alone retry for ~25 s here), saying why and what to do instead."""
    import harness.hub
    from harness.encode import load_encoder

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(harness.hub, "hub_reachable", lambda: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # nothing cached
    start = time.perf_counter()
    with pytest.raises(HarnessError) as info:
        if repo.startswith("BeIR"):
            load_beir_hf(repo, cache_dir=tmp_path / "hf")
        else:
            load_encoder(repo)
    assert time.perf_counter() - start < 10
    assert repo in str(info.value) and "unreachable" in str(info.value)
    assert "--data-dir DIR" in str(info.value) or "local checkpoint folder" in str(info.value)
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False  # the library's setting is restored


def test_pinned_hub_repos_are_read_at_their_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    """LoTTE and LongEmbed read their Hub repo at MTEB's pinned revision: every table request says
    so, the dataset's source records it, and a Hub failure names the pinned repo. A snapshot folder
    has no revision."""
    import tasks.longembed
    import tasks.lotte
    from harness.data import hub_source
    from tasks.lotte import load_lotte

    tables = {
        "corpus": {"_id": ["d1", "d2"], "title": ["", ""], "text": ["one", "two"]},
        "queries": {"_id": ["q1"], "text": ["which"]},
        "qrels": {"query-id": ["q1"], "corpus-id": ["d1"], "score": [1]},
    }
    longembed = {
        "corpus": {"doc_id": ["d1", "d2"], "text": ["one", "two"]},
        "queries": {"qid": ["q1"], "text": ["which"]},
        "qrels": {"qid": ["q1"], "doc_id": ["d1"]},
    }
    calls = []

    def fake_load_dataset(path, config=None, *, split, cache_dir=None, revision=None, **kwargs):
        calls.append((path, config, split, revision))
        if path == "mteb/LoTTE":
            return datasets.Dataset.from_dict(tables[config.rsplit("-", 1)[1]])
        return datasets.Dataset.from_dict(longembed[split])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    lotte = load_lotte("writing", "search", "test")
    assert [c[3] for c in calls] == [tasks.lotte.REVISION] * 3 and len(lotte.corpus) == 2
    assert lotte.source == f"mteb/LoTTE@{tasks.lotte.REVISION} writing_search (test)"
    calls.clear()
    (qmsum,) = load_longembed("qmsum")
    assert {c[3] for c in calls} == {tasks.longembed.REVISION} and len(calls) == 3
    assert qmsum.source == f"dwzhu/LongEmbed@{tasks.longembed.REVISION}:qmsum"

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(HubUnavailableError, match=f"'mteb/LoTTE@{tasks.lotte.REVISION}'"):
        load_lotte("writing", "search", "test")
    assert hub_source(Path(__file__).parent, "abc") == str(Path(__file__).parent)  # a folder: its path
    assert hub_source("org/repo", None) == "org/repo"


# --------------------------------------------------------------------------- zips


def _zip(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0  # S_IFLNK
            zf.writestr(info, target)
    return path


def _folder_entries(folder: Path, prefix: str) -> dict[str, bytes]:
    return {
        f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_download_beir_zip(tmp_path: Path) -> None:
    src = write_beir(tmp_path / "src")
    server = tmp_path / "server"
    server.mkdir()
    _zip(server / "mini.zip", _folder_entries(src, "mini"))
    url = (server / "{name}.zip").as_uri().replace("%7B", "{").replace("%7D", "}")
    dest = tmp_path / "downloads"
    folder = download_beir_zip("mini", dest, url_template=url, show_progress=False)
    assert folder == dest / "mini"
    assert load_beir_folder(folder).fingerprint() == load_beir_folder(src, name="mini").fingerprint()
    assert [p.name for p in dest.iterdir()] == ["mini"]  # no zip or temp files left
    (server / "mini.zip").unlink()  # a second call does not download again
    assert download_beir_zip("mini", dest, url_template=url, show_progress=False) == folder


def test_download_failure_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "downloads"
    url = (tmp_path / "missing-{name}.zip").as_uri().replace("%7B", "{").replace("%7D", "}")
    with pytest.raises(HarnessError, match=r"could not download BEIR dataset 'mini'.*--data-dir DIR"):
        download_beir_zip("mini", dest, url_template=url, show_progress=False)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.txt", "'..' component"),
        ("/tmp/evil.txt", "absolute path"),
        ("ok/../../evil.txt", "'..'"),
        ("C:/evil.txt", "absolute path"),
        ("..\\evil.txt", "'..' component"),
    ],
)
def test_zip_refuses_escaping_entries(tmp_path: Path, entry: str, reason: str) -> None:
    bad = _zip(tmp_path / "bad.zip", {"good/a.txt": b"a", entry: b"evil"})
    dest = tmp_path / "out" / "dest"
    with pytest.raises(InputError, match=f"unsafe zip entry .*{reason[:6]}") as info:
        safe_extract_zip(bad, dest)
    assert info.value.field == entry and info.value.file == str(bad)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dest"]


def test_zip_refuses_symlinks(tmp_path: Path) -> None:
    bad = _zip(tmp_path / "link.zip", {"good/a.txt": b"a"}, symlinks={"good/link": "/etc/passwd"})
    with pytest.raises(InputError, match="symbolic link") as info:
        safe_extract_zip(bad, tmp_path / "dest")
    assert info.value.field == "good/link"
    assert list((tmp_path / "dest").iterdir()) == []


def test_zip_extraction_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip(tmp_path / "x.zip", {"top/a.txt": b"a", "top/b.txt": b"b", "top/c.txt": b"c"})
    real_extract = zipfile.ZipFile.extract
    calls = []

    def dying_extract(self, member, path=None, pwd=None):
        calls.append(member)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed half-way
        return real_extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", dying_extract)
    with pytest.raises(KeyboardInterrupt):
        safe_extract_zip(archive, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []
    monkeypatch.setattr(zipfile.ZipFile, "extract", real_extract)
    assert safe_extract_zip(archive, tmp_path / "dest") == [tmp_path / "dest" / "top"]
    assert (tmp_path / "dest" / "top" / "c.txt").read_bytes() == b"c"
    with pytest.raises(InputError, match="would overwrite"):
        safe_extract_zip(archive, tmp_path / "dest")


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable zip") as info:
        safe_extract_zip(tmp_path / "x.zip", tmp_path / "dest")
    assert info.value.file == str(tmp_path / "x.zip")
