"""What a cache folder holds, and clearing it: only folders that look like entries are touched."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.cache.shards import MANIFEST


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


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


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
                "bytes": _bytes(folder),
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
            freed += _bytes(folder)
            shutil.rmtree(folder)
    return freed
