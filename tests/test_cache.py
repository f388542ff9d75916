"""Embedding cache: hits, resume, corruption, keys, atomicity, fan-out.

Reference: the fake encoder called directly (no cache). The cache stores float32 bytes verbatim, so
every comparison is bit-exact (tolerance 0): any difference is a cache bug, not rounding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cache import (
    MANIFEST,
    cache_info,
    cache_key,
    clear_cache,
    encode_cached,
    encode_cached_shards,
    encode_to_shards,
    shard_bounds,
)
from harness.types import InputError, TokenEmbeddings

DIM = 4


class FakeEncoder:
    """Deterministic stand-in for a model: text -> [n_words, DIM] seeded from sha256(text, is_query).

    Counts its calls (``calls`` holds the texts of each call); ``fail_after`` raises on that call,
    which is how a killed run is simulated.
    """

    name = "fake"

    def __init__(self, fingerprint: str = "f" * 64, fail_after: int | None = None, **extra: Any) -> None:
        self.fingerprint = fingerprint
        self.extra = extra
        self.fail_after = fail_after
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        return {"query_prefix": "[Q] ", "document_length": 180, **self.extra}

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings:
        with self.lock:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                raise KeyboardInterrupt("simulated kill")
            self.calls.append(list(texts))
        arrays = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(f"{is_query}|{text}".encode()).digest()[:8], "little")
            n_tokens = len(text.split())  # "" -> 0 tokens: exercises zero-length rows
            arrays.append(np.random.default_rng(seed).standard_normal((n_tokens, DIM), np.float32))
        return TokenEmbeddings.from_list(arrays, DIM)


def make_texts(n: int) -> list[str]:
    return [" ".join(f"w{i}_{j}" for j in range(i % 5)) for i in range(n)]  # every 5th text is ""


def assert_same(a: TokenEmbeddings, b: TokenEmbeddings) -> None:
    assert a.vectors.dtype == b.vectors.dtype == np.float32
    assert a.offsets.dtype == b.offsets.dtype == np.int64
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.vectors.shape == b.vectors.shape


def entry(cache_dir: Path) -> Path:
    (folder,) = [p for p in cache_dir.iterdir() if p.is_dir()]
    return folder


def test_no_cache_dir_encodes_directly_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    enc, texts = FakeEncoder(), make_texts(10)
    got = encode_cached(enc, texts, is_query=True, cache_dir=None, show_progress=False)
    assert_same(got, FakeEncoder().encode(texts, is_query=True))
    assert len(enc.calls) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_texts, shard_size", [(23, 5), (20, 5), (7, 100), (1, 1)])
def test_hit_does_not_encode_and_is_identical(tmp_path, n_texts, shard_size):
    texts = make_texts(n_texts)
    reference = FakeEncoder().encode(texts, is_query=False)
    enc = FakeEncoder()
    cold = encode_cached(enc, texts, is_query=False, cache_dir=tmp_path, shard_size=shard_size)
    assert len(enc.calls) == -(-n_texts // shard_size)
    assert_same(cold, reference)

    warm_enc = FakeEncoder()
    warm = encode_cached(warm_enc, texts, is_query=False, cache_dir=tmp_path, shard_size=shard_size)
    assert warm_enc.calls == []
    assert_same(warm, reference)
    assert not list(tmp_path.rglob("*.tmp"))


def test_files_are_plain_arrays_with_matching_checksums(tmp_path):
    texts = make_texts(12)
    enc = FakeEncoder()
    encode_cached(enc, texts, is_query=True, cache_dir=tmp_path, shard_size=5, show_progress=False)
    folder = entry(tmp_path)
    assert folder.name == cache_key(enc, texts, is_query=True)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert (manifest["n_texts"], manifest["shard_size"], manifest["n_shards"]) == (12, 5, 3)
    assert manifest["encoder_settings"] == enc.settings()
    for i in range(3):
        meta = json.loads((folder / f"shard-{i:05d}.json").read_text())
        assert (meta["index"], meta["start"], meta["stop"]) == (i, 5 * i, min(5 * i + 5, 12))
        for name in ("vectors", "offsets"):
            path = folder / f"shard-{i:05d}.{name}.npy"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == meta[f"{name}_sha256"]
        expected = FakeEncoder().encode(texts[5 * i : 5 * i + 5], is_query=True)
        np.testing.assert_array_equal(np.load(folder / f"shard-{i:05d}.vectors.npy"), expected.vectors)
        np.testing.assert_array_equal(np.load(folder / f"shard-{i:05d}.offsets.npy"), expected.offsets)


def test_resume_after_kill_encodes_only_missing_shards(tmp_path):
    texts = make_texts(23)  # shards of 5: 5 shards
    killed = FakeEncoder(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        encode_cached(killed, texts, is_query=False, cache_dir=tmp_path, shard_size=5)
    assert killed.calls == [texts[0:5], texts[5:10]]

    resumed = FakeEncoder()
    got = encode_cached(resumed, texts, is_query=False, cache_dir=tmp_path, shard_size=5)
    assert resumed.calls == [texts[10:15], texts[15:20], texts[20:23]]
    assert_same(got, FakeEncoder().encode(texts, is_query=False))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_text("{not json")


@pytest.mark.parametrize(
    "suffix, damage",
    [
        ("vectors.npy", _truncate),
        ("vectors.npy", _flip_last_byte),
        ("offsets.npy", _flip_last_byte),
        ("offsets.npy", Path.unlink),
        ("json", Path.unlink),
        ("json", _garbage),
    ],
)
def test_bad_shard_is_reported_and_re_encoded(tmp_path, caplog, suffix, damage):
    texts = make_texts(14)
    encode_cached(FakeEncoder(), texts, is_query=True, cache_dir=tmp_path, shard_size=5)
    damaged = entry(tmp_path) / f"shard-00001.{suffix}"
    damage(damaged)

    enc = FakeEncoder()
    with caplog.at_level(logging.WARNING, logger="harness.cache"):
        got = encode_cached(enc, texts, is_query=True, cache_dir=tmp_path, shard_size=5)
    assert enc.calls == [texts[5:10]]
    assert any("shard-00001" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert_same(got, FakeEncoder().encode(texts, is_query=True))


def test_files_of_another_shard_are_rejected(tmp_path):
    """Shard 0's three files copied over shard 1 verify on checksums but hold the wrong texts."""
    texts = make_texts(10)
    encode_cached(FakeEncoder(), texts, is_query=True, cache_dir=tmp_path, shard_size=5)
    folder = entry(tmp_path)
    for suffix in ("vectors.npy", "offsets.npy", "json"):
        (folder / f"shard-00001.{suffix}").write_bytes((folder / f"shard-00000.{suffix}").read_bytes())
    enc = FakeEncoder()
    got = encode_cached(enc, texts, is_query=True, cache_dir=tmp_path, shard_size=5)
    assert enc.calls == [texts[5:10]]
    assert_same(got, FakeEncoder().encode(texts, is_query=True))


def test_key_depends_on_every_input():
    texts = make_texts(6)
    base = cache_key(FakeEncoder(), texts, is_query=True)
    variants = [
        cache_key(FakeEncoder(fingerprint="e" * 64), texts, is_query=True),
        cache_key(FakeEncoder(query_prefix="[q] "), texts, is_query=True),
        cache_key(FakeEncoder(), texts, is_query=False),
        cache_key(FakeEncoder(), texts[::-1], is_query=True),
        cache_key(FakeEncoder(), texts[:-1], is_query=True),
        cache_key(FakeEncoder(), [*texts[:-1], texts[-1] + "x"], is_query=True),
        # the same characters split differently between texts: length prefixes keep them apart
        cache_key(FakeEncoder(), ["ab", "c"], is_query=True),
        cache_key(FakeEncoder(), ["a", "bc"], is_query=True),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert cache_key(FakeEncoder(), list(texts), is_query=True) == base
    # a setting of the other side only does not touch an entry (a query prompt keeps the corpus's)
    assert cache_key(FakeEncoder(document_length=300), texts, is_query=True) == base
    docs = cache_key(FakeEncoder(), texts, is_query=False)
    assert cache_key(FakeEncoder(document_length=300), texts, is_query=False) != docs
    assert cache_key(FakeEncoder(query_prompt="q: "), texts, is_query=False) == docs
    # canonical JSON: the order in which settings are listed does not matter
    a, b = FakeEncoder(x=1, y=2), FakeEncoder(y=2, x=1)
    assert list(a.settings()) != list(b.settings())
    assert cache_key(a, texts, is_query=True) == cache_key(b, texts, is_query=True)


def test_different_inputs_get_different_entries(tmp_path):
    texts = make_texts(6)
    encode_cached(FakeEncoder(), texts, is_query=True, cache_dir=tmp_path)
    other = FakeEncoder(query_length=64)  # a query-side setting: queries embed differently
    encode_cached(other, texts, is_query=True, cache_dir=tmp_path)
    assert len(other.calls) == 1  # no false hit on the first entry
    assert len(cache_info(tmp_path)) == 2


def test_unserialisable_settings_raise_input_error():
    with pytest.raises(InputError, match="settings"):
        cache_key(FakeEncoder(dtype=object()), ["a"], is_query=True)


def test_empty_text_list(tmp_path):
    enc = FakeEncoder()
    got = encode_cached(enc, [], is_query=True, cache_dir=tmp_path)
    assert len(got) == 0 and got.vectors.shape[0] == 0
    assert enc.calls == []


def test_all_empty_shard_round_trips(tmp_path):
    """A shard whose texts all have zero tokens stores a [0, dim] array and must still load and hit."""
    texts = ["", "", "a b", "", "", ""]  # shard_size 3: shard 1 is all zero-length
    reference = FakeEncoder().encode(texts, is_query=False)
    assert list(reference.lengths) == [0, 0, 2, 0, 0, 0]
    for _ in range(2):
        enc = FakeEncoder()
        got = encode_cached(enc, texts, is_query=False, cache_dir=tmp_path, shard_size=3)
        assert_same(got, reference)
    assert enc.calls == []


def test_dimless_empty_shard_from_encoder(tmp_path):
    """An encoder may return [0, 0] vectors for a batch of zero-token texts; the pack keeps DIM."""

    class Dimless(FakeEncoder):
        def encode(self, texts, **kw):
            emb = super().encode(texts, **kw)
            return emb if len(emb.vectors) else TokenEmbeddings.from_list([np.zeros((0, 0))] * len(texts))

    texts = ["a", "b c", "", ""]
    got = encode_cached(Dimless(), texts, is_query=True, cache_dir=tmp_path, shard_size=2)
    assert_same(got, FakeEncoder().encode(texts, is_query=True))


def test_hit_reports_the_input_tokens_of_the_cold_run(tmp_path):
    """Shards keep the token count the encoder reported; a hit returns it without encoding."""

    class Counting(FakeEncoder):
        def encode(self, texts, **kw):
            emb = super().encode(texts, **kw)
            return TokenEmbeddings(emb.vectors, emb.offsets, sum(len(t) for t in texts))

    texts = make_texts(23)
    cold = encode_cached(Counting(), texts, is_query=False, cache_dir=tmp_path, shard_size=5)
    enc = Counting()
    hit = encode_cached(enc, texts, is_query=False, cache_dir=tmp_path, shard_size=5)
    assert enc.calls == [] and hit.input_tokens == cold.input_tokens == sum(len(t) for t in texts)
    shards = encode_cached_shards(enc, texts, is_query=False, cache_dir=tmp_path)
    assert [s.input_tokens for s in shards] == [sum(map(len, texts[i : i + 5])) for i in range(0, 23, 5)]
    # an encoder that does not count (None) is recorded as such, not as 0
    assert encode_cached(FakeEncoder(), texts, is_query=True, cache_dir=tmp_path).input_tokens is None


@pytest.mark.parametrize("shard_size", [0, -3])
def test_bad_shard_size_is_an_input_error(tmp_path, shard_size):
    for call in (encode_cached, encode_cached_shards):
        with pytest.raises(InputError, match="shard_size"):
            call(FakeEncoder(), make_texts(4), is_query=True, cache_dir=tmp_path, shard_size=shard_size)
    assert not list(tmp_path.iterdir())  # nothing written


def test_interrupted_write_leaves_no_temp_file(tmp_path, monkeypatch):
    import harness.fileio as fileio  # every atomic write goes through it

    def killed_replace(src, dst):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(fileio.os, "replace", killed_replace)
    with pytest.raises(KeyboardInterrupt):
        encode_cached(FakeEncoder(), make_texts(6), is_query=True, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))


def test_leftover_temp_file_from_killed_run_is_ignored_and_cleaned(tmp_path):
    texts = make_texts(10)
    out = tmp_path / "job"
    with pytest.raises(KeyboardInterrupt):
        encode_to_shards(FakeEncoder(fail_after=1), texts, is_query=True, out_dir=out, shard_size=5)
    # what a SIGKILL in the middle of np.save would leave: a half-written temp, no sidecar
    leftover = out / "shard-00001.vectors.npy.4242-deadbeef.tmp"
    leftover.write_bytes(b"\x93NUMPY half")
    enc = FakeEncoder()
    encode_to_shards(enc, texts, is_query=True, out_dir=out, shard_size=5, show_progress=False)
    assert enc.calls == [texts[5:10]]
    assert not list(out.glob("*.tmp"))


def test_fan_out_disjoint_shards_then_full_load(tmp_path):
    texts = make_texts(31)  # shard_size 4: 8 shards
    key = cache_key(FakeEncoder(), texts, is_query=False)
    workers = [FakeEncoder(), FakeEncoder()]
    ranges = [[0, 2, 4, 6], [1, 3, 5, 7]]
    errors: list[BaseException] = []

    def work(enc: FakeEncoder, indices: list[int]) -> None:
        try:
            paths = encode_to_shards(
                enc, texts, is_query=False, out_dir=tmp_path / key, shard_size=4, shard_indices=indices
            )
            assert [p.name for p in paths] == [f"shard-{i:05d}.json" for i in indices]
        except BaseException as exc:  # surface thread failures in the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=a) for a in zip(workers, ranges, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for enc, indices in zip(workers, ranges, strict=True):
        assert enc.calls == [texts[4 * i : 4 * i + 4] for i in indices]

    loader = FakeEncoder()
    got = encode_cached(loader, texts, is_query=False, cache_dir=tmp_path, shard_size=4)
    assert loader.calls == []
    assert_same(got, FakeEncoder().encode(texts, is_query=False))


def test_existing_entry_keeps_its_shard_size(tmp_path):
    texts = make_texts(12)
    encode_cached(FakeEncoder(), texts, is_query=True, cache_dir=tmp_path, shard_size=5)
    enc = FakeEncoder()
    got = encode_cached(enc, texts, is_query=True, cache_dir=tmp_path, shard_size=7)
    assert enc.calls == []
    assert_same(got, FakeEncoder().encode(texts, is_query=True))


def test_bad_arguments_raise_input_error(tmp_path):
    texts = make_texts(10)
    with pytest.raises(InputError, match="shard_size"):
        encode_to_shards(FakeEncoder(), texts, is_query=True, out_dir=tmp_path, shard_size=0)
    with pytest.raises(InputError, match="shard_indices"):
        encode_to_shards(
            FakeEncoder(), texts, is_query=True, out_dir=tmp_path, shard_size=5, shard_indices=[2]
        )
    with pytest.raises(InputError, match="texts"):
        encode_cached(FakeEncoder(), ["a", 3], is_query=True, cache_dir=tmp_path)  # type: ignore[list-item]
    # a folder already holding another job is refused rather than overwritten
    encode_to_shards(FakeEncoder(), texts, is_query=True, out_dir=tmp_path / "job", shard_size=5)
    with pytest.raises(InputError, match="manifest.json.*key"):
        encode_to_shards(FakeEncoder(), texts[:-1], is_query=True, out_dir=tmp_path / "job", shard_size=5)
    with pytest.raises(InputError, match="shard_size"):
        encode_to_shards(FakeEncoder(), texts, is_query=True, out_dir=tmp_path / "job", shard_size=4)


def test_encoder_returning_wrong_count_is_an_error(tmp_path):
    class Short(FakeEncoder):
        def encode(self, texts, **kw):
            return super().encode(texts[:-1], **kw)

    with pytest.raises(ValueError, match="returned 4 embeddings for 5 texts"):
        encode_cached(Short(), make_texts(5), is_query=True, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("shard-*.json"))


def test_cache_info_and_clear(tmp_path):
    (tmp_path / "not-an-entry").mkdir()
    (tmp_path / "notes.txt").write_text("keep me")
    encode_cached(FakeEncoder(), make_texts(7), is_query=True, cache_dir=tmp_path, shard_size=3)
    encode_cached(FakeEncoder(), make_texts(4), is_query=False, cache_dir=tmp_path, shard_size=3)
    info = {(e["n_texts"], e["is_query"]): e for e in cache_info(tmp_path)}
    assert set(info) == {(7, True), (4, False)}
    assert (info[7, True]["n_shards"], info[7, True]["shards_done"]) == (3, 3)
    key = info[4, False]["key"]
    assert clear_cache(tmp_path, [key]) == info[4, False]["bytes"] > 0
    assert [e["key"] for e in cache_info(tmp_path)] == [info[7, True]["key"]]
    clear_cache(tmp_path)
    assert cache_info(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-an-entry", "notes.txt"]
    assert cache_info(tmp_path / "absent") == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(alphabet="ab é\n", max_size=12), max_size=12),
    shard_size=st.integers(1, 5),
    is_query=st.booleans(),
)
def test_cached_equals_direct_for_any_texts(tmp_path_factory, texts, shard_size, is_query):
    cache_dir = tmp_path_factory.mktemp("cache")
    reference = FakeEncoder().encode(texts, is_query=is_query)
    for _ in range(2):  # cold, then hit
        got = encode_cached(
            FakeEncoder(),
            texts,
            is_query=is_query,
            cache_dir=cache_dir,
            shard_size=shard_size,
            show_progress=False,
        )
        assert len(got) == len(texts)
        if texts:
            assert_same(got, reference)
    # the streaming view of the same entry: its shards, in order, one dim, no encoding
    enc = FakeEncoder()
    shards = encode_cached_shards(
        enc, texts, is_query=is_query, cache_dir=cache_dir, shard_size=shard_size, show_progress=False
    )
    assert enc.calls == []
    assert [len(p) for p in shards] == [
        len(texts[i : i + shard_size]) for i in range(0, len(texts), shard_size)
    ]
    if texts:
        assert {p.dim for p in shards} == {reference.dim}
        assert_same(TokenEmbeddings.concat(shards), reference)


def test_a_kill_loses_at_most_one_shard_of_a_small_corpus(tmp_path):
    """400 documents of 1500 characters (fewer than one 4096-text shard): shards also close at
    DEFAULT_SHARD_CHARS, so a run killed after its first shard resumes with the rest only."""
    from harness.cache import DEFAULT_SHARD_CHARS

    texts = [f"doc{i} " + "word " * 299 for i in range(400)]
    bounds = shard_bounds(texts, 4096, DEFAULT_SHARD_CHARS)
    assert len(bounds) > 2 and all(
        sum(map(len, texts[a:b])) <= DEFAULT_SHARD_CHARS for a, b in zip(bounds, bounds[1:], strict=False)
    )
    with pytest.raises(KeyboardInterrupt):
        encode_cached(FakeEncoder(fail_after=1), texts, is_query=False, cache_dir=tmp_path)
    enc = FakeEncoder()
    got = encode_cached(enc, texts, is_query=False, cache_dir=tmp_path)
    assert sum(map(len, enc.calls)) == 400 - bounds[1]  # the first shard was kept
    assert_same(got, FakeEncoder().encode(texts, is_query=False))


@pytest.mark.parametrize("n", [0, 1, 7, 50])
def test_shard_bounds_cover_every_text_once(n):
    rng = np.random.default_rng(n)
    texts = ["x" * int(rng.integers(0, 40)) for _ in range(n)]
    for size, chars in ((3, None), (4096, 25), (2, 1), (5, 100)):
        b = shard_bounds(texts, size, chars)
        assert b[0] == 0 and b[-1] == n and (np.diff(b) >= 1).all() and (np.diff(b) <= size).all()
        if chars is not None:  # within the budget unless one text alone is over it
            assert all(
                sum(map(len, texts[a:c])) <= chars or c - a == 1 for a, c in zip(b, b[1:], strict=False)
            )
