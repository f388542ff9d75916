"""The Ray executor (issue 12): its overhead on one machine, and a corpus of a million documents.

1. SciFact (5183 documents, ``--queries`` test queries), an Ettin-17m-shaped PyLate checkpoint
   (random weights, real-size vocabulary), exact MaxSim: ``harness evaluate`` with the local
   executor, then Ray with 1 and with 2 workers (same 2 cores: 1 worker x 2 threads, 2 x 1), each
   in a fresh child with a cold cache, ``--rounds`` interleaved rounds (best wall time kept: a
   shared machine's speed drifts). Wall time (Ray's start included), the encoder's seconds summed
   over shards and doc tokens/s, the driver's peak RSS (VmHWM), and nDCG@10 (must be equal).
2. Scale: ``--scale-docs`` short synthetic documents (8 words of the MiniLM vocabulary) with a tiny
   random BERT ColBERT (2 layers, hidden 64, dim 24) through Ray (2 workers) into the embedding
   cache, then a PLAID index from the cache's shards (4096 centroids, not the default for this
   size: the build is the point here, not recall): seconds and rates per stage, driver peak RSS.

    python benchmarks/bench_ray.py [--queries 50] [--rounds 2] [--scale-docs 1000000] [--skip-scifact]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "local": [],
    "ray-1": ["--executor", "ray", "--workers", "1"],
    "ray-2": ["--executor", "ray", "--workers", "2"],
}


def vm_hwm_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(x.split()[1] for x in status if x.startswith("VmHWM:"))) / 1024


def child_evaluate(argv: list[str]) -> None:
    """Run ``harness evaluate argv`` here; print wall seconds and this driver's peak RSS."""
    from harness.cli import main

    started = time.perf_counter()
    code = main(["evaluate", *argv])
    print(
        "RESULT " + json.dumps({"code": code, "wall_s": time.perf_counter() - started, "rss_mb": vm_hwm_mb()})
    )


def child_scale(n_docs: int, workdir: Path) -> None:
    """Encode ``n_docs`` synthetic documents through Ray into a cache, then build a PLAID index."""
    import numpy as np

    from harness.cache import encode_entry
    from harness.encode import load_encoder
    from harness.executor import RayExecutor
    from harness.plaid import build_index
    from harness.types import Texts
    from tests.model_fixtures import build_bert_checkpoint

    model = build_bert_checkpoint(workdir / "tiny-bert")
    encoder = load_encoder(model)
    words = [w for w in encoder.tokenizer.get_vocab() if w.isalpha() and len(w) > 2]
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(words), size=(n_docs, 8))
    texts = Texts([f"d{i}" for i in range(n_docs)], (" ".join(words[j] for j in row) for row in picks))
    del picks
    out: dict = {"n_docs": n_docs, "rss_mb_texts": vm_hwm_mb()}
    executor = RayExecutor(workers=2)
    started = time.perf_counter()
    shards, use = encode_entry(
        encoder, texts, is_query=False, cache_dir=workdir / "cache", executor=executor, show_progress=False
    )
    out["encode_s"] = time.perf_counter() - started
    executor.close()
    out["shards"] = len(shards)
    out["input_tokens"] = sum(s.input_tokens for s in shards)
    out["stored_tokens"] = int(sum(len(s.vectors) for s in shards))
    out["cache_mb"] = sum(s.vectors.nbytes for s in shards) / 2**20
    out["rss_mb_encode"] = vm_hwm_mb()
    started = time.perf_counter()
    index = build_index(shards, workdir / "plaid", n_centroids=4096, show_progress=False)
    out["plaid_build_s"] = time.perf_counter() - started
    out["plaid_disk_mb"] = index.stats()["disk_bytes"] / 2**20
    out["rss_mb_plaid"] = vm_hwm_mb()
    print("RESULT " + json.dumps(out))


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{args[:2]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def scifact(workdir: Path, n_queries: int, rounds: int) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_colbert import TASK, write_subset
    from tests.model_fixtures import build_ettin_like_checkpoint

    model = workdir / "ettin-17m-like"
    if not (model / "modules.json").exists():
        build_ettin_like_checkpoint(model, vocab_size=50368, seed=0)
    data = write_subset(workdir / f"data-{n_queries}", n_queries)
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for _ in range(rounds):  # interleaved: a shared machine's speed drifts by tens of % over minutes
        for name, extra in CONFIGS.items():
            cache, out = workdir / f"cache-{name}", workdir / f"out-{name}"
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            argv = ["--model", str(model), "--tasks", TASK, "--data-dir", str(data), "--scoring", "masked"]
            argv += ["--cache-dir", str(cache), "--output", str(out), "--quiet", *extra]
            measured = run_child(["--child-evaluate", json.dumps(argv)])
            (result_file,) = out.glob("*.json")
            result = json.loads(result_file.read_text())
            measured["encode_documents_s"] = result["timings"]["encode_documents_s"]
            measured["doc_tokens"] = result["tokens"]["documents"]
            measured["ndcg@10"] = result["subsets"][0]["trec"]["ndcg@10"]
            runs[name].append(measured)
            print(f"  {name}: wall {measured['wall_s']:.1f} s", flush=True)
    rows = {name: min(found, key=lambda row: row["wall_s"]) for name, found in runs.items()}
    base = rows["local"]
    print(f"SciFact, {n_queries} queries, Ettin-17m-shaped ColBERT, exact MaxSim, cold cache, 2 cores")
    print(f"best of {rounds} interleaved rounds; encode s = the encoder's seconds summed over shards")
    header = ("executor", "wall s", "vs local", "encode s", "doc tok/s", "driver RSS MB")
    print("{:<8} {:>7} {:>8} {:>8} {:>9} {:>13}  nDCG@10".format(*header))
    for name, row in rows.items():
        rate = row["doc_tokens"] / row["encode_documents_s"]
        print(
            f"{name:<8} {row['wall_s']:7.1f} {row['wall_s'] / base['wall_s']:8.3f} "
            f"{row['encode_documents_s']:8.1f} {rate:9.0f} {row['rss_mb']:13.0f}  {row['ndcg@10']:.6f}"
        )
    same = len({row["ndcg@10"] for found in runs.values() for row in found}) == 1
    print(f"nDCG@10 equal across executors: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="SciFact runs per executor, interleaved")
    parser.add_argument("--scale-docs", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_ray"))
    parser.add_argument("--skip-scifact", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--child-evaluate", help=argparse.SUPPRESS)
    parser.add_argument("--child-scale", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_evaluate:
        return child_evaluate(json.loads(args.child_evaluate))
    if args.child_scale:
        return child_scale(args.child_scale, args.workdir / "scale")

    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"cpu: {_cpu()}")
    if not args.skip_scifact:
        scifact(args.workdir, args.queries, args.rounds)
    if not args.skip_scale:
        shutil.rmtree(args.workdir / "scale", ignore_errors=True)
        (args.workdir / "scale").mkdir()
        row = run_child(["--child-scale", str(args.scale_docs), "--workdir", str(args.workdir)])
        n = row["n_docs"]
        print(f"\nScale: {n:,} synthetic documents, tiny BERT ColBERT, Ray 2 workers x 1 thread")
        print(
            f"encode into the cache: {row['encode_s']:.1f} s, {row['n_docs'] / row['encode_s']:,.0f} docs/s, "
            f"{row['input_tokens'] / row['encode_s']:,.0f} input tok/s; {row['shards']} shards, "
            f"{row['stored_tokens']:,} vectors, {row['cache_mb']:,.0f} MB"
        )
        build, disk = row["plaid_build_s"], row["plaid_disk_mb"]
        print(f"PLAID build from the shards: {build:.1f} s, {disk:,.0f} MB on disk")
        print(
            f"driver peak RSS: {row['rss_mb_texts']:,.0f} MB with the texts, {row['rss_mb_encode']:,.0f} MB "
            f"after encoding, {row['rss_mb_plaid']:,.0f} MB after the PLAID build"
        )


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    main()
