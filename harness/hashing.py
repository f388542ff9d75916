"""The harness's sha256 helpers: one streaming file hash and one framing of several parts.

Framing: each part is preceded by its length as 8 little-endian bytes, so no two different
sequences of parts hash alike (``["ab", "c"]`` vs ``["a", "bc"]``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.errors import InputError

_CHUNK = 1 << 20


def update_with_file(h: hashlib._Hash, path: Path) -> None:
    """Feed the bytes of ``path`` into ``h``, 1 MiB at a time."""
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, streamed."""
    h = hashlib.sha256()
    update_with_file(h, path)
    return h.hexdigest()


def framed_sha256(parts: Iterable[bytes]) -> str:
    """sha256 over the parts, each framed by its 8-byte little-endian length."""
    h = hashlib.sha256()
    for data in parts:
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def texts_sha256(texts: Sequence[str]) -> str:
    """sha256 over the texts in order (UTF-8, framed); InputError for a text that is not a str."""

    def encoded() -> Iterable[bytes]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"text {i} is {type(text).__name__}, not str", field="texts")
            yield text.encode("utf-8")

    return framed_sha256(encoded())
