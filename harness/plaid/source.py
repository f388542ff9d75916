"""The shards a PLAID build reads: the caller's token embeddings, re-iterable (a build reads them in
up to three passes), each checked to be TokenEmbeddings of one dim."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from harness.errors import InputError
from harness.types import TokenEmbeddings

Shards = Iterable[TokenEmbeddings] | Callable[[], Iterable[TokenEmbeddings]]


class ShardSource:
    """Re-iterable view of the caller's shards (build reads them in up to three passes)."""

    def __init__(self, shards: Shards) -> None:
        if callable(shards):
            self._make: Callable[[], Iterable[TokenEmbeddings]] = shards
        elif iter(shards) is shards:
            raise InputError(
                "shards must be re-iterable (a list, or a callable returning a fresh iterable): "
                "the index is built in several passes",
                field="shards",
            )
        else:
            self._make = lambda: shards

    def __iter__(self) -> Iterator[TokenEmbeddings]:
        for i, shard in enumerate(self._make()):
            if not isinstance(shard, TokenEmbeddings):
                raise InputError(
                    f"shard {i} is a {type(shard).__name__}, not TokenEmbeddings", field="shards"
                )
            yield shard

    def count(self, dim: int | None = None) -> tuple[int, int, int]:
        """(n_docs, n_tokens, dim), checking every shard has the same dim."""
        n_docs = n_tokens = 0
        for i, shard in enumerate(self):
            if dim is None:
                dim = shard.dim
            if shard.dim != dim:
                raise InputError(f"shard {i} has dim {shard.dim}, expected {dim}", field="vectors")
            n_docs, n_tokens = n_docs + len(shard), n_tokens + len(shard.vectors)
        if dim is None:
            raise InputError("no shards given", field="shards")
        return n_docs, n_tokens, dim
