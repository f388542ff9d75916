"""Embedding cache: token embeddings stored on disk as checksummed shards, one entry per (encoder,
settings of one side, texts).

``keys`` (what identifies an entry) -> ``shards`` (the on-disk format: write, read back verified) ->
``fill`` (encode the missing or bad shards through an executor: resume after a kill) -> ``entry``
(an entry's shards for a caller, and where they came from) -> ``info`` (list, clear). A bad shard is
re-encoded, with a warning naming the file when something was there.
"""

from harness.cache.entry import CacheUse, encode_cached, encode_cached_shards, encode_entry, pack
from harness.cache.fill import LOCAL, STALE_TMP_SECONDS, Job, encode_to_shards, estimate_bytes
from harness.cache.info import cache_info, clear_cache
from harness.cache.keys import FORMAT, cache_key, side_settings
from harness.cache.shards import (
    DEFAULT_SHARD_CHARS,
    DEFAULT_SHARD_SIZE,
    MANIFEST,
    ShardTask,
    shard_bounds,
    write_shard,
)

__all__ = [
    "DEFAULT_SHARD_CHARS",
    "DEFAULT_SHARD_SIZE",
    "FORMAT",
    "LOCAL",
    "MANIFEST",
    "STALE_TMP_SECONDS",
    "CacheUse",
    "Job",
    "ShardTask",
    "cache_info",
    "cache_key",
    "clear_cache",
    "encode_cached",
    "encode_cached_shards",
    "encode_entry",
    "encode_to_shards",
    "estimate_bytes",
    "pack",
    "shard_bounds",
    "side_settings",
    "write_shard",
]
