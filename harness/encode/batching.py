"""The memory budget of a forward: activation bytes per padded token, how many padded tokens a batch
may hold under ``max_memory``, and batches cut by text count and padded tokens, longest first."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness import attention
from harness.errors import InputError
from harness.units import format_size


def activation_bytes_per_token(
    backbone_config: Any, attention_name: str, dense_width: int, dtype: torch.dtype, width: int
) -> int:
    """A conservative estimate of the bytes one padded token of a batch ``width`` tokens wide needs in
    the forward (measured 1.1-2x below it: tests/test_long.py): hidden states and the attention's
    q/k/v/output (16 x hidden), the feed-forward's input width three times (GLU: ModernBERT's is 2 x
    intermediate), the Dense layers' outputs (``dense_width``: their output widths summed); with a
    library attention also a mask row (bool) and two rows of scores per head (eager: scores and
    softmax); on harness.attention's sliding windows, a mask row over one chunk's reach and the
    chunks' outputs."""
    config = backbone_config
    hidden = int(config.hidden_size)
    ffn = int(getattr(config, "intermediate_size", 4 * hidden))
    ffn *= 1 if getattr(config, "model_type", "") == "bert" else 2
    floats = 16 * hidden + 3 * ffn + 2 * dense_width
    window = getattr(config, "sliding_window", None)
    if attention_name != attention.NAME:
        floats += width * (1 + 2 * int(getattr(config, "num_attention_heads", 1)))
    elif window:  # a mask row over one chunk's reach; the chunks' outputs before they are joined
        floats += attention.LOCAL_CHUNK + 2 * int(window) + hidden
    itemsize = torch.finfo(dtype).bits // 8
    return max(itemsize, 4) * floats


def require_fits_alone(width: int, bytes_per_token: int, max_memory: int, setting: str, remedy: str) -> None:
    """InputError (flag ``--max-memory``) when one text ``width`` tokens long (the longest ``setting``
    allows) needs more than ``max_memory`` of activations."""
    needed = width * bytes_per_token
    if needed > max_memory:
        raise InputError(
            f"one text of {width} tokens ({setting}) needs about {format_size(needed)} of "
            f"activations, above the {format_size(max_memory)} allowed: "
            f"raise it, or {remedy}",
            field="--max-memory",
        )


def token_budget(max_tokens_per_batch: int, max_memory: int, bytes_per_token: int) -> int:
    """Padded tokens per batch: ``max_tokens_per_batch``, lowered to what ``max_memory`` holds (one
    at least)."""
    return max(1, min(max_tokens_per_batch, max_memory // bytes_per_token))


def plan_batches(lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Indices sorted by length (longest first, stable) cut into batches of at most ``batch_size`` texts
    and ``max_tokens`` padded tokens (a text longer than ``max_tokens`` gets a batch of its own)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, i = [], 0
    while i < len(order):
        width = max(int(lengths[order[i]]), 1)
        size = max(1, min(batch_size, max_tokens // width))
        batches.append(order[i : i + size])
        i += size
    return batches
