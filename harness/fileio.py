"""File helpers: the one atomic write (a reader sees the old file or the new one, never half of
one) and checked UTF-8 reads."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from harness.errors import HarnessError, InputError
from harness.units import format_size

TEMP_SUFFIX = ".tmp"


class ByteSink(Protocol):
    """What :func:`write_atomic` hands its ``write``: a file to write bytes to, nothing more."""

    def write(self, data: bytes, /) -> int: ...


class _HashingWriter:
    """File wrapper that hashes what goes through it (``np.save`` writes in bounded chunks)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.sha = handle, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.handle.write(data)


def temp_name(path: Path) -> Path:
    """A unique temp file next to ``path``: ``<name>.<pid>-<8 hex>.tmp`` (a killed writer's leftovers
    match ``<name>.*.tmp``)."""
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder to make a rename inside it durable (a no-op where it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[ByteSink], Any]) -> str:
    """Run ``write(file)`` into a temp file next to ``path``, fsync it, rename it over ``path`` and
    fsync the folder; return the sha256 of the bytes written. The parent folder is created. On any
    error or interrupt the temp file is removed and ``path`` is untouched; a full disk is a
    :class:`DiskFullError` naming the folder."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as handle:  # the usual permissions (umask), unlike mkstemp's 0600
            writer = _HashingWriter(handle)
            write(writer)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFullError(path.parent, f"while writing {path.name}") from exc
        raise
    fsync_path(path.parent)
    return writer.sha.hexdigest()


class DiskFullError(HarnessError):
    """No space left where the harness writes; the message names the folder."""

    def __init__(self, folder: Path, detail: str = "") -> None:
        self.folder = Path(folder)
        super().__init__(
            f"{folder}: no space left on its device{' ' + detail if detail else ''}; free some space "
            "there or write elsewhere (--output, --cache-dir)"
        )


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(folder: Path) -> int:
    """Free bytes on the device that holds ``folder`` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def require_free_space(folder: Path, needed: int, what: str) -> None:
    """DiskFullError before any work when ``folder``'s device has less than ``needed`` bytes free."""
    free = free_bytes(folder)
    if free < needed:
        raise DiskFullError(
            folder, f"for {what}: about {format_size(needed)} needed, {format_size(free)} free"
        )


def write_bytes_atomic(path: Path, data: bytes) -> str:
    """:func:`write_atomic` of ``data``; returns its sha256."""
    return write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(path: Path, text: str) -> str:
    """UTF-8 text version of :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, payload: Any, *, indent: int = 2, sort_keys: bool = False) -> str:
    """JSON (NaN and infinity refused) version of :func:`write_bytes_atomic`."""
    text = json.dumps(payload, indent=indent, sort_keys=sort_keys, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def read_text(path: Path, what: str = "file") -> str:
    """UTF-8 text of ``path``; InputError naming the file (and the line of the first bad byte) when it
    is missing or not UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path), line=line
        ) from None
