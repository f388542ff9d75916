"""Quality against cost, one run: an Ettin-17m-shaped ColBERT on BEIR SciFact (5183 documents, 300
test queries) exact, with a PLAID index (nbits 2, 4), token pooling (pool factor 2, 3), truncated
dimensions, int8 linear layers and bf16, each a `harness evaluate` run of its own in a child process,
into one output folder and one embedding cache, one after another on the same machine.

Per configuration: nDCG@10 with its 95% bootstrap CI, the paired delta against the exact run (sign-flip
test, from the results' per-query scores; the results' own ``fidelity`` record where the run has one),
bytes per token of what is kept searchable (``harness.report.tables.bytes_per_token``: PLAID, the
index's; otherwise the vector's width x its dtype's bytes, over the pool factor), batched QPS,
single-query p95 (``--latency-queries``, after a warm-up), and the documents' encode tokens/s
(measured by that run; a cached encode says so).

    python benchmarks/bench_tradeoff.py [--latency-queries 100] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "beir"
CONFIGS: dict[str, list[str]] = {
    "exact": [],
    "PLAID nbits 2": ["--index", "plaid", "--nbits", "2"],
    "PLAID nbits 4": ["--index", "plaid", "--nbits", "4"],
    "pool factor 2": ["--pool-factor", "2"],
    "pool factor 3": ["--pool-factor", "3"],
    "truncate dim 32": ["--truncate-dim", "32"],
    "int8": ["--quantize", "int8"],
    "bf16": ["--dtype", "bfloat16"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    from harness.efficiency import cpu_model
    from tests.model_fixtures import build_ettin_like_checkpoint

    work = args.out or Path(tempfile.mkdtemp(prefix="bench-tradeoff-"))
    model = work / "ettin-17m-shape"
    if not (model / "modules.json").exists():
        build_ettin_like_checkpoint(model, vocab_size=50368, seed=0)
    harness = [sys.executable, "-m", "harness.cli"]
    common = ["--model", str(model), "--tasks", "BEIR/scifact", "--data-dir", str(DATA), "--quiet"]
    common += ["--output", str(work / "results"), "--cache-dir", str(work / "cache"), "--save-run"]
    common += ["--latency-queries", str(args.latency_queries)]
    walls = {}
    for name, flags in CONFIGS.items():
        started = time.perf_counter()
        subprocess.run([*harness, "evaluate", *common, *flags], check=True, cwd=ROOT)
        walls[name] = time.perf_counter() - started
        print(f"{name}: {walls[name]:.0f} s", file=sys.stderr, flush=True)
    import torch

    when = time.strftime("%Y-%m-%d")
    print(f"# {when} {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(table(work / "results", walls))


def table(folder: Path, walls: dict[str, float]) -> str:
    """The markdown table, one row per configuration in ``CONFIGS`` order, from the results files."""
    from harness.report.tables import bytes_per_token
    from harness.results import load_results
    from harness.stats import bootstrap_ci, sign_flip_test

    results = {r.model_id: r for r in load_results(folder)}
    exact = next(r for r in results.values() if r.retrieval.method == "exact" and "(" not in r.model_id)
    header = ("configuration", "nDCG@10", "95% CI", "Δ vs exact (p)", "bytes/token", "QPS", "p95 ms")
    header += ("doc tok/s", "wall s")
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    base = exact.subsets[0].per_query
    for name, flags in CONFIGS.items():
        r = _result_of(results, exact, flags)
        scores = r.subsets[0].per_query
        values = np.array([scores[q] for q in base])
        low, high = bootstrap_ci([(values, 1.0)])
        delta = values - np.array([base[q] for q in base])
        vs_exact = "–" if r is exact else f"{delta.mean():+.4f} (p {sign_flip_test(delta):.3g})"
        eff = r.efficiency
        single = eff.single if eff else None
        encode = (eff.encode or {}).get("documents") if eff else None
        rate = "–" if encode is None or encode.tokens_per_s is None else f"{encode.tokens_per_s:,.0f}"
        rate += " (cache)" if encode is not None and encode.source == "cache" else ""
        cost = ["–"] * 3
        if eff and single and eff.batched.qps:
            cost = [f"{bytes_per_token(r) or 0:.1f}", f"{eff.batched.qps:.1f}", f"{single.p95_ms:.1f}"]
        quality = [f"{r.main_score:.4f}", f"[{low:.4f}, {high:.4f}]", vs_exact]
        cells = [name, *quality, *cost, rate, f"{walls.get(name, float('nan')):.0f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _result_of(results: dict, exact, flags: list[str]):
    """The run a configuration made: PLAID by its nbits, a variant by the label its name carries."""
    if "--index" in flags:
        nbits = int(flags[flags.index("--nbits") + 1])
        return results[f"{exact.model_id} (PLAID {nbits}-bit)"]
    if not flags:
        return exact
    label = {"--pool-factor": "pool", "--truncate-dim": "dim", "--quantize": "", "--dtype": ""}[flags[0]]
    value = {"bfloat16": "bf16"}.get(flags[1], flags[1])
    return results[f"{exact.model_id} ({label} {value})".replace("( ", "(")]


if __name__ == "__main__":
    main()
