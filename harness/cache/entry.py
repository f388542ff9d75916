"""An entry's embeddings for a caller: filled if need be, its shards loaded memory-mapped in text
order, and where they came from (:class:`CacheUse`). A hit never calls the encoder, and reports the
tokens and seconds the sidecars carry."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache.fill import LOCAL, Job, fill
from harness.cache.keys import entry_key, texts_digest
from harness.cache.shards import DEFAULT_SHARD_CHARS, DEFAULT_SHARD_SIZE, MANIFEST, BadShard
from harness.errors import InputError
from harness.executor import Executor
from harness.types import Encoder, Texts, TokenEmbeddings


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
    in text order, all of one dim (shapes rechecked, not hashes: ``fill`` has just verified them)."""
    digest = texts_digest(texts)
    key = entry_key(encoder, digest, is_query)
    folder = Path(cache_dir) / key
    layout: tuple[int, int | None] = (shard_size, DEFAULT_SHARD_CHARS)
    # An existing entry keeps its layout (one made before shards closed by characters has none);
    # a new or unreadable one (rewritten below) takes ours.
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        layout = (max(1, int(manifest["shard_size"])), manifest.get("shard_chars"))
    job = Job(encoder, texts, is_query, key, digest, folder, *layout)
    encoded = fill(job, list(range(job.n_shards)), batch_size, show_progress, executor)
    parts: list[TokenEmbeddings] = []
    measured: list[float | None] = []
    carried: list[float | None] = []
    for i in range(job.n_shards):
        try:
            part, meta = job.open(i, check_sha=False)
        except BadShard as exc:  # changed under our feet between verify and load
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
    shards = [p if len(p.vectors) else replace(p, vectors=np.zeros((0, dim), np.float32)) for p in parts]
    seconds = None
    if None not in measured + carried:  # (``or 0.0`` only narrows the type: no None is left)
        seconds = sum(s or 0.0 for s in measured) + sum(s or 0.0 for s in carried)
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
        packed = TokenEmbeddings(
            np.array(packed.vectors), np.array(packed.offsets), packed.input_tokens, packed.truncated
        )
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
