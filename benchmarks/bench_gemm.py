"""Matrix-product peaks of this CPU, for the roofline every encoder benchmark states.

Times ``x [rows, in] @ W^T [in, out]`` with torch's default path (``F.linear``: MKL sgemm for float32,
oneDNN for bfloat16) and oneDNN on a prepacked weight (:mod:`harness.kernels`), interleaved, in float32
and bfloat16, at a fixed thread count (default 2), best of N; then numpy's BLAS (float32) in a pass of
its own. The machine these run on is shared, so best-of-N is the figure to read (``--json`` lists
every repeat under ``runs``).

    python benchmarks/bench_gemm.py [--threads 2] [--repeats 5] [--rows 2048 9600 16384] [--json]

Other benchmarks import :func:`matmul_peaks` (the encoder's largest product, 9600 x 256 @ 256 x 768)
and :func:`roofline` to report encoder throughput as a fraction of the fp32 and bf16 peaks measured in
the same run, with :func:`linear_flops_per_token` as the model's FLOPs per token.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import nn

from harness.kernels import onednn_unavailable

ENCODER_SHAPE = (9600, 256, 768)  # rows (32 texts x 300 tokens), in, out: Ettin-17m's Wqkv / Wi
# Ettin-17m's linear shapes (in, out): Wqkv and Wi, attention Wo, MLP Wo, the two Dense layers
ETTIN_SHAPES = [(256, 768), (256, 256), (384, 256), (256, 512), (512, 48)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _kernels(x: torch.Tensor, w: torch.Tensor, numpy: bool) -> dict[str, Callable[[], Any]]:
    """The products to time for ``x @ w.T``: torch's default and oneDNN prepacked (when it runs this
    dtype here), or numpy's alone (float32; never interleaved with torch's, whose OpenMP threads and
    OpenBLAS's pthreads would spin against each other on the same cores)."""
    if numpy:
        a, b = x.float().numpy(), np.ascontiguousarray(w.float().numpy().T)
        return {"numpy": functools.partial(np.matmul, a, b)}
    run: dict[str, Callable[[], Any]] = {"default": functools.partial(F.linear, x, w)}
    if onednn_unavailable(w.dtype) is None:
        packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
        run["onednn"] = functools.partial(torch.ops.mkldnn._linear_pointwise, x, packed, None, "none", [], "")
    return run


def gemm_gflops(
    rows: int,
    fan_in: int,
    fan_out: int,
    dtype: torch.dtype,
    *,
    repeats: int = 9,
    min_seconds: float = 0.02,
    numpy: bool = False,
) -> dict[str, dict[str, Any]]:
    """GFLOP/s of ``[rows, fan_in] @ [fan_in, fan_out]`` per kernel at the current thread count:
    ``{kernel: {"gflops": best, "runs": [each repeat]}}``; each repeat times enough calls to last
    ``min_seconds`` (short, so that some repeats fall between other tenants' bursts), torch's kernels
    interleaved within a repeat; ``numpy``: numpy's matmul instead (float32)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, fan_in, generator=g).to(dtype)
    w = (torch.randn(fan_out, fan_in, generator=g) / fan_in**0.5).to(dtype)
    run = _kernels(x, w, numpy)
    flops = 2.0 * rows * fan_in * fan_out
    calls, runs = {}, {name: [] for name in run}
    with torch.inference_mode():
        for name, fn in run.items():
            fn()
            start = time.perf_counter()
            fn()
            calls[name] = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-6)))
        for _ in range(repeats):
            for name, fn in run.items():
                start = time.perf_counter()
                for _ in range(calls[name]):
                    fn()
                runs[name].append(flops * calls[name] / (time.perf_counter() - start) / 1e9)
    return {name: {"gflops": max(r), "runs": [round(v, 1) for v in r]} for name, r in runs.items()}


def matmul_peaks(threads: int = 2, shape: tuple[int, int, int] = ENCODER_SHAPE, repeats: int = 9) -> dict:
    """fp32 and bf16 matrix-product peaks at ``threads`` threads on ``shape`` (rows, in, out), best
    kernel of each dtype: ``{"fp32": GFLOP/s, "bf16": GFLOP/s, "kernels": {dtype: {kernel: GFLOP/s}},
    "shape": [...], "threads": n, "cpu": torch's CPU capability}``. Takes ~1-2 s; restores the thread
    count. bf16 is measured on every CPU (without bf16 instructions it is the emulated speed)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kernels = {
            name: {k: v["gflops"] for k, v in gemm_gflops(*shape, dtype, repeats=repeats).items()}
            for name, dtype in DTYPES.items()
        }
    finally:
        torch.set_num_threads(before)
    return {
        **{name: round(max(k.values()), 1) for name, k in kernels.items()},
        "kernels": {name: {k: round(v, 1) for k, v in ks.items()} for name, ks in kernels.items()},
        "shape": list(shape),
        "threads": threads,
        "cpu": torch.backends.cpu.get_cpu_capability(),
    }


def linear_flops_per_token(modules: nn.Module | Iterable[nn.Module]) -> int:
    """FLOPs one token costs in the ``nn.Linear`` layers of ``modules`` (2 x in x out each): the
    matrix-product work of an encoder, without attention's scores (small at these widths)."""
    roots = [modules] if isinstance(modules, nn.Module) else list(modules)
    layers = {id(m): m for root in roots for m in root.modules() if isinstance(m, nn.Linear)}
    return sum(2 * m.in_features * m.out_features for m in layers.values())


def roofline(tokens_per_second: float, flops_per_token: int, peaks: dict) -> dict[str, float]:
    """Encoder throughput as achieved GFLOP/s and as a fraction of each measured peak."""
    achieved = tokens_per_second * flops_per_token / 1e9
    return {
        "gflops": round(achieved, 1),
        "of_fp32_peak": round(achieved / peaks["fp32"], 3),
        "of_bf16_peak": round(achieved / peaks["bf16"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rows", type=int, nargs="+", default=[2048, 9600, 16384])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{args.threads} threads, best of {args.repeats} (shared machine: read the best)",
        file=sys.stderr,
    )
    table = []
    for rows in args.rows:
        for fan_in, fan_out in ETTIN_SHAPES:
            for name, dtype in DTYPES.items():
                result = gemm_gflops(rows, fan_in, fan_out, dtype, repeats=args.repeats)
                table.append({"rows": rows, "in": fan_in, "out": fan_out, "dtype": name, **result})
    peaks = matmul_peaks(args.threads, repeats=args.repeats)
    with threadpool_limits(args.threads, user_api="blas"):  # numpy last: its threads spin after a call
        for row in table:
            if row["dtype"] == "fp32":
                row.update(gemm_gflops(row["rows"], row["in"], row["out"], torch.float32, numpy=True))
    if args.json:
        print(json.dumps({"peaks": peaks, "table": table}, indent=1))
        return
    print("  rows x  in @  in x out  dtype  GFLOP/s, best of repeats")
    for row in table:
        cells = "  ".join(f"{k} {row[k]['gflops']:6.0f}" for k in ("default", "onednn", "numpy") if k in row)
        print(
            f"{row['rows']:6d} x {row['in']:3d} @ {row['in']:3d} x {row['out']:3d}  {row['dtype']}   {cells}"
        )
    print(f"peaks on {peaks['shape']}: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    print(f"per kernel: {peaks['kernels']}")


if __name__ == "__main__":
    main()
