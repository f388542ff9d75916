"""TREC run files (``qid Q0 docid rank score tag``): written from a Run, read back into one.

A results file keeps only per-query scores, not rankings, so a TREC run is written while the
ranking still exists (``harness evaluate --save-run``); a run file read back can be a rerank
first stage.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.errors import InputError
from harness.fileio import read_text, write_text_atomic
from harness.ranking import rank
from harness.types import Run


def write_trec_run(run: Run, path: Path, tag: str = "harness", *, depth: int | None = None) -> Path:
    """Write ``qid Q0 docid rank score tag`` lines (rank from 1, ``harness.ranking.rank`` order),
    queries in run order.

    Scores are written with ``repr`` so they read back bit-identical; ``depth`` keeps
    the top ``depth`` documents per query. Ids or a tag holding whitespace cannot be
    represented in the format and raise InputError.
    """
    if not tag or any(c.isspace() for c in tag):
        raise InputError(f"tag {tag!r} must be non-empty without whitespace", field="tag")
    ranking = rank(run, depth)
    lines = []
    for qid, docs in run.items():
        _check_token(qid, "query id")
        for position, doc_id in enumerate(ranking[qid], start=1):
            _check_token(doc_id, f"doc id (query {qid!r})")
            lines.append(f"{qid} Q0 {doc_id} {position} {float(docs[doc_id])!r} {tag}\n")
    write_text_atomic(Path(path), "".join(lines))
    return Path(path)


def _check_token(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise InputError(f"{what} {value!r} is empty or holds whitespace: not writable to a TREC run")


def read_trec_run(path: Path) -> Run:
    """Read a TREC run file; malformed lines raise InputError naming file, line and field.

    The ranking is rebuilt from the scores (as trec_eval does); ranks are validated
    as positive integers but not otherwise used. Blank lines are skipped.
    """
    path = Path(path)
    text = read_text(path, "run file")
    run: Run = {}
    name = str(path)
    fields = ("qid", "Q0", "docid", "rank", "score", "tag")
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(fields):
            field = fields[len(parts)] if len(parts) < len(fields) else "tag"
            raise InputError(
                f"expected 6 whitespace-separated fields, got {len(parts)}",
                field=field,
                file=name,
                line=number,
            )
        qid, _, doc_id, position, score, _ = parts
        try:
            if int(position) < 1:
                raise ValueError
        except ValueError:
            raise InputError(
                f"rank {position!r} is not a positive integer", field="rank", file=name, line=number
            ) from None
        try:
            value = float(score)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(f"score {score!r} is not a finite number", field="score", file=name, line=number)
        docs = run.setdefault(qid, {})
        if doc_id in docs:
            raise InputError(
                f"doc {doc_id!r} listed twice for query {qid!r}", field="docid", file=name, line=number
            )
        docs[doc_id] = value
    return run
