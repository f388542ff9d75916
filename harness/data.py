"""Dataset loaders: BEIR folders, Hugging Face datasets (NanoBEIR, BEIR, LongEmbed), BEIR zips.

Every loader returns :class:`harness.types.Dataset` (or a list of them) and follows one rule
set (:func:`_assemble`): only queries with qrels are kept, in file order; qrels rows naming an
unknown query are dropped, rows naming an unknown doc are kept (they count in |R|); both are
counted in ``Dataset.notes`` and logged, and it is an error only when no row names a known
query *and* a known doc. Bad input raises :class:`InputError` naming file, line and field.

Hugging Face loaders take a Hub id or a local folder holding a snapshot of the Hub repo
(parquet / jsonl files; with the repo's README configs or in ``<config>/<split>*`` files).
Hub access goes through ``datasets.load_dataset`` / ``huggingface_hub``, so the usual cache
and offline variables (``HF_HOME``, ``HF_DATASETS_CACHE``, ``HF_HUB_OFFLINE``) apply.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from tqdm.auto import tqdm

from harness.console import bars_allowed
from harness.errors import HarnessError, InputError
from harness.fileio import write_atomic
from harness.hub import hub_access, hub_state
from harness.types import Dataset, Qrels

log = logging.getLogger(__name__)

BEIR_ZIP_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
QRELS_HEADER = ["query-id", "corpus-id", "score"]
# Files above this size get a progress bar while loading.
_PROGRESS_BYTES = 64 << 20


class HubUnavailableError(HarnessError):
    """A dataset could not be fetched from the Hugging Face Hub (offline, unreachable, missing)."""


# --------------------------------------------------------------------------- BEIR folders


def load_beir_folder(
    path: str | Path,
    split: str = "test",
    *,
    name: str | None = None,
    qrels_file: str | Path | None = None,
    nanobeir_rules: bool = False,
) -> Dataset:
    """Load a BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

    Doc text is ``(title + " " + text).strip()``. ``.jsonl.gz`` files are read too. Like BEIR's
    ``GenericDataLoader`` empty texts and graded qrels are kept; ``nanobeir_rules=True`` applies
    NanoBEIR's instead: empty texts dropped, every qrels row relevant (score 1).
    ``qrels_file`` overrides the qrels path (e.g. a separate ``<name>-qrels`` snapshot).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("dataset folder not found", file=str(folder))
    corpus_path, queries_path = _jsonl_file(folder, "corpus"), _jsonl_file(folder, "queries")
    qrels_path = Path(qrels_file) if qrels_file is not None else folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise InputError(
            f"qrels file for split '{split}' not found (splits here: {have})", file=str(qrels_path)
        )

    corpus: dict[str, str] = {}
    for lineno, row in _read_jsonl(corpus_path):
        doc_id = _str_field(row, "_id", corpus_path, lineno)
        text = _str_field(row, "text", corpus_path, lineno)
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise InputError(
                f"expected a string, got {type(title).__name__}",
                file=str(corpus_path),
                line=lineno,
                field="title",
            )
        _put_unique(corpus, doc_id, (title + " " + text).strip(), corpus_path, lineno)
    queries: dict[str, str] = {}
    for lineno, row in _read_jsonl(queries_path):
        qid = _str_field(row, "_id", queries_path, lineno)
        _put_unique(queries, qid, _str_field(row, "text", queries_path, lineno), queries_path, lineno)
    _require_rows(corpus, corpus_path)
    _require_rows(queries, queries_path)
    qrels, notes = read_qrels_tsv(qrels_path)
    if nanobeir_rules:
        corpus, queries, notes = _drop_empty(corpus, queries, notes)
        qrels = {qid: dict.fromkeys(docs, 1) for qid, docs in qrels.items()}
    return _assemble(
        name or folder.name,
        corpus,
        queries,
        qrels,
        source=f"{folder} ({split})",
        qrels_where=str(qrels_path),
        notes=notes,
    )


def read_qrels_tsv(path: str | Path) -> tuple[Qrels, list[str]]:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``, integer graded scores).

    A repeated (query, doc) pair keeps the last score, as BEIR does, and is noted.
    """
    path = Path(path)
    qrels: Qrels = {}
    repeated = 0
    with _open_bytes(path) as f:
        for lineno, line in _decoded_lines(f, path):
            cols = line.rstrip("\r\n").split("\t")
            if lineno == 1:
                if [c.strip() for c in cols] != QRELS_HEADER:
                    raise InputError(
                        f"missing header: expected {'<TAB>'.join(QRELS_HEADER)!r}, got {line!r}",
                        file=str(path),
                        line=1,
                    )
                continue
            if cols == [""]:
                continue
            if len(cols) != 3:
                raise InputError(
                    f"expected 3 tab-separated columns, got {len(cols)}", file=str(path), line=lineno
                )
            qid, doc_id, score = cols
            for field, value in (("query-id", qid), ("corpus-id", doc_id)):
                if not value:
                    raise InputError("empty id", file=str(path), line=lineno, field=field)
            try:
                value = int(score)
            except ValueError:
                raise InputError(
                    f"expected an integer, got {score!r}", file=str(path), line=lineno, field="score"
                ) from None
            docs = qrels.setdefault(qid, {})
            repeated += doc_id in docs
            docs[doc_id] = value
    if not qrels:
        raise InputError("no qrels rows", file=str(path))
    notes = (
        [f"{path.name}: {repeated} repeated (query, doc) pairs; the last score is kept"] if repeated else []
    )
    return qrels, notes


def is_beir_folder(path: Path) -> bool:
    """True when ``path`` holds ``corpus.jsonl`` (or ``.jsonl.gz``)."""
    return any((path / f"corpus{ext}").is_file() for ext in (".jsonl", ".jsonl.gz"))


def load_beir_tree(path: str | Path, split: str, subsets: Iterable[str] | None = None) -> list[Dataset]:
    """``path`` as one BEIR folder, or one Dataset per BEIR subfolder (``subsets`` or all, sorted)."""
    path = Path(path)
    if subsets is None:
        if is_beir_folder(path):
            return [load_beir_folder(path, split)]
        subsets = sorted(p.name for p in path.iterdir() if p.is_dir() and is_beir_folder(p))
    names = list(subsets)
    if not names:
        raise InputError("neither a BEIR folder (corpus.jsonl) nor a folder of BEIR folders", file=str(path))
    return [load_beir_folder(path / n, split, name=f"{path.name}_{n}") for n in names]


def _jsonl_file(folder: Path, stem: str) -> Path:
    for ext in (".jsonl", ".jsonl.gz"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    raise InputError(f"{stem}.jsonl not found", file=str(folder / f"{stem}.jsonl"))


def _open_bytes(path: Path) -> BinaryIO:
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def _decoded_lines(f: BinaryIO, path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text); a progress bar (in lines) for big files."""
    big = path.stat().st_size >= _PROGRESS_BYTES
    with tqdm(unit=" lines", unit_scale=True, desc=path.name, disable=not (big and bars_allowed())) as bar:
        for lineno, raw in enumerate(f, 1):
            if lineno % 100_000 == 0:
                bar.update(100_000)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    f"not valid UTF-8 (byte {e.start} of the line)", file=str(path), line=lineno
                ) from None
            yield lineno, line.lstrip("\ufeff") if lineno == 1 else line


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line."""
    with _open_bytes(path) as f:
        for lineno, line in _decoded_lines(f, path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(
                    f"malformed JSON: {e.msg} at column {e.colno}", file=str(path), line=lineno
                ) from None
            if not isinstance(row, dict):
                raise InputError(
                    f"expected a JSON object, got {type(row).__name__}", file=str(path), line=lineno
                )
            yield lineno, row


def _str_field(row: dict[str, Any], field: str, path: Path | str, lineno: int) -> str:
    if field not in row:
        raise InputError("missing", file=str(path), line=lineno, field=field)
    value = row[field]
    if not isinstance(value, str):
        raise InputError(
            f"expected a string, got {type(value).__name__}", file=str(path), line=lineno, field=field
        )
    return value


def _put_unique(table: dict[str, str], key: str, value: str, path: Path | str, lineno: int) -> None:
    if key in table:
        raise InputError(f"duplicate id {key!r}", file=str(path), line=lineno, field="_id")
    table[key] = value


def _require_rows(table: dict[str, str], path: Path | str) -> None:
    if not table:
        raise InputError("no rows", file=str(path))


def _drop_empty(
    corpus: dict[str, str], queries: dict[str, str], notes: list[str]
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """NanoBEIR rule: rows whose text is empty are dropped (their qrels stay)."""
    kept_c = {k: v for k, v in corpus.items() if v}
    kept_q = {k: v for k, v in queries.items() if v}
    dropped = (len(corpus) - len(kept_c), len(queries) - len(kept_q))
    if any(dropped):
        notes = [*notes, f"dropped {dropped[0]} docs and {dropped[1]} queries with empty text"]
    return kept_c, kept_q, notes


def _assemble(
    name: str,
    corpus: dict[str, str],
    queries: dict[str, str],
    qrels: Qrels,
    *,
    source: str,
    qrels_where: str,
    notes: Iterable[str] = (),
) -> Dataset:
    """Apply the shared rules (module docstring) and build the Dataset."""
    total = sum(len(docs) for docs in qrels.values())
    bad_q = sum(len(docs) for qid, docs in qrels.items() if qid not in queries)
    bad_d = sum(doc not in corpus for qid, docs in qrels.items() if qid in queries for doc in docs)
    if bad_q + bad_d == total:
        raise InputError(
            f"none of the {total} qrels rows names a known query and a known doc "
            f"({bad_q} unknown query ids, {bad_d} unknown doc ids): wrong split or mismatched files?",
            file=qrels_where,
        )
    notes = list(notes)
    if bad_q:
        notes.append(f"{bad_q} of {total} qrels rows name a query that is not in the queries; dropped")
    if bad_d:
        notes.append(
            f"{bad_d} of {total} qrels rows name a doc that is not in the corpus; kept (they count in |R|)"
        )
    for note in notes:
        log.warning("%s: %s", name, note)
    kept = {qid: text for qid, text in queries.items() if qid in qrels}
    return Dataset(
        name=name,
        corpus=corpus,
        queries=kept,
        qrels={qid: qrels[qid] for qid in kept},
        source=source,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- Hugging Face


def load_nanobeir(
    source: str | Path,
    split: str = "train",
    *,
    name: str | None = None,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
) -> Dataset:
    """NanoBEIR layout (``zeta-alpha-ai/Nano*``): configs corpus/queries/qrels, split ``train``.

    As sentence-transformers' ``NanoBEIREvaluator``: rows ``{_id, text}`` (no title), every
    qrels row ``{query-id, corpus-id}`` means relevance 1 (a score column is ignored), empty
    texts are dropped and queries without qrels are skipped. ``source`` is a Hub id or a
    local snapshot folder.
    """
    src = str(source)
    tables = {
        cfg: _hf_table(source, cfg, split, cache_dir, local_hint) for cfg in ("corpus", "queries", "qrels")
    }
    corpus = _id_text(tables["corpus"], f"{src}:corpus", "_id")
    queries = _id_text(tables["queries"], f"{src}:queries", "_id")
    qrels = _qrels_rows(tables["qrels"], f"{src}:qrels", "query-id", "corpus-id", binary=True)
    corpus, queries, notes = _drop_empty(corpus, queries, [])
    return _assemble(
        name or Path(src).name, corpus, queries, qrels, source=src, qrels_where=f"{src}:qrels", notes=notes
    )


def load_beir_hf(
    source: str | Path,
    split: str = "test",
    *,
    qrels_source: str | Path | None = None,
    name: str | None = None,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
) -> Dataset:
    """BEIR on the Hub: ``BeIR/<name>`` (configs corpus, queries) + ``BeIR/<name>-qrels`` (``<split>.tsv``).

    Same rules as :func:`load_beir_folder` (title joined, empty texts kept). The qrels TSV is
    fetched with ``huggingface_hub`` and parsed by :func:`read_qrels_tsv` so ids stay strings.
    ``qrels_source`` defaults to ``<source>-qrels``; for a local ``source`` folder,
    ``<source>/qrels`` is used when present.
    """
    src = str(source)
    local = Path(src).is_dir()
    if qrels_source is None:
        qrels_source = Path(src) / "qrels" if local and (Path(src) / "qrels").is_dir() else f"{src}-qrels"
    corpus_t = _hf_table(source, "corpus", "corpus", cache_dir, local_hint)
    queries_t = _hf_table(source, "queries", "queries", cache_dir, local_hint)
    corpus = _id_text(corpus_t, f"{src}:corpus", "_id", title=True)
    queries = _id_text(queries_t, f"{src}:queries", "_id")
    qrels_path = _qrels_tsv_path(qrels_source, split, cache_dir, local_hint)
    qrels, notes = read_qrels_tsv(qrels_path)
    return _assemble(
        name or Path(src).name,
        corpus,
        queries,
        qrels,
        source=f"{src} ({split})",
        qrels_where=str(qrels_path),
        notes=notes,
    )


LONGEMBED_REPO = "dwzhu/LongEmbed"
LONGEMBED_SYNTHETIC = ("passkey", "needle")


def load_longembed(
    config: str,
    *,
    source: str | Path = LONGEMBED_REPO,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
) -> list[Dataset]:
    """LongEmbed (``dwzhu/LongEmbed``): config = task, splits corpus ``{doc_id,text}``,
    queries ``{qid,text}``, qrels ``{qid,doc_id}`` (relevance 1).

    passkey / needle rows carry ``context_length``: one Dataset per length, named
    ``<config>_<length>``, in increasing length; other configs give one Dataset named ``config``.
    """
    src = f"{source}:{config}"
    tables = {s: _hf_table(source, config, s, cache_dir, local_hint) for s in ("corpus", "queries", "qrels")}
    if config not in LONGEMBED_SYNTHETIC:
        corpus = _id_text(tables["corpus"], f"{src}/corpus", "doc_id")
        queries = _id_text(tables["queries"], f"{src}/queries", "qid")
        qrels = _qrels_rows(tables["qrels"], f"{src}/qrels", "qid", "doc_id")
        return [_assemble(config, corpus, queries, qrels, source=src, qrels_where=f"{src}/qrels")]
    parts = {s: _split_by_length(t, f"{src}/{s}") for s, t in tables.items()}
    lengths = sorted(set(parts["corpus"]) | set(parts["queries"]) | set(parts["qrels"]))
    out = []
    for length in lengths:
        where = {s: f"{src}/{s}[context_length={length}]" for s in parts}
        corpus = _id_text(parts["corpus"].get(length, {}), where["corpus"], "doc_id")
        queries = _id_text(parts["queries"].get(length, {}), where["queries"], "qid")
        qrels = _qrels_rows(parts["qrels"].get(length, {}), where["qrels"], "qid", "doc_id")
        out.append(
            _assemble(
                f"{config}_{length}",
                corpus,
                queries,
                qrels,
                source=f"{src} {length}",
                qrels_where=where["qrels"],
            )
        )
    return out


Table = dict[str, list[Any]]


def _split_by_length(table: Table, where: str) -> dict[int, Table]:
    if "context_length" not in table:
        raise InputError("missing column", file=where, field="context_length")
    out: dict[int, Table] = {}
    for i, length in enumerate(table["context_length"]):
        part = out.setdefault(int(length), {col: [] for col in table})
        for col, values in table.items():
            part[col].append(values[i])
    return out


def _id_text(table: Table, where: str, id_col: str, *, title: bool = False) -> dict[str, str]:
    """Rows -> {id: text}; ids may be str or int (parquet typing), texts must be str."""
    for col in (id_col, "text"):
        if col not in table:
            raise InputError(f"missing column (columns: {sorted(table)})", file=where, field=col)
    titles = table.get("title") if title else None
    out: dict[str, str] = {}
    for i, (raw_id, text) in enumerate(zip(table[id_col], table["text"], strict=True)):
        row_id = _hf_id(raw_id, where, i + 1, id_col)
        if not isinstance(text, str):
            raise InputError(
                f"expected a string, got {type(text).__name__}", file=where, line=i + 1, field="text"
            )
        if titles is not None and titles[i]:
            text = (str(titles[i]) + " " + text).strip()
        _put_unique(out, row_id, text, where, i + 1)
    _require_rows(out, where)
    return out


def _qrels_rows(table: Table, where: str, q_col: str, d_col: str, *, binary: bool = False) -> Qrels:
    """Rows -> qrels; a missing ``score`` column (or ``binary=True``) means relevance 1."""
    for col in (q_col, d_col):
        if col not in table:
            raise InputError(f"missing column (columns: {sorted(table)})", file=where, field=col)
    n = len(table[q_col])
    scores = [1] * n if binary or "score" not in table else table["score"]
    qrels: Qrels = {}
    for i in range(n):
        score = scores[i]
        if isinstance(score, float) and score.is_integer():
            score = int(score)
        if not isinstance(score, int) or isinstance(score, bool):
            raise InputError(f"expected an integer, got {score!r}", file=where, line=i + 1, field="score")
        qid, doc_id = (
            _hf_id(table[q_col][i], where, i + 1, q_col),
            _hf_id(table[d_col][i], where, i + 1, d_col),
        )
        qrels.setdefault(qid, {})[doc_id] = score
    if not qrels:
        raise InputError("no qrels rows", file=where)
    return qrels


def _hf_id(value: Any, where: str, row: int, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise InputError(
            f"expected a non-empty string or integer id, got {value!r}", file=where, line=row, field=field
        )
    return str(value)


def _hub_error(repo_id: str, what: str, err: Exception, local_hint: str) -> HubUnavailableError:
    mode = hub_state()
    hint = local_hint or f"a local snapshot of the '{repo_id}' dataset repo"
    return HubUnavailableError(
        f"could not load {what} of '{repo_id}' from the Hugging Face Hub{mode}: {type(err).__name__}: {err}. "
        f"Without Hub access, download it elsewhere and pass --data-dir DIR, with {hint}."
    )


_DATA_EXTS = {
    ".parquet": "parquet",
    ".jsonl": "json",
    ".json": "json",
    ".jsonl.gz": "json",
    ".json.gz": "json",
    ".csv": "csv",
    ".tsv": "csv",
}
_SPLIT_ALIASES = {"dev": ("dev", "validation"), "validation": ("validation", "dev")}


def _hf_table(
    source: str | Path, config: str | None, split: str, cache_dir: str | Path | None, local_hint: str
) -> Table:
    """One (config, split) of a Hub repo or local snapshot as {column: values}.

    Local folder: with README ``configs:`` metadata, ``datasets.load_dataset(folder, config)``;
    otherwise the data files in ``<config>/<split>/``, ``<config>/<split>*`` or ``<split>*``.
    """
    import datasets

    cache = str(cache_dir) if cache_dir is not None else None
    folder = Path(source)
    if folder.is_dir():
        readme = folder / "README.md"
        if readme.is_file() and "configs:" in readme.read_text("utf-8", errors="replace"):
            try:
                ds = datasets.load_dataset(str(folder), config, split=split, cache_dir=cache)
            except (ValueError, FileNotFoundError) as e:
                raise InputError(
                    f"cannot load config {config!r} split {split!r}: {e}", file=str(folder)
                ) from e
        else:
            builder, files = _local_data_files(folder, config, split)
            kwargs = {"sep": "\t"} if files[0].endswith(".tsv") else {}
            ds = datasets.load_dataset(builder, data_files=files, split="train", cache_dir=cache, **kwargs)
        return ds.to_dict()
    try:
        with hub_access():
            ds = datasets.load_dataset(str(source), config, split=split, cache_dir=cache)
    except Exception as e:  # noqa: BLE001 - any Hub failure becomes one actionable message
        raise _hub_error(str(source), f"config {config!r} split {split!r}", e, local_hint) from e
    return ds.to_dict()


def _local_data_files(folder: Path, config: str | None, split: str) -> tuple[str, list[str]]:
    prefixes = _SPLIT_ALIASES.get(split, (split,))
    # (folder, whether file names must start with the split name)
    bases = [(folder / config / split, False), (folder / config, True)] if config else []
    bases.append((folder, True))
    for base, by_prefix in bases:
        if not base.is_dir():
            continue
        files = sorted(p for p in base.iterdir() if p.is_file() and not p.name.startswith(".") and _ext(p))
        if by_prefix:
            files = [p for p in files if any(re.match(rf"{re.escape(pre)}[-._]", p.name) for pre in prefixes)]
        kinds = {_DATA_EXTS[_ext(p)] for p in files}
        if len(kinds) > 1:
            raise InputError(f"mixed data file types {sorted(kinds)} for split {split!r}", file=str(base))
        if files:
            return kinds.pop(), [str(p) for p in files]
    raise InputError(
        f"no data files for config {config!r} split {split!r} (looked for {'/'.join(prefixes)}* data "
        f"files in {[str(b) for b, _ in bases]}, and no README.md with 'configs:')",
        file=str(folder),
    )


def _ext(path: Path) -> str:
    name = path.name
    return next((ext for ext in sorted(_DATA_EXTS, key=len, reverse=True) if name.endswith(ext)), "")


def _qrels_tsv_path(source: str | Path, split: str, cache_dir: str | Path | None, local_hint: str) -> Path:
    """Local ``<source>/<split>.tsv`` or the file downloaded from the Hub qrels repo."""
    folder = Path(source)
    if folder.is_dir():
        for alias in _SPLIT_ALIASES.get(split, (split,)):
            if (folder / f"{alias}.tsv").is_file():
                return folder / f"{alias}.tsv"
        raise InputError(f"qrels file for split '{split}' not found", file=str(folder / f"{split}.tsv"))
    from huggingface_hub import hf_hub_download

    try:
        with hub_access():
            return Path(
                hf_hub_download(str(source), f"{split}.tsv", repo_type="dataset", cache_dir=cache_dir)
            )
    except Exception as e:  # noqa: BLE001
        raise _hub_error(str(source), f"qrels '{split}.tsv'", e, local_hint) from e


# --------------------------------------------------------------------------- BEIR zips


def download_beir_zip(
    name: str, dest_dir: str | Path, *, url_template: str = BEIR_ZIP_URL, show_progress: bool = True
) -> Path:
    """Download and extract the BEIR zip of ``name`` into ``dest_dir``; return ``dest_dir/name``.

    Nothing is done when ``dest_dir/name`` already exists. The zip is downloaded to a temp
    file and renamed when complete, extracted with :func:`safe_extract_zip`, then deleted.
    """
    dest = Path(dest_dir)
    target = dest / name
    if target.is_dir():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    url = url_template.format(name=name)
    zip_path = dest / f"{name}.zip"
    if not zip_path.is_file():

        def download(out: IO[bytes]) -> None:
            with urllib.request.urlopen(url, timeout=60) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=f"{name}.zip",
                    disable=not (show_progress and bars_allowed()),
                ) as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))

        try:
            write_atomic(zip_path, download)
        except OSError as e:
            raise HarnessError(
                f"could not download BEIR dataset '{name}' from {url}: {e}. Without network access, "
                f"download and unzip it elsewhere and pass --data-dir DIR with DIR/{name}/corpus.jsonl, "
                f"queries.jsonl and qrels/<split>.tsv."
            ) from e
    safe_extract_zip(zip_path, dest)
    if not target.is_dir():
        raise InputError(f"the zip has no top-level folder '{name}/'", file=str(zip_path))
    zip_path.unlink()  # the extracted folder is the cache
    return target


def safe_extract_zip(zip_path: str | Path, dest_dir: str | Path) -> list[Path]:
    """Extract ``zip_path`` into ``dest_dir``; return the top-level paths it created.

    Every entry is checked before anything is written: absolute paths, ``..`` components,
    drive letters and symlinks are refused (InputError naming the entry). Entries are written
    to a temp folder inside ``dest_dir`` and each top-level item is then renamed into place,
    so a killed extraction leaves no half-written item (only a ``.extract-*`` temp folder).
    Existing top-level items are an error, never overwritten.
    """
    zip_path, dest = Path(zip_path), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"not a readable zip file: {e}", file=str(zip_path)) from e
    with zf:
        members = zf.infolist()
        tops: set[str] = set()
        for info in members:
            _check_zip_entry(info, root, zip_path)
            tops.add(PurePosixPath(info.filename.replace("\\", "/")).parts[0])
        clashes = sorted(t for t in tops if (dest / t).exists())
        if clashes:
            raise InputError(f"would overwrite existing {clashes} in {dest}", file=str(zip_path))
        size = sum(m.file_size for m in members)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            with tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                desc=f"extract {zip_path.name}",
                disable=size < _PROGRESS_BYTES or not bars_allowed(),
            ) as bar:
                for member in members:
                    zf.extract(member, tmp)
                    bar.update(member.file_size)
            for top in sorted(tops):
                os.replace(tmp / top, dest / top)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [dest / t for t in sorted(tops)]


def _check_zip_entry(info: zipfile.ZipInfo, root: Path, zip_path: Path) -> None:
    name = info.filename
    posix = name.replace("\\", "/")
    mode = info.external_attr >> 16
    reason = None
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        reason = "absolute path"
    elif ".." in PurePosixPath(posix).parts:
        reason = "'..' component"
    elif stat.S_ISLNK(mode):
        reason = "symbolic link"
    elif not (root / posix).resolve().is_relative_to(root):
        reason = "path outside the target folder"
    if reason:
        raise InputError(
            f"unsafe zip entry ({reason}); nothing was extracted", file=str(zip_path), field=name
        )
