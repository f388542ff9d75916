"""Which kernel the encoders' linear layers run on a CPU: torch's default (``F.linear``: MKL sgemm for
float32, oneDNN for bfloat16/float16) or oneDNN's inner product on a weight reordered once
("prepacked") into its blocked layout (``torch.ops.mkldnn._linear_pointwise`` on
``torch.ops.mkldnn._reorder_linear_weight``, the pair inductor's CPU freezing pass emits for bf16/fp16
weights; for float32 it emits MKL's packed sgemm, ``torch.ops.mkl._mkl_linear``, whose packed weight
is tied to one batch size and address and which measured no faster than oneDNN here).

Both are exact in their dtype: float32 products are computed in float32 (no bf16/tf32 shortcut, unless
``torch.backends.mkldnn.matmul.fp32_precision`` asks for one, which changes the default path too), so
the embeddings agree to float rounding (test fixtures: BERT bit for bit, the Ettin-17m-shaped
ModernBERT to 6e-7 on unit vectors, PyLate's to 6e-7 either way; tests/test_kernels.py holds them to
1e-5). Which one is faster depends on the CPU, the shapes and the thread count, so :func:`fast_linear`
measures both on the model's own shapes at load time (``"auto"``) unless told which (``"default"`` /
``"onednn"``); the choice never looks at the CPU vendor, only at what torch reports the CPU can run
(``torch.backends.mkldnn``, oneDNN's bf16/fp16 checks).

The oneDNN path is used only where it applies: CPU tensors of the weight's dtype with autograd off
(``torch.inference_mode`` / ``no_grad``); any other call (a GPU, training) runs ``F.linear``. The
packed weight is a cache: rebuilt after unpickling (a Ray worker), a ``.to()`` or an in-place change
of the weight, and never saved (``state_dict`` is the plain ``nn.Linear``'s).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("default", "onednn")
MODES = ("auto", *KERNELS)
MEASURE_ROWS = 2048  # tokens per measured product: a batch's worth, past the small-matrix regime
MEASURE_REPEATS = 7  # rounds over the model's shapes (the verdict is their median ratio)
_FRESH_ROWS = itertools.count()  # row-count offsets no measurement used before (oneDNN caches by shape)
# oneDNN must be this much faster to be chosen: the default is PyLate's own path, and noise must not
# flip the choice (this CPU, Ettin-17m: 0.86-1.17x run to run under other tenants' load)
MARGIN = 0.10


@dataclass(frozen=True)
class KernelChoice:
    """What :func:`fast_linear` decided: ``linear`` is the kernel the model's ``nn.Linear`` layers run
    (``"onednn"`` or ``"default"``), ``mode`` what was asked, ``reason`` why, ``layers`` how many
    layers it covers, ``seconds`` per kernel the measured time of one batch's products through those
    layers at the measured row count (``"auto"`` only)."""

    linear: str
    mode: str
    reason: str
    layers: int
    seconds: dict[str, float] = field(default_factory=dict)

    def settings(self) -> dict[str, str]:
        """What a results file records under the encoder's ``settings``."""
        return {"linear": self.linear}


def onednn_unavailable(dtype: torch.dtype = torch.float32) -> str | None:
    """Why oneDNN's linear cannot run ``dtype`` here, or None when it can: torch built without it,
    disabled (``torch.backends.mkldnn.enabled``), the ops missing from this torch, or (bf16/fp16) a CPU
    without the instructions oneDNN needs for them."""
    if not torch.backends.mkldnn.is_available():
        return "torch was built without oneDNN (mkldnn)"
    if not torch.backends.mkldnn.enabled:
        return "oneDNN is disabled (torch.backends.mkldnn.enabled = False)"
    ops = torch.ops.mkldnn
    if not all(hasattr(ops, name) for name in ("_linear_pointwise", "_reorder_linear_weight")):
        return f"torch {torch.__version__} has no torch.ops.mkldnn._linear_pointwise/_reorder_linear_weight"
    if dtype == torch.float32:
        return None
    check = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}
    if dtype not in check:
        return f"oneDNN linear does not run {dtype}"
    if not getattr(ops, check[dtype])():
        capability = torch.backends.cpu.get_cpu_capability()
        return f"this CPU ({capability}) has no {dtype} support in oneDNN"
    return None


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` whose CPU inference runs oneDNN on a prepacked weight (made from a plain
    ``nn.Linear`` in place by :func:`fast_linear`: same parameters, hooks, ``state_dict``).

    Contract: ``forward`` returns ``F.linear(x, weight, bias)`` up to float rounding; the packed weight
    is derived state, rebuilt when the weight's storage, dtype, device or version changes.
    """

    _packed: torch.Tensor | None
    _packed_key: tuple[Any, ...] | None

    def _pack(self) -> torch.Tensor:
        w = self.weight
        key = (w.data_ptr(), w.dtype, w.shape, 0 if w.is_inference() else w._version)
        if self._packed is None or self._packed_key != key:
            with torch.no_grad():
                self._packed = torch.ops.mkldnn._reorder_linear_weight(w.detach(), None)
            self._packed_key = key
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if (
            x.device.type != "cpu"
            or w.device.type != "cpu"
            or x.dtype != w.dtype
            or (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
        ):
            return F.linear(x, w, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self._pack(), self.bias, "none", [], "")

    def __getstate__(self) -> dict[str, Any]:
        """Pickle / deepcopy without the packed weight (an opaque oneDNN tensor has no storage to
        copy); the copy packs its own at its first forward."""
        return {**self.__dict__, "_packed": None, "_packed_key": None}


def _linears(modules: Iterable[nn.Module]) -> list[nn.Linear]:
    """The plain ``nn.Linear`` (or already swapped) layers under ``modules``, each once; subclasses
    that are not ours (e.g. ``NonDynamicallyQuantizableLinear``, quantized layers) are left alone."""
    seen: dict[int, nn.Linear] = {}
    for root in modules:
        for m in root.modules():
            if type(m) in (nn.Linear, PackedLinear):
                seen.setdefault(id(m), m)  # type: ignore[arg-type]
    return list(seen.values())


def _set_kernel(layers: list[nn.Linear], kernel: str) -> None:
    for m in layers:
        if kernel == "onednn" and type(m) is nn.Linear:
            m.__class__ = PackedLinear
            m._packed, m._packed_key = None, None
            m._pack()  # type: ignore[attr-defined]
        elif kernel == "default" and type(m) is PackedLinear:
            del m._packed, m._packed_key
            m.__class__ = nn.Linear


def _measure(layers: list[nn.Linear], rows: int, repeats: int) -> tuple[dict[str, float], float]:
    """Per kernel, the seconds the products of one batch of about ``rows`` tokens take through
    ``layers`` (best of ``repeats`` rounds), and the median over rounds of oneDNN's time / the
    default's (a median: a burst of another process's work slows a round, not the verdict).

    Each batch of an encode has its own width, so oneDNN creates its primitive again for every
    distinct layer shape (~1 ms each, measured: as much as its gain at 2k-10k rows); a fixed-shape
    timing would hide that. So a round times, per distinct (in, out, bias, dtype), one call at a row
    count no earlier call used (primitive creation included) and one more at that count (cached),
    counted once and (layers of that shape - 1) times; the kernels alternate call by call, the first
    round only warms up (MKL's buffers, oneDNN's JIT)."""
    groups: dict[tuple[Any, ...], list[nn.Linear]] = {}
    for m in layers:
        groups.setdefault((m.in_features, m.out_features, m.bias is not None, m.weight.dtype), []).append(m)
    runs = []
    for m, *_ in groups.values():
        packed = torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), None)
        runs.append(
            {
                "default": lambda x, m=m: F.linear(x, m.weight, m.bias),
                "onednn": lambda x, m=m, w=packed: torch.ops.mkldnn._linear_pointwise(
                    x, w, m.bias, "none", [], ""
                ),
            }
        )
    generator = torch.Generator().manual_seed(0)
    rounds = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            spent = dict.fromkeys(KERNELS, 0.0)
            for run, ((fan_in, _, _, dtype), members) in zip(runs, groups.items(), strict=True):
                x = torch.randn(rows + next(_FRESH_ROWS), fan_in, generator=generator).to(dtype)
                for weight in (1, len(members) - 1):  # a new shape, then a cached one
                    for kernel in KERNELS if i % 2 else KERNELS[::-1]:
                        start = time.perf_counter()
                        run[kernel](x)
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
    faster exact kernel for ``device``, in place; returns what was chosen (record ``.settings()``).

    ``mode``: ``"auto"`` measures both kernels on the layers' own shapes as one batch of ``rows``
    tokens would run them (:func:`_measure`; ``repeats`` rounds at the current
    ``torch.get_num_threads()``, ~0.3 s for Ettin-17m on 2 idle cores) and picks oneDNN only when its
    median time is at most ``1 - MARGIN`` of the default's; ``"default"`` restores ``F.linear``
    (layers swapped earlier go back to plain ``nn.Linear``); ``"onednn"`` forces oneDNN and raises
    ``RuntimeError`` saying why when this torch/CPU cannot run it for the layers' dtype. Off the CPU
    the layers keep ``F.linear`` (``"onednn"`` there is an error too). Calling again re-decides.
    """
    if mode not in MODES:
        raise ValueError(f"unknown linear kernel mode {mode!r} (choose from {list(MODES)})")
    layers = _linears([modules] if isinstance(modules, nn.Module) else modules)
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
        seconds, ratio = _measure(layers, rows, repeats)
        kernel = "onednn" if ratio <= 1 - MARGIN else "default"
        threads = torch.get_num_threads()
        reason = f"measured: oneDNN takes {ratio:.2f}x the default's time ({rows} rows, {threads} threads)"
    _set_kernel(layers, kernel)
    return KernelChoice(kernel, mode, reason, len(layers), seconds)


def rotary_halves(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int = 1
):
    """transformers' ModernBERT ``apply_rotary_pos_emb``, bit for bit, in fewer passes over memory.

    The reference computes ``x * cos + cat(-x2, x1) * sin`` in float32 (``x = [x1, x2]``, halves of the
    head dimension): five full-width passes and three temporaries. Per half this is
    ``x1 * cos1 - x2 * sin1`` and ``x2 * cos2 + x1 * sin2`` — the same products and sums (``a + (-b)``
    is exactly ``a - b`` in IEEE arithmetic), written into one output: half-width passes, no ``cat``.
    """
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    half = q.shape[-1] // 2
    c1, c2, s1, s2 = cos[..., :half], cos[..., half:], sin[..., :half], sin[..., half:]

    def rotate(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        x1, x2 = x[..., :half], x[..., half:]
        out = torch.empty(
            torch.broadcast_shapes(x.shape, cos.shape),
            dtype=torch.promote_types(x.dtype, cos.dtype),
            device=x.device,  # the inputs' device (a GPU's tensors must not meet a CPU output)
        )
        first, second = out[..., :half], out[..., half:]
        torch.mul(x1, c1, out=first)
        first.sub_(x2 * s1)
        torch.mul(x2, c2, out=second)
        second.add_(x1 * s2)
        return out

    return rotate(q).to(q.dtype), rotate(k).to(k.dtype)


def fast_rotary(model: nn.Module, enable: bool = True) -> str:
    """Use :func:`rotary_halves` for ``model``'s architecture (``enable=False``: transformers' own
    again) when its modeling module applies transformers' standard rotary embedding (ModernBERT);
    returns the one in use: ``"halves"``, or ``"default"`` (also for a model without one, BERT, or
    whose function someone else replaced). Process-wide for that architecture: the function is a
    module global that transformers looks up at every call (same numbers either way, bit for bit)."""
    module = sys.modules.get(type(model).__module__)
    current = getattr(module, "apply_rotary_pos_emb", None)
    reference = getattr(module, "_harness_reference_rotary", None)
    if current is rotary_halves:
        if not enable:
            module.apply_rotary_pos_emb = reference  # type: ignore[union-attr]
        return "halves" if enable else "default"
    if not enable or current is None or getattr(current, "__qualname__", "") != "apply_rotary_pos_emb":
        return "default"
    module._harness_reference_rotary = current  # type: ignore[union-attr]
    module.apply_rotary_pos_emb = rotary_halves  # type: ignore[union-attr]
    return "halves"
