"""Batch size (padded tokens per batch) against encoding speed, one process, interleaved rounds.

Encodes the first N SciFact documents with the Ettin-17m-shaped ColBERT fixture (float32 and
bfloat16) and with all-MiniLM-L6-v2 (dense, float32) at each ``max_tokens_per_batch``, best of
``--rounds`` interleaved rounds,
and counts the minor page faults of each encode: activations above glibc's mmap threshold come
fresh from the OS at every batch, and zeroing those pages is time the matrix products do not get.
What ``harness.checkpoints.config.DEFAULT_MAX_TOKENS_PER_BATCH`` was chosen from.

    python benchmarks/bench_batch.py [--documents 1000] [--budgets 2048 4096 8192 16384] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[2048, 4096, 8192, 16384])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_colbert"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from harness.encode import load_encoder
    from tests.model_fixtures import build_ettin_like_checkpoint, minilm_model_dir

    lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[: args.documents]
    docs = [(d.get("title", "") + " " + d["text"]).strip() for d in map(json.loads, lines)]
    ettin = args.workdir / "ettin-17m-like"
    if not (ettin / "modules.json").exists():
        build_ettin_like_checkpoint(ettin, vocab_size=50368, seed=0)
    runs = (
        ("ettin-17m-shape ColBERT, float32", ettin, "float32"),
        ("ettin-17m-shape ColBERT, bfloat16", ettin, "bfloat16"),
        ("all-MiniLM-L6-v2 dense, float32", minilm_model_dir(), "float32"),
    )
    for label, path, dtype in runs:
        encoders = {b: load_encoder(path, dtype=dtype, max_tokens_per_batch=b) for b in args.budgets}
        tokens = 0
        for encoder in encoders.values():  # warm up: the first batches pay one-off costs
            encoder.encode(docs[:64], is_query=False, show_progress=False)
        best: dict[int, tuple[float, int]] = {}
        for _ in range(args.rounds):
            for budget, encoder in encoders.items():
                faults = minor_faults()
                start = time.perf_counter()
                out = encoder.encode(docs, is_query=False, show_progress=False)
                seconds, faults = time.perf_counter() - start, minor_faults() - faults
                if budget not in best or seconds < best[budget][0]:
                    best[budget] = (seconds, faults)
                tokens = int(out.offsets[-1]) if encoder.multi_vector else 0
        print(f"\n{label}, {len(docs)} SciFact documents, best of {args.rounds} interleaved rounds")
        header = f"{'tokens/batch':>12}{'seconds':>9}{'x fastest':>11}{'doc tok/s':>11}{'page faults':>13}"
        print(header + "  linear")
        fastest = min(s for s, _ in best.values())
        for budget, (seconds, faults) in best.items():
            rate = f"{tokens / seconds:.0f}" if tokens else "-"
            linear = encoders[budget].kernels["linear"]
            print(f"{budget:>12}{seconds:>9.2f}{seconds / fastest:>11.2f}{rate:>11}{faults:>13}  {linear}")


if __name__ == "__main__":
    main()
