"""The encoders: PyLate ColBERT (multi-vector) and sentence-transformers (dense), and ``load_encoder``.

Both reproduce their reference library's encoding exactly, with torch + transformers only:

- ``ColBERTEncoder`` = PyLate 1.6 ``ColBERT.encode`` (Khattab & Zaharia, "ColBERT", SIGIR 2020;
  ``pylate/models/colbert.py``): text -> strip -> lowercase if ``do_lower_case`` -> tokenize truncated to
  ``length - 1`` -> prefix id inserted after [CLS] -> queries padded to ``query_length`` with the
  mask token when ``do_query_expansion`` (kept but not attended unless ``attend_to_expansion_tokens``)
  -> backbone -> Dense layers -> keep (documents: attended and not a skiplist id; queries: all with
  expansion, attended without) -> L2-normalise each kept vector.
- ``DenseEncoder`` = sentence-transformers ``encode_query``/``encode_document``: prompt + text -> strip ->
  lowercase if ``do_lower_case`` -> tokenize truncated to ``max_seq_length`` -> backbone -> pooling
  (mean / cls / max / mean_sqrt_len) -> Dense layers -> L2-normalise if a Normalize module is present.

Speed and memory: texts are tokenised once, sorted by token count (longest first) and cut into batches
of at most ``batch_size`` texts and ``max_tokens_per_batch`` padded tokens, and never more padded tokens
than ``max_memory`` holds at :meth:`activation_bytes_per_token` (a text that alone would exceed it is
an error at load time); attention is :mod:`harness.attention`'s, linear in memory, where the
architecture allows. Outputs go straight to their final rows, so input order is restored without
per-text copies. Output is always float32, with the number of tokens the backbone read
(``TokenEmbeddings.input_tokens``). Checkpoint files and settings: ``harness.checkpoints``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from harness import attention, kernels
from harness.checkpoints import (
    ColBERTConfig,
    DenseConfig,
    Layout,
    LoadOptions,
    read_layout,
    resolve_checkpoint,
)
from harness.checkpoints.config import DTYPES, check_overrides
from harness.checkpoints.files import checkpoint_name, files_fingerprint, hub_snapshot
from harness.checkpoints.modules import DenseLayer, load_backbone, load_dense_layers
from harness.errors import InputError
from harness.types import TokenEmbeddings
from harness.units import format_size

log = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
assert set(TORCH_DTYPES) == set(DTYPES)

TOKENIZE_CHUNK = 256  # texts per tokenizer call (1024: 1.19 s, +62 MB; 256: 1.25 s, +23 MB on SciFact)

# forward(ids [B, T], lengths [B]) -> float32 output rows of the batch
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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


class _TransformerEncoder:
    """Shared machinery: backbone, Dense layers, text preparation, batching, fingerprint."""

    multi_vector: bool
    config: ColBERTConfig | DenseConfig

    def __init__(
        self,
        *,
        name: str,
        layout: Layout,
        backbone: Any,
        tokenizer: Any,
        dense: list[DenseLayer],
        device: str,
        options: LoadOptions,
        revision: str | None,
    ) -> None:
        self.name, self.layout, self.options = name, layout, options
        self.revision = revision  # the Hub commit the files came from (None: not a Hub snapshot)
        self.model, self.tokenizer = backbone, tokenizer
        self.dense = nn.Sequential(*dense).to(dtype=TORCH_DTYPES[self.config.dtype]).eval()
        self.to(device)
        self._choose_kernels()
        # what transformers runs: harness.attention's "harness_blockwise", or e.g. "sdpa"
        self.attention = str(getattr(backbone.config, "_attn_implementation", None) or "default")
        self._check_lengths()
        # every position a text can take (and the trained ones): no cos/sin computed in a forward
        trained = int(getattr(backbone.config, "max_position_embeddings", 0) or 0)
        kernels.tabulate_rotary(self.model, max(self._longest_text()[0], trained))

    def _longest_text(self) -> tuple[int, str, str]:
        """The most tokens one text can have, the setting that says so (with its flag) and what
        lowers it."""
        raise NotImplementedError

    def _check_lengths(self) -> None:
        """Before any work: a text of the longest allowed length must be positionable by the backbone
        (absolute position embeddings: an error; rotary beyond the trained length: a warning) and
        must fit ``max_memory`` alone."""
        width, setting, remedy = self._longest_text()
        config = self.model.config
        limit = _absolute_position_limit(self.model)
        if limit is not None and width > limit:
            raise InputError(
                f"{width} tokens, but {config.model_type} has absolute position embeddings for {limit} "
                f"tokens, the longest text it can encode: {remedy}",
                file=str(self.layout.backbone_dir / "config.json"),
                field=setting,
            )
        trained = getattr(config, "max_position_embeddings", None)
        if limit is None and trained and width > trained:
            log.warning(
                "%s: %s is %d tokens, longer than the model was trained for (max_position_embeddings "
                "%d); its rotary positions extrapolate",
                self.name,
                setting,
                width,
                trained,
            )
        needed = width * self.activation_bytes_per_token(width)
        if needed > self.options.max_memory:
            raise InputError(
                f"one text of {width} tokens ({setting}) needs about {format_size(needed)} of "
                f"activations, above the {format_size(self.options.max_memory)} allowed: "
                f"raise it, or {remedy}",
                field="--max-memory",
            )

    def activation_bytes_per_token(self, width: int) -> int:
        """A conservative estimate of the bytes one padded token of a batch ``width`` tokens wide
        needs in the forward (measured 1.1-2x below it: tests/test_long.py): hidden states and the
        attention's q/k/v/output (16 x hidden), the feed-forward's input width three times (GLU:
        ModernBERT's is 2 x intermediate), the Dense layers' outputs; with a library attention also a
        mask row (bool) and two rows of scores per head (eager: scores and softmax); on
        harness.attention's sliding windows, a mask row over one chunk's reach and the chunks' outputs."""
        config = self.model.config
        hidden = int(config.hidden_size)
        ffn = int(getattr(config, "intermediate_size", 4 * hidden))
        ffn *= 1 if getattr(config, "model_type", "") == "bert" else 2
        dense = sum(layer.linear.out_features for layer in self.dense)
        floats = 16 * hidden + 3 * ffn + 2 * dense
        window = getattr(config, "sliding_window", None)
        if self.attention != attention.NAME:
            floats += width * (1 + 2 * int(getattr(config, "num_attention_heads", 1)))
        elif window:  # a mask row over one chunk's reach; the chunks' outputs before they are joined
            floats += attention.LOCAL_CHUNK + 2 * int(window) + hidden
        itemsize = torch.finfo(TORCH_DTYPES[self.config.dtype]).bits // 8
        return max(itemsize, 4) * floats

    def to(self, device: str | torch.device) -> _TransformerEncoder:
        """Encode on ``device`` from now on; returns self. The weights move at the next ``encode``,
        so a driver that only hands the encoder to Ray workers needs no GPU of its own."""
        self.device = torch.device(device)
        if hasattr(self, "kernels"):
            self._choose_kernels()
        return self

    def _choose_kernels(self) -> None:
        """The CPU kernels (``--kernels``, :mod:`harness.kernels`): the linear layers' (with fused
        feed-forward blocks) and the rotary embedding's; torch's own off the CPU. Same numbers either
        way (1e-6; the rotary bit for bit): recorded in the results, not part of the cache key."""
        mode = self.options.kernels if self.device.type == "cpu" else "default"
        linear = kernels.fast_linear([self.model, self.dense], mode, device=self.device)
        rotary = kernels.fast_rotary(self.model, "default" if mode == "default" else "compiled")
        self.kernels = {"mode": self.options.kernels, **linear.settings(), "rotary": rotary}

    def _place(self) -> None:
        if next(self.model.parameters()).device != self.device:
            self.model.to(self.device)
            self.dense.to(self.device)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in another process (a Ray worker): register the attention kernel there too."""
        self.__dict__.update(state)
        if self.attention == attention.NAME:
            attention.register()
        kernels.fast_rotary(self.model, self.kernels["rotary"])  # a process-wide choice

    @property
    def folder(self) -> Path:
        return self.layout.folder

    @property
    def dim(self) -> int:
        return self.config.dim

    def settings(self) -> dict[str, Any]:
        """Everything that changes the embeddings: ``asdict`` of the config, the attention
        implementation and, off the CPU, the device kind (both agree to ~1e-6, not bit for bit)."""
        device = {} if self.device.type == "cpu" else {"device": self.device.type}
        return {**self.config.settings(), "attention": self.attention, **device}

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the weight, tokenizer and config files of every module folder (computed once)."""
        return files_fingerprint(self.layout.module_dirs, self.folder)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters()) + sum(
            p.numel() for p in self.dense.parameters()
        )

    def _prepare(self, texts: Sequence[str], prompt: str) -> list[str]:
        out = [(prompt + str(t)).strip() for t in texts]
        return [t.lower() for t in out] if self.config.do_lower_case else out

    def _tokenize(
        self, texts: Sequence[str], prompt: str, max_length: int, insert: int | None = None
    ) -> list[np.ndarray]:
        """Per text: its token ids (int64, unpadded), ``prompt`` prepended, truncated to ``max_length``,
        and ``insert`` (a prefix token) placed after the first id when given.

        Tokenized :data:`TOKENIZE_CHUNK` texts at a time: a fast tokenizer's output (token strings,
        offsets, the truncated overflow of every text) is tens of times the ids kept, so one call over
        a corpus made peak memory grow with it (SciFact, 5183 documents: +265 MB vs +23 MB).
        """
        ids_list: list[np.ndarray] = []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            encoded = self.tokenizer(
                self._prepare(texts[start : start + TOKENIZE_CHUNK], prompt),
                truncation="longest_first",
                max_length=max_length,
                padding=False,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            if insert is not None:
                encoded = [ids[:1] + [insert] + ids[1:] for ids in encoded]
            ids_list += [np.asarray(ids, np.int64) for ids in encoded]
        return ids_list

    def _hidden(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=self._on_device(ids), attention_mask=self._on_device(attention))
        return out[0]

    def _on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on the model's device; to a GPU through pinned memory, without blocking."""
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _run(
        self,
        ids_list: list[np.ndarray],
        widths: np.ndarray,
        counts: np.ndarray,
        batch_size: int,
        show_progress: bool,
        forward: Forward,
        pad_id: int,
        is_query: bool,
    ) -> TokenEmbeddings:
        """Batch, call ``forward`` per batch, place the rows; the progress bar counts tokens (rate
        and ETA hold for texts of any length) under "queries" or "documents".

        ``widths[i]``: padded width text i needs (its input tokens); ``counts[i]``: rows it emits
        (known before the forward).
        """
        self._place()
        offsets = np.zeros(len(ids_list) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        vectors = np.empty((int(offsets[-1]), self.dim), np.float32)
        longest = int(widths.max()) if len(widths) else 1
        fits = self.options.max_memory // self.activation_bytes_per_token(longest)
        budget = max(1, min(self.options.max_tokens_per_batch, fits))
        with (
            torch.inference_mode(),
            tqdm(
                total=int(widths.sum()),
                desc=f"{self.name}: {'queries' if is_query else 'documents'}",
                disable=not show_progress,
                unit="tok",
                unit_scale=True,
            ) as bar,
        ):
            for batch in plan_batches(widths, batch_size, budget):
                width = int(widths[batch].max())
                lengths = np.array([len(ids_list[i]) for i in batch], np.int64)
                ids = np.full((len(batch), width), pad_id, np.int64)
                for row, i in enumerate(batch):
                    ids[row, : lengths[row]] = ids_list[i]
                rows = forward(torch.from_numpy(ids), torch.from_numpy(lengths))
                batch_counts = counts[batch]
                starts_in_batch = np.cumsum(batch_counts) - batch_counts
                dest = np.repeat(offsets[batch] - starts_in_batch, batch_counts) + np.arange(len(rows))
                vectors[dest] = rows.numpy()
                bar.update(int(widths[batch].sum()))
        return TokenEmbeddings(vectors, offsets, int(widths.sum()))


class ColBERTEncoder(_TransformerEncoder):
    """PyLate ColBERT checkpoint; ``encode`` returns one L2-normalised vector per kept token."""

    multi_vector = True

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

    def _longest_text(self) -> tuple[int, str, str]:
        c = self.config
        if c.query_length > c.document_length:
            return c.query_length, "query_length (--query-length)", "lower --query-length"
        return c.document_length, "document_length (--document-length)", "lower --document-length"

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

    def _token_ids(
        self, texts: Sequence[str], is_query: bool
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Per text: ids with the prefix inserted (unpadded), padded width, number of output vectors."""
        c = self.config
        prefix_id = self._prefix_ids[is_query]
        length = c.query_length if is_query else c.document_length
        max_length = length - 1 if prefix_id is not None else length
        ids_list = self._tokenize(texts, c.prompt(is_query), max_length, insert=prefix_id)
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
        """Token embeddings exactly as PyLate ``ColBERT.encode``; float32, input order."""
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
            rows = self.dense(hidden[keep.to(hidden.device)]).float()
            return torch.nn.functional.normalize(rows, p=2, dim=1).cpu()

        return self._run(ids_list, widths, counts, batch_size, show_progress, forward, self._pad_id, is_query)


class DenseEncoder(_TransformerEncoder):
    """sentence-transformers model (Transformer + Pooling [+ Dense] [+ Normalize]); one row per text."""

    multi_vector = False

    def __init__(self, *, config: DenseConfig, **kwargs: Any) -> None:
        self.config = config
        super().__init__(**kwargs)
        tok = self.tokenizer
        self._pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)

    def _longest_text(self) -> tuple[int, str, str]:
        file = self.layout.backbone_dir / "sentence_bert_config.json"
        return self.config.max_seq_length, f"max_seq_length ({file})", "lower max_seq_length there"

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings:
        """Sentence embeddings exactly as sentence-transformers ``encode`` (one row per text), float32."""
        c = self.config
        ids_list = self._tokenize(texts, c.prompt(is_query), c.max_seq_length)
        widths = np.array([len(ids) for ids in ids_list], np.int64)

        def forward(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            hidden = self._hidden(ids, mask.long())
            pooled = self.dense(_pool(hidden, mask.to(hidden.device), c.pooling)).float()
            return (torch.nn.functional.normalize(pooled, p=2, dim=-1) if c.normalize else pooled).cpu()

        counts = np.ones(len(ids_list), np.int64)
        return self._run(ids_list, widths, counts, batch_size, show_progress, forward, self._pad_id, is_query)


def _absolute_position_limit(model: nn.Module) -> int | None:
    """Tokens a backbone with learned absolute positions can place (BERT: 512; RoBERTa counts from
    ``padding_idx + 1``), None for relative / rotary positions (ModernBERT)."""
    table = getattr(getattr(model, "embeddings", None), "position_embeddings", None)
    if not isinstance(table, nn.Embedding):
        return None
    return table.num_embeddings - (table.padding_idx + 1 if table.padding_idx is not None else 0)


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
    attend_to_expansion_tokens, skiplist_words, prompt (both sides); dense: max_seq_length; both:
    query_prompt, document_prompt, do_lower_case;
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
