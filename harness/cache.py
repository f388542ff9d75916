"""Embedding cache: token embeddings stored on disk as checksummed shards.

Layout of one cache entry ``<cache_dir>/<key>/``::

    manifest.json                  key, n_texts, shard_size, n_shards, encoder settings, texts sha256
    shard-00000.vectors.npy        float32 [tokens, dim]   (plain .npy, memory-mappable, no pickles)
    shard-00000.offsets.npy        int64   [n + 1]         (local offsets, start at 0)
    shard-00000.json               sidecar: key, index, start, stop, shapes, input tokens, sha256s

Shards hold consecutive texts, at most ``shard_size`` of them and at most ``shard_chars`` characters
(:func:`shard_bounds`), so a kill loses at most one shard's work. Every file is written with
``harness.fileio.write_atomic`` (unique temp file, fsync, ``os.replace``); the sidecar is written last,
so it is the commit record: a shard counts only when its sidecar is present and both arrays match the
checksums and shapes it records. Anything else (missing, truncated, flipped bytes, no sidecar) is
re-encoded, with a warning naming the file when something was there. That gives resume after a kill
for free, and lets workers fill disjoint ``shard_indices`` of one folder in parallel (there is no lock:
two workers on the same shard both write the same bytes, which is correct but wasted work). The
sidecar also keeps the number of tokens the encoder read (``TokenEmbeddings.input_tokens``) and the
encoder's seconds, so a hit reports both without tokenising anything and says they are carried
(:class:`CacheUse`); a shard written before sidecars kept them reports None: unknown.

Verification cost: a hit hashes every byte of the entry once (sha256, about 2 GB/s per core from the
page cache; measured 0.10 s of a 0.57 s hit on 205 MB), on top of the copy into memory. We pay it so
that a silently corrupted file can never reach the metrics; a shape-only check would miss flipped bytes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from harness.checkpoints.config import DOCUMENT_ONLY, QUERY_ONLY
from harness.errors import InputError, positive_int
from harness.executor import Executor, LocalExecutor
from harness.fileio import TEMP_SUFFIX, require_free_space, write_atomic, write_json_atomic
from harness.hashing import file_sha256, framed_sha256, texts_sha256
from harness.types import Encoder, Texts, TokenEmbeddings

log = logging.getLogger(__name__)

FORMAT = "harness-embedding-cache-v1"
MANIFEST = "manifest.json"
DEFAULT_SHARD_SIZE = 4096
# A shard also closes at this many characters (~64k tokens, seconds of encoding on a CPU), so a
# killed run loses at most about that much work whatever the corpus size.
DEFAULT_SHARD_CHARS = 1 << 18
# A temp file older than this cannot belong to a live writer (writing one shard takes seconds).
STALE_TMP_SECONDS = 3600.0
LOCAL = LocalExecutor()


class _BadShard(Exception):
    """A shard on disk that does not verify; the message says why and names the file."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing  # nothing at all on disk: a plain miss, not worth a warning


# ---------------------------------------------------------------------------------------------- keys


def _canonical_json(obj: Any, field: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"not JSON-serialisable: {exc}", field=field) from exc


def _texts_digest(texts: Sequence[str]) -> str:
    """``texts_sha256``, taken from :class:`harness.types.Texts` when it has it already."""
    return texts.sha256 if isinstance(texts, Texts) else texts_sha256(texts)


def side_settings(encoder: Encoder, is_query: bool) -> dict[str, Any]:
    """The encoder's settings that change one side's embeddings: the other side's own settings
    (``QUERY_ONLY`` / ``DOCUMENT_ONLY``, e.g. a query prompt) left out, so changing a query prompt
    keeps the corpus's entry."""
    drop = DOCUMENT_ONLY if is_query else QUERY_ONLY
    return {k: v for k, v in encoder.settings().items() if k not in drop}


def _key(encoder: Encoder, digest: str, is_query: bool) -> str:
    parts = [FORMAT, encoder.fingerprint, _canonical_json(side_settings(encoder, is_query), "settings")]
    parts += ["query" if is_query else "document", digest]
    return framed_sha256(p.encode("utf-8") for p in parts)


def cache_key(encoder: Encoder, texts: Sequence[str], *, is_query: bool) -> str:
    """framed sha256 of (format, encoder.fingerprint, canonical JSON of :func:`side_settings`,
    is_query, texts_sha256)."""
    return _key(encoder, _texts_digest(texts), is_query)


# ------------------------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class _ShardFiles:
    sidecar: Path
    vectors: Path
    offsets: Path

    @classmethod
    def of(cls, folder: Path, index: int) -> _ShardFiles:
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


@dataclass(frozen=True)
class _Job:
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
        """Shard ``index`` verified and memory-mapped, with its sidecar (or _BadShard)."""
        return _open_shard(self.folder, self.key, index, *self.span(index), check_sha=check_sha)

    def task(self, index: int, batch_size: int, show_progress: bool) -> ShardTask:
        start, stop = self.span(index)
        texts = list(self.texts[start:stop])
        folder = self.folder.resolve()  # workers may run in another working directory
        return ShardTask(self.key, folder, index, start, texts, self.is_query, batch_size, show_progress)


def _open_shard(
    folder: Path, key: str, index: int, start: int, stop: int, *, check_sha: bool
) -> tuple[TokenEmbeddings, dict[str, Any]]:
    """Verify shard ``index`` (texts ``start:stop`` of entry ``key``) against its sidecar and return
    it memory-mapped with the sidecar, or raise _BadShard."""
    files = _ShardFiles.of(folder, index)
    if not files.sidecar.exists():
        if files.vectors.exists() or files.offsets.exists():
            raise _BadShard(f"{files.sidecar}: no sidecar next to the arrays")
        raise _BadShard(f"{files.sidecar}: missing", missing=True)
    try:
        meta = json.loads(files.sidecar.read_text("utf-8"))
        expected = {"key": key, "index": index, "start": start, "stop": stop}
        for name, value in expected.items():
            if meta[name] != value:
                raise _BadShard(f"{files.sidecar}: {name} is {meta[name]!r}, expected {value!r}")
        for path, name in ((files.vectors, "vectors"), (files.offsets, "offsets")):
            if check_sha and file_sha256(path) != meta[f"{name}_sha256"]:
                raise _BadShard(f"{path}: sha256 does not match {files.sidecar.name}")
        vectors = np.load(files.vectors, mmap_mode="r", allow_pickle=False)
        offsets = np.load(files.offsets, allow_pickle=False)
        shape_ok = list(vectors.shape) == meta["vectors_shape"]
        input_tokens = meta.get("input_tokens")  # absent in shards written before it was kept: unknown
    except _BadShard:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:  # unreadable, truncated, bad JSON
        raise _BadShard(f"{files.sidecar}: {type(exc).__name__}: {exc}") from exc
    if not (
        shape_ok
        and vectors.dtype == np.float32
        and vectors.ndim == 2
        and offsets.dtype == np.int64
        and offsets.shape == (stop - start + 1,)
        and offsets[0] == 0
        and offsets[-1] == len(vectors)
        and np.all(np.diff(offsets) >= 0)
        and (input_tokens is None or isinstance(input_tokens, int))
    ):
        raise _BadShard(f"{files.vectors}: dtype/shape/offsets do not match {files.sidecar.name}")
    return TokenEmbeddings(vectors, offsets, input_tokens), meta


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
    files = _ShardFiles.of(task.folder, task.index)
    _remove_temps(task.folder, [files.sidecar.stem + "."], None)
    if files.sidecar.exists():
        with contextlib.suppress(_BadShard):
            part, _ = _open_shard(task.folder, task.key, task.index, task.start, task.stop, check_sha=True)
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
        "encode_seconds": seconds,
        "vectors_shape": list(vectors.shape),
        "vectors_sha256": npy(files.vectors, vectors),
        "offsets_sha256": npy(files.offsets, offsets),
    }
    write_json_atomic(files.sidecar, meta, indent=1, sort_keys=True)
    return seconds, emb.input_tokens


def estimate_bytes(encoder: Encoder, texts: Sequence[str], is_query: bool) -> int:
    """A rough size of the cached embeddings of ``texts`` (0 when the encoder's settings do not say its
    width): a single-vector model one row per text; a multi-vector one about a token per 4 characters
    plus 3 special tokens, capped at its query / document length; float32 rows plus offsets."""
    settings = encoder.settings()
    dim = settings.get("dim")
    if not isinstance(dim, int):
        return 0
    if settings.get("encoder") == "dense":
        rows = len(texts)
    else:
        cap = settings.get("query_length" if is_query else "document_length") or 512
        rows = sum(min(len(text) // 4 + 3, cap) for text in texts)
    return rows * dim * 4 + 8 * (len(texts) + 1)


def _remove_temps(folder: Path, prefixes: Iterable[str], max_age: float | None) -> None:
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


def _check_manifest(job: _Job) -> None:
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


def _fill(
    job: _Job, indices: list[int], batch_size: int, show_progress: bool, executor: Executor
) -> dict[int, float | None]:
    """Encode, through ``executor``, the shards of ``indices`` that are missing or do not verify;
    return their encoder seconds by shard (None: a lost worker had written it already)."""
    job.folder.mkdir(parents=True, exist_ok=True)
    _check_manifest(job)
    _remove_temps(job.folder, [""], STALE_TMP_SECONDS)  # a shard's own are removed by its writer
    todo = []
    for i in indices:
        try:
            job.open(i, check_sha=True)
        except _BadShard as exc:
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
    digest = _texts_digest(texts)
    key = _key(encoder, digest, is_query)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text("utf-8"))
        if "shard_chars" not in manifest:  # an entry made before shards closed by characters
            shard_chars = None
    job = _Job(encoder, texts, is_query, key, digest, Path(out_dir), shard_size, shard_chars)
    indices = list(range(job.n_shards)) if shard_indices is None else [int(i) for i in shard_indices]
    for i in indices:
        if not 0 <= i < job.n_shards:
            raise InputError(f"shard {i} out of range [0, {job.n_shards})", field="shard_indices")
    _fill(job, indices, batch_size, show_progress, executor)
    return [_ShardFiles.of(job.folder, i).sidecar for i in indices]


@dataclass(frozen=True)
class CacheUse:
    """Where one call's embeddings came from: shards encoded now, shards read back, and the encoder's
    seconds for all of them (measured now, or carried from the sidecars of the shards that measured
    them; None when an older shard did not record it)."""

    encoded: int
    cached: int
    encode_seconds: float | None

    @property
    def source(self) -> str:
        """``measured`` (all encoded now), ``cache`` (all read back) or ``partly cached``."""
        return "measured" if not self.cached else "cache" if not self.encoded else "partly cached"


def _ensure_entry(
    encoder: Encoder,
    texts: Sequence[str],
    is_query: bool,
    cache_dir: Path,
    batch_size: int,
    shard_size: int,
    show_progress: bool,
    executor: Executor,
) -> tuple[list[TokenEmbeddings], CacheUse]:
    """Encode whatever the entry of ``texts`` under ``cache_dir`` lacks; return its shards, memory-mapped,
    in text order, all of one dim (shapes rechecked, not hashes: ``_fill`` has just verified them)."""
    digest = _texts_digest(texts)
    key = _key(encoder, digest, is_query)
    folder = Path(cache_dir) / key
    layout: tuple[int, int | None] = (shard_size, DEFAULT_SHARD_CHARS)
    # An existing entry keeps its layout (one made before shards closed by characters has none);
    # a new or unreadable one (rewritten below) takes ours.
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        layout = (max(1, int(manifest["shard_size"])), manifest.get("shard_chars"))
    job = _Job(encoder, texts, is_query, key, digest, folder, *layout)
    encoded = _fill(job, list(range(job.n_shards)), batch_size, show_progress, executor)
    parts, measured, carried = [], [], []
    for i in range(job.n_shards):
        try:
            part, meta = job.open(i, check_sha=False)
        except _BadShard as exc:  # changed under our feet between verify and load
            raise RuntimeError(f"cache shard changed while loading: {exc}") from exc
        parts.append(part)
        if encoded.get(i) is not None:
            measured.append(encoded[i])
        else:  # read back, or written by a worker lost before it reported: the sidecar's seconds
            (measured if i in encoded else carried).append(meta.get("encode_seconds"))
    # A shard of zero-token texts may come back as [0, 0]; only shards with rows fix the dim.
    dims = {p.dim for p in parts if len(p.vectors)} or {max((p.dim for p in parts), default=0)}
    if len(dims) > 1:
        raise InputError(f"shards disagree on embedding dim: {sorted(dims)}", file=str(folder))
    dim = dims.pop()
    shards = [
        p if len(p.vectors) else TokenEmbeddings(np.zeros((0, dim), np.float32), p.offsets, p.input_tokens)
        for p in parts
    ]
    seconds = None if None in measured + carried else sum(measured) + sum(carried)
    return shards, CacheUse(len(measured), len(carried), seconds)


def encode_entry(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    is_query: bool,
    cache_dir: Path | None,
    batch_size: int = 32,
    shard_size: int = DEFAULT_SHARD_SIZE,
    show_progress: bool = True,
    executor: Executor = LOCAL,
) -> tuple[list[TokenEmbeddings], CacheUse]:
    """The embeddings of ``texts`` in text order, as the cache entry's verified, memory-mapped shards
    under ``cache_dir/<cache_key(...)>/`` (``cache_dir`` None: one in-memory pack, nothing cached),
    and where they came from (:class:`CacheUse`).

    A hit never calls ``encoder.encode``; it hashes each shard file once. ``shard_size`` only applies
    when the entry is created; an existing entry keeps its layout. ``executor`` encodes the missing
    shards (``harness.executor``; without a cache, only in this process).
    """
    if cache_dir is None:
        if not executor.in_process:
            raise InputError("a remote executor writes into the embedding cache: give one", field="cache_dir")
        texts = list(texts) if isinstance(texts, Texts) else texts  # encoders get what they always got
        started = time.perf_counter()
        out = encoder.encode(texts, is_query=is_query, batch_size=batch_size, show_progress=show_progress)
        return [out], CacheUse(1, 0, time.perf_counter() - started)
    return _ensure_entry(encoder, texts, is_query, cache_dir, batch_size, shard_size, show_progress, executor)


def pack(shards: Sequence[TokenEmbeddings]) -> TokenEmbeddings:
    """Shards as one in-memory float32 pack (a memory-mapped one is copied out of its map); none:
    an empty pack of dim 0. Peak resident memory is the result (tokens * dim * 4 bytes), the mapped
    pages being reclaimable page cache."""
    if not shards:
        return TokenEmbeddings.from_list([])
    packed = TokenEmbeddings.concat(shards)
    if isinstance(packed.vectors, np.memmap):  # concat returns a single part as is
        packed = TokenEmbeddings(np.array(packed.vectors), np.array(packed.offsets), packed.input_tokens)
    return packed


def encode_cached(encoder: Encoder, texts: Sequence[str], **options: Any) -> TokenEmbeddings:
    """``encoder.encode(texts)``, cached: :func:`encode_entry` (same keyword options: ``is_query``,
    ``cache_dir``, ``batch_size``, ``shard_size``, ``show_progress``) packed in memory (:func:`pack`)."""
    shards, _ = encode_entry(encoder, texts, **options)
    return pack(shards)


def encode_cached_shards(encoder: Encoder, texts: Sequence[str], **options: Any) -> list[TokenEmbeddings]:
    """:func:`encode_entry`'s memory-mapped shards (one TokenEmbeddings per shard, offsets local to
    it), for consumers that stream; needs a ``cache_dir``. Resident memory is then what the consumer
    touches (``harness.plaid.build_index`` bounds it)."""
    if options.get("cache_dir") is None:
        raise InputError("shards live in a cache: give a cache folder", field="cache_dir")
    shards, _ = encode_entry(encoder, texts, **options)
    return shards


# ---------------------------------------------------------------------------------------- utilities


def _entries(cache_dir: Path) -> list[Path]:
    """Sub-folders that look like cache entries: a sha256 name and a manifest."""
    if not Path(cache_dir).is_dir():
        return []
    return sorted(
        p
        for p in Path(cache_dir).iterdir()
        if p.is_dir() and len(p.name) == 64 and all(c in "0123456789abcdef" for c in p.name)
        if (p / MANIFEST).exists()
    )


def cache_info(cache_dir: Path) -> list[dict[str, Any]]:
    """One dict per entry: key, n_texts, n_shards, shards_done (sidecars present), bytes, is_query,
    encoder_settings. Reads manifests only; it does not verify shards."""
    info = []
    for folder in _entries(cache_dir):
        try:
            manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            manifest = {}
        info.append(
            {
                "key": folder.name,
                "n_texts": manifest.get("n_texts"),
                "n_shards": manifest.get("n_shards"),
                "shards_done": len(list(folder.glob("shard-*.json"))),
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
                "is_query": manifest.get("is_query"),
                "encoder_settings": manifest.get("encoder_settings"),
            }
        )
    return info


def clear_cache(cache_dir: Path, keys: Iterable[str] | None = None) -> int:
    """Delete the entries ``keys`` (default: all) of ``cache_dir``; return bytes freed.

    Only folders that look like cache entries are touched, never anything else in ``cache_dir``.
    """
    wanted = None if keys is None else set(keys)
    freed = 0
    for folder in _entries(cache_dir):
        if wanted is None or folder.name in wanted:
            freed += sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            shutil.rmtree(folder)
    return freed
