"""Building a PLAID index in bounded memory: k-means centroids on a document sample, the residual
codec, then every token's code and packed residual, streamed shard by shard to disk
(``harness.plaid.storage``). Appending documents reuses the trained codec."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from harness.errors import InputError
from harness.fileio import DiskFullError, is_disk_full, require_free_space
from harness.plaid.centroids import kmeans
from harness.plaid.codec import CodecFit, ResidualCodec, train_codec
from harness.plaid.params import (
    DEFAULT_MAX_MEMORY_BYTES,
    check_nbits,
    default_n_centroids,
    default_sample_docs,
)
from harness.plaid.search import PlaidIndex
from harness.plaid.source import Shards, ShardSource
from harness.plaid.storage import (
    CODEC_ARRAYS,
    DOC_ARRAYS,
    MANIFEST,
    read_timings,
    save_codec,
    write_manifest,
    write_timings,
)
from harness.types import consecutive_ranges, token_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSettings:
    """How centroids and codec are trained (``train_index_codec``); validated on creation."""

    nbits: int = 4
    n_centroids: int | None = None
    kmeans_iters: int = 4
    sample_docs: int | None = None
    seed: int = 42
    fit: CodecFit = "lloyd"
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES

    def __post_init__(self) -> None:
        check_nbits(self.nbits)
        if self.fit not in ("lloyd", "quantile"):
            raise InputError(f"fit must be 'lloyd' or 'quantile', got {self.fit!r}", field="fit")


def _new_array(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)


def _copy_into(dst: np.ndarray, start: int, src: np.ndarray, step: int) -> None:
    for i in range(0, len(src), step):
        dst[start + i : start + i + len(src[i : i + step])] = src[i : i + step]


def _write_doc_arrays(
    folder: Path,
    tag: str,
    codec: ResidualCodec,
    source: ShardSource,
    n_new_docs: int,
    n_new_tokens: int,
    old: PlaidIndex | None,
    max_memory_bytes: int,
    show_progress: bool,
) -> dict[str, Path]:
    """Write doc offsets, codes and residuals of ``old``'s docs (copied) followed by the new ones.
    Returns array name -> file path."""
    n_old_docs = old.n_docs if old else 0
    n_old_tokens = old.n_tokens if old else 0
    n_docs, n_tokens = n_old_docs + n_new_docs, n_old_tokens + n_new_tokens
    paths = {name: folder / f"{name}-{tag}.npy" for name in DOC_ARRAYS}
    codes = _new_array(paths["codes"], codec.code_dtype, (n_tokens,))
    residuals = _new_array(paths["residuals"], np.uint8, (n_tokens, codec.packed_width))
    doc_offsets = _new_array(paths["doc_offsets"], np.int64, (n_docs + 1,))
    step = max(1, max_memory_bytes // 64)
    doc_offsets[0] = 0
    if old is not None:  # copy the existing documents verbatim
        _copy_into(codes, 0, old.arrays["codes"], step)
        _copy_into(residuals, 0, old.arrays["residuals"], max(1, step // codec.packed_width))
        _copy_into(doc_offsets, 0, old.arrays["doc_offsets"], step)
    # tokens per chunk: the float32 vectors, residual buckets, and the [chunk, K] score block in assign
    max_tokens = max(1, max_memory_bytes // (16 * codec.dim + 32))
    doc, tok = n_old_docs, n_old_tokens
    bar = tqdm(total=n_new_tokens, desc="compress", unit="tok", disable=not show_progress)
    for shard in source:
        for a, b in consecutive_ranges(shard.offsets, max_tokens):
            t0, t1 = int(shard.offsets[a]), int(shard.offsets[b])
            if doc + (b - a) > n_docs or tok + (t1 - t0) > n_tokens:
                raise InputError("shards changed between passes (more documents)", field="shards")
            vecs = np.ascontiguousarray(shard.vectors[t0:t1], dtype=np.float32)
            c, packed = codec.compress(vecs, max_memory_bytes)
            codes[tok : tok + len(c)], residuals[tok : tok + len(c)] = c, packed
            doc_offsets[doc + 1 : doc + 1 + b - a] = tok + np.cumsum(np.diff(shard.offsets[a : b + 1]))
            doc, tok = doc + b - a, tok + len(c)
            bar.update(len(c))
    bar.close()
    if doc != n_docs or tok != n_tokens:
        raise InputError("shards changed between passes (fewer documents)", field="shards")
    for arr in (codes, residuals, doc_offsets):
        arr.flush()  # type: ignore[attr-defined]  # np.memmap (open_memmap), typed as ndarray
    return paths


def train_index_codec(shards: Shards, **training: Any) -> tuple[ResidualCodec, dict[str, Any]]:
    """k-means centroids + residual codec from a doc sample of ``shards`` -> (codec, build facts);
    ``training``: :class:`TrainingSettings` fields.

    ``n_centroids`` defaults to ``default_n_centroids(n_tokens)``, ``sample_docs`` to
    ``default_sample_docs(n_docs)``. The sampled tokens are shuffled; 5% (at most 50k) are held out
    for the codec (``train_codec``) and the rest, capped at 256 per centroid, train k-means. The
    sample is also capped at ``max_memory_bytes / (16 * dim)`` vectors (fewer docs are sampled to
    fit). The centroids do not depend on ``nbits`` or ``fit``.
    """
    settings = TrainingSettings(**training)
    source = ShardSource(shards)
    return _train(source, source.count(), settings)


def _train(
    source: ShardSource,
    counts: tuple[int, int, int],
    settings: TrainingSettings,
    centroids: np.ndarray | None = None,
    show_progress: bool = False,
) -> tuple[ResidualCodec, dict[str, Any]]:
    """``train_index_codec`` over ``counts`` = (n_docs, n_tokens, dim) already taken; ``centroids``
    replace k-means."""
    n_docs, n_tokens, dim = counts
    s = settings
    if n_tokens < 2:
        raise InputError(f"need at least 2 token vectors, got {n_tokens}", field="shards")
    check_nbits(s.nbits, dim)
    rng = np.random.default_rng(s.seed)
    max_points = max(2, s.max_memory_bytes // (16 * dim))
    n_sample = min(s.sample_docs or default_sample_docs(n_docs), n_docs)
    n_sample = min(n_sample, max(1, int(max_points * n_docs / n_tokens)))
    chosen = np.sort(rng.choice(n_docs, n_sample, replace=False))
    parts, base = [], 0
    for shard in source:
        local = chosen[(chosen >= base) & (chosen < base + len(shard))] - base
        pos, _ = token_rows(shard.offsets, local)
        parts.append(np.asarray(shard.vectors[pos], np.float32))
        base += len(shard)
    sample = np.concatenate(parts)
    del parts
    sample = sample[rng.permutation(len(sample))[:max_points]]
    n_heldout = min(max(1, len(sample) // 20), 50_000)
    heldout, train = sample[:n_heldout], sample[n_heldout:]
    if len(train) == 0:
        train = heldout
    kmeans_iters = s.kmeans_iters
    if centroids is None:
        k = min(s.n_centroids or default_n_centroids(n_tokens), len(train))
        train = train[: 256 * k]
        centroids = kmeans(train, k, kmeans_iters, rng, s.max_memory_bytes, show_progress)
    elif centroids.ndim != 2 or centroids.shape[1] != dim:
        raise InputError(f"centroids of shape {centroids.shape} for dim {dim}", field="centroids")
    else:
        k, train, kmeans_iters = len(centroids), train[:0], 0
    codec = train_codec(heldout, centroids, s.nbits, s.fit)
    facts = {
        "nbits": s.nbits,
        "n_centroids": k,
        "kmeans_iters": kmeans_iters,
        "sample_docs": n_sample,
        "kmeans_points": len(train),
        "heldout_points": n_heldout,
        "seed": s.seed,
        "fit": s.fit,
    }
    return codec, facts


STALE_BUILD_SECONDS = 24 * 3600.0  # a build folder whose writer cannot be asked is stale after this


def _build_tag() -> str:
    """``<host>-<pid>``: who is writing a temp folder (hosts sharing a cache see each other's)."""
    return f"{socket.gethostname().replace('-', '_')}-{os.getpid()}"


def _remove_stale_builds(out_dir: Path) -> None:
    """Delete the temp / trash folders of killed builds of ``out_dir``
    (``.<name>.tmp-<host>-<pid>-<id>``, ``.<name>.old-...``): on this host those whose process is
    gone; any other (another host's, another naming) only once older than a day. A folder of a
    live build on this host is left alone."""
    host, pid_now = _build_tag().rsplit("-", 1)
    for path in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        kind, _, rest = path.name[len(out_dir.name) + 2 :].partition("-")
        if kind not in ("tmp", "old") or not path.is_dir():
            continue
        parts = rest.split("-")
        if len(parts) >= 3 and parts[0] == host and parts[1].isdigit():
            stale = parts[1] != pid_now and not _alive(int(parts[1]))
        else:
            stale = time.time() - path.stat().st_mtime > STALE_BUILD_SECONDS
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed the leftover of a killed PLAID build: %s", path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process, or not a pid at all
        return True
    return True


def build_index(
    shards: Shards,
    out_dir: str | Path,
    *,
    centroids: np.ndarray | None = None,
    codec: ResidualCodec | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    **training: Any,
) -> PlaidIndex:
    """Build a PLAID index of the docs in ``shards`` (doc ids 0..n_docs-1 in order) at ``out_dir``;
    ``training``: :class:`TrainingSettings` fields (nbits, n_centroids, kmeans_iters, sample_docs,
    seed, fit, max_memory_bytes).

    ``shards``: a re-iterable of TokenEmbeddings (or a callable returning a fresh iterable); it is read
    in three passes (count, sample, compress), so memory-mapped cache shards keep RAM bounded: every
    chunked step keeps its working set within about ``max_memory_bytes`` (peak RSS ~2x that plus
    the interpreter). Training follows ``train_index_codec``; pass ``centroids`` to reuse k-means
    centroids (e.g. of another nbits: they do not depend on it; the codec is still fit here on the
    same held-out sample as without them), or ``codec`` to reuse a whole trained codec (then all
    training parameters but ``max_memory_bytes`` are ignored). Deterministic for a given seed and input.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError("index folder already exists (pass overwrite=True)", file=str(out_dir))
    settings = TrainingSettings(**training)
    max_memory_bytes = settings.max_memory_bytes
    source = ShardSource(shards)
    n_docs, n_tokens, dim = source.count(None if codec is None else codec.dim)
    if n_docs >= 2**31:
        raise InputError(f"{n_docs} documents: doc ids are int32", field="shards")
    if codec is None:
        codec, build = _train(source, (n_docs, n_tokens, dim), settings, centroids, show_progress)
    else:
        build = {"nbits": codec.nbits, "n_centroids": len(codec.centroids), "codec": "given"}
    _remove_stale_builds(out_dir)  # first: leftovers may be what fills the disk
    packed = (codec.packed_width + codec.code_dtype.itemsize) * n_tokens + 8 * (n_docs + 1)
    require_free_space(out_dir.parent, packed + codec.centroids.nbytes, "the PLAID index")
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{_build_tag()}-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        paths = save_codec(tmp, codec)
        paths |= _write_doc_arrays(
            tmp, "g0", codec, source, n_docs, n_tokens, None, max_memory_bytes, show_progress
        )
        write_manifest(
            tmp,
            paths,
            dim=dim,
            nbits=codec.nbits,
            n_centroids=len(codec.centroids),
            n_docs=n_docs,
            n_tokens=n_tokens,
            generation=0,
            build=build,
        )
        write_timings(tmp, {"build_seconds": time.perf_counter() - started})
        if out_dir.exists():
            trash = out_dir.parent / f".{out_dir.name}.old-{_build_tag()}-{uuid.uuid4().hex}"
            os.replace(out_dir, trash)
            os.replace(tmp, out_dir)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc) or isinstance(exc, DiskFullError):  # the temp folder is gone: name its parent
            raise DiskFullError(out_dir.parent, "while building the PLAID index") from exc
        raise
    return PlaidIndex.open(out_dir, verify=False, max_memory_bytes=max_memory_bytes)


def add_documents(
    index_dir: str | Path,
    shards: Shards,
    *,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    show_progress: bool = True,
) -> PlaidIndex:
    """Append the docs in ``shards`` (new ids n_docs, n_docs+1, ...) without retraining: tokens are
    assigned to the existing centroids and encoded with the existing codec; the doc arrays are
    rewritten as a new generation, then the manifest is atomically replaced (readers of the old
    manifest keep working until they reopen). Not safe against two concurrent writers."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    old = PlaidIndex.open(index_dir, verify=True, max_memory_bytes=max_memory_bytes)
    source = ShardSource(shards)
    n_new_docs, n_new_tokens, _ = source.count(old.dim)
    if old.n_docs + n_new_docs >= 2**31:
        raise InputError(f"{old.n_docs + n_new_docs} documents: doc ids are int32", field="shards")
    gen = old.manifest["generation"] + 1
    tag = f"g{gen}"
    stale = [index_dir / f"{name}-{tag}.npy" for name in DOC_ARRAYS]
    for path in stale:  # leftovers of an interrupted add
        path.unlink(missing_ok=True)
    paths = {name: index_dir / old.manifest["files"][name]["path"] for name in CODEC_ARRAYS}
    previous = {index_dir / e["path"] for e in old.manifest["files"].values()}
    try:
        paths |= _write_doc_arrays(
            index_dir, tag, old.codec, source, n_new_docs, n_new_tokens, old, max_memory_bytes, show_progress
        )
    except BaseException:
        for path in stale:
            path.unlink(missing_ok=True)
        raise
    write_manifest(  # the commit: outside the clean-up above, which must never delete committed files
        index_dir,
        paths,
        dim=old.dim,
        nbits=old.nbits,
        n_centroids=len(old.codec.centroids),
        n_docs=old.n_docs + n_new_docs,
        n_tokens=old.n_tokens + n_new_tokens,
        generation=gen,
        build=old.manifest["build"],
    )
    timings = read_timings(index_dir)
    write_timings(
        index_dir, timings | {"add_seconds": [*timings.get("add_seconds", []), time.perf_counter() - started]}
    )
    for path in previous - set(paths.values()):  # committed: the old generation's files go
        path.unlink(missing_ok=True)
    return PlaidIndex.open(index_dir, verify=False, max_memory_bytes=max_memory_bytes)


def open_or_build(
    index_dir: Path, shards: Shards, *, n_docs: int, nbits: int, show_progress: bool
) -> tuple[PlaidIndex, bool]:
    """(index, built now): the index in ``index_dir`` when it opens, verifies and matches (``n_docs``,
    ``nbits``); else a fresh build from ``shards`` there (a bad one is replaced, with a warning naming
    the file)."""
    if (index_dir / MANIFEST).exists():
        try:
            index = PlaidIndex.open(index_dir)
            if index.n_docs == n_docs and index.nbits == nbits:
                return index, False
        except InputError as exc:
            log.warning("rebuilding the PLAID index: %s", exc)
    return build_index(shards, index_dir, nbits=nbits, overwrite=True, show_progress=show_progress), True
