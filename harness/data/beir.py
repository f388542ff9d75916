"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` (``.jsonl.gz`` too),
parsed and checked line by line (an InputError names file, line and field); the shared rules of
:mod:`harness.data.rules` apply."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from harness.console import bars_allowed
from harness.data.rules import PROGRESS_BYTES, assemble, drop_empty, excerpt, put_unique, require_rows
from harness.errors import InputError
from harness.types import Dataset, Qrels

QRELS_HEADER = ["query-id", "corpus-id", "score"]


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
    sentence-transformers' evaluator's instead: empty texts dropped, every qrels row relevant (score 1).
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
        put_unique(corpus, doc_id, (title + " " + text).strip(), corpus_path, lineno)
    queries: dict[str, str] = {}
    for lineno, row in _read_jsonl(queries_path):
        qid = _str_field(row, "_id", queries_path, lineno)
        put_unique(queries, qid, _str_field(row, "text", queries_path, lineno), queries_path, lineno)
    require_rows(corpus, corpus_path)
    require_rows(queries, queries_path)
    qrels, notes = read_qrels_tsv(qrels_path)
    if nanobeir_rules:
        corpus, queries, notes = drop_empty(corpus, queries, notes)
        qrels = {qid: dict.fromkeys(docs, 1) for qid, docs in qrels.items()}
    return assemble(
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
            text = line.rstrip("\r\n")
            cols = text.split("\t")
            if lineno == 1:
                if [c.strip() for c in cols] != QRELS_HEADER:
                    raise InputError(
                        f"missing header: expected {'<TAB>'.join(QRELS_HEADER)!r}, got {excerpt(text)}",
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
                grade = int(score)
            except ValueError:
                raise InputError(
                    f"expected an integer, got {excerpt(score)}", file=str(path), line=lineno, field="score"
                ) from None
            docs = qrels.setdefault(qid, {})
            repeated += doc_id in docs
            docs[doc_id] = grade
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


def count_beir(path: str | Path, split: str) -> tuple[int, int] | None:
    """(queries of ``split``, documents) of a BEIR folder, or summed over a folder of BEIR folders,
    counted without building the dataset: the query ids of ``qrels/<split>.tsv`` that
    ``queries.jsonl`` holds, and the non-blank lines of ``corpus.jsonl``. None when ``path`` is
    neither, or a file is missing or malformed (loading it says what is wrong)."""
    path = Path(path)
    if not path.is_dir():
        return None
    folders = [path] if is_beir_folder(path) else sorted(p for p in path.iterdir() if is_beir_folder(p))
    counts = [_count_folder(folder, split) for folder in folders]
    if not folders or None in counts:
        return None
    return sum(c[0] for c in counts if c), sum(c[1] for c in counts if c)


def _count_folder(folder: Path, split: str) -> tuple[int, int] | None:
    try:
        with _open_bytes(folder / "qrels" / f"{split}.tsv") as f:
            qids = {line.split(b"\t", 1)[0].decode() for line in f if line.strip()}
        with _open_bytes(_jsonl_file(folder, "queries")) as f:
            n_queries = sum(1 for line in f if line.strip() and json.loads(line).get("_id") in qids)
        with _open_bytes(_jsonl_file(folder, "corpus")) as f:
            n_docs = sum(1 for line in f if line.strip())
    except (InputError, OSError, ValueError, AttributeError):  # missing, not UTF-8, bad JSON, not an object
        return None
    return n_queries, n_docs


def _jsonl_file(folder: Path, stem: str) -> Path:
    for ext in (".jsonl", ".jsonl.gz"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    raise InputError(f"{stem}.jsonl not found", file=str(folder / f"{stem}.jsonl"))


def _open_bytes(path: Path) -> io.BufferedIOBase:
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def _decoded_lines(f: io.BufferedIOBase, path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text); a progress bar (in lines) for big files."""
    big = path.stat().st_size >= PROGRESS_BYTES
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
