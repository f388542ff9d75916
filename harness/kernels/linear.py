"""Which kernel the encoders' linear layers run on a CPU: torch's default (``F.linear``: MKL sgemm for
float32, oneDNN for bfloat16/float16), or oneDNN's inner product on prepacked weights
(:mod:`harness.kernels.packed`) with the feed-forward blocks' element-wise work fused in
(:mod:`harness.kernels.fusion`). For float32, inductor's CPU freezing pass emits MKL's packed sgemm
instead (``torch.ops.mkl._mkl_linear``), whose packed weight is tied to one batch size and address
and which measured no faster than oneDNN here.

Both are exact in their dtype, so the embeddings agree to float rounding (test fixtures: BERT bit for
bit, the Ettin-17m-shaped ModernBERT to 6e-7 on unit vectors, PyLate's to 6e-7 either way;
tests/test_kernels.py holds them to 1e-5). Which one is faster depends on the CPU, the shapes and the
thread count, so :func:`fast_linear` measures both on the model's own shapes, epilogues included, at
load time (``"auto"``) unless told which (``"default"`` / ``"onednn"``); the choice never looks at the
CPU vendor, only at what torch reports the CPU can run (``torch.backends.mkldnn``, oneDNN's bf16/fp16
checks).

The oneDNN path is used only where it applies: CPU tensors of the weight's dtype with autograd off
(``torch.inference_mode`` / ``no_grad``); any other call (a GPU, training) runs torch's. The packed
weights are a cache: rebuilt after unpickling (a Ray worker), a ``.to()`` or an in-place change of the
weight, and never saved (``state_dict`` is the plain modules').
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import harness.kernels.fusion as fusion
from harness.kernels.packed import PackedLinear, onednn_linear, onednn_unavailable, pack, torch_linear

KERNELS = ("default", "onednn")
MODES = ("auto", *KERNELS)
MEASURE_ROWS = 2048  # tokens per measured product: a batch's worth, past the small-matrix regime
MEASURE_REPEATS = 7  # rounds over the model's shapes (the verdict is their median ratio)
_FRESH_ROWS = itertools.count()  # row-count offsets no measurement used before (oneDNN caches by shape)
# oneDNN (with its fused blocks) is kept unless it measures this much slower. The measurement is a
# proxy: whole encodes (Ettin-17m shape, 2 threads, this CPU) ran 0-4% faster on oneDNN, float32 and
# bfloat16 alike, while the per-layer timing put it at 0.84-1.13x torch's, run to run; a CPU whose
# default path is far faster (or far slower: the AMD Zen 5, MKL's float32 at 45% of oneDNN's
# speed) is decided either way
MARGIN = 0.25


@dataclass(frozen=True)
class KernelChoice:
    """What :func:`fast_linear` decided: ``linear`` is the kernel the model's ``nn.Linear`` layers run
    (``"onednn"`` or ``"default"``), ``mode`` what was asked, ``reason`` why, ``layers`` how many
    layers it covers, ``blocks`` how many feed-forward blocks could fuse (they do under oneDNN) and
    ``fusable`` their kinds (:func:`harness.kernels.fusion.names`), ``seconds`` per kernel the
    measured time of one batch through those layers and blocks at the measured row count
    (``"auto"`` only)."""

    linear: str
    mode: str
    reason: str
    layers: int
    blocks: int = 0
    fusable: str = "none"
    seconds: dict[str, float] = field(default_factory=dict)

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
            if type(m) in (nn.Linear, PackedLinear):
                seen.setdefault(id(m), m)  # type: ignore[arg-type]
    return list(seen.values())


def _set_kernel(layers: list[nn.Linear], blocks: list[nn.Module], kernel: str) -> None:
    for m in layers:
        if kernel == "onednn" and type(m) is nn.Linear:
            m.__class__ = PackedLinear
            m.reset()._pack()
        elif kernel == "default" and type(m) is PackedLinear:
            del m._packed, m._packed_key
            m.__class__ = nn.Linear
    fusion.set_fused(blocks, kernel == "onednn")


@dataclass(frozen=True)
class _Site:
    """Modules of one shape: what each kernel computes on one of them, and how many there are."""

    fan_in: int
    dtype: torch.dtype
    run: fusion.Run
    count: int


def _sites(layers: list[nn.Linear], blocks: list[nn.Module]) -> list[_Site]:
    """What each kernel runs, grouped by shape (kind, in, out, bias, dtype). A fusable block's linear
    layer is measured with its block's fused part (e.g. product, GELU and gate product), the other
    layers as plain products."""
    in_blocks = {id(fusion.linear_of(b)) for b in blocks}
    plain = [(m, None) for m in layers if id(m) not in in_blocks]
    groups: dict[tuple[Any, ...], list[nn.Module]] = {}
    for m, found in [*((b, fusion.kind_of(b)) for b in blocks), *plain]:
        w = fusion.linear_of(m) if found else m
        key = (found and found.name, w.in_features, w.out_features, w.bias is not None, w.weight.dtype)
        groups.setdefault(key, []).append(m)
    sites = []
    for (kind, fan_in, *_, dtype), members in groups.items():
        m = members[0]
        if kind:
            run = fusion.kind_of(m).runs(m)  # type: ignore[union-attr]
        else:
            packed = pack(m.weight)
            run = {
                "default": lambda x, m=m: torch_linear(x, m.weight, m.bias),
                "onednn": lambda x, m=m, w=packed: onednn_linear(x, w, m.bias),
            }
        sites.append(_Site(fan_in, dtype, run, len(members)))
    return sites


def _measure(
    layers: list[nn.Linear], blocks: list[nn.Module], rows: int, repeats: int
) -> tuple[dict[str, float], float]:
    """Per kernel, the seconds one batch of about ``rows`` tokens takes through ``layers`` and
    ``blocks`` (best of ``repeats`` rounds), and the median over rounds of oneDNN's time / the
    default's (a median: a burst of another process's work slows a round, not the verdict).

    Each batch of an encode has its own width, so oneDNN creates its primitive again for every
    distinct layer shape (~1 ms each, measured: as much as its gain at 2k-10k rows); a fixed-shape
    timing would hide that. So a round times, per distinct shape, one call at a row count no earlier
    call used (primitive creation included) and one more at that count (cached), counted once and
    (members of that shape - 1) times; the kernels alternate call by call, the first round only warms
    up (MKL's buffers, oneDNN's JIT)."""
    sites = _sites(layers, blocks)
    generator = torch.Generator().manual_seed(0)
    rounds = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            spent = dict.fromkeys(KERNELS, 0.0)
            for site in sites:
                x = torch.randn(rows + next(_FRESH_ROWS), site.fan_in, generator=generator).to(site.dtype)
                for weight in (1, site.count - 1):  # a new shape, then a cached one
                    for kernel in KERNELS if i % 2 else KERNELS[::-1]:
                        start = time.perf_counter()
                        site.run[kernel](x)
                        spent[kernel] += weight * (time.perf_counter() - start)
            rounds.append(spent)
    rounds = rounds[1:]
    ratio = statistics.median(r["onednn"] / r["default"] for r in rounds)
    return {k: min(r[k] for r in rounds) for k in KERNELS}, ratio


def fast_linear(
    modules: nn.Module | Iterable[nn.Module],
    mode: str = "auto",
    *,
    device: str | torch.device = "cpu",
    rows: int = MEASURE_ROWS,
    repeats: int = MEASURE_REPEATS,
) -> KernelChoice:
    """Route the ``nn.Linear`` layers of ``modules`` (the backbone and the Dense layers) through the
    faster exact kernel for ``device``, in place, fusing the feed-forward blocks that can under oneDNN
    (:mod:`harness.kernels.fusion`); returns what was chosen (record ``.settings()``).

    ``mode``: ``"auto"`` measures both kernels on the layers' and blocks' own shapes as one batch of
    ``rows`` tokens would run them (:func:`_measure`; ``repeats`` rounds at the current
    ``torch.get_num_threads()``, ~0.3 s for Ettin-17m on 2 idle cores) and picks oneDNN only when its
    median time is below ``1 + MARGIN`` times the default's; ``"default"`` restores ``F.linear``
    (layers swapped earlier go back to plain ``nn.Linear``); ``"onednn"`` forces oneDNN and raises
    ``RuntimeError`` saying why when this torch/CPU cannot run it for the layers' dtype. Off the CPU
    the layers keep ``F.linear`` (``"onednn"`` there is an error too). Calling again re-decides.
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
    seconds: dict[str, float] = {}
    if mode != "auto":
        kernel, reason = mode, "asked for"
    elif not layers:
        kernel, reason = "default", "no nn.Linear layers"
    elif why_not:
        kernel, reason = "default", why_not
    else:
        seconds, ratio = _measure(layers, blocks, rows, repeats)
        kernel = "onednn" if ratio < 1 + MARGIN else "default"
        threads = torch.get_num_threads()
        reason = f"measured: oneDNN takes {ratio:.2f}x the default's time ({rows} rows, {threads} threads)"
    _set_kernel(layers, blocks, kernel)
    return KernelChoice(kernel, mode, reason, len(layers), len(blocks), fusion.names(blocks), seconds)
