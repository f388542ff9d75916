"""Feed-forward blocks whose element-wise work runs inside the linear layer before it, as oneDNN
post-ops (:mod:`harness.kernels.packed`), instead of as separate passes over memory.

- ModernBERT's GLU (Shazeer, "GLU Variants Improve Transformer", 2020) computes
  ``Wo(gelu(input) * gate)`` with ``[input, gate] = Wi(x)``: a ``[T, 2I]`` product, then GELU and a
  product over ``[T, I]`` each. Fused: ``act = gelu(x @ Wi_input.T)`` (GELU post-op), then
  ``x @ Wi_gate.T * act`` (mul post-op): two oneDNN calls on the two row blocks of ``Wi``, no pass of
  their own for the GELU or the product. Measured (Ettin-17m shape, 4096 tokens, 2 threads): the
  MLP 7.4 -> 6.2 ms per layer.
- BERT's intermediate layer computes ``gelu(dense(x))``: the GELU becomes the product's post-op.

Same products and sums, so the same numbers up to float rounding (oneDNN's erf: ~1 ulp; tests hold
embeddings to 1e-5). A block fuses only when it is exactly one of those: transformers' class, the erf
GELU (``"gelu"``), a plain or packed ``nn.Linear``. Fusing changes its class in place to a subclass
(same parameters, ``state_dict``, hooks) whose forward falls back to transformers' own wherever
oneDNN's path does not apply (GPU, autograd, training with dropout).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from transformers.activations import GELUActivation
from transformers.models.bert.modeling_bert import BertIntermediate
from transformers.models.modernbert.modeling_modernbert import ModernBertMLP

from harness.kernels.packed import PackedLinear, to_packed

INPUT, GATE = (0, 2), (1, 2)  # row blocks of ModernBERT's Wi: transformers' ``chunk(2, dim=-1)`` order


class FusedModernBertMLP(ModernBertMLP):
    """``ModernBertMLP`` with GELU and the gate product fused into ``Wi``'s two oneDNN calls."""

    Wi: PackedLinear

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.Wi.runs_onednn(hidden_states) or (self.training and self.drop.p > 0):
            return super().forward(hidden_states)
        act = self.Wi.fused(hidden_states, "gelu", part=INPUT)
        return self.Wo(self.Wi.fused(hidden_states, "mul", act, part=GATE))


class FusedBertIntermediate(BertIntermediate):
    """``BertIntermediate`` with its GELU fused into ``dense``'s oneDNN call."""

    dense: PackedLinear

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dense.fused(hidden_states, "gelu")  # falls back to F.linear, then F.gelu


@dataclass(frozen=True)
class Fusion:
    """One kind of fusable block: its fused class, the attributes holding its linear layer and its
    activation, and what the results call it."""

    fused: type[nn.Module]
    linear: str
    act: str
    name: str


FUSIONS: dict[type[nn.Module], Fusion] = {
    ModernBertMLP: Fusion(FusedModernBertMLP, "Wi", "act", "glu"),
    BertIntermediate: Fusion(FusedBertIntermediate, "dense", "intermediate_act_fn", "gelu"),
}
_ORIGINAL = {f.fused: original for original, f in FUSIONS.items()}


def kind_of(block: nn.Module) -> Fusion | None:
    """How ``block`` fuses, or None when it cannot (not transformers' class, another activation, a
    linear layer that is not a plain or packed ``nn.Linear``)."""
    found = FUSIONS.get(_ORIGINAL.get(type(block), type(block)))
    if found is None:
        return None
    act = getattr(block, found.act, None)
    exact_gelu = type(act) is GELUActivation and act.act is torch.nn.functional.gelu
    linear_ok = type(getattr(block, found.linear, None)) in (nn.Linear, PackedLinear)
    return found if exact_gelu and linear_ok else None


def fusable_blocks(modules: Iterable[nn.Module]) -> list[nn.Module]:
    """The fusable blocks under ``modules``, each once."""
    seen: dict[int, nn.Module] = {}
    for root in modules:
        for m in root.modules():
            if kind_of(m):
                seen.setdefault(id(m), m)
    return list(seen.values())


def set_fused(blocks: Iterable[nn.Module], fused: bool) -> None:
    """Fuse ``blocks`` (their linear layer becomes a :class:`PackedLinear`) or restore transformers'
    classes (the linear layer is left to the caller: :func:`harness.kernels.linear.fast_linear`)."""
    for block in blocks:
        found = _fusion(block)
        if fused:
            linear = getattr(block, found.linear)
            if type(linear) is not PackedLinear:
                to_packed(linear)
            block.__class__ = found.fused
        else:
            block.__class__ = _ORIGINAL.get(type(block), type(block))


def names(blocks: Iterable[nn.Module]) -> str:
    """What the results record for ``blocks`` fused: their kinds' names, sorted ("glu", "gelu")."""
    return ",".join(sorted({_fusion(b).name for b in blocks})) or "none"


def _fusion(block: nn.Module) -> Fusion:
    """:func:`kind_of` a block known to fuse (one of :func:`fusable_blocks`)."""
    found = kind_of(block)
    assert found is not None, type(block)
    return found
