"""The on-disk format of a cache entry: shards written atomically, read back verified.

Layout of one entry ``<cache_dir>/<key>/``::

    manifest.json                  key, n_texts, shard_size, n_shards, encoder settings, texts sha256
    shard-00000.vectors.npy        float32 [tokens, dim]   (plain .npy, memory-mappable, no pickles)
    shard-00000.offsets.npy        int64   [n + 1]         (local offsets, start at 0)
    shard-00000.json               sidecar: key, index, start, stop, shapes, input tokens, sha256s

Shards hold consecutive texts, at most ``shard_size`` of them and at most ``shard_chars`` characters
(:func:`shard_bounds`), so a kill loses at most one shard's work. Every file is written with
``harness.fileio.write_atomic`` (unique temp file, fsync, ``os.replace``); the sidecar is written last,
so it is the commit record: a shard counts only when its sidecar is present and both arrays match the
checksums and shapes it records (:func:`open_shard`; anything else is a :class:`BadShard`). The
sidecar also keeps the number of tokens the encoder read (``TokenEmbeddings.input_tokens``), how many
texts it cut at the length limit (``truncated``) and the encoder's seconds; a shard written before
sidecars kept them reports None: unknown.

Verification cost: a hit hashes every byte of the entry once (sha256, about 2 GB/s per core from the
page cache; measured 0.10 s of a 0.57 s hit on 205 MB), on top of the copy into memory. We pay it so
that a silently corrupted file can never reach the metrics; a shape-only check would miss flipped bytes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache.keys import FORMAT
from harness.fileio import TEMP_SUFFIX, write_atomic, write_json_atomic
from harness.hashing import file_sha256
from harness.types import Encoder, TokenEmbeddings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DEFAULT_SHARD_SIZE = 4096
# A shard also closes at this many characters (~64k tokens, seconds of encoding on a CPU), so a
# killed run loses at most about that much work whatever the corpus size.
DEFAULT_SHARD_CHARS = 1 << 18


class BadShard(Exception):
    """A shard on disk that does not verify; the message says why and names the file."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing  # nothing at all on disk: a plain miss, not worth a warning


@dataclass(frozen=True)
class ShardFiles:
    sidecar: Path
    vectors: Path
    offsets: Path

    @classmethod
    def of(cls, folder: Path, index: int) -> ShardFiles:
        stem = f"shard-{index:05d}"
        return cls(folder / f"{stem}.json", folder / f"{stem}.vectors.npy", folder / f"{stem}.offsets.npy")


def shard_bounds(texts: Sequence[str], shard_size: int, shard_chars: int | None) -> np.ndarray:
    """Where shards start, plus the end: consecutive texts, at most ``shard_size`` of them and (unless
    ``shard_chars`` is None) at most ``shard_chars`` characters, one text at least. A pure function
    of the texts' lengths, so every worker cuts a corpus the same way."""
    n = len(texts)
    if shard_chars is None:
        return np.append(np.arange(0, n, shard_size, dtype=np.int64), n)
    ends = np.cumsum(np.fromiter((len(t) for t in texts), np.int64, n))
    bounds, start = [0], 0
    while start < n:
        before = ends[start - 1] if start else 0
        fits = int(np.searchsorted(ends, before + shard_chars, side="right"))
        start = max(start + 1, min(start + shard_size, fits))
        bounds.append(start)
    return np.array(bounds, np.int64)


def open_shard(
    folder: Path, key: str, index: int, start: int, stop: int, *, check_sha: bool
) -> tuple[TokenEmbeddings, dict[str, Any]]:
    """Verify shard ``index`` (texts ``start:stop`` of entry ``key``) against its sidecar and return
    it memory-mapped with the sidecar, or raise BadShard."""
    files = ShardFiles.of(folder, index)
    if not files.sidecar.exists():
        if files.vectors.exists() or files.offsets.exists():
            raise BadShard(f"{files.sidecar}: no sidecar next to the arrays")
        raise BadShard(f"{files.sidecar}: missing", missing=True)
    try:
        meta = json.loads(files.sidecar.read_text("utf-8"))
        expected = {"key": key, "index": index, "start": start, "stop": stop}
        for name, value in expected.items():
            if meta[name] != value:
                raise BadShard(f"{files.sidecar}: {name} is {meta[name]!r}, expected {value!r}")
        for path, name in ((files.vectors, "vectors"), (files.offsets, "offsets")):
            if check_sha and file_sha256(path) != meta[f"{name}_sha256"]:
                raise BadShard(f"{path}: sha256 does not match {files.sidecar.name}")
        vectors = np.load(files.vectors, mmap_mode="r", allow_pickle=False)
        offsets = np.load(files.offsets, allow_pickle=False)
        shape_ok = list(vectors.shape) == meta["vectors_shape"]
        input_tokens = meta.get("input_tokens")  # absent in shards written before it was kept: unknown
        truncated = meta.get("truncated")  # likewise
    except BadShard:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:  # unreadable, truncated, bad JSON
        raise BadShard(f"{files.sidecar}: {type(exc).__name__}: {exc}") from exc
    if not (
        shape_ok
        and vectors.dtype == np.float32
        and vectors.ndim == 2
        and offsets.dtype == np.int64
        and offsets.shape == (stop - start + 1,)
        and offsets[0] == 0
        and offsets[-1] == len(vectors)
        and np.all(np.diff(offsets) >= 0)
        and all(n is None or isinstance(n, int) for n in (input_tokens, truncated))
    ):
        raise BadShard(f"{files.vectors}: dtype/shape/offsets do not match {files.sidecar.name}")
    return TokenEmbeddings(vectors, offsets, input_tokens, truncated), meta


@dataclass(frozen=True)
class ShardTask:
    """One shard to write: everything a worker needs, the texts included (only this shard's)."""

    key: str
    folder: Path
    index: int
    start: int
    texts: list[str]
    is_query: bool
    batch_size: int
    show_progress: bool

    @property
    def stop(self) -> int:
        return self.start + len(self.texts)


def write_shard(encoder: Encoder, task: ShardTask) -> tuple[float | None, int | None]:
    """Encode and write shard ``task.index``; return the encoder's seconds and input tokens (also kept
    in the sidecar). Leftover temp files of this shard (a killed writer's) are removed first, and a
    shard that already verifies (a worker lost after writing it) is kept: (None, its tokens)."""
    files = ShardFiles.of(task.folder, task.index)
    remove_temps(task.folder, [files.sidecar.stem + "."], None)
    if files.sidecar.exists():
        with contextlib.suppress(BadShard):
            part, _ = open_shard(task.folder, task.key, task.index, task.start, task.stop, check_sha=True)
            return None, part.input_tokens
    started = time.perf_counter()
    emb = encoder.encode(
        task.texts, is_query=task.is_query, batch_size=task.batch_size, show_progress=task.show_progress
    )
    seconds = time.perf_counter() - started
    if len(emb) != len(task.texts):
        raise ValueError(
            f"encoder returned {len(emb)} embeddings for {len(task.texts)} texts (shard {task.index})"
        )
    vectors = np.ascontiguousarray(emb.vectors, dtype=np.float32)
    offsets = np.ascontiguousarray(emb.offsets, dtype=np.int64)

    def npy(path: Path, array: np.ndarray) -> str:
        return write_atomic(path, lambda f: np.lib.format.write_array(f, array, allow_pickle=False))

    # The sidecar goes last. A stale one left in place is harmless: its checksums no longer verify.
    meta = {
        "format": FORMAT,
        "key": task.key,
        "index": task.index,
        "start": task.start,
        "stop": task.stop,
        "n_texts": len(task.texts),
        "input_tokens": emb.input_tokens,
        "truncated": emb.truncated,
        "encode_seconds": seconds,
        "vectors_shape": list(vectors.shape),
        "vectors_sha256": npy(files.vectors, vectors),
        "offsets_sha256": npy(files.offsets, offsets),
    }
    write_json_atomic(files.sidecar, meta, indent=1, sort_keys=True)
    return seconds, emb.input_tokens


def remove_temps(folder: Path, prefixes: Iterable[str], max_age: float | None) -> None:
    """Delete ``<prefix>*.tmp`` files (a killed writer's leftovers); with ``max_age``, only older ones."""
    now = time.time()
    for prefix in prefixes:
        for tmp in folder.glob(f"{prefix}*{TEMP_SUFFIX}"):
            try:
                if max_age is None or now - tmp.stat().st_mtime > max_age:
                    tmp.unlink()
                    log.info("removed leftover temp file %s", tmp)
            except FileNotFoundError:  # another worker cleaned it first
                pass
