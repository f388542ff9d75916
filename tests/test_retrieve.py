"""Tests for harness.retrieve against plain references.

References: a per-pair MaxSim written with Python loops over numpy float64 dot products; PyLate's own
``colbert_scores`` / ``rank.rerank`` on tensors padded as its evaluator pads them; ``bm25s`` used
directly. Scores are float32 (one rounding of a float64 value), so a score compared with a float64
reference is allowed 1e-6 relative error (~8 float32 ulps); PyLate computes in float32 itself, so
its comparison allows 1e-6 relative plus 1e-6 absolute (a sum of up to 12 float32 maxima of
float32 dot products of length 16, each error a few ulps of values <= ~10).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.retrieve import bm25_search, exact_search, rerank, to_run
from harness.types import InputError, TokenEmbeddings
from tests.helpers import REPO_ROOT, BulkEncoder, bulk_texts

DIM = 16
REL = 1e-6


def _pack(rng: np.random.Generator, lengths: list[int], dim: int = DIM) -> TokenEmbeddings:
    arrays = []
    for n in lengths:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        arrays.append(v / np.linalg.norm(v, axis=1, keepdims=True) if n else v)
    return TokenEmbeddings.from_list(arrays, dim)


def _corpus(seed: int = 0) -> tuple[TokenEmbeddings, TokenEmbeddings]:
    """Queries (one empty) and docs with lengths 0 and 1 and exact duplicates (docs 9, 20, 41 = 3)."""
    rng = np.random.default_rng(seed)
    q_lengths = [5, 1, 8, 0, 12, 3, 7]
    d_lengths = list(rng.integers(2, 15, size=50))
    d_lengths[4] = d_lengths[30] = 0
    d_lengths[7] = d_lengths[33] = 1
    queries, docs = _pack(rng, q_lengths), _pack(rng, d_lengths)
    arrays = [docs[i] for i in range(len(docs))]
    for dup in (9, 20, 41):
        arrays[dup] = arrays[3].copy()
    return queries, TokenEmbeddings.from_list(arrays, DIM)


def _maxsim_ref(q: np.ndarray, d: np.ndarray) -> float:
    """sum_i max_j q_i . d_j, plainly; 0 when either side has no tokens (the documented choice)."""
    if len(q) == 0 or len(d) == 0:
        return 0.0
    total = 0.0
    for qi in q:
        total += max(float(np.dot(qi.astype(np.float64), dj.astype(np.float64))) for dj in d)
    return total


def _ranking_ref(scores: dict[int, float], k: int) -> tuple[list[float], list[int]]:
    """Top-k of {doc index: score} by float32 score descending, then lower index."""
    ranked = sorted(scores, key=lambda j: (-np.float32(scores[j]), j))[:k]
    return [float(np.float32(scores[j])) for j in ranked], ranked


def _reference_search(queries: TokenEmbeddings, docs: TokenEmbeddings, k: int):
    out_s, out_i = [], []
    for qi in range(len(queries)):
        s, i = _ranking_ref({j: _maxsim_ref(queries[qi], docs[j]) for j in range(len(docs))}, k)
        out_s.append(s)
        out_i.append(i)
    return np.array(out_s, np.float32), np.array(out_i, np.int64)


# ---------------------------------------------------------------------------------------------
# exact_search, masked
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [5, 50, 80])
def test_exact_search_matches_per_pair_reference(k: int) -> None:
    queries, docs = _corpus()
    ref_s, ref_i = _reference_search(queries, docs, k)
    s, i = exact_search(queries, docs, k, show_progress=False)
    assert s.dtype == np.float32 and i.dtype == np.int64
    assert s.shape == i.shape == (len(queries), min(k, len(docs)))
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(s, ref_s, rtol=REL, atol=0)


def test_exact_search_edge_cases_are_covered_and_scored() -> None:
    queries, docs = _corpus()
    s, i = exact_search(queries, docs, len(docs), show_progress=False)
    by_doc = {int(j): float(v) for j, v in zip(i[0], s[0], strict=True)}
    assert by_doc[4] == 0.0 and by_doc[30] == 0.0  # empty documents score 0
    assert by_doc[7] == pytest.approx(_maxsim_ref(queries[0], docs[7]), rel=REL)  # one-token doc
    # duplicates tie exactly and come out in index order
    for row_s, row_i in zip(s, i, strict=True):
        pos = [int(np.flatnonzero(row_i == d)[0]) for d in (3, 9, 20, 41)]
        assert pos == sorted(pos) and len({float(row_s[p]) for p in pos}) == 1
    # the empty query scores 0 everywhere: ranking is plain index order
    np.testing.assert_array_equal(s[3], 0.0)
    np.testing.assert_array_equal(i[3], np.arange(len(docs)))


def test_exact_search_identical_for_any_block_size() -> None:
    queries, docs = _corpus(seed=1)
    base_s, base_i = exact_search(queries, docs, 10, show_progress=False)
    for max_block_bytes in (1, 700, 4096, 2**15):  # 1 byte: one query x one doc per block
        s, i = exact_search(queries, docs, 10, max_block_bytes=max_block_bytes, show_progress=False)
        np.testing.assert_array_equal(i, base_i)
        np.testing.assert_array_equal(s, base_s)


def test_ties_across_blocks_keep_lowest_indices_at_the_cut() -> None:
    rng = np.random.default_rng(2)
    doc = rng.standard_normal((3, DIM)).astype(np.float32)
    other = _pack(rng, [4] * 5)
    docs = TokenEmbeddings.from_list([other[0], doc, other[1], doc, doc, other[2], doc, doc], DIM)
    queries = TokenEmbeddings.from_list([doc[:2].copy()], DIM)  # the duplicated doc is the best match
    for max_block_bytes in (1, 10**6):
        s, i = exact_search(queries, docs, 3, max_block_bytes=max_block_bytes, show_progress=False)
        np.testing.assert_array_equal(i[0], [1, 3, 4])
        assert s[0, 0] == s[0, 2]


def test_top_k_rule_with_unordered_indices() -> None:
    """The merge rule itself, on rows whose indices are not in order and with many ties."""
    from harness.ranking import select_top

    rng = np.random.default_rng(10)
    scores = rng.integers(0, 4, size=(30, 25)).astype(np.float32)
    indices = np.stack([rng.permutation(1000)[:25] for _ in range(30)])
    for k in (1, 5, 25):
        s, i = select_top(scores, indices, -np.arange(1000), k)  # tie key -index: lower index first
        for r in range(30):
            ref = sorted(
                zip(scores[r].tolist(), indices[r].tolist(), strict=True), key=lambda p: (-p[0], p[1])
            )
            assert list(zip(s[r].tolist(), i[r].tolist(), strict=True)) == ref[:k]


def test_single_vector_fast_path_equals_matmul() -> None:
    rng = np.random.default_rng(3)
    queries, docs = _pack(rng, [1] * 9, dim=32), _pack(rng, [1] * 200, dim=32)
    full = (queries.vectors.astype(np.float64) @ docs.vectors.astype(np.float64).T).astype(np.float32)
    order = np.lexsort((np.broadcast_to(np.arange(200), full.shape), -full), axis=1)[:, :20]
    s, i = exact_search(queries, docs, 20, max_block_bytes=4096, show_progress=False)
    np.testing.assert_array_equal(i, order)
    np.testing.assert_allclose(s, np.take_along_axis(full, order, axis=1), rtol=REL, atol=0)


def test_float32_precision_close_to_reference() -> None:
    queries, docs = _corpus()
    ref_s, ref_i = _reference_search(queries, docs, 10)
    s, i = exact_search(queries, docs, 10, precision="float32", show_progress=False)
    # float32 dot products of length 16 and sums of <= 12 terms: a few ulps of values <= 12
    np.testing.assert_allclose(s, ref_s, rtol=1e-5, atol=1e-5)
    assert (i[:, 0] == ref_i[:, 0]).mean() == 1.0


# ---------------------------------------------------------------------------------------------
# exact_search, pylate mode, against PyLate's own scorer
# ---------------------------------------------------------------------------------------------


def _pylate_scores(queries: TokenEmbeddings, docs: TokenEmbeddings, chunk: int) -> np.ndarray:
    """[nq, n_docs] scores exactly as PyLateInformationRetrievalEvaluator builds them."""
    import pylate.scores as scores_mod
    import torch

    pad = torch.nn.utils.rnn.pad_sequence
    q = pad([torch.from_numpy(queries[i].copy()) for i in range(len(queries))], batch_first=True)
    parts = []
    for start in range(0, len(docs), chunk):
        sub = pad([torch.from_numpy(docs[j].copy()) for j in range(start, min(start + chunk, len(docs)))],
                  batch_first=True)  # fmt: skip
        parts.append(scores_mod.colbert_scores(q, sub, backend="torch").numpy())
    return np.concatenate(parts, axis=1)


@pytest.mark.pylate
@pytest.mark.parametrize("chunk", [7, 50_000])
def test_pylate_mode_equals_pylate_colbert_scores(chunk: int) -> None:
    queries, docs = _corpus(seed=4)
    ref = _pylate_scores(queries, docs, chunk)
    s, i = exact_search(
        queries, docs, len(docs), scoring="pylate", pylate_chunk_size=chunk, show_progress=False
    )
    got = np.empty_like(ref)
    np.put_along_axis(got, i, s, axis=1)
    np.testing.assert_allclose(got, ref, rtol=REL, atol=REL)
    # not vacuous: padding changes some scores relative to true MaxSim
    masked_s, masked_i = exact_search(queries, docs, len(docs), show_progress=False)
    masked = np.empty_like(ref)
    np.put_along_axis(masked, masked_i, masked_s, axis=1)
    assert np.abs(masked - ref).max() > 1e-3


@pytest.mark.pylate
def test_pylate_mode_chunking_matters_and_is_mirrored() -> None:
    queries, docs = _corpus(seed=5)
    # five one-token docs form the first chunk of 5: unpadded there, padded in a chunk of 50
    docs = TokenEmbeddings.concat([_pack(np.random.default_rng(5), [1] * 5), docs])
    n = len(docs)
    a, _ = exact_search(queries, docs, n, scoring="pylate", pylate_chunk_size=5, show_progress=False)
    b, _ = exact_search(queries, docs, n, scoring="pylate", pylate_chunk_size=50, show_progress=False)
    assert not np.array_equal(a, b)
    for chunk, got in ((5, a), (50, b)):
        ref = -np.sort(-_pylate_scores(queries, docs, chunk), axis=1)
        np.testing.assert_allclose(got, ref, rtol=REL, atol=REL)


# ---------------------------------------------------------------------------------------------
# rerank
# ---------------------------------------------------------------------------------------------


def test_rerank_equals_maxsim_restricted_to_candidates() -> None:
    queries, docs = _corpus(seed=6)
    rng = np.random.default_rng(6)
    cands = [rng.choice(len(docs), size=n, replace=True) for n in (12, 3, 0, 20, 1, 7, 30)]
    cands[1] = np.array([5, -1, 5, 9, 3, -1])  # -1 ignored, duplicate 5 scored once, 3 and 9 tie
    s, i = rerank(queries, docs, cands)
    width = max(len(np.unique(c[c >= 0])) for c in cands)
    assert s.shape == i.shape == (len(queries), width)
    for qi, c in enumerate(cands):
        uniq = sorted(set(int(x) for x in c if x >= 0))
        ref_s, ref_i = _ranking_ref({j: _maxsim_ref(queries[qi], docs[j]) for j in uniq}, width)
        n = len(ref_i)
        np.testing.assert_array_equal(i[qi, :n], ref_i)
        np.testing.assert_allclose(s[qi, :n], ref_s, rtol=REL, atol=0)
        assert (i[qi, n:] == -1).all() and np.isneginf(s[qi, n:]).all()
    s3, i3 = rerank(queries, docs, cands, k=3)
    np.testing.assert_array_equal(i3, i[:, :3])
    np.testing.assert_array_equal(s3, s[:, :3])


def test_rerank_over_all_docs_is_exact_search() -> None:
    queries, docs = _corpus(seed=7)
    full = [np.arange(len(docs))[::-1] for _ in range(len(queries))]
    for scoring in ("masked", "pylate"):
        s, i = rerank(queries, docs, full, k=15, scoring=scoring)
        es, ei = exact_search(queries, docs, 15, scoring=scoring, show_progress=False)
        np.testing.assert_array_equal(i, ei)
        np.testing.assert_array_equal(s, es)


@pytest.mark.pylate
def test_rerank_pylate_mode_equals_pylate_rank_rerank() -> None:
    import pylate.rank as rank

    queries, docs = _corpus(seed=8)
    rng = np.random.default_rng(8)
    cands = [rng.choice(len(docs), size=n, replace=False) for n in (10, 4, 25, 10, 6, 1, 18)]
    ref = rank.rerank(
        documents_ids=[c.tolist() for c in cands],
        queries_embeddings=[queries[qi] for qi in range(len(queries))],
        documents_embeddings=[[docs[j] for j in c] for c in cands],
    )
    s, i = rerank(queries, docs, cands, scoring="pylate")
    for qi, results in enumerate(ref):
        want = {r["id"]: r["score"] for r in results}
        got = {int(j): float(v) for j, v in zip(i[qi], s[qi], strict=True) if j >= 0}
        assert got.keys() == want.keys()
        for j in want:
            assert got[j] == pytest.approx(want[j], rel=REL, abs=REL)


# ---------------------------------------------------------------------------------------------
# bm25, to_run, input errors
# ---------------------------------------------------------------------------------------------


def _texts(seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vocab = [f"term{i}" for i in range(60)] + ["protein", "cell", "gene", "virus", "the", "and"]
    corpus = [" ".join(rng.choice(vocab, size=rng.integers(3, 30))) for _ in range(120)]
    corpus[17] = corpus[5]  # a duplicate: exact tie, lower index first
    queries = [" ".join(rng.choice(vocab, size=rng.integers(1, 6))) for _ in range(25)]
    queries.append("the and")  # only stopwords: scores 0 everywhere
    queries.append(corpus[5])
    return corpus, queries


def test_bm25_matches_bm25s_directly() -> None:
    import bm25s

    corpus, queries = _texts(9)
    s, i = bm25_search(corpus, queries, 10, show_progress=False)
    index = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    index.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    for qi, q in enumerate(queries):
        tokens = bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False)[0]
        ids = index.get_tokens_ids(tokens)
        full = index.get_scores_from_ids(ids) if ids else np.zeros(len(corpus), np.float32)
        ref = sorted(range(len(corpus)), key=lambda j: (-full[j], j))[:10]
        np.testing.assert_array_equal(i[qi], ref)
        np.testing.assert_array_equal(s[qi], full[ref])  # same float32 computation
        if qi < 25 and ids:  # bm25s's own top-k gives the same scores
            _, ref_scores = index.retrieve([tokens], k=10, show_progress=False)
            np.testing.assert_array_equal(s[qi], ref_scores[0])
    np.testing.assert_array_equal(i[25], np.arange(10))  # stopword-only query
    assert list(i[26][:2]) == [5, 17]  # the duplicate pair, lower index first


def test_to_run_skips_padding() -> None:
    scores = np.array([[2.5, 1.0, -np.inf], [-np.inf, -np.inf, -np.inf]], np.float32)
    indices = np.array([[1, 0, -1], [-1, -1, -1]])
    run = to_run(["q1", "q2"], ["d0", "d1"], scores, indices)
    assert run == {"q1": {"d1": 2.5, "d0": 1.0}}
    with pytest.raises(InputError):
        to_run(["q1"], ["d0", "d1"], scores, indices)
    with pytest.raises(InputError):
        to_run(["q1", "q2"], ["d0"], scores, indices)


def test_bad_input_raises_input_error() -> None:
    queries, docs = _corpus()
    with pytest.raises(InputError, match="dim"):
        exact_search(queries, _pack(np.random.default_rng(0), [3], dim=8), 5, show_progress=False)
    with pytest.raises(InputError, match="^k: must be a positive integer"):
        exact_search(queries, docs, 0, show_progress=False)
    with pytest.raises(InputError, match="scoring"):
        exact_search(queries, docs, 5, scoring="cosine", show_progress=False)  # type: ignore[arg-type]
    bad = TokenEmbeddings(docs.vectors.copy(), docs.offsets)
    bad.vectors[3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        exact_search(queries, bad, 5, show_progress=False)
    with pytest.raises(InputError, match=r"candidates\[1\]"):
        rerank(queries, docs, [np.array([0])] + [np.array([len(docs)])] * (len(queries) - 1))
    with pytest.raises(InputError, match="candidate lists"):
        rerank(queries, docs, [np.array([0])])


def test_empty_corpus_and_queries() -> None:
    queries, docs = _corpus()
    empty = TokenEmbeddings.from_list([], DIM)
    s, i = exact_search(queries, empty, 5, show_progress=False)
    assert s.shape == i.shape == (len(queries), 0)
    s, i = exact_search(empty, docs, 5, show_progress=False)
    assert s.shape == i.shape == (0, 5)


# ------------------------------------------------------------- streaming shards under a budget


_STREAM_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np
from harness.retrieve.stages import Embedder, ExactRetriever
from tests.helpers import BulkEncoder, bulk_texts, peak_rss
cache, budget, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
queries, docs = bulk_texts(int(sys.argv[4]), 20)
docs.tie_keys, queries.sha256, docs.sha256  # computed before the measurement: the dataset's, not ours
retriever = ExactRetriever(Embedder(BulkEncoder(), cache, show_progress=False), max_memory=budget)
Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
base = int(status["VmRSS"].split()[0]) * 1024
ranking, _ = retriever.search(queries, docs, 100)
np.save(out / "scores.npy", ranking.scores)
np.save(out / "indices.npy", ranking.indices)
print(json.dumps({"base": base, "peak": peak_rss()}))
"""


@pytest.mark.slow
def test_exact_search_streams_a_corpus_ten_times_its_memory_budget(tmp_path):
    """640 MB of cached token embeddings searched under --max-memory 64MB: peak RSS grows by less
    than the budget (measured in a subprocess) and the ranking equals the in-RAM search's."""
    import json
    import subprocess
    import sys

    from harness.cache import encode_entry, pack

    budget, n_docs = 64 * 2**20, 20_500
    queries, docs = bulk_texts(n_docs, 20)
    encoder = BulkEncoder()
    shards, _ = encode_entry(encoder, docs, is_query=False, cache_dir=tmp_path / "cache", show_progress=False)
    assert sum(s.vectors.nbytes for s in shards) >= 10 * budget
    encode_entry(encoder, queries, is_query=True, cache_dir=tmp_path / "cache", show_progress=False)
    args = [str(tmp_path / "cache"), str(budget), str(tmp_path), str(n_docs)]
    proc = subprocess.run(
        [sys.executable, "-c", _STREAM_SCRIPT, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    memory = json.loads(proc.stdout.splitlines()[-1])
    assert memory["peak"] - memory["base"] <= budget, memory

    query_emb, _ = encode_entry(encoder, queries, is_query=True, cache_dir=None, show_progress=False)
    in_ram = exact_search(pack(query_emb), pack(shards), 100, tie_keys=docs.tie_keys, show_progress=False)
    assert np.array_equal(np.load(tmp_path / "scores.npy"), in_ram[0])
    assert np.array_equal(np.load(tmp_path / "indices.npy"), in_ram[1])
