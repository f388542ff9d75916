"""Attention whose memory grows linearly with the sequence: what lets a 32k-token document encode in
a few GB on a CPU (LongEmbed, Zhu et al., EMNLP 2024: documents up to 32k tokens).

transformers' default ("sdpa") builds a ``[batch, 1, T, T]`` mask for every layer — 1 GB of booleans
at 32k tokens, before any attention is computed — and gives ModernBERT's sliding-window layers the
full ``T x T`` product. This implementation, registered with transformers' attention and mask
interfaces as ``"harness_blockwise"``, keeps the mask as one key-padding row per text and:

- global layers: one ``scaled_dot_product_attention`` call with a ``[batch, 1, 1, T]`` mask; torch's
  CPU flash kernel (and the GPU's memory-efficient kernel) walk the keys in blocks, so scores are
  never materialised (Dao et al., "FlashAttention", NeurIPS 2022; Rabe & Staats, "Self-attention
  does not need O(n^2) memory", 2021).
- sliding-window layers (ModernBERT: token i sees j when ``|i - j| <= config.sliding_window``):
  queries cut into chunks of ``LOCAL_CHUNK``, each chunk one call on views of the keys it can reach
  (its own positions and ``window`` on either side): ``T x (LOCAL_CHUNK + 2 window)`` scores instead
  of ``T x T``, no copies of keys or values. A batch no wider than one chunk's reach takes one call
  with a dense band mask.

Masks are additive (0 where a key is seen, -inf where not) in the model's dtype, built once per
forward and shared by its layers: a boolean mask is converted to exactly this inside every call.

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
# queries per call in sliding-window layers. Measured (Ettin-17m shape, window 64, 2 threads), one
# layer's attention against a dense band mask: 13 x 300 tokens 3.9 vs 5.2 ms, 8 x 505 4.2 vs 8.3 ms,
# 32 x 128 3.0 vs 2.6 ms (hence the dense band up to one chunk's reach); against the 128-query blocks
# with copied key/value spans used before: 1 x 32768 tokens 58 vs 89 ms, 4 x 1024 4.0 vs 7.4 ms.
# Chunks of 48, 96, 128 and 192 queries were slower.
LOCAL_CHUNK = 64


@dataclass(frozen=True)
class KeyMask:
    """What a layer needs to know instead of a ``T x T`` mask: which keys are real (``[B, T]`` bool,
    None when no text is padded), the half window of a sliding-window layer (None: global), the
    sequence length, the device and dtype of the model's tensors.

    Masks are additive in the model's dtype and built at first use, once per forward."""

    valid: torch.Tensor | None
    window: int | None = None
    length: int = 0
    device: torch.device | None = None
    dtype: torch.dtype = torch.float32

    def _additive(self, allowed: torch.Tensor) -> torch.Tensor:
        return torch.zeros(allowed.shape, dtype=self.dtype, device=allowed.device).masked_fill_(
            ~allowed, float("-inf")
        )

    @property
    def chunked(self) -> bool:
        """Whether a sliding-window layer runs by chunks (the sequence is longer than one chunk's reach)."""
        assert self.window is not None
        return self.length > LOCAL_CHUNK + 2 * self.window

    @functools.cached_property
    def keys(self) -> torch.Tensor | None:
        """``[B, 1, 1, T]``: padding keys hidden (None when nothing is padded)."""
        return None if self.valid is None else self._additive(self.valid[:, None, None, :])

    @functools.cached_property
    def band(self) -> torch.Tensor:
        """``[B|1, 1, T, T]``: the window over real keys (batches no wider than one chunk's reach)."""
        assert self.window is not None and self.length > 0
        positions = torch.arange(self.length, device=self.device)
        allowed = (positions[None, :] - positions[:, None]).abs() <= self.window
        if self.valid is not None:
            allowed = allowed[None] & self.valid[:, None, :]
        return self._additive(allowed.reshape(-1, 1, self.length, self.length))

    @functools.cached_property
    def chunks(self) -> list[tuple[slice, slice, torch.Tensor]]:
        """Per chunk of queries: their positions, the keys they can reach, and the
        ``[B|1, 1, queries, keys]`` mask over those (window and padding)."""
        assert self.window is not None
        window, length = self.window, self.length
        offsets = torch.arange(LOCAL_CHUNK + 2 * window, device=self.device)
        # query i of a chunk sees key j of its reach (which starts `window` before the chunk) iff:
        pattern = (offsets[None, :] - window - offsets[:LOCAL_CHUNK, None]).abs() <= window
        chunks = []
        for start in range(0, length, LOCAL_CHUNK):
            stop = min(length, start + LOCAL_CHUNK)
            low, high = max(0, start - window), min(length, stop + window)
            first = low - (start - window)  # the reach is cut at the sequence's ends
            allowed = pattern[: stop - start, first : first + high - low][None]
            if self.valid is not None:
                allowed = allowed & self.valid[:, None, low:high]
            chunks.append((slice(start, stop), slice(low, high), self._additive(allowed[:, None])))
        return chunks


def _mask(
    *,
    attention_mask: torch.Tensor | None = None,
    local_size: int | None = None,
    kv_length: int = 0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    **_: Any,
) -> KeyMask:
    """Mask interface: transformers passes the 2D padding mask (bool), the key length, the device
    and, for sliding-window layers, ``local_size`` = ``config.sliding_window`` (the inclusive half
    window), and the model's dtype."""
    valid = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.bool()
    length = kv_length or (attention_mask.shape[-1] if attention_mask is not None else 0)
    if device is None and attention_mask is not None:
        device = attention_mask.device
    return KeyMask(valid, local_size, length, device, dtype)


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
    mask = attention_mask or KeyMask(None, device=query.device, dtype=query.dtype)
    if mask.window is None or mask.window >= query.shape[2] - 1:  # global, or a window covering all
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.keys, scale=scaling)
    elif not mask.chunked:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.band, scale=scaling)
    else:  # each chunk's output transposed and joined along T: one copy into [B, T, H, D]
        chunks = [
            F.scaled_dot_product_attention(
                query[:, :, queries], key[:, :, keys], value[:, :, keys], attn_mask=allowed, scale=scaling
            ).transpose(1, 2)
            for queries, keys, allowed in mask.chunks
        ]
        return torch.cat(chunks, dim=1), None
    return out.transpose(1, 2).contiguous(), None


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
