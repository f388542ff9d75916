"""Typed checkpoint settings: everything that changes a model's embeddings, frozen.

``settings()`` of an encoder is ``asdict`` of its config: what the embedding cache is keyed on and
what a results file records; the compression variants (``VARIANTS``: token pooling, truncated
dimensions, int8) only when asked for, so each is a cache entry and a results row of its own. Values
come from the checkpoint's JSON files, replaced by the caller's overrides the way PyLate /
sentence-transformers constructor arguments replace them (override > file > library default).
:class:`LoadOptions` holds what changes how, not what, a model encodes.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from harness.checkpoints.files import positive, read_json_object, typed
from harness.checkpoints.layout import Layout
from harness.errors import InputError, positive_int
from harness.units import parse_size

PIPELINE_VERSION = 1  # bump when an encoder change alters embeddings, so caches keyed on settings miss
# padded tokens a batch aims at (speed); memory bounds it below. Measured (benchmarks/bench_batch.py,
# 2 cores, float32): 16384 9% (Ettin-17m shape) and 16% (all-MiniLM-L6-v2) slower than 4096, 8192 3%
# and 15%: activations over glibc's mmap threshold come fresh from the OS at every batch (1.1M and
# 3.9M page faults per 1000 documents at 16384, ~500 at 4096); bfloat16 4096-16384 within 2%
DEFAULT_MAX_TOKENS_PER_BATCH = 4096
DEFAULT_MAX_MEMORY = 4 * 1024**3  # bytes of activations a batch may take (--max-memory)
PUNCTUATION = tuple("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")  # string.punctuation, PyLate's default skiplist
POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens")
DTYPES = ("float32", "bfloat16", "float16")
DTYPE_LABELS = {"bfloat16": "bf16", "float16": "fp16"}  # a run's name says a dtype other than float32
QUANTIZATIONS = ("int8",)  # --quantize: torch's dynamic int8 linear layers (encode.base.quantize_linear)
# compression variants: settings of their own, left out of ``settings()`` when unset so the plain
# model's cache keys and results stay what they were
VARIANTS = ("pool_factor", "truncate_dim", "quantize")

COLBERT_OVERRIDES = frozenset(
    {
        "query_prefix",
        "document_prefix",
        "query_length",
        "document_length",
        "do_query_expansion",
        "attend_to_expansion_tokens",
        "skiplist_words",
        "prompt",  # both sides' prompt (PyLate's encode(prompt=...)), below the per-side ones
        "query_prompt",
        "document_prompt",
        "do_lower_case",
        *VARIANTS,
    }
)
DENSE_OVERRIDES = frozenset(
    {"max_seq_length", "do_lower_case", "query_prompt", "document_prompt", "truncate_dim", "quantize"}
)
OPTION_OVERRIDES = frozenset({"max_tokens_per_batch", "max_memory", "name", "attn_implementation", "kernels"})
KERNEL_MODES = ("auto", "default", "onednn")  # harness.kernels: by ISA, torch's own, forced oneDNN
_OVERRIDES_FILE = Path("<overrides>")
# settings that change only one side's embeddings: a query-side change keeps the corpus's cache entry
# (not the prefixes: both are added to the one tokenizer, so either changes how the other side's
# texts that spell it are cut)
QUERY_ONLY = frozenset({"query_length", "do_query_expansion", "attend_to_expansion_tokens", "query_prompt"})
DOCUMENT_ONLY = frozenset({"document_length", "skiplist_words", "document_prompt", "pool_factor"})

_LEGACY_POOLING = {  # sentence-transformers < 6 writes one boolean per mode
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}


def check_overrides(kind: str, overrides: Mapping[str, Any]) -> None:
    """InputError for an override the checkpoint kind does not take."""
    allowed = OPTION_OVERRIDES | (COLBERT_OVERRIDES if kind == "colbert" else DENSE_OVERRIDES)
    if kind != "colbert" and overrides.get("pool_factor") is not None:
        message = "token pooling is for multi-vector (ColBERT) models: a dense model has one row per text"
        raise InputError(message, field="--pool-factor")
    for key in overrides:
        if key not in allowed:
            raise InputError(f"unknown override (allowed: {sorted(allowed)})", field=key)


def parse_pool_factor(value: str) -> int | float:
    """``--pool-factor`` as typed: an integer (PyLate's) or a fractional number."""
    return _integral(float(value))


def _integral(number: float) -> int | float:
    return int(number) if number.is_integer() else number


def pool_factor_value(value: object, field: str = "--pool-factor") -> int | float | None:
    """``--pool-factor``: None (no pooling) or a number above 1, an integral one as an int (2 and 2.0
    key the cache alike); InputError naming ``field`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 1 < float(value) < float("inf"):
        message = f"must be a number above 1 (1 is no pooling: leave the flag out), got {value!r}"
        raise InputError(message, field=field)
    return _integral(float(value))


def truncate_dim_value(value: object, field: str = "--truncate-dim", *, dim: int | None = None) -> int | None:
    """``--truncate-dim``: None or a positive integer below the model's ``dim`` (when known)."""
    if value is None:
        return None
    kept = positive_int(value, field)
    if dim is not None and kept >= dim:
        message = f"the model's vectors have {dim} dimensions: {kept} keeps them all (give fewer than {dim})"
        raise InputError(message, field=field)
    return kept


def check_quantize(quantize: object, *, dtype: str, kernels: str, device: str) -> None:
    """``--quantize``: one of ``QUANTIZATIONS``, on a float32 model encoding on the CPU (torch's dynamic
    int8 linear layers are CPU kernels fed float32 activations) and not with ``--kernels onednn``
    (whose packed float32 layers are the ones int8 replaces); InputError naming ``--quantize``."""
    if _quantize_value(quantize) is None:
        return
    device_type = device.split(":")[0]
    why = (
        f"torch's dynamic int8 linear layers run on the CPU only, not on {device_type}: drop --device"
        if device_type != "cpu"
        else f"int8 quantizes the float32 weights and runs float32 activations, not {dtype}: drop --dtype"
        if dtype != "float32"
        else "--kernels onednn packs the float32 linear layers int8 replaces: use --kernels auto or default"
        if kernels == "onednn"
        else None
    )
    if why:
        raise InputError(why, field="--quantize")


def _quantize_value(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in QUANTIZATIONS):
        return value
    raise InputError(f"must be one of {', '.join(QUANTIZATIONS)}; got {value!r}", field="--quantize")


def _variants(overrides: Mapping[str, Any], dim: int) -> dict[str, Any]:
    """The compression variants asked for (never read from a checkpoint's files), checked."""
    truncate_dim = truncate_dim_value(overrides.get("truncate_dim"), dim=dim)
    return {"truncate_dim": truncate_dim, "quantize": _quantize_value(overrides.get("quantize"))}


@dataclass(frozen=True)
class LoadOptions:
    """How a model is run, not what it computes: the name results are stored under, the padded
    tokens a batch aims at, the bytes of activations a batch may take (``max_memory``: batches are
    cut below it, and a text that alone would exceed it is an error at load time), the transformers
    attention implementation (None: :mod:`harness.attention` where supported) and the CPU kernels
    (:mod:`harness.kernels`)."""

    name: str | None = None
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH
    max_memory: int = DEFAULT_MAX_MEMORY
    attn_implementation: str | None = None
    kernels: str = "auto"

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> LoadOptions:
        given = {k: v for k, v in overrides.items() if k in OPTION_OVERRIDES}
        budget = typed(given, "max_tokens_per_batch", int, DEFAULT_MAX_TOKENS_PER_BATCH, _OVERRIDES_FILE)
        memory = given.get("max_memory", DEFAULT_MAX_MEMORY)
        memory = parse_size(memory, "max_memory") if isinstance(memory, str) else memory
        memory = typed({"max_memory": memory}, "max_memory", int, DEFAULT_MAX_MEMORY, _OVERRIDES_FILE)
        return cls(
            name=given.get("name"),
            max_tokens_per_batch=positive(budget, "max_tokens_per_batch", _OVERRIDES_FILE),
            max_memory=positive(memory, "max_memory", _OVERRIDES_FILE),
            attn_implementation=given.get("attn_implementation"),
            kernels=given.get("kernels", "auto"),
        )


class _EncoderConfig:
    """What both configs answer: their settings as JSON values, and the prompt of a side."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # declared only: every subclass is a dataclass
    query_prompt: str
    document_prompt: str
    dim: int
    dtype: str
    truncate_dim: int | None
    quantize: str | None

    def settings(self) -> dict[str, Any]:
        """``asdict(config)`` as JSON values (tuples as lists): what caches are keyed on; a compression
        variant (``VARIANTS``) only when set."""
        items = [(k, v) for k, v in asdict(self).items() if v is not None or k not in VARIANTS]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in items}

    def prompt(self, is_query: bool) -> str:
        return self.query_prompt if is_query else self.document_prompt

    @property
    def out_dim(self) -> int:
        """The width of the vectors the encoder emits: ``truncate_dim`` when set, else ``dim``."""
        return self.truncate_dim or self.dim

    def variant(self) -> str:
        """How this encoder differs from the model as published, for its run's name: ``"pool 2, dim 64,
        int8, bf16"`` (empty for the plain float32 model)."""
        pool = getattr(self, "pool_factor", None)
        parts = [f"pool {pool}" if pool else "", f"dim {self.truncate_dim}" if self.truncate_dim else ""]
        parts += [self.quantize or "", DTYPE_LABELS.get(self.dtype, "")]
        return ", ".join(p for p in parts if p)


def _do_lower_case(layout: Layout, overrides: Mapping[str, Any]) -> bool:
    file = layout.backbone_dir / "sentence_bert_config.json"
    sbert = read_json_object(file, required=False)
    return typed({**sbert, **overrides}, "do_lower_case", bool, False, file)


@dataclass(frozen=True, kw_only=True)
class ColBERTConfig(_EncoderConfig):
    """PyLate 1.6 ``ColBERT`` settings (``pylate/models/colbert.py``, ``ColBERT.__init__``);
    ``attend_to_expansion_tokens`` is the effective value (False without query expansion). The
    prompts default to the one PyLate applies to both sides (``prompts[default_prompt_name]``)."""

    encoder: Literal["colbert"] = "colbert"
    pipeline_version: int = PIPELINE_VERSION
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    do_query_expansion: bool
    attend_to_expansion_tokens: bool
    skiplist_words: tuple[str, ...]
    do_lower_case: bool
    query_prompt: str
    document_prompt: str
    strip: bool = True
    normalize: bool = True
    dim: int
    dtype: str
    pool_factor: int | float | None = None  # documents' tokens pooled (harness.encode.pooling)
    truncate_dim: int | None = None  # first dimensions kept, renormalised
    quantize: str | None = None  # QUANTIZATIONS

    @classmethod
    def from_checkpoint(
        cls, layout: Layout, overrides: Mapping[str, Any], *, dim: int, dtype: str
    ) -> ColBERTConfig:
        """``config_sentence_transformers.json`` (a Stanford checkpoint: ``artifact.metadata``, read as
        PyLate does) and ``sentence_bert_config.json`` of ``layout``, ``overrides`` on top; ``dim`` is
        the last Dense layer's width."""
        if layout.stanford:
            file = layout.folder / "artifact.metadata"
            cfg = {**_stanford_settings(read_json_object(file, required=False)), **overrides}
        else:
            file = layout.folder / "config_sentence_transformers.json"
            cfg = {**read_json_object(file, required=False), **overrides}
        prompts = typed(cfg, "prompts", dict, {}, file)
        prompt_name = typed(cfg, "default_prompt_name", str, None, file)
        skiplist = typed(cfg, "skiplist_words", (list, tuple), PUNCTUATION, file)
        if not all(isinstance(w, str) for w in skiplist):
            raise InputError("expected a list of strings", file=str(file), field="skiplist_words")
        expansion = typed(cfg, "do_query_expansion", bool, True, file)
        both = typed(cfg, "prompt", str, (prompts.get(prompt_name) or "") if prompt_name else "", file)
        return cls(
            query_prefix=typed(cfg, "query_prefix", str, "[Q] ", file),
            document_prefix=typed(cfg, "document_prefix", str, "[D] ", file),
            query_length=positive(typed(cfg, "query_length", int, 32, file), "query_length", file),
            document_length=positive(typed(cfg, "document_length", int, 180, file), "document_length", file),
            do_query_expansion=expansion,
            attend_to_expansion_tokens=typed(cfg, "attend_to_expansion_tokens", bool, False, file)
            and expansion,
            skiplist_words=tuple(skiplist),
            do_lower_case=_do_lower_case(layout, overrides),
            query_prompt=typed(cfg, "query_prompt", str, both, file),
            document_prompt=typed(cfg, "document_prompt", str, both, file),
            dim=dim,
            dtype=dtype,
            pool_factor=pool_factor_value(overrides.get("pool_factor")),
            **_variants(overrides, dim),
        )


def _stanford_settings(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """PyLate 1.6's reading of a Stanford ``artifact.metadata``: prefixes from ``query_token_id`` /
    ``doc_token_id`` (``[unused0]`` / ``[unused1]`` when absent), lengths from ``query_maxlen`` /
    ``doc_maxlen``, attend-to-expansion from ``attend_to_mask_tokens``; the rest PyLate's defaults
    (query expansion on, punctuation skiplist, no prompt)."""
    names = {
        "query_prefix": "query_token_id",
        "document_prefix": "doc_token_id",
        "query_length": "query_maxlen",
        "document_length": "doc_maxlen",
        "attend_to_expansion_tokens": "attend_to_mask_tokens",
    }
    out = {"query_prefix": "[unused0]", "document_prefix": "[unused1]"}
    out |= {ours: metadata[theirs] for ours, theirs in names.items() if metadata.get(theirs) is not None}
    return out


@dataclass(frozen=True, kw_only=True)
class DenseConfig(_EncoderConfig):
    """sentence-transformers settings of a Transformer + Pooling [+ Dense] [+ Normalize] model, with
    the prompts ``encode_query`` / ``encode_document`` apply (or the caller's)."""

    encoder: Literal["dense"] = "dense"
    pipeline_version: int = PIPELINE_VERSION
    max_seq_length: int
    do_lower_case: bool
    pooling: str
    normalize: bool
    query_prompt: str
    document_prompt: str
    strip: bool = True
    dim: int
    dtype: str
    truncate_dim: int | None = None  # first dimensions kept, renormalised when ``normalize``
    quantize: str | None = None  # QUANTIZATIONS

    @classmethod
    def from_checkpoint(
        cls,
        layout: Layout,
        overrides: Mapping[str, Any],
        *,
        dim: int,
        dtype: str,
        default_max_seq_length: int,
    ) -> DenseConfig:
        """Pooling mode, Normalize presence, prompts and ``max_seq_length`` (``default_max_seq_length``,
        sentence-transformers' fallback from the backbone, when the checkpoint names none)."""
        file = layout.dirs("pooling")[0] / "config.json"
        cfg = read_json_object(file)
        if "pooling_mode" in cfg:  # sentence-transformers >= 6
            modes = [cfg["pooling_mode"]] if isinstance(cfg["pooling_mode"], str) else cfg["pooling_mode"]
        else:
            modes = [mode for mode, key in _LEGACY_POOLING.items() if cfg.get(key)]
        if not isinstance(modes, list) or len(modes) != 1 or modes[0] not in POOLING_MODES:
            raise InputError(
                f"exactly one pooling mode of {POOLING_MODES} is supported, got {modes}",
                file=str(file),
                field="pooling_mode",
            )

        st_file = layout.folder / "config_sentence_transformers.json"
        st_cfg = read_json_object(st_file, required=False)
        prompts = typed(st_cfg, "prompts", dict, {}, st_file)
        default_name = typed(st_cfg, "default_prompt_name", str, None, st_file)
        default = prompts.get(default_name, "") if default_name else ""
        doc_name = next((n for n in ("document", "passage", "corpus") if n in prompts), None)
        given = {**st_cfg, **overrides}
        query_prompt = typed(given, "query_prompt", str, prompts.get("query", default) or "", st_file)
        document_prompt = typed(
            given, "document_prompt", str, (prompts[doc_name] if doc_name else default) or "", st_file
        )
        if (query_prompt or document_prompt) and cfg.get("include_prompt", True) is False:
            raise InputError(
                "include_prompt=false with a prompt is not supported", file=str(file), field="include_prompt"
            )

        sbert_file = layout.backbone_dir / "sentence_bert_config.json"
        sbert = {**read_json_object(sbert_file, required=False), **overrides}
        max_seq_length = typed(sbert, "max_seq_length", int, None, sbert_file)
        return cls(
            max_seq_length=default_max_seq_length
            if max_seq_length is None
            else positive(max_seq_length, "max_seq_length", sbert_file),
            do_lower_case=_do_lower_case(layout, overrides),
            pooling=modes[0],
            normalize=bool(layout.dirs("normalize")),
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            dim=dim,
            dtype=dtype,
            **_variants(overrides, dim),
        )
