"""oneDNN's inner product on a prepacked weight, with its element-wise epilogue fused in.

``torch.ops.mkldnn._linear_pointwise`` runs ``x @ W.T + b`` on a weight reordered once into oneDNN's
blocked layout (``_reorder_linear_weight``, the pair inductor's CPU freezing pass emits for bf16/fp16
weights) and applies a post-op to the result while it is still in cache: a unary one (GELU) or a
binary one with a second tensor of the output's shape (a product; oneDNN also offers sums, which
measured no gain as ModernBERT's residual adds and are not used). :func:`torch_linear` is the same
composition in torch: the reference, and what runs wherever oneDNN's cannot (a GPU, autograd, a
dtype mismatch). Both are exact in their dtype (float32 products in float32: no bf16/tf32 shortcut
unless ``torch.backends.mkldnn.matmul.fp32_precision`` asks for one, which changes torch's path too);
they differ by float rounding only (oneDNN's GELU evaluates erf by its own polynomial: ~1 ulp).
"""

from __future__ import annotations

import os
from typing import Any, cast, overload

import torch
import torch.nn.functional as F
from torch import nn

# post-op name -> what it does to y = x @ W.T + b (binary ones take ``other``, y's shape)
POSTS = {
    "none": lambda y, other: y,
    "gelu": lambda y, other: F.gelu(y),  # exact (erf) GELU, transformers' "gelu"
    "mul": lambda y, other: y * other,
}
Part = tuple[int, int]  # (index, count): rows index/count of the weight split into count equal blocks
WHOLE: Part = (0, 1)


# oneDNN and ideep (torch's wrapper) each keep the primitives of the last 1024 input shapes, ~0.8 MB
# apiece with their JIT code. An encode meets a new row count batch after batch, so those caches would
# grow peak RSS with the corpus (measured, Ettin-17m shape: +0.6 GB at 1500 documents, +0.8 GB at
# 3000); a batch's layers share a handful of shapes, so 16 each costs nothing (+75 MB at 3000
# documents, with numba's). Environment variables: they take effect only if set before the process's
# first oneDNN primitive, and a value the user set wins.
CACHE_CAPACITY = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "LRU_CACHE_CAPACITY": "16"}


def bound_caches() -> None:
    """Cap oneDNN's and ideep's primitive caches (:data:`CACHE_CAPACITY`) unless the user set them."""
    for name, value in CACHE_CAPACITY.items():
        os.environ.setdefault(name, value)


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


@overload
def rows(tensor: torch.Tensor, part: Part) -> torch.Tensor: ...
@overload
def rows(tensor: None, part: Part) -> None: ...
@overload
def rows(tensor: torch.Tensor | None, part: Part) -> torch.Tensor | None: ...
def rows(tensor: torch.Tensor | None, part: Part) -> torch.Tensor | None:
    """Block ``part`` of ``tensor``'s first dimension (a weight's or a bias's output rows)."""
    if tensor is None or part == WHOLE:
        return tensor
    index, count = part
    return tensor.chunk(count, dim=0)[index]


def pack(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` reordered into oneDNN's blocked layout (an opaque tensor :func:`onednn_linear` takes)."""
    with torch.no_grad():
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), None)


def onednn_linear(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, post: str = "none", other: Any = None
) -> torch.Tensor:
    """``POSTS[post](x @ W.T + bias, other)`` in one oneDNN call on ``packed`` (from :func:`pack`)."""
    if post == "mul":
        return torch.ops.mkldnn._linear_pointwise.binary(x, other.contiguous(), packed, bias, post)
    algorithm = "none" if post == "gelu" else ""  # oneDNN's "none" GELU algorithm is erf's
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, post, [], algorithm)


def torch_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, post: str = "none", other: Any = None
) -> torch.Tensor:
    """The composition :func:`onednn_linear` computes, in torch (``F.linear``, then the post-op)."""
    return POSTS[post](F.linear(x, weight, bias), other)


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` whose CPU inference runs oneDNN on a prepacked weight (made from a plain
    ``nn.Linear`` in place by :func:`harness.kernels.linear.fast_linear`: same parameters, hooks,
    ``state_dict``).

    Contract: ``forward`` returns ``F.linear(x, weight, bias)`` up to float rounding, :meth:`fused` a
    block of its rows with a post-op; the packed weights are derived state, rebuilt when the weight's
    storage, dtype, device or version changes.
    """

    _packed: dict[Part, torch.Tensor]
    _packed_key: tuple[Any, ...] | None

    def reset(self) -> PackedLinear:
        """Drop the packed weights (they are rebuilt at the next call); returns self."""
        self._packed, self._packed_key = {}, None
        return self

    def _pack(self, part: Part = WHOLE) -> torch.Tensor:
        w = self.weight
        key = (w.data_ptr(), w.dtype, w.shape, 0 if w.is_inference() else w._version)
        if self._packed_key != key:
            self._packed, self._packed_key = {}, key
        if part not in self._packed:
            self._packed[part] = pack(rows(w, part))
        return self._packed[part]

    def runs_onednn(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` takes oneDNN's path (CPU inference in the weight's dtype)."""
        w = self.weight
        return (
            x.device.type == "cpu"
            and w.device.type == "cpu"
            and x.dtype == w.dtype
            and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
        )

    def fused(
        self, x: torch.Tensor, post: str = "none", other: Any = None, part: Part = WHOLE
    ) -> torch.Tensor:
        """``POSTS[post](x @ W_p.T + b_p, other)`` with ``W_p``, ``b_p`` the rows ``part`` of the weight
        and bias: one oneDNN call where :meth:`runs_onednn`, :func:`torch_linear` otherwise."""
        bias = rows(self.bias, part)
        if not self.runs_onednn(x):
            return torch_linear(x, rows(self.weight, part), bias, post, other)
        return onednn_linear(x, self._pack(part), bias, post, other)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fused(x)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle / deepcopy without the packed weights (an opaque oneDNN tensor has no storage to
        copy); the copy packs its own at its first call."""
        return {**self.__dict__, "_packed": {}, "_packed_key": None}


def to_packed(linear: nn.Linear) -> PackedLinear:
    """``linear`` made a :class:`PackedLinear` in place (its packed weights built at the next call)."""
    linear.__class__ = PackedLinear
    return cast(PackedLinear, linear).reset()  # its class, just set


def to_plain(linear: PackedLinear) -> nn.Linear:
    """``linear`` made a plain ``nn.Linear`` again in place, its packed weights dropped."""
    del linear._packed, linear._packed_key
    plain: nn.Linear = linear
    plain.__class__ = nn.Linear
    return plain
