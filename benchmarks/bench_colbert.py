"""Ettin-17m-shaped ColBERT on SciFact: the harness vs PyLate's evaluator, one run, same machine.

Each side runs in its own child process (so peak RSS is its own), cold, from raw
files to card metrics: encode the 5183 SciFact documents and N test queries,
exact MaxSim, metrics. PyLate gets ``--pylate-chunk`` documents per corpus chunk
(its evaluator materialises queries x docs x tokens x tokens per chunk); the
harness runs ``--scoring pylate`` with the same chunk size, so the metrics must
be identical. Then both again on all 300 test queries. The same run measures the
fp32 and bf16 matrix-product peaks (``bench_gemm.matmul_peaks``) and states the
encoder's throughput as a fraction of each (the roofline).

    python benchmarks/bench_colbert.py [--queries 50] [--pylate-chunk 1000] [--skip-pylate] [--bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"
TASK = "NanoSciFact"  # a card-convention task, read from a local folder in BEIR layout


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_subset(dest: Path, n_queries: int) -> Path:
    """SciFact's corpus (title and text joined) and its first ``n_queries`` test queries, BEIR layout."""
    folder = dest / TASK
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    rows = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]
    kept: list[str] = []
    for row in rows:
        qid = row.split("\t")[0]
        if qid not in kept:
            kept.append(qid)
    kept = kept[:n_queries]
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(r + "\n" for r in rows if r.split("\t")[0] in kept)
    )
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for line in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            text = (doc.get("title", "") + " " + doc["text"]).strip()
            out.write(json.dumps({"_id": doc["_id"], "text": text}) + "\n")
    queries = [json.loads(x) for x in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as out:
        for q in queries:
            if q["_id"] in kept:
                out.write(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n")
    return dest


def read_subset(folder: Path) -> tuple[dict, dict, dict]:
    lines = (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    corpus = {d["_id"]: d["text"] for d in map(json.loads, lines)}
    lines = (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = {q["_id"]: q["text"] for q in map(json.loads, lines)}
    relevant: dict[str, set[str]] = {}
    for row in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, did, _ = row.split("\t")
        relevant.setdefault(qid, set()).add(did)
    return corpus, queries, relevant


def side_harness(model: Path, data: Path, chunk: int, dtype: str = "float32") -> dict:
    from harness.run import evaluate

    t0 = time.perf_counter()
    [result] = evaluate(
        str(model),
        [TASK],
        data_dir=data,
        output_dir=None,
        cache_dir=None,
        pylate_chunk_size=chunk,
        dtype=dtype,
        show_progress=False,
    )
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "metrics": result.subsets[0].card,
        "timings": result.timings,
        "doc_tokens": result.tokens["documents"],
        "n_queries": result.subsets[0].n_queries,
        "kernels": result.model.get("kernels"),
    }


def side_pylate(model: Path, data: Path, chunk: int) -> dict:
    from pylate import evaluation, models

    t0 = time.perf_counter()
    corpus, queries, relevant = read_subset(data / TASK)
    colbert = models.ColBERT(model_name_or_path=str(model), device="cpu")
    evaluator = evaluation.PyLateInformationRetrievalEvaluator(
        queries=queries,
        corpus=corpus,
        relevant_docs=relevant,
        corpus_chunk_size=chunk,
        show_progress_bar=False,
    )
    scores = evaluator(colbert)
    wall = time.perf_counter() - t0
    metrics = {k.split("MaxSim_", 1)[1]: v for k, v in scores.items() if "MaxSim_" in k}
    return {"wall_s": wall, "metrics": metrics}


def flops_per_token(model: Path, seq_len: int) -> float:
    """Forward FLOPs per token: 2 x every matmul weight + attention (QK^T and AV) over the window."""
    config = json.loads((model / "config.json").read_text())
    h, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    every = config.get("global_attn_every_n_layers", 1)
    window = config.get("local_attention", seq_len)
    dense = 0
    for folder in sorted(model.glob("*_Dense")):
        cfg = json.loads((folder / "config.json").read_text())
        dense += cfg["in_features"] * cfg["out_features"]
    per_layer_weights = 4 * h * h + h * 2 * inter + inter * h  # qkv+o, GLU Wi (2*inter), Wo
    attention = sum(4 * h * (seq_len if i % every == 0 else min(seq_len, window)) for i in range(layers))
    return 2 * (layers * per_layer_weights + dense) + attention


def child(args: argparse.Namespace) -> None:
    if args.side == "pylate":
        out = side_pylate(args.model, args.data, args.pylate_chunk)
    else:
        dtype = "bfloat16" if args.side == "harness-bf16" else "float32"
        out = side_harness(args.model, args.data, args.pylate_chunk, dtype)
    out["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(out))


def run_child(side: str, model: Path, data: Path, chunk: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--side",
        side,
        "--model",
        str(model),
        "--data",
        str(data),
        "--pylate-chunk",
        str(chunk),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--pylate-chunk", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_colbert"))
    parser.add_argument("--skip-pylate", action="store_true")
    parser.add_argument("--skip-full", action="store_true", help="skip the 300-query harness run")
    parser.add_argument("--bf16", action="store_true", help="also run the harness in bfloat16")
    parser.add_argument("--side", choices=["harness", "harness-bf16", "pylate"], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return child(args)

    sys.path.insert(0, str(ROOT))
    from tests.model_fixtures import build_ettin_like_checkpoint

    model = args.workdir / "ettin-17m-like"
    if not (model / "modules.json").exists():
        build_ettin_like_checkpoint(model, vocab_size=50368, seed=0)
    data = write_subset(args.workdir / f"data-{args.queries}", args.queries)
    from bench_gemm import matmul_peaks  # this folder's: the same run measures the peaks

    # the peak of each dtype: the best kernel on the Wqkv shape at the harness's batch (4096 tokens)
    # and at a 32 x 300 batch, so neither batch size flatters the fraction; measured before the
    # children and after them, the higher kept (this machine's GEMM speed drifts by 10-15%)
    hidden = json.loads((model / "config.json").read_text())["hidden_size"]
    shapes = [(rows, hidden, 3 * hidden) for rows in (4096, 9600)]
    by_rows = [matmul_peaks(shape=shape) for shape in shapes]
    ours = run_child("harness", model, data, args.pylate_chunk)
    theirs = None if args.skip_pylate else run_child("pylate", model, data, args.pylate_chunk)
    bf16 = run_child("harness-bf16", model, data, args.pylate_chunk) if args.bf16 else None

    tokens = ours["doc_tokens"]
    by_rows += [matmul_peaks(shape=shape) for shape in shapes]
    peaks = {**by_rows[-1], **{d: max(p[d] for p in by_rows) for d in ("fp32", "bf16")}}
    peaks["shape"] = " and ".join(str(list(shape)) for shape in shapes)
    avg_len = tokens / 5183
    gflop = flops_per_token(model, int(avg_len)) / 1e9
    print(f"\nSciFact, {args.queries} queries, 5183 docs, {tokens} doc tokens (avg {avg_len:.0f}/doc)")
    print(f"{'side':<10}{'wall s':>9}{'peak RSS MB':>13}{'doc tok/s (end to end)':>24}")
    for name, side in (("harness", ours), ("pylate", theirs)):
        if side:
            wall, rss = side["wall_s"], side["peak_rss_mb"]
            print(f"{name:<10}{wall:>9.1f}{rss:>13.0f}{tokens / wall:>24.0f}")
    if theirs:
        print(f"speed-up (pylate wall / harness wall): {theirs['wall_s'] / ours['wall_s']:.2f}x")
        deltas = {
            k: abs(ours["metrics"][k] - v) for k, v in theirs["metrics"].items() if k in ours["metrics"]
        }
        print(f"metrics compared: {len(deltas)}, max |delta| = {max(deltas.values()):.2e}")
        print(f"ndcg@10 harness {ours['metrics']['ndcg@10']:.6f} pylate {theirs['metrics']['ndcg@10']:.6f}")
    print(
        f"matrix-product peaks, {peaks['threads']} threads, {peaks['shape']}: fp32 {peaks['fp32']:.0f} "
        f"GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s (best kernel each, best of before and after the runs; "
        f"CPU {peaks['cpu']})"
    )
    for name, side in (("fp32", ours), ("bf16", bf16)):
        if side:
            rate = side["doc_tokens"] / side["timings"]["encode_documents_s"]
            achieved = rate * gflop
            print(
                f"harness {name} document encoding: {rate:.0f} tokens/s x {gflop * 1e3:.2f} MFLOP/token = "
                f"{achieved:.1f} GFLOP/s = {achieved / peaks['fp32']:.0%} of the fp32 peak, "
                f"{achieved / peaks['bf16']:.0%} of the bf16 peak; kernels {side['kernels']}"
            )
    if bf16:
        deltas = {k: bf16["metrics"][k] - v for k, v in ours["metrics"].items()}
        print(
            f"harness bf16: wall {bf16['wall_s']:.1f} s ({ours['wall_s'] / bf16['wall_s']:.2f}x fp32), "
            f"peak RSS {bf16['peak_rss_mb']:.0f} MB, max |metric delta| vs fp32 "
            f"{max(map(abs, deltas.values())):.2e}; "
            + ", ".join(f"{k} {deltas[k]:+.2e}" for k in ("ndcg@10", "mrr@10", "map@100", "recall@10"))
        )
    timings = {k: round(v, 2) for k, v in ours["timings"].items() if isinstance(v, float)}
    print(f"harness timings: {json.dumps(timings)}")
    if not args.skip_full:
        data300 = write_subset(args.workdir / "data-300", 300)
        # PyLate's evaluator holds queries x chunk x tokens x tokens scores: 300 queries at chunk 1000 need
        # 26 GB (it fails on 24 GiB), so both sides take the chunk that keeps the 50-query run's memory
        chunk = max(1, args.pylate_chunk * args.queries // 300)
        full = run_child("harness", model, data300, chunk)
        print(
            f"harness, all {full['n_queries']} test queries: wall {full['wall_s']:.1f} s, "
            f"peak RSS {full['peak_rss_mb']:.0f} MB, ndcg@10 {full['metrics']['ndcg@10']:.6f}"
        )
        if not args.skip_pylate:
            peer = run_child("pylate", model, data300, chunk)
            delta = max(
                abs(full["metrics"][k] - v) for k, v in peer["metrics"].items() if k in full["metrics"]
            )
            print(
                f"pylate, all 300 test queries (chunk {chunk} both sides): wall {peer['wall_s']:.1f} s, "
                f"peak RSS {peer['peak_rss_mb']:.0f} MB; ratio harness/pylate "
                f"{full['wall_s'] / peer['wall_s']:.2f}, max |metric delta| {delta:.2e}"
            )


if __name__ == "__main__":
    main()
