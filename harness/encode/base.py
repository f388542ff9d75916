"""The machinery both encoders share: backbone and Dense layers on a device, the CPU kernels, the
length and prompt checks at load, the fingerprint and settings, and the batched forward whose rows go
straight to their final place (input order restored without per-text copies; float32 out, with the
number of tokens the backbone read and of texts cut at the length limit)."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import harness.encode.batching as batching
from harness import attention, kernels
from harness.checkpoints import ColBERTConfig, DenseConfig, Layout, LoadOptions
from harness.checkpoints.config import DTYPES, check_quantize
from harness.checkpoints.files import files_fingerprint
from harness.checkpoints.modules import DenseLayer
from harness.encode.tokenize import TokenIds, token_ids
from harness.errors import InputError
from harness.types import TokenEmbeddings

log = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
assert set(TORCH_DTYPES) == set(DTYPES)

# forward(ids [B, T], lengths [B]) -> float32 output rows of the batch
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# A prompt must leave every text this many tokens of its own (half its length limit when that is
# fewer). A floor, not a target: BEIR's queries average 3 to 20 words (Thakur et al. 2021, table 1;
# ArguAna's 193), most 5 to 12, about 7 to 16 tokens, so below 8 the typical query of most tasks is
# cut, and a prompt that fills the limit makes every query the same text (nDCG@10 0 with exit 0 before
# this check). Half the limit keeps a deliberately short limit usable with a short prompt. Cuts above
# the floor are counted (``TokenEmbeddings.truncated``), not refused.
MIN_TEXT_TOKENS = 8


class TransformerEncoder:
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
        self._parameter_count = sum(p.numel() for m in (self.model, self.dense) for p in m.parameters())
        check_quantize(self.config.quantize, dtype=self.config.dtype, kernels=options.kernels, device=device)
        if self.config.quantize:
            quantize_linear([self.model, self.dense])
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

    def _side_limit(self, is_query: bool) -> tuple[int, str]:
        """The tokens prompt + text of one side may take (special tokens included, an inserted prefix
        token not), and the setting that says so (with its flag or file)."""
        raise NotImplementedError

    def _check_prompts(self) -> None:
        """Before any work: each side's prompt must leave a text :data:`MIN_TEXT_TOKENS` tokens of its
        own (half its limit when that is fewer); InputError naming ``--query-prompt`` /
        ``--document-prompt`` otherwise."""
        for is_query in (True, False):
            prompt = self.config.prompt(is_query)
            if not prompt.strip():
                continue
            limit, setting = self._side_limit(is_query)
            taken = len(self._tokenize([""], prompt, limit)[0])
            need = min(MIN_TEXT_TOKENS, limit // 2)
            if limit - taken < need:
                side, plural = ("query", "queries") if is_query else ("document", "documents")
                quoted = repr(prompt[:40]) + ("..." if len(prompt) > 40 else "")
                raise InputError(
                    f"the {side} prompt {quoted} takes {taken} of the {limit} tokens of a {side}, leaving "
                    f"{limit - taken} for the {side}'s own text (at least {need} needed, else {plural} are "
                    f"cut to the prompt): shorten the prompt or raise {setting}",
                    field="--query-prompt" if is_query else "--document-prompt",
                )

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
        per_token = self.activation_bytes_per_token(width)
        batching.require_fits_alone(width, per_token, self.options.max_memory, setting, remedy)

    def activation_bytes_per_token(self, width: int) -> int:
        """:func:`harness.encode.batching.activation_bytes_per_token` of this model, its attention,
        Dense layers and dtype."""
        dense = sum(cast(DenseLayer, layer).linear.out_features for layer in self.dense)
        dtype = TORCH_DTYPES[self.config.dtype]
        return batching.activation_bytes_per_token(self.model.config, self.attention, dense, dtype, width)

    def to(self, device: str | torch.device) -> TransformerEncoder:
        """Encode on ``device`` from now on; returns self. The weights move at the next ``encode``,
        so a driver that only hands the encoder to Ray workers needs no GPU of its own. An int8
        encoder stays on the CPU (InputError naming ``--quantize``)."""
        c = self.config
        check_quantize(c.quantize, dtype=c.dtype, kernels=self.options.kernels, device=str(device))
        self.device = torch.device(device)
        if hasattr(self, "kernels"):
            self._choose_kernels()
        return self

    def _choose_kernels(self) -> None:
        """The CPU kernels (``--kernels``, :mod:`harness.kernels`): the linear layers' (with fused
        feed-forward blocks) and the rotary embedding's; torch's own off the CPU. Same numbers either
        way (1e-6; the rotary bit for bit): recorded in the results, not part of the cache key."""
        mode = self.options.kernels if self.device.type == "cpu" else "default"
        linear = kernels.fast_linear([self.model, self.dense], mode, device=self.device).settings()
        if self.config.quantize:  # no float linear layer is left: torch's quantized kernels run them
            engine = torch.backends.quantized.engine
            linear = {"linear": f"{self.config.quantize} dynamic ({engine})", "fused": "none"}
        rotary = kernels.fast_rotary(self.model, "default" if mode == "default" else "compiled")
        self.kernels = {"mode": self.options.kernels, **linear, "rotary": rotary}

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
        """The width of the vectors ``encode`` returns (``--truncate-dim`` when set)."""
        return self.config.out_dim

    @property
    def variant(self) -> str:
        """The compression variant and dtype, for the run's name (``"pool 2, int8"``; empty for the
        float32 model as published): the config's ``variant()``."""
        return self.config.variant()

    def settings(self) -> dict[str, Any]:
        """Everything that changes the embeddings: ``asdict`` of the config, the attention
        implementation and, off the CPU, the device kind (both agree to ~1e-6, not bit for bit); an
        int8 encoder also the quantized engine (its kernels round differently)."""
        device = {} if self.device.type == "cpu" else {"device": self.device.type}
        engine = {"quantized_engine": torch.backends.quantized.engine} if self.config.quantize else {}
        return {**self.config.settings(), "attention": self.attention, **device, **engine}

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the weight, tokenizer and config files of every module folder (computed once)."""
        return files_fingerprint(self.layout.module_dirs, self.folder)

    def parameter_count(self) -> int:
        """The model's parameters (counted at load: int8 layers hold theirs packed)."""
        return self._parameter_count

    def _tokenize(
        self, texts: Sequence[str], prompt: str, max_length: int, insert: int | None = None
    ) -> TokenIds:
        """:func:`harness.encode.tokenize.token_ids` with this model's tokenizer and casing."""
        lowercase = self.config.do_lower_case
        return token_ids(self.tokenizer, texts, prompt, max_length, lowercase=lowercase, insert=insert)

    def _output(self, rows: torch.Tensor) -> torch.Tensor:
        """The Dense layers' output rows as returned: float32, the first ``truncate_dim`` dimensions
        (sentence-transformers' ``truncate_embeddings``: ``embeddings[..., :truncate_dim]``,
        ``util/tensor.py`` line 134), L2-normalised when the model normalises (ColBERT always, a dense
        model with a Normalize module) so the kept dimensions score by cosine, as sentence-transformers'
        evaluators score truncated embeddings (its ``encode`` truncates after the Normalize module,
        ``SentenceTransformer.py`` lines 1116-1119, and leaves them unnormalised unless asked);
        on the CPU."""
        rows = rows.float()[..., : self.config.truncate_dim]  # [:None]: all
        return (torch.nn.functional.normalize(rows, p=2, dim=-1) if self.config.normalize else rows).cpu()

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
        ids_list: TokenIds,
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
        per_token = self.activation_bytes_per_token(longest)
        budget = batching.token_budget(self.options.max_tokens_per_batch, self.options.max_memory, per_token)
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
            for batch in batching.plan_batches(widths, batch_size, budget):
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
        return TokenEmbeddings(vectors, offsets, int(widths.sum()), ids_list.truncated)


def quantize_linear(modules: Sequence[nn.Module]) -> None:
    """torch's dynamic int8 quantization of every ``nn.Linear`` in ``modules``, in place
    (``torch.ao.quantization.quantize_dynamic``, default qconfig: int8 weights per tensor, activations
    quantized per call from their range; Jacob et al. 2018). torch marks ``torch.ao.quantization``
    deprecated for torchao and still ships it (2.13): its two warnings are silenced here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor")
        for module in modules:
            torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)


def _absolute_position_limit(model: nn.Module) -> int | None:
    """Tokens a backbone with learned absolute positions can place (BERT: 512; RoBERTa counts from
    ``padding_idx + 1``), None for relative / rotary positions (ModernBERT)."""
    table = getattr(getattr(model, "embeddings", None), "position_embeddings", None)
    if not isinstance(table, nn.Embedding):
        return None
    return table.num_embeddings - (table.padding_idx + 1 if table.padding_idx is not None else 0)
