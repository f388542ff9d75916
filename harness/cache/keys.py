"""What identifies a cache entry: the key of (format, encoder fingerprint, the settings of one side,
is_query, texts sha256)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness.checkpoints.config import DOCUMENT_ONLY, QUERY_ONLY
from harness.errors import InputError
from harness.hashing import framed_sha256, texts_sha256
from harness.types import Encoder, Texts

FORMAT = "harness-embedding-cache-v1"


def _canonical_json(obj: Any, field: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"not JSON-serialisable: {exc}", field=field) from exc


def texts_digest(texts: Sequence[str]) -> str:
    """``texts_sha256``, taken from :class:`harness.types.Texts` when it has it already."""
    return texts.sha256 if isinstance(texts, Texts) else texts_sha256(texts)


def side_settings(encoder: Encoder, is_query: bool) -> dict[str, Any]:
    """The encoder's settings that change one side's embeddings: the other side's own settings
    (``QUERY_ONLY`` / ``DOCUMENT_ONLY``, e.g. a query prompt) left out, so changing a query prompt
    keeps the corpus's entry."""
    drop = DOCUMENT_ONLY if is_query else QUERY_ONLY
    return {k: v for k, v in encoder.settings().items() if k not in drop}


def entry_key(encoder: Encoder, digest: str, is_query: bool) -> str:
    """:func:`cache_key` of texts whose :func:`texts_digest` is ``digest``."""
    parts = [FORMAT, encoder.fingerprint, _canonical_json(side_settings(encoder, is_query), "settings")]
    parts += ["query" if is_query else "document", digest]
    return framed_sha256(p.encode("utf-8") for p in parts)


def cache_key(encoder: Encoder, texts: Sequence[str], *, is_query: bool) -> str:
    """framed sha256 of (format, encoder.fingerprint, canonical JSON of :func:`side_settings`,
    is_query, texts_sha256)."""
    return entry_key(encoder, texts_digest(texts), is_query)
