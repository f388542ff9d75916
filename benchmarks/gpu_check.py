"""GPU checks for a lent GPU machine (issue 12), one short run; CI has no GPU, so this is not a test.

1. Parity: an Ettin-17m-shaped PyLate checkpoint (random weights) encodes 256 SciFact abstracts
   (or synthetic text when ../shared is absent) on the CPU and on CUDA in fp32: max |difference|
   of the token embeddings, same token counts; and bf16 / fp16 on CUDA against CPU fp32.
2. Throughput: documents of 300 tokens at batch 32 and 128 on CUDA (fp32, bf16): tokens/s and peak
   GPU memory (``torch.cuda.max_memory_allocated``), after one warm-up batch.

    python benchmarks/gpu_check.py [--workdir /tmp/gpu_check]      # prints one JSON line per check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def texts(n: int) -> list[str]:
    try:
        from tests.model_fixtures import scifact_texts

        return scifact_texts(n)
    except (OSError, FileNotFoundError):
        return [" ".join(f"word{(i * 7 + j) % 997}" for j in range(250)) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gpu_check"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from harness.encode import load_encoder
    from tests.model_fixtures import build_ettin_like_checkpoint

    assert torch.cuda.is_available(), "no CUDA device visible"
    model = args.workdir / "ettin-17m-like"
    if not (model / "modules.json").exists():
        build_ettin_like_checkpoint(model, vocab_size=50368, seed=0)
    sample = texts(256)
    cpu = load_encoder(model).encode(sample, is_query=False, show_progress=False)
    for dtype in ("float32", "bfloat16", "float16"):
        gpu = load_encoder(model, device="cuda", dtype=dtype).encode(
            sample, is_query=False, show_progress=False
        )
        same_counts = bool(np.array_equal(cpu.offsets, gpu.offsets))
        diff = float(np.abs(cpu.vectors - gpu.vectors).max()) if same_counts else None
        print(
            json.dumps(
                {
                    "check": "parity vs cpu fp32",
                    "dtype": dtype,
                    "same_token_counts": same_counts,
                    "max_abs_diff": diff,
                    "device": torch.cuda.get_device_name(),
                }
            )
        )
    long_texts = [" ".join(f"word{(i * 13 + j) % 991}" for j in range(400)) for i in range(1024)]
    for dtype in ("float32", "bfloat16"):
        encoder = load_encoder(model, device="cuda", dtype=dtype, document_length=300)
        for batch in (32, 128):
            encoder.encode(long_texts[:batch], is_query=False, batch_size=batch, show_progress=False)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            out = encoder.encode(long_texts, is_query=False, batch_size=batch, show_progress=False)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            print(
                json.dumps(
                    {
                        "check": "throughput",
                        "dtype": dtype,
                        "batch": batch,
                        "tokens_per_s": out.input_tokens / seconds,
                        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20,
                    }
                )
            )


if __name__ == "__main__":
    main()
