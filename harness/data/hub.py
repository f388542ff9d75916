"""Hugging Face datasets: one (config, split) of a Hub repo or of a local snapshot folder as a table
(:func:`hf_table`), tables turned into id -> text and qrels (ids may be str or int, as parquet types
them), and BEIR's layout on the Hub (:func:`load_beir_hf`).

Hub access goes through ``datasets.load_dataset`` / ``huggingface_hub``, so the usual cache and
offline variables (``HF_HOME``, ``HF_DATASETS_CACHE``, ``HF_HUB_OFFLINE``) apply; a snapshot folder
is read with the repo's README configs or from ``<config>/<split>*`` files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.data.beir import read_qrels_tsv
from harness.data.rules import assemble, excerpt, put_unique, require_rows
from harness.errors import HarnessError, InputError
from harness.hub import hub_access, hub_failure, hub_state
from harness.types import Dataset, Qrels

Table = dict[str, list[Any]]

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


class HubUnavailableError(HarnessError):
    """A dataset could not be fetched from the Hugging Face Hub (offline, unreachable, missing)."""


def load_beir_hf(
    source: str | Path,
    split: str = "test",
    *,
    qrels_source: str | Path | None = None,
    name: str | None = None,
    cache_dir: str | Path | None = None,
    local_hint: str = "",
) -> Dataset:
    """BEIR on the Hub: ``<org>/<name>`` (configs corpus, queries) + ``<org>/<name>-qrels`` (``<split>.tsv``).

    Same rules as :func:`harness.data.beir.load_beir_folder` (title joined, empty texts kept). The
    qrels TSV is fetched with ``huggingface_hub`` and parsed by ``read_qrels_tsv`` so ids stay
    strings. ``qrels_source`` defaults to ``<source>-qrels``; for a local ``source`` folder,
    ``<source>/qrels`` is used when present.
    """
    src = str(source)
    local = Path(src).is_dir()
    if qrels_source is None:
        qrels_source = Path(src) / "qrels" if local and (Path(src) / "qrels").is_dir() else f"{src}-qrels"
    corpus_t = hf_table(source, "corpus", "corpus", cache_dir, local_hint)
    queries_t = hf_table(source, "queries", "queries", cache_dir, local_hint)
    corpus = id_text(corpus_t, f"{src}:corpus", "_id", title=True)
    queries = id_text(queries_t, f"{src}:queries", "_id")
    qrels_path = _qrels_tsv_path(qrels_source, split, cache_dir, local_hint)
    qrels, notes = read_qrels_tsv(qrels_path)
    return assemble(
        name or Path(src).name,
        corpus,
        queries,
        qrels,
        source=f"{src} ({split})",
        qrels_where=str(qrels_path),
        notes=notes,
    )


def id_text(table: Table, where: str, id_col: str, *, title: bool = False) -> dict[str, str]:
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
        put_unique(out, row_id, text, where, i + 1)
    require_rows(out, where)
    return out


def qrels_rows(table: Table, where: str, q_col: str, d_col: str, *, binary: bool = False) -> Qrels:
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
            raise InputError(
                f"expected an integer, got {excerpt(score)}", file=where, line=i + 1, field="score"
            )
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
            f"expected a non-empty string or integer id, got {excerpt(value)}",
            file=where,
            line=row,
            field=field,
        )
    return str(value)


def _hub_error(repo_id: str, what: str, err: Exception, local_hint: str) -> HubUnavailableError:
    mode = hub_state()
    hint = local_hint or f"a local snapshot of the '{repo_id}' dataset repo"
    return HubUnavailableError(
        f"could not load {what} of '{repo_id}' from the Hugging Face Hub{mode}: {hub_failure(err)}. "
        f"Without Hub access, download it elsewhere and pass --data-dir DIR, with {hint}."
    )


def hub_source(source: str | Path, revision: str | None) -> str:
    """How records and messages name a data source: a local folder by its path, a Hub id pinned to
    a revision as ``<id>@<revision>``."""
    return str(source) if revision is None or Path(source).is_dir() else f"{source}@{revision}"


def hf_table(
    source: str | Path,
    config: str | None,
    split: str,
    cache_dir: str | Path | None,
    local_hint: str,
    revision: str | None = None,
) -> Table:
    """One (config, split) of a Hub repo or local snapshot as {column: values}.

    Hub: the repo at ``revision`` (a commit; None: its default branch). Local folder (``revision``
    does not apply): with README ``configs:`` metadata, ``datasets.load_dataset(folder, config)``;
    otherwise the data files in ``<config>/<split>/``, ``<config>/<split>*`` or ``<split>*``.
    A Hub failure is a :class:`HubUnavailableError` ending with ``local_hint`` (what to pass instead).
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
            ds = datasets.load_dataset(str(source), config, split=split, cache_dir=cache, revision=revision)
    except Exception as e:  # noqa: BLE001 - any Hub failure becomes one actionable message
        repo = hub_source(source, revision)
        raise _hub_error(repo, f"config {config!r} split {split!r}", e, local_hint) from e
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
