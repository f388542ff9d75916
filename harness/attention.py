"""Attention whose memory grows linearly with the sequence: what lets a 32k-token document encode in
a few GB on a CPU (REFERENCE §8: LongEmbed at 32k).

transformers' default ("sdpa") builds a ``[batch, 1, T, T]`` mask for every layer — 1 GB of booleans
at 32k tokens, before any attention is computed — and gives ModernBERT's sliding-window layers the
full ``T x T`` product. This implementation, registered with transformers' attention and mask
interfaces as ``"harness_blockwise"``, keeps the mask as one key-padding row per text and:

- global layers: one ``scaled_dot_product_attention`` call with a ``[batch, 1, 1, T]`` mask; torch's
  CPU flash kernel (and the GPU's memory-efficient kernel) walk the keys in blocks, so scores are
  never materialised (Dao et al., "FlashAttention", NeurIPS 2022; Rabe & Staats, "Self-attention
  does not need O(n^2) memory", 2021).
- sliding-window layers (ModernBERT: token i sees j when ``|i - j| <= config.sliding_window``):
  queries cut into blocks of ``LOCAL_BLOCK``, each attending to its block plus ``window`` keys on
  either side, all blocks in one batched call: ``T x (LOCAL_BLOCK + 2 window)`` scores instead of
  ``T x T``. Batches up to ``DENSE_LOCAL_UP_TO`` tokens wide, where blocks cost more than they save,
  use one dense band mask built once per forward (chosen per batch by width, by measurement).

Both compute the same softmax over the same keys as the default path (masked keys have weight 0
there), so embeddings agree to float rounding (tests: 1e-5). Used for the architectures in
``SUPPORTED`` (bidirectional encoders whose only mask is padding [+ a sliding window]); others keep
their default. A query with no key in its window (padding far from any text: a query's expansion
tokens) gets 0, as torch's SDPA gives the default path for a fully masked row (torch >= 2.5); those
rows are outputs when PyLate expands queries, so they must match too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

NAME = "harness_blockwise"
SUPPORTED = frozenset({"modernbert", "bert"})  # config.model_type values validated against the default
LOCAL_BLOCK = 128  # queries per block in sliding-window layers (measured: see benchmarks/bench_long.py)
# sliding-window layers of batches up to this many tokens wide use one dense band mask instead of
# blocks (measured, Ettin-17m shape: 1000 SciFact abstracts 15.5 s dense vs 17.1 s blocks vs 15.8 s
# library; at 1024 tokens blocks win, 2.3 s vs 2.5 s; benchmarks/bench_long.py)
DENSE_LOCAL_UP_TO = 512


@dataclass(frozen=True)
class KeyMask:
    """What a layer needs to know instead of a ``T x T`` mask: which keys are real (``[B, T]`` bool,
    None when no text is padded), the half window of a sliding-window layer (None: global), the
    sequence length and the device of the model's tensors."""

    valid: torch.Tensor | None
    window: int | None = None
    length: int = 0
    device: torch.device | None = None

    @functools.cached_property
    def band(self) -> torch.Tensor:
        """``[B|1, 1, T, T]`` bool: the window over real keys; built once per forward and shared by
        its sliding-window layers (short batches only)."""
        assert self.window is not None and self.length > 0
        positions = torch.arange(self.length, device=self.device)
        allowed = (positions[None, :] - positions[:, None]).abs() <= self.window
        if self.valid is not None:
            allowed = allowed[None] & self.valid[:, None, :]
        return allowed.reshape(-1, 1, self.length, self.length)


def _mask(
    *,
    attention_mask: torch.Tensor | None = None,
    local_size: int | None = None,
    kv_length: int = 0,
    device: torch.device | None = None,
    **_: Any,
) -> KeyMask:
    """Mask interface: transformers passes the 2D padding mask (bool), the key length, the device
    and, for sliding-window layers, ``local_size`` = ``config.sliding_window`` (the inclusive half
    window)."""
    valid = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.bool()
    length = kv_length or (attention_mask.shape[-1] if attention_mask is not None else 0)
    if device is None and attention_mask is not None:
        device = attention_mask.device
    return KeyMask(valid, local_size, length, device)


def _attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: KeyMask | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """Attention interface: ``query``/``key``/``value`` ``[B, H, T, D]`` -> output ``[B, T, H, D]``."""
    if attention_mask is not None and not isinstance(attention_mask, KeyMask):
        raise TypeError(
            f"{NAME} takes the masks of its own mask function, got {type(attention_mask).__name__}"
        )
    mask = attention_mask or KeyMask(None, device=query.device)
    length = query.shape[2]
    if mask.window is not None and mask.window < length - 1 and length <= DENSE_LOCAL_UP_TO:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.band, scale=scaling)
    elif mask.window is not None and mask.window < length - 1:
        out = _local_attention(query, key, value, mask.valid, mask.window, scaling)
    else:  # global, or a window that covers the whole sequence
        keys = None if mask.valid is None else mask.valid[:, None, None, :]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=keys, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def _local_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    valid: torch.Tensor | None,
    window: int,
    scaling: float | None,
) -> torch.Tensor:
    """Sliding-window attention (query i sees key j iff ``|i - j| <= window`` and j is real) by blocks:
    ``[B, H, T, D]`` -> ``[B, H, T, D]``."""
    b, h, t, d = query.shape
    block = LOCAL_BLOCK
    n_blocks = -(-t // block)
    span = block + 2 * window  # keys a block sees: its own positions and `window` on either side
    padded = n_blocks * block
    # keys/values padded by `window` before and `window + (padded - t)` after, then cut into
    # overlapping spans: block i covers padded positions [i*block, i*block + span)
    pad = (0, 0, window, window + padded - t)
    spans = [F.pad(x, pad).unfold(2, span, block).transpose(-1, -2) for x in (key, value)]  # [B,H,n,span,D]
    real = torch.ones(b, t, dtype=torch.bool, device=query.device) if valid is None else valid
    real_spans = F.pad(real, (window, window + padded - t)).unfold(1, span, block)  # [B, n, span]
    positions = torch.arange(span, device=query.device)
    offset = positions[None, :] - window - positions[:block, None]  # key minus query position
    band = offset.abs() <= window  # [block, span]: same for every block
    allowed = band[None, None] & real_spans[:, :, None, :]  # [B, n, block, span]
    # blocks as batch rows ([B*n, H, ., D]): 4-D inputs take torch's fused (flash) kernel
    q = F.pad(query, (0, 0, 0, padded - t)).reshape(b, h, n_blocks, block, d).transpose(1, 2)
    k, v = (x.transpose(1, 2).reshape(b * n_blocks, h, span, d) for x in spans)
    out = F.scaled_dot_product_attention(
        q.reshape(b * n_blocks, h, block, d),
        k,
        v,
        attn_mask=allowed.reshape(b * n_blocks, 1, block, span),
        scale=scaling,
    )
    return out.reshape(b, n_blocks, h, block, d).transpose(1, 2).reshape(b, h, padded, d)[:, :, :t]


def register() -> str:
    """Register the implementation with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, _mask)
    return NAME


def supports(config: Any) -> bool:
    """Whether ``config``'s architecture is one this implementation was validated on."""
    return getattr(config, "model_type", None) in SUPPORTED and not getattr(config, "is_decoder", False)
