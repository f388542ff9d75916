"""Which kernel the encoders' linear layers run on a CPU: torch's default (``F.linear``: MKL sgemm for
float32, oneDNN for bfloat16/float16), or oneDNN's inner product on prepacked weights
(:mod:`harness.kernels.packed`) with the feed-forward blocks' element-wise work fused in
(:mod:`harness.kernels.fusion`). For float32, inductor's CPU freezing pass emits MKL's packed sgemm
instead (``torch.ops.mkl._mkl_linear``), whose packed weight is tied to one batch size and address
and which measured no faster than oneDNN here.

Both are exact in their dtype, so the embeddings agree to float rounding (test fixtures: BERT and the
Ettin-17m-shaped ModernBERT to ~6e-7 on unit vectors, PyLate's likewise; tests/test_kernels.py holds
them to 1e-5).

``"auto"`` decides by the instruction set torch dispatches to, never by CPU vendor and never by a
timing: a measured choice flips between runs where the two are close (it did, here), and the kernel
is recorded in the results, so two runs of the same inputs would write different files. oneDNN where
torch runs AVX-512 kernels, measured faster on both such CPUs we had:

- Intel Xeon (AVX-512, AMX), 2 threads, whole encodes of SciFact documents in one process:
  Ettin-17m shape 8.85 -> 8.47 s (fp32), 3.64 -> 3.59 s (bf16); all-MiniLM-L6-v2 15.9 -> 13.6 s;
- AMD EPYC Zen 5 (issue 16): MKL's fp32 GEMM at 189-209 GFLOP/s, oneDNN's at 447 on the encoder's shape.

Elsewhere (AVX2, ARM) torch's own, unmeasured here; ``--kernels onednn`` forces oneDNN anywhere it
runs. Tiny layers (the test fixtures' 64-wide ones) are slower on oneDNN, which pays ~1 ms to create
a primitive per new batch shape: irrelevant at their size.

The oneDNN path is used only where it applies: CPU tensors of the weight's dtype with autograd off
(``torch.inference_mode`` / ``no_grad``); any other call (a GPU, training) runs torch's. The packed
weights are a cache: rebuilt after unpickling (a Ray worker), a ``.to()`` or an in-place change of the
weight, and never saved (``state_dict`` is the plain modules').
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

import harness.kernels.fusion as fusion
from harness.kernels.packed import PackedLinear, bound_caches, onednn_unavailable, to_packed, to_plain

KERNELS = ("default", "onednn")
MODES = ("auto", *KERNELS)
ONEDNN_CAPABILITIES = ("AVX512",)  # torch.backends.cpu.get_cpu_capability() values where "auto" picks it


@dataclass(frozen=True)
class KernelChoice:
    """What :func:`fast_linear` decided: ``linear`` is the kernel the model's ``nn.Linear`` layers run
    (``"onednn"`` or ``"default"``), ``mode`` what was asked, ``reason`` why, ``layers`` how many
    layers it covers, ``blocks`` how many feed-forward blocks could fuse (they do under oneDNN) and
    ``fusable`` their kinds (:func:`harness.kernels.fusion.names`)."""

    linear: str
    mode: str
    reason: str
    layers: int
    blocks: int = 0
    fusable: str = "none"

    def settings(self) -> dict[str, str]:
        """What a results file records under the encoder's ``settings``: the linear kernel, and which
        blocks ran fused into it (``"glu"``: ModernBERT's, ``"gelu"``: BERT's; ``"none"``)."""
        return {"linear": self.linear, "fused": self.fusable if self.linear == "onednn" else "none"}


def _linears(modules: Iterable[nn.Module]) -> list[nn.Linear]:
    """The plain ``nn.Linear`` (or already swapped) layers under ``modules``, each once; subclasses
    that are not ours (e.g. ``NonDynamicallyQuantizableLinear``, quantized layers) are left alone."""
    seen: dict[int, nn.Linear] = {}
    for root in modules:
        for m in root.modules():
            if isinstance(m, nn.Linear) and type(m) in (nn.Linear, PackedLinear):
                seen.setdefault(id(m), m)
    return list(seen.values())


def _set_kernel(layers: list[nn.Linear], blocks: list[nn.Module], kernel: str) -> None:
    for m in layers:
        if kernel == "onednn" and type(m) is nn.Linear:
            to_packed(m)._pack()
        elif kernel == "default" and type(m) is PackedLinear:
            to_plain(m)
    fusion.set_fused(blocks, kernel == "onednn")


def fast_linear(
    modules: nn.Module | Iterable[nn.Module], mode: str = "auto", *, device: str | torch.device = "cpu"
) -> KernelChoice:
    """Route the ``nn.Linear`` layers of ``modules`` (the backbone and the Dense layers) through the
    exact kernel ``mode`` picks for ``device``, in place, fusing the feed-forward blocks that can under
    oneDNN (:mod:`harness.kernels.fusion`); returns what was chosen (record ``.settings()``).

    ``mode``: ``"auto"`` picks oneDNN where it can run the layers' dtype and torch dispatches to one of
    ``ONEDNN_CAPABILITIES``, the default otherwise; ``"default"`` restores ``F.linear`` and
    transformers' blocks (layers swapped earlier go back to plain ``nn.Linear``); ``"onednn"`` forces
    oneDNN and raises ``RuntimeError`` saying why when this torch/CPU cannot run it for the layers'
    dtype. Off the CPU the layers keep ``F.linear`` (``"onednn"`` there is an error too). The same
    inputs on the same machine always give the same choice; calling again re-decides.
    """
    if mode not in MODES:
        raise ValueError(f"unknown linear kernel mode {mode!r} (choose from {list(MODES)})")
    roots = [modules] if isinstance(modules, nn.Module) else list(modules)
    layers, blocks = _linears(roots), fusion.fusable_blocks(roots)
    dtypes = {m.weight.dtype for m in layers}
    device = torch.device(device)
    why_not = (
        f"encoding on {device.type}, oneDNN's linear is a CPU kernel"
        if device.type != "cpu"
        else next((r for r in map(onednn_unavailable, sorted(dtypes, key=str)) if r), None)
    )
    if mode == "onednn" and why_not:
        raise RuntimeError(f"linear kernel 'onednn' was asked for but cannot run: {why_not}")
    capability = torch.backends.cpu.get_cpu_capability()
    if mode != "auto":
        kernel, reason = mode, "asked for"
    elif not layers:
        kernel, reason = "default", "no nn.Linear layers"
    elif why_not:
        kernel, reason = "default", why_not
    elif capability in ONEDNN_CAPABILITIES:
        kernel, reason = "onednn", f"torch runs {capability} kernels on this CPU"
    else:
        kernel, reason = "default", f"torch runs {capability} kernels on this CPU (oneDNN: AVX-512 only)"
    if kernel == "onednn":
        bound_caches()  # before this process's first oneDNN primitive, where it is still in time
    _set_kernel(layers, blocks, kernel)
    return KernelChoice(kernel, mode, reason, len(layers), len(blocks), fusion.names(blocks))
