"""``ColBERTEncoder`` = PyLate 1.6 ``ColBERT.encode`` (Khattab & Zaharia, "ColBERT", SIGIR 2020;
``pylate/models/colbert.py``): text -> strip -> lowercase if ``do_lower_case`` -> tokenize truncated to
``length - 1`` -> prefix id inserted after [CLS] -> queries padded to ``query_length`` with the
mask token when ``do_query_expansion`` (kept but not attended unless ``attend_to_expansion_tokens``)
-> backbone -> Dense layers -> keep (documents: attended and not a skiplist id; queries: all with
expansion, attended without) -> the first ``truncate_dim`` dimensions, if set -> L2-normalise each
kept vector -> documents' tokens pooled, if ``pool_factor`` is set (:mod:`harness.encode.pooling`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import harness.encode.pooling as pooling
from harness.checkpoints import ColBERTConfig
from harness.encode.base import TransformerEncoder
from harness.encode.tokenize import TokenIds
from harness.errors import InputError
from harness.types import TokenEmbeddings


class ColBERTEncoder(TransformerEncoder):
    """PyLate ColBERT checkpoint; ``encode`` returns one L2-normalised vector per kept token."""

    multi_vector = True
    config: ColBERTConfig

    def __init__(self, *, config: ColBERTConfig, **kwargs: Any) -> None:
        self.config = config
        super().__init__(**kwargs)
        tok = self.tokenizer
        # PyLate pads with the mask token (MLM) or EOS (decoder), else the pad token.
        for candidate in (tok.mask_token_id, tok.eos_token_id, tok.pad_token_id):
            if candidate is not None:
                self._pad_id = int(candidate)
                break
        else:
            raise InputError(
                "tokenizer has no mask, eos or pad token", file=str(self.folder / "tokenizer_config.json")
            )
        # PyLate adds the prefixes as tokens at every load: a no-op when the checkpoint has them, and
        # a vocabulary token (Stanford's "[unused0]") then stays one token when typed in a text
        tok.add_tokens([p for p in (config.query_prefix, config.document_prefix) if p])
        self._prefix_ids = {
            True: self._prefix_id(config.query_prefix, "query_prefix"),
            False: self._prefix_id(config.document_prefix, "document_prefix"),
        }
        self._skiplist = np.array(
            sorted({int(tok.convert_tokens_to_ids(w)) for w in config.skiplist_words}), np.int64
        )
        self._check_prompts()
        if config.pool_factor:
            setting = "document_length (--document-length)"
            pooling.require_pooling_fits(config.document_length, self.options.max_memory, setting)

    def _length(self, is_query: bool) -> tuple[int, str]:
        """A side's token limit and its setting with the flag."""
        if is_query:
            return self.config.query_length, "query_length (--query-length)"
        return self.config.document_length, "document_length (--document-length)"

    def _longest_text(self) -> tuple[int, str, str]:
        length, setting = self._length(self.config.query_length > self.config.document_length)
        return length, setting, f"lower {setting.split()[1].strip('()')}"

    def _side_limit(self, is_query: bool) -> tuple[int, str]:
        length, setting = self._length(is_query)
        prefix = self.config.query_prefix if is_query else self.config.document_prefix
        return (length - 1 if prefix else length), setting  # the prefix token is inserted after the cut

    def _prefix_id(self, prefix: str, field: str) -> int | None:
        if not prefix:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(prefix)
        rows = self.model.get_input_embeddings().num_embeddings
        if token_id is None or token_id == self.tokenizer.unk_token_id or token_id >= rows:
            raise InputError(
                f"prefix token {prefix!r} is not in the tokenizer/embeddings; PyLate would add it with a "
                "random embedding, which cannot be reproduced (load and save it with PyLate once)",
                file=str(
                    self.folder
                    / ("artifact.metadata" if self.layout.stanford else "config_sentence_transformers.json")
                ),
                field=field,
            )
        return int(token_id)

    def _token_ids(self, texts: Sequence[str], is_query: bool) -> tuple[TokenIds, np.ndarray, np.ndarray]:
        """Per text: ids with the prefix inserted (unpadded), padded width, number of output vectors."""
        c = self.config
        length, _ = self._length(is_query)
        max_length, _ = self._side_limit(is_query)
        ids_list = self._tokenize(texts, c.prompt(is_query), max_length, insert=self._prefix_ids[is_query])
        lengths = np.array([len(ids) for ids in ids_list], np.int64)
        if is_query and c.do_query_expansion:
            widths = np.maximum(lengths, length)
            return ids_list, widths, widths.copy()
        if is_query:
            return ids_list, lengths, lengths.copy()
        counts = np.array([len(ids) - np.isin(ids, self._skiplist).sum() for ids in ids_list], np.int64)
        return ids_list, lengths, counts

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings:
        """Token embeddings exactly as PyLate ``ColBERT.encode`` (documents with ``pool_factor``: as
        ``encode(pool_factor=...)``); float32, input order; with the number of texts cut at the
        length limit."""
        ids_list, widths, counts = self._token_ids(texts, is_query)
        expansion = is_query and self.config.do_query_expansion
        attend_expansion = self.config.attend_to_expansion_tokens
        skiplist = torch.from_numpy(self._skiplist)

        def forward(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            attended = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            attention = torch.ones_like(attended) if expansion and attend_expansion else attended
            if expansion:
                keep = torch.ones_like(attended)
            elif is_query:
                keep = attended
            else:
                keep = attended & ~torch.isin(ids, skiplist)
            hidden = self._hidden(ids, attention.long())
            return self._output(self.dense(hidden[keep.to(hidden.device)]))

        out = self._run(ids_list, widths, counts, batch_size, show_progress, forward, self._pad_id, is_query)
        factor = self.config.pool_factor
        return pooling.pool_embeddings(out, factor) if factor and not is_query else out
