"""The encoders: PyLate ColBERT (multi-vector, ``colbert``) and sentence-transformers (dense,
``dense``), and ``load_encoder``. Both reproduce their reference library's encoding exactly, with
torch + transformers only, on the shared machinery of ``base``.

Speed and memory: texts are tokenised once (``tokenize``), sorted by token count (longest first) and
cut into batches of at most ``batch_size`` texts and ``max_tokens_per_batch`` padded tokens, and never
more padded tokens than ``max_memory`` holds at ``activation_bytes_per_token`` (``batching``; a text
that alone would exceed it is an error at load time); attention is :mod:`harness.attention`'s, linear
in memory, where the architecture allows. ``encode`` returns :class:`TokenEmbeddings`: the
embeddings and how many texts were cut at the length limit; a prompt that leaves a text fewer than
``MIN_TEXT_TOKENS`` of its own is an error at load. Checkpoint files and settings: ``harness.checkpoints``.
Compression variants (each its own cache key and, through ``encoder.variant``, run name): token
pooling of documents (``pooling``, PyLate's), truncated dimensions and int8 linear layers (``base``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.checkpoints import ColBERTConfig, DenseConfig, LoadOptions, read_layout, resolve_checkpoint
from harness.checkpoints.config import check_overrides
from harness.checkpoints.files import checkpoint_name, hub_snapshot
from harness.checkpoints.modules import load_backbone, load_dense_layers
from harness.encode.base import MIN_TEXT_TOKENS, TORCH_DTYPES
from harness.encode.batching import plan_batches
from harness.encode.colbert import ColBERTEncoder
from harness.encode.dense import DenseEncoder
from harness.errors import InputError

__all__ = [
    "MIN_TEXT_TOKENS",
    "TORCH_DTYPES",
    "ColBERTEncoder",
    "DenseEncoder",
    "load_encoder",
    "plan_batches",
]


def load_encoder(
    path_or_id: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    trust_remote_code: bool = False,
    revision: str | None = None,
    **overrides: Any,
) -> ColBERTEncoder | DenseEncoder:
    """Load a PyLate ColBERT (Transformer + Dense layers) or sentence-transformers (Transformer + Pooling
    [+ Dense] [+ Normalize]) checkpoint from a folder or a Hub id.

    ``revision`` pins a Hub id's commit (branch or tag); the encoder's ``revision`` is the commit its
    files came from (a Hub snapshot), its ``name`` the Hub id, else :func:`checkpoint_name`.
    ``overrides`` replace config values the way PyLate/sentence-transformers constructor arguments do:
    ColBERT: query_prefix, document_prefix, query_length, document_length, do_query_expansion,
    attend_to_expansion_tokens, skiplist_words, prompt (both sides), pool_factor (documents' tokens
    pooled: :mod:`harness.encode.pooling`); dense: max_seq_length; both: query_prompt, document_prompt,
    do_lower_case, truncate_dim (first dimensions, renormalised), quantize ("int8": torch's dynamic
    int8 linear layers, CPU only);
    and the :class:`harness.checkpoints.LoadOptions` max_tokens_per_batch, name, attn_implementation.
    """
    if dtype not in TORCH_DTYPES:
        raise InputError(f"unsupported dtype {dtype!r} (choose from {sorted(TORCH_DTYPES)})", field="dtype")
    folder = resolve_checkpoint(path_or_id, revision)
    layout = read_layout(folder)
    check_overrides(layout.kind, overrides)
    options = LoadOptions.from_overrides(overrides)
    backbone, tokenizer = load_backbone(
        layout.backbone_dir, TORCH_DTYPES[dtype], trust_remote_code, options.attn_implementation
    )
    hidden_size = backbone.config.hidden_size
    dense = load_dense_layers(layout, hidden_size)
    dim = dense[-1].linear.out_features if dense else hidden_size
    is_local = Path(path_or_id).expanduser().is_dir()
    snapshot = hub_snapshot(folder)
    parts: dict[str, Any] = {
        "name": options.name or (checkpoint_name(folder) if is_local else str(path_or_id)),
        "revision": snapshot[1] if snapshot else None,
        "layout": layout,
        "backbone": backbone,
        "tokenizer": tokenizer,
        "dense": dense,
        "device": device,
        "options": options,
    }
    if layout.kind == "dense":
        # sentence-transformers' fallback when the checkpoint names no max_seq_length
        limit = getattr(backbone.config, "max_position_embeddings", None) or tokenizer.model_max_length
        config = DenseConfig.from_checkpoint(
            layout,
            overrides,
            dim=dim,
            dtype=dtype,
            default_max_seq_length=int(min(limit, tokenizer.model_max_length)),
        )
        return DenseEncoder(config=config, **parts)
    return ColBERTEncoder(
        config=ColBERTConfig.from_checkpoint(layout, overrides, dim=dim, dtype=dtype), **parts
    )
