"""The rule set every dataset loader follows, and the Dataset it builds (:func:`assemble`).

Only queries with qrels are kept, in file order; qrels rows naming an unknown query are dropped,
rows naming an unknown doc are kept (they count in |R|); both are counted in ``Dataset.notes``
and logged, and it is an error only when no row names a known query *and* a known doc. Bad input
raises :class:`InputError` naming file, line and field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.errors import InputError
from harness.types import Dataset, Qrels

log = logging.getLogger("harness.data")

# Files above this size get a progress bar while loading or extracting.
PROGRESS_BYTES = 64 << 20
# An error quotes at most this many characters of the input it rejects.
EXCERPT_CHARS = 40


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """What an error may quote of input it rejects (the file may not be the user's): ``repr(value)``,
    escaped, of at most ``limit`` characters (a string's first ones), ``...`` and the length when cut."""
    if isinstance(value, str):
        cut = value[:limit]
        return repr(value) if cut == value else f"{cut!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def put_unique(table: dict[str, str], key: str, value: str, path: Path | str, lineno: int) -> None:
    """``table[key] = value``; a key seen before is an InputError naming the line."""
    if key in table:
        raise InputError(f"duplicate id {excerpt(key)}", file=str(path), line=lineno, field="_id")
    table[key] = value


def require_rows(table: dict[str, str], path: Path | str) -> None:
    if not table:
        raise InputError("no rows", file=str(path))


def drop_empty(
    corpus: dict[str, str], queries: dict[str, str], notes: list[str]
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Rows whose text is empty are dropped (their qrels stay), as sentence-transformers' evaluator does."""
    kept_c = {k: v for k, v in corpus.items() if v}
    kept_q = {k: v for k, v in queries.items() if v}
    dropped = (len(corpus) - len(kept_c), len(queries) - len(kept_q))
    if any(dropped):
        notes = [*notes, f"dropped {dropped[0]} docs and {dropped[1]} queries with empty text"]
    return kept_c, kept_q, notes


def assemble(
    name: str,
    corpus: dict[str, str],
    queries: dict[str, str],
    qrels: Qrels,
    *,
    source: str,
    qrels_where: str,
    notes: Iterable[str] = (),
    excluded: Mapping[str, Iterable[str]] | None = None,
) -> Dataset:
    """Apply the shared rules (module docstring) and build the Dataset.

    ``excluded`` (query id -> doc ids dropped from its ranking) is kept for the kept queries; an
    excluded doc that is also relevant to its query is an InputError (it could never be found).
    """
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
    dropped = {qid: frozenset(ids) for qid, ids in (excluded or {}).items() if qid in kept}
    for qid, ids in dropped.items():
        both = sorted(d for d in ids if qrels[qid].get(d, 0) > 0)
        if both:
            raise InputError(
                f"query {excerpt(qid)} excludes its relevant doc {excerpt(both[0])}", file=qrels_where
            )
    return Dataset(
        name=name,
        corpus=corpus,
        queries=kept,
        qrels={qid: qrels[qid] for qid in kept},
        source=source,
        notes=tuple(notes),
        excluded={qid: ids for qid, ids in dropped.items() if ids},
    )
