"""``DenseEncoder`` = sentence-transformers ``encode_query``/``encode_document``: prompt + text -> strip
-> lowercase if ``do_lower_case`` -> tokenize truncated to ``max_seq_length`` -> backbone -> pooling
(mean / cls / max / mean_sqrt_len) -> Dense layers -> the first ``truncate_dim`` dimensions, if set
-> L2-normalise if a Normalize module is present."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from harness.checkpoints import DenseConfig
from harness.encode.base import TransformerEncoder
from harness.types import TokenEmbeddings


class DenseEncoder(TransformerEncoder):
    """sentence-transformers model (Transformer + Pooling [+ Dense] [+ Normalize]); one row per text."""

    multi_vector = False
    config: DenseConfig

    def __init__(self, *, config: DenseConfig, **kwargs: Any) -> None:
        self.config = config
        super().__init__(**kwargs)
        tok = self.tokenizer
        self._pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self._check_prompts()

    def _longest_text(self) -> tuple[int, str, str]:
        file = self.layout.backbone_dir / "sentence_bert_config.json"
        return self.config.max_seq_length, f"max_seq_length ({file})", "lower max_seq_length there"

    def _side_limit(self, is_query: bool) -> tuple[int, str]:
        return self._longest_text()[:2]

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings:
        """Sentence embeddings exactly as sentence-transformers ``encode`` (one row per text), float32;
        with the number of texts cut at ``max_seq_length``."""
        c = self.config
        ids_list = self._tokenize(texts, c.prompt(is_query), c.max_seq_length)
        widths = np.array([len(ids) for ids in ids_list], np.int64)

        def forward(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            hidden = self._hidden(ids, mask.long())
            return self._output(self.dense(_pool(hidden, mask.to(hidden.device), c.pooling)))

        counts = np.ones(len(ids_list), np.int64)
        return self._run(ids_list, widths, counts, batch_size, show_progress, forward, self._pad_id, is_query)


def _pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """sentence-transformers Pooling for right-padded batches (mean/mean_sqrt_len accumulate in fp32)."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
    m = mask[..., None].to(hidden.dtype)
    acc = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
    total = (hidden * m).sum(dim=1, dtype=acc)
    count = torch.clamp(m.sum(dim=1, dtype=acc), min=1e-9)
    return (total / (count if mode == "mean" else torch.sqrt(count))).to(hidden.dtype)
