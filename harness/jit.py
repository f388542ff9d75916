"""numba's compiled kernels and where their machine code is cached: under the harness's cache folder
(``$HARNESS_CACHE_DIR`` or ``~/.cache/colbert-eval-harness``, in ``numba/``), never beside the
installed package's sources (numba's default, ``__pycache__`` next to each module). A
``NUMBA_CACHE_DIR`` the user set wins. Where no cache folder can be written (a read-only home), the
kernels compile in every process instead (about 1-2 s) and nothing is written.

numba keys its cache files by the source file, the function, the Python version and the CPU's name
and features, so machines sharing a home folder do not load each other's code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR`` or ``~/.cache/colbert-eval-harness``: embeddings, and numba's code."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "colbert-eval-harness"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def jit_cache_dir() -> Path | None:
    """The folder numba caches compiled kernels in, or None when none can be written."""
    folder = Path(os.environ.get("NUMBA_CACHE_DIR") or default_cache_dir() / "numba")
    return folder if _writable(folder) else None


def njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(**options)``, cached in :func:`jit_cache_dir` (compiled per process when there is
    none). numba reads its cache folder when a function is decorated, so the setting is made here,
    at each module's import, before any kernel is defined."""
    folder = jit_cache_dir()
    if folder is not None:
        # numba.config sets its settings at import (from the environment): invisible to a type checker
        numba.config.CACHE_DIR = str(folder)  # type: ignore[attr-defined]
    return numba.njit(**options, cache=folder is not None)
