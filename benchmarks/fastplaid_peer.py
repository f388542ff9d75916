"""fast-plaid side of ``bench_plaid.py scifact``: run inside the fast-plaid venv (``make fastplaid-venv``).

    .venv-fastplaid/bin/python benchmarks/fastplaid_peer.py WORK_DIR [--k 10]

Reads the embeddings ``bench_plaid.py`` exported to WORK_DIR (``docs.npy`` / ``doc_offsets.npy``,
``queries.npy`` / ``query_offsets.npy``: packed float32 vectors and int64 offsets), builds a
fast-plaid index on CPU with its defaults (nbits 4, seed 42), searches every query at k with its
search defaults after a warm-up of 8 queries, and writes ``fastplaid.json``: build seconds, peak
RSS, index bytes on disk, QPS and the top-k ids and scores per query. Imports nothing from the
harness: this venv pins torch 2.11 and has no harness installed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from fast_plaid import search


def split(vectors: np.ndarray, offsets: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(vectors[a:b]) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("work_dir")
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    work = Path(args.work_dir)
    docs = split(np.load(work / "docs.npy"), np.load(work / "doc_offsets.npy"))
    queries = split(np.load(work / "queries.npy"), np.load(work / "query_offsets.npy"))
    folder = work / "fastplaid-index"
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    index = search.FastPlaid(index=str(folder), device="cpu")
    index.create(documents_embeddings=docs, nbits=4)
    build_seconds = time.perf_counter() - t0
    rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    index.search(queries_embeddings=queries[:8], top_k=args.k, show_progress=False)  # warm-up
    t0 = time.perf_counter()
    hits = index.search(queries_embeddings=queries, top_k=args.k, show_progress=False)
    qps = len(queries) / (time.perf_counter() - t0)
    n_tokens = sum(len(d) for d in docs)
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    result = {
        "fast_plaid": getattr(search, "__version__", None) or "1.7.0.2110",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "build_seconds": build_seconds,
        "peak_rss_mb_build": rss_build,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "disk_mb": disk / 2**20,
        "bytes_per_token_total": disk / n_tokens,
        "qps": qps,
        "ids": [[int(i) for i, _ in row] for row in hits],
        "scores": [[float(s) for _, s in row] for row in hits],
    }
    (work / "fastplaid.json").write_text(json.dumps(result))
    print(json.dumps({k: v for k, v in result.items() if k not in ("ids", "scores")}, indent=1))


if __name__ == "__main__":
    main()
