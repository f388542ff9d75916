"""ModernBERT's rotary tables (cos and sin of position x frequency, Su et al., "RoFormer", 2021)
computed once when a model loads instead of in every forward: the same bits as transformers'
``ModernBertRotaryEmbedding.forward`` (an element-wise function of one position and one frequency,
whatever the batch), and the same bits in every forward of every process.

Why: torch's float32 ``cos`` on the CPU has been seen to return low-accuracy values for the calling
thread's share of its first large call in a process (cos(1.0) = 0.5403335 instead of 0.5403023; 3 to
5 processes in 12 on an Intel Xeon, none in 24 on an AMD EPYC Zen 4). transformers computes the tables
in every forward, so the first batch a process encoded could differ from all later ones in the last
bits (up to 9e-7 in the embeddings). Here the tables are computed after a small single-threaded
warm-up call, twice, and kept only when the two computations agree bit for bit.

Positions past the table (a text longer than the encoder's token limit, which the encoders never
build) and RoPE types that rescale with the sequence ("dynamic", "longrope") use transformers' own
forward.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers.models.modernbert.modeling_modernbert import ModernBertRotaryEmbedding

STATIC_ROPE_TYPES = frozenset({"default", "linear"})  # tables that do not depend on the sequence length
_ATTEMPTS = 3


class TabulatedModernBertRotaryEmbedding(ModernBertRotaryEmbedding):
    """``ModernBertRotaryEmbedding`` that looks its cos/sin rows up in tables computed at load
    (:func:`tabulate_rotary`), keyed by the forward's extra arguments (the layer type)."""

    harness_tables: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]]

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor, *args: Any) -> tuple[torch.Tensor, ...]:
        table = self.harness_tables.get(args)
        if table is None or position_ids.numel() == 0 or int(position_ids.max()) >= len(table[0]):
            return super().forward(x, position_ids, *args)
        cos, sin = table
        if cos.device != x.device:
            cos, sin = self.harness_tables[args] = cos.to(x.device), sin.to(x.device)
        return cos[position_ids].to(x.dtype), sin[position_ids].to(x.dtype)


def _static(module: ModernBertRotaryEmbedding) -> bool:
    rope_type = getattr(module, "rope_type", "default")
    types = rope_type.values() if isinstance(rope_type, dict) else [rope_type]
    return all(t in STATIC_ROPE_TYPES for t in types)


def _layer_keys(module: ModernBertRotaryEmbedding) -> list[tuple[Any, ...]]:
    """The extra forward arguments the model calls ``module`` with: each layer type (transformers
    >= 5), or none (one rotary module per attention layer, transformers 4.x)."""
    types = getattr(module, "layer_types", None)
    return [(t,) for t in types] if types else [()]


def _table(
    module: ModernBertRotaryEmbedding, positions: int, key: tuple[Any, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' own cos/sin for positions ``0..positions-1`` (float32 ``[positions, dim]``),
    computed until two computations agree bit for bit (a RuntimeError after :data:`_ATTEMPTS`)."""
    device = next((b.device for b in module.buffers()), torch.device("cpu"))
    x = torch.empty(0, dtype=torch.float32, device=device)
    ids = torch.arange(positions, device=device)[None]
    torch.linspace(0, 1, 64, device=device).cos()  # warm-up: one small call, on this thread alone
    torch.linspace(0, 1, 64, device=device).sin()
    previous = None
    with torch.no_grad():
        for _ in range(_ATTEMPTS):
            cos, sin = (t[0].float().clone() for t in ModernBertRotaryEmbedding.forward(module, x, ids, *key))
            if previous is not None and torch.equal(previous[0], cos) and torch.equal(previous[1], sin):
                return cos, sin
            previous = cos, sin
    raise RuntimeError(f"rotary tables for {key or 'the model'} differed between {_ATTEMPTS} computations")


def tabulate_rotary(model: torch.nn.Module, positions: int) -> int:
    """Give every ``ModernBertRotaryEmbedding`` under ``model`` (with a static RoPE type) tables for
    positions ``0..positions-1``, in place (its class becomes
    :class:`TabulatedModernBertRotaryEmbedding`; parameters and ``state_dict`` unchanged); returns how
    many modules now use tables (0 for a model without rotary positions, e.g. BERT)."""
    count = 0
    for module in model.modules():
        if not isinstance(module, ModernBertRotaryEmbedding) or not _static(module):
            continue
        tables = {key: _table(module, positions, key) for key in _layer_keys(module)}
        module.__class__ = TabulatedModernBertRotaryEmbedding
        cast(TabulatedModernBertRotaryEmbedding, module).harness_tables = tables  # its class, just set
        count += 1
    return count
