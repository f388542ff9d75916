"""Filling an entry through an executor: the shards that are missing or do not verify are encoded
(``write_shard``, one task per shard), the others kept. That gives resume after a kill for free, and
lets workers fill disjoint ``shard_indices`` of one folder in parallel (there is no lock: two workers
on the same shard both write the same bytes, which is correct but wasted work)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from harness.cache.keys import FORMAT, entry_key, texts_digest
from harness.cache.shards import (
    DEFAULT_SHARD_CHARS,
    DEFAULT_SHARD_SIZE,
    MANIFEST,
    BadShard,
    ShardFiles,
    ShardTask,
    open_shard,
    remove_temps,
    shard_bounds,
    write_shard,
)
from harness.errors import InputError, positive_int
from harness.executor import Executor, LocalExecutor
from harness.fileio import require_free_space, write_json_atomic
from harness.types import Encoder, TokenEmbeddings

log = logging.getLogger(__name__)

# A temp file older than this cannot belong to a live writer (writing one shard takes seconds).
STALE_TMP_SECONDS = 3600.0
LOCAL = LocalExecutor()


@dataclass(frozen=True)
class Job:
    """One entry: which texts, under which key, cut how."""

    encoder: Encoder
    texts: Sequence[str]
    is_query: bool
    key: str
    digest: str
    folder: Path
    shard_size: int
    shard_chars: int | None
    bounds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        positive_int(self.shard_size, "shard_size")
        if self.shard_chars is not None:
            positive_int(self.shard_chars, "shard_chars")
        object.__setattr__(self, "bounds", shard_bounds(self.texts, self.shard_size, self.shard_chars))

    @property
    def n_shards(self) -> int:
        return len(self.bounds) - 1

    def span(self, index: int) -> tuple[int, int]:
        return int(self.bounds[index]), int(self.bounds[index + 1])

    def open(self, index: int, *, check_sha: bool) -> tuple[TokenEmbeddings, dict[str, Any]]:
        """Shard ``index`` verified and memory-mapped, with its sidecar (or BadShard)."""
        return open_shard(self.folder, self.key, index, *self.span(index), check_sha=check_sha)

    def task(self, index: int, batch_size: int, show_progress: bool) -> ShardTask:
        start, stop = self.span(index)
        texts = list(self.texts[start:stop])
        folder = self.folder.resolve()  # workers may run in another working directory
        return ShardTask(self.key, folder, index, start, texts, self.is_query, batch_size, show_progress)


# Calibration of :func:`estimate_bytes` (SciFact, 5183 documents and 1109 queries as the models see
# them, lower-cased): mean UTF-8 bytes per token 4.47 (MiniLM's WordPiece), 3.87 (a 4096-entry byte
# BPE, the ettin-like test model), 3.24 (a 2048-entry one). 3 is below all three: the estimate is an
# upper bound for any of them. Bytes, not characters: byte-level BPE splits non-ASCII text into more.
BYTES_PER_TOKEN = 3
SPECIAL_TOKENS = 3  # [CLS], [SEP] and the [Q] / [D] prefix
NPY_HEADER = 128  # numpy's .npy header, padded to 64 bytes (128 for our 2-d shapes)
SIDECAR_BYTES = 1024  # a shard's JSON sidecar (about 450 bytes measured)
BLOCK = 4096  # files take whole blocks on disk (ext4, xfs, tmpfs: 4 KiB)


def _on_disk(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def estimate_bytes(encoder: Encoder, texts: Sequence[str], is_query: bool) -> int:
    """An upper bound on the bytes on disk of one shard holding ``texts`` (0 when the encoder's settings
    do not say its width): float32 rows + int64 offsets + sidecar, each file rounded up to whole blocks.

    Rows: a dense model one per text; a ColBERT query with expansion exactly ``query_length``; else
    (prompt + text) / :data:`BYTES_PER_TOKEN` UTF-8 bytes + :data:`SPECIAL_TOKENS`, capped at the
    side's length (the skiplist only removes rows). Measured: bytes on disk of SciFact caches (the
    test models of ``tests/model_fixtures.py``: BERT, MiniLM-ColBERT, GTE-like, ettin-like; documents
    and queries) were 0.77 to 1.00 of this estimate (1.00: queries with expansion, exact), where the
    old one (4 characters a token, no file overheads) fell short by up to 14%; a cache filled in
    ``tests/test_task_guards.py`` must stay within it and above 1/1.5 of it."""
    settings = encoder.settings()
    dim = settings.get("dim")
    if not isinstance(dim, int):
        return 0
    length = settings.get("query_length" if is_query else "document_length") or 512
    if settings.get("encoder") == "dense":
        rows = len(texts)
    elif is_query and settings.get("do_query_expansion"):
        rows = length * len(texts)
    else:
        prompt = len(str(settings.get("query_prompt" if is_query else "document_prompt") or "").encode())
        per_text = (-(-(prompt + len(t.encode())) // BYTES_PER_TOKEN) + SPECIAL_TOKENS for t in texts)
        rows = sum(min(n, length) for n in per_text)
    vectors = _on_disk(NPY_HEADER + rows * dim * 4)
    return vectors + _on_disk(NPY_HEADER + 8 * (len(texts) + 1)) + _on_disk(SIDECAR_BYTES)


def _check_manifest(job: Job) -> None:
    """Write the job manifest, or check an existing one describes the same job."""
    manifest = {
        "format": FORMAT,
        "key": job.key,
        "encoder_fingerprint": job.encoder.fingerprint,
        "encoder_settings": job.encoder.settings(),
        "is_query": job.is_query,
        "n_texts": len(job.texts),
        "texts_sha256": job.digest,
        "shard_size": job.shard_size,
        "shard_chars": job.shard_chars,
        "n_shards": job.n_shards,
    }
    path = job.folder / MANIFEST
    if path.exists():
        try:
            old = json.loads(path.read_text("utf-8"))
            mismatch = [
                f for f in ("key", "n_texts", "shard_size", "shard_chars") if old.get(f) != manifest[f]
            ]
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); rewriting it", path, exc)
        else:
            if mismatch:
                raise InputError(
                    f"folder holds another job ({mismatch[0]}={old.get(mismatch[0])!r}, this job has "
                    f"{manifest[mismatch[0]]!r}); use another out_dir or clear it",
                    file=str(path),
                    field=mismatch[0],
                )
            return
    write_json_atomic(path, manifest, indent=1, sort_keys=True)


def fill(
    job: Job, indices: list[int], batch_size: int, show_progress: bool, executor: Executor
) -> dict[int, float | None]:
    """Encode, through ``executor``, the shards of ``indices`` that are missing or do not verify (a
    bad one with a warning naming the file); return their encoder seconds by shard (None: a lost
    worker had written it already)."""
    job.folder.mkdir(parents=True, exist_ok=True)
    _check_manifest(job)
    remove_temps(job.folder, [""], STALE_TMP_SECONDS)  # a shard's own are removed by its writer
    todo = []
    for i in indices:
        try:
            job.open(i, check_sha=True)
        except BadShard as exc:
            if not exc.missing:
                log.warning("bad cache shard, re-encoding: %s", exc)
            todo.append(i)
    if todo:  # before hours of encoding: will it fit?
        needed = sum(estimate_bytes(job.encoder, job.texts[slice(*job.span(i))], job.is_query) for i in todo)
        require_free_space(job.folder, needed, "the embedding cache")
    # one shard in this process: the encoder's own bar (tokens); else one bar over texts, with tokens/s
    own_bar = show_progress and len(todo) == 1 and executor.in_process
    side = "queries" if job.is_query else "documents"
    total = sum(stop - start for start, stop in map(job.span, todo))
    seconds: dict[int, float | None] = {}
    tokens, started = 0, time.perf_counter()
    tasks = [job.task(i, batch_size, own_bar) for i in todo]
    with tqdm(
        total=total, desc=f"{job.encoder.name}: {side}", unit="text", disable=not show_progress or own_bar
    ) as bar:
        for task, (shard_seconds, shard_tokens) in executor.map(job.encoder, write_shard, tasks):
            seconds[task.index] = shard_seconds
            tokens += shard_tokens or 0
            bar.update(len(task.texts))
            bar.set_postfix_str(f"{tokens / max(time.perf_counter() - started, 1e-9):,.0f} tok/s")
    return seconds


def encode_to_shards(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    is_query: bool,
    out_dir: Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_chars: int | None = DEFAULT_SHARD_CHARS,
    batch_size: int = 32,
    show_progress: bool = True,
    shard_indices: Iterable[int] | None = None,
    executor: Executor = LOCAL,
) -> list[Path]:
    """Make sure shards ``shard_indices`` (default: all) of ``texts`` exist and verify in ``out_dir``.

    A pure function of (encoder weights, settings, is_query, texts, shard_size, shard_chars): shard
    ``i`` holds ``texts[b[i]:b[i + 1]]`` with ``b = shard_bounds(texts, shard_size, shard_chars)``.
    Valid shards are skipped (resume); missing or bad ones are encoded and written atomically.
    Disjoint ``shard_indices`` may run in parallel on one folder. Returns the sidecar path of each
    requested shard, in the order requested. Raises InputError when ``out_dir`` already holds a
    different job (key, n_texts, shard_size or shard_chars).
    """
    digest = texts_digest(texts)
    key = entry_key(encoder, digest, is_query)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text("utf-8"))
        if "shard_chars" not in manifest:  # an entry made before shards closed by characters
            shard_chars = None
    job = Job(encoder, texts, is_query, key, digest, Path(out_dir), shard_size, shard_chars)
    indices = list(range(job.n_shards)) if shard_indices is None else [int(i) for i in shard_indices]
    for i in indices:
        if not 0 <= i < job.n_shards:
            raise InputError(f"shard {i} out of range [0, {job.n_shards})", field="shard_indices")
    fill(job, indices, batch_size, show_progress, executor)
    return [ShardFiles.of(job.folder, i).sidecar for i in indices]
