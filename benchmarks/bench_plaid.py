"""PLAID index vs exact MaxSim: build time, peak RSS, size, QPS, quality. A script, not a test.

``scifact``: SciFact (5183 docs, 300 test queries) embedded by the real all-MiniLM-L6-v2 weights
used as a ColBERT backbone (``tests.model_fixtures.build_minilm_colbert_checkpoint``: one Dense
384->128 under torch seed 0, PyLate layout), encoded by ``harness.encode.load_encoder`` through the
embedding cache. Exact search (the harness default, float64 sums) is the baseline. For each nbits:
a default build (time, peak RSS, bytes per token on disk, open cost), the quality ceiling (top-10
overlap of exhaustive search over the decompressed vectors), then search at k=10 with our defaults
and the peers' settings: QPS (after a warm-up of 8 queries; also as a multiple of exact's), top-10
overlap with exact search and nDCG@10 (pytrec_eval convention). The machine's load average at the
start and end is recorded: on a shared machine the timings move with it.

``scale``: >= 20M synthetic token vectors of dim 48 produced shard by shard by a seeded generator,
so the corpus is never in memory; reports build time, peak RSS and QPS (no exact baseline).
Run it niced: ``nice -n 10 python benchmarks/bench_plaid.py scale``.

    python benchmarks/bench_plaid.py scifact [--nbits 4 2] [--work-dir /tmp/bench_plaid]
    python benchmarks/bench_plaid.py scale [--tokens 20000000] [--n-centroids 4096] [--max-memory-mb 512]

Peak RSS is ``getrusage(RUSAGE_SELF).ru_maxrss``, a high-water mark for the whole process (model,
embeddings and index together in ``scifact`` mode).

fast-plaid (the peer) pins torch 2.11, so it runs in its own venv (``make fastplaid-venv`` creates
``.venv-fastplaid``): ``scifact`` mode exports the same embeddings to ``--work-dir`` and runs
``benchmarks/fastplaid_peer.py`` there as a subprocess (its own process: its peak RSS is its own),
then scores its top 10 like ours. ``--skip-fastplaid`` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.plaid import PlaidIndex, build_index, default_n_centroids
from harness.retrieve import exact_search, to_run
from harness.types import TokenEmbeddings

ROOT = Path(__file__).resolve().parents[1]
# ours (default_search_settings(10)) and the peers' knobs for k=10 (ColBERT's and fast-plaid's READMEs)
SEARCH_SETTINGS = {
    "defaults": {},
    "stanford k<=10": {"n_probe": 1, "centroid_score_threshold": 0.5, "n_full_scores": 256},
    "n_probe 2, n_full_scores 1536": {"n_probe": 2, "centroid_score_threshold": 0.45, "n_full_scores": 1536},
    "n_probe 4, n_full_scores 2048": {"n_probe": 4, "centroid_score_threshold": 0.45, "n_full_scores": 2048},
    "n_probe 4, n_full_scores 4096": {"n_probe": 4, "centroid_score_threshold": 0.45, "n_full_scores": 4096},
    "fast-plaid 1.7 defaults": {"n_probe": 8, "centroid_score_threshold": None, "n_full_scores": 4096},
}
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        np.mean(
            [len(set(x[x >= 0]) & set(y[y >= 0])) / max(1, (y >= 0).sum()) for x, y in zip(a, b, strict=True)]
        )
    )


def timed_search(
    index: PlaidIndex, queries: TokenEmbeddings, **kw: Any
) -> tuple[np.ndarray, np.ndarray, float]:
    index.search(queries.select(range(min(8, len(queries)))), 10, show_progress=False, **kw)  # warm-up
    t0 = time.perf_counter()
    scores, ids = index.search(queries, 10, show_progress=False, **kw)
    return scores, ids, len(queries) / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- scifact


def minilm_colbert(work: Path) -> Path:
    """``tests.model_fixtures.build_minilm_colbert_checkpoint`` (real all-MiniLM-L6-v2 backbone + a random
    Dense 384->128 under torch seed 0, PyLate layout), built once under ``work``."""
    folder = work / "minilm-colbert"
    if (folder / "modules.json").exists():
        return folder
    sys.path.insert(0, str(ROOT))
    from tests.model_fixtures import build_minilm_colbert_checkpoint

    tmp = work / "minilm-colbert.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_minilm_colbert_checkpoint(tmp)
    tmp.rename(folder)
    return folder


def embed_scifact(work: Path) -> tuple[TokenEmbeddings, TokenEmbeddings, Any, dict[str, Any]]:
    from harness.data import load_beir_folder

    ds = load_beir_folder(SCIFACT, "test")
    query_ids = [q for q in ds.queries if q in ds.qrels]
    info: dict[str, Any] = {"n_docs": len(ds.corpus), "n_queries": len(query_ids)}
    try:
        from harness.cache import encode_cached
        from harness.encode import load_encoder

        encoder = load_encoder(minilm_colbert(work))
        t0 = time.perf_counter()
        docs = encode_cached(encoder, list(ds.corpus.values()), is_query=False, cache_dir=work / "cache")
        queries = encode_cached(
            encoder, [ds.queries[q] for q in query_ids], is_query=True, cache_dir=work / "cache"
        )
        info |= {"embeddings": "all-MiniLM-L6-v2 + Dense 384->128 (PyLate layout, harness encoder)"}
        info["encode_seconds"] = time.perf_counter() - t0
    except ImportError as e:  # encoder or PyLate missing: still exercise the index, say so
        print(f"WARNING: no encoder ({e}); using random unit embeddings", file=sys.stderr)
        rng = np.random.default_rng(0)

        def rand(lengths: np.ndarray) -> TokenEmbeddings:
            v = rng.standard_normal((int(lengths.sum()), 128), dtype=np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            return TokenEmbeddings(v, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

        docs, queries = rand(rng.integers(50, 180, len(ds.corpus))), rand(np.full(len(query_ids), 32))
        info["embeddings"] = "RANDOM (encoder unavailable)"
    return docs, queries, (ds, query_ids), info


def bench_scifact(args: argparse.Namespace) -> dict[str, Any]:
    from harness.metrics import trec_metrics

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    docs, queries, (ds, query_ids), info = embed_scifact(work)
    doc_ids = list(ds.corpus)
    info |= {"n_tokens": len(docs.vectors), "dim": docs.dim, "peak_rss_mb_after_encode": peak_rss_mb()}
    info["load_average_start"] = os.getloadavg()

    def ndcg10(scores: np.ndarray, ids: np.ndarray) -> float:
        return trec_metrics(ds.qrels, to_run(query_ids, doc_ids, scores, ids)).means["ndcg@10"]

    t0 = time.perf_counter()
    es, ei = exact_search(queries, docs, 10, show_progress=False)  # the harness default (float64 sums)
    exact = {"qps": len(queries) / (time.perf_counter() - t0), "ndcg@10": ndcg10(es, ei)}
    rows = []
    for nbits in args.nbits:
        out = work / f"index-nbits{nbits}"
        rss0 = peak_rss_mb()
        index = build_index([docs], out, nbits=nbits, overwrite=True, show_progress=False)
        rss1 = peak_rss_mb()
        index = PlaidIndex.open(out, verify=False)
        t0 = time.perf_counter()
        index.token_inverse_norms()
        norms_seconds = time.perf_counter() - t0
        stats = index.stats()
        # the quality ceiling: exhaustive exact search over the decompressed vectors
        _, ceiling_ids = exact_search(queries, index.decompress_docs(), 10, show_progress=False)
        base = {
            "nbits": nbits,
            "build_seconds": stats["build_seconds"],
            "peak_rss_mb": rss1,
            "peak_rss_growth_mb": rss1 - rss0,
            "n_centroids": stats["n_centroids"],
            "disk_mb": stats["disk_bytes"] / 2**20,
            "bytes_per_token_codes": stats["bytes_per_token_codes"],
            "bytes_per_token_total": stats["bytes_per_token_total"],
            "bytes_per_token_bound": docs.dim * nbits / 8 + 4,
            "open_seconds": stats["open_seconds"],
            "inverse_norms_seconds": norms_seconds,
            "derived_mb": (stats["derived_bytes"] + 4 * stats["n_tokens"]) / 2**20,
            "ceiling_overlap@10": overlap(ceiling_ids, ei),
        }
        for name, knobs in SEARCH_SETTINGS.items():
            scores, ids, qps = timed_search(index, queries, **knobs)
            row = {"search": name, "qps": qps, "qps_vs_exact": qps / exact["qps"]}
            row |= {"overlap@10": overlap(ids, ei), "ndcg@10": ndcg10(scores, ids)}
            rows.append(base | row)
    result = {"mode": "scifact", **info, "exact": exact, "plaid": rows}
    if not args.skip_fastplaid:
        peer = fast_plaid(work, docs, queries, Path(args.fastplaid_python))
        peer |= {"overlap@10": overlap(peer["ids"], ei), "ndcg@10": ndcg10(peer["scores"], peer["ids"])}
        peer["qps_vs_exact"] = peer["qps"] / exact["qps"]
        default = rows[0]  # nbits args.nbits[0], our default search
        peer["ours_vs_fast_plaid"] = {
            "build_speedup": peer["build_seconds"] / default["build_seconds"],
            "qps_ratio": default["qps"] / peer["qps"],
            "bytes_per_token_ratio": default["bytes_per_token_total"] / peer["bytes_per_token_total"],
        }
        result["fast_plaid"] = {k: v for k, v in peer.items() if k not in ("ids", "scores")}
    result["load_average_end"] = os.getloadavg()
    return result


def fast_plaid(work: Path, docs: TokenEmbeddings, queries: TokenEmbeddings, python: Path) -> dict[str, Any]:
    """Run ``fastplaid_peer.py`` in the fast-plaid venv on the same embeddings; its JSON with ids and
    scores as arrays padded -1 / -inf to k=10."""
    if not python.exists():
        raise SystemExit(f"{python} missing: run `make fastplaid-venv` or pass --skip-fastplaid")
    for vectors, offsets, te in (("docs", "doc_offsets", docs), ("queries", "query_offsets", queries)):
        np.save(work / f"{vectors}.npy", np.ascontiguousarray(te.vectors, np.float32))
        np.save(work / f"{offsets}.npy", te.offsets)
    subprocess.run([str(python), str(ROOT / "benchmarks" / "fastplaid_peer.py"), str(work)], check=True)
    peer = json.loads((work / "fastplaid.json").read_text())
    ids = np.full((len(queries), 10), -1, np.int64)
    scores = np.full((len(queries), 10), -np.inf, np.float32)
    for q, (row_ids, row_scores) in enumerate(zip(peer["ids"], peer["scores"], strict=True)):
        ids[q, : len(row_ids)], scores[q, : len(row_scores)] = row_ids[:10], row_scores[:10]
    return peer | {"ids": ids, "scores": scores}


# ---------------------------------------------------------------------------------------------- scale


class Synthetic:
    """Seeded clustered unit vectors: each doc mixes 3 of ``n_topics`` topics; doc i's tokens depend
    only on (seed, shard), so every pass over the shards sees the same corpus."""

    def __init__(self, n_tokens: int, dim: int, *, docs_per_shard: int = 5000, seed: int = 0) -> None:
        self.dim, self.seed, self.docs_per_shard = dim, seed, docs_per_shard
        self.n_shards = math.ceil(n_tokens / (100 * docs_per_shard)) + 1  # mean doc length 100: >= n_tokens
        topics = np.random.default_rng(seed).standard_normal((1024, dim)).astype(np.float32)
        self.topics = topics / np.linalg.norm(topics, axis=1, keepdims=True)

    def make(self, rng: np.random.Generator, lengths: np.ndarray) -> TokenEmbeddings:
        picks = rng.integers(0, len(self.topics), (len(lengths), 3))
        owner = np.repeat(np.arange(len(lengths)), lengths)
        topic = picks[owner, rng.integers(0, 3, len(owner))]
        v = self.topics[topic] + rng.standard_normal((len(owner), self.dim), dtype=np.float32) * 0.12
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return TokenEmbeddings(v, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    def shards(self):  # a fresh generator per pass
        for s in range(self.n_shards):
            rng = np.random.default_rng([self.seed, s])
            yield self.make(rng, rng.integers(50, 151, self.docs_per_shard))

    def queries(self, n: int) -> TokenEmbeddings:
        return self.make(np.random.default_rng([self.seed, 10**6]), np.full(n, 32))


def bench_scale(args: argparse.Namespace) -> dict[str, Any]:
    gen = Synthetic(args.tokens, args.dim)
    out = Path(args.work_dir) / "index-scale"
    index = build_index(
        gen.shards,
        out,
        nbits=args.scale_nbits,
        n_centroids=args.n_centroids,
        max_memory_bytes=args.max_memory_mb << 20,
        overwrite=True,
    )
    rss_build = peak_rss_mb()
    index = PlaidIndex.open(out, verify=False)
    t0 = time.perf_counter()
    PlaidIndex.open(out, verify=True)
    verify_seconds = time.perf_counter() - t0
    queries = gen.queries(args.scale_queries)
    _, _, qps = timed_search(index, queries)
    stats = index.stats()
    result = {
        "mode": "scale",
        **{
            k: stats[k]
            for k in ("n_docs", "n_tokens", "dim", "nbits", "n_centroids", "bytes_per_token_codes")
        },
        "default_n_centroids": default_n_centroids(stats["n_tokens"]),
        "max_memory_mb": args.max_memory_mb,
        "build_seconds": stats["build_seconds"],
        "peak_rss_mb_build": rss_build,
        "peak_rss_mb": peak_rss_mb(),
        "float32_corpus_mb": stats["n_tokens"] * stats["dim"] * 4 / 2**20,
        "disk_mb": stats["disk_bytes"] / 2**20,
        "bytes_per_token_total": stats["bytes_per_token_total"],
        "open_verify_seconds": verify_seconds,
        "n_queries": len(queries),
        "qps": qps,
    }
    if not args.keep:
        shutil.rmtree(out)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["scifact", "scale"])
    p.add_argument("--work-dir", default="/tmp/bench_plaid")
    p.add_argument("--nbits", type=int, nargs="+", default=[4, 2])
    p.add_argument("--tokens", type=int, default=20_000_000)
    p.add_argument("--dim", type=int, default=48)
    p.add_argument("--scale-nbits", type=int, default=4)
    p.add_argument("--n-centroids", type=int, default=4096, help="scale mode (default formula: 65536)")
    p.add_argument("--max-memory-mb", type=int, default=512)
    p.add_argument("--scale-queries", type=int, default=50)
    p.add_argument("--keep", action="store_true", help="keep the scale index on disk")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--skip-fastplaid", action="store_true", help="scifact mode: leave out the peer")
    p.add_argument("--fastplaid-python", default=str(ROOT / ".venv-fastplaid" / "bin" / "python"))
    args = p.parse_args()
    result = bench_scifact(args) if args.mode == "scifact" else bench_scale(args)
    result |= {"machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}"}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
