"""Checkpoint loading and encoding: PyLate ColBERT (multi-vector) and sentence-transformers (dense).

Both encoders reproduce their reference library's encoding exactly, with torch + transformers only:

- ``ColBERTEncoder`` = PyLate 1.6 ``ColBERT.encode`` (REFERENCE §4): text -> strip -> lowercase if
  ``do_lower_case`` -> tokenize truncated to ``length - 1`` -> prefix id inserted after [CLS] -> queries
  padded to ``query_length`` with the mask token when ``do_query_expansion`` (kept but not attended unless
  ``attend_to_expansion_tokens``) -> backbone -> Dense layers -> keep (documents: attended and not a
  skiplist id; queries: all with expansion, attended without) -> L2-normalise each kept vector.
- ``DenseEncoder`` = sentence-transformers ``encode_query``/``encode_document``: prompt + text -> strip ->
  lowercase if ``do_lower_case`` -> tokenize truncated to ``max_seq_length`` -> backbone -> pooling
  (mean / cls / max / mean_sqrt_len) -> Dense layers -> L2-normalise if a Normalize module is present.

Speed: texts are tokenised once, sorted by token count (longest first) and cut into batches of at most
``batch_size`` texts and ``max_tokens_per_batch`` padded tokens; outputs go straight to their final rows,
so input order is restored without per-text copies. Output is always float32.

Security: weights come from safetensors, or ``.bin`` through ``torch.load(weights_only=True)`` (also what
transformers does for the backbone); activation functions come from a fixed list, never from imports
named in a config file; ``trust_remote_code`` is off unless asked for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from harness.types import HarnessError, InputError, TokenEmbeddings

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PIPELINE_VERSION = 1  # bump when a change here alters embeddings, so caches keyed on settings() miss
DEFAULT_MAX_TOKENS_PER_BATCH = 16384
PUNCTUATION = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")  # string.punctuation, PyLate's default skiplist
_ACTIVATIONS = {"Identity": nn.Identity, "Tanh": nn.Tanh, "ReLU": nn.ReLU, "GELU": nn.GELU}
_ACTIVATIONS.update({"Sigmoid": nn.Sigmoid, "SiLU": nn.SiLU, "LeakyReLU": nn.LeakyReLU})
_POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens")
_WEIGHT_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")


class Encoder(Protocol):
    """What the pipeline needs from a model (DESIGN.md "encode")."""

    name: str
    multi_vector: bool

    @property
    def fingerprint(self) -> str: ...

    def settings(self) -> dict[str, Any]: ...

    def parameter_count(self) -> int: ...

    def count_tokens(self, texts: Sequence[str], *, is_query: bool) -> int: ...

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings: ...


# ------------------------------------------------------------------------------------------ files


def _read_json(path: Path, *, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            raise InputError("file is missing", file=str(path))
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}", file=str(path), line=e.lineno) from e
    except UnicodeDecodeError as e:
        raise InputError("not UTF-8 text", file=str(path)) from e


def _get(cfg: dict, key: str, kind: type | tuple[type, ...], default: Any, file: Path) -> Any:
    """``cfg[key]`` checked against ``kind`` (bools are not ints), or ``default`` when absent/null."""
    value = cfg.get(key)
    if value is None:
        return default
    bad_bool = isinstance(value, bool) and kind in (int, float)
    if bad_bool or not isinstance(value, kind):
        raise InputError(
            f"expected {getattr(kind, '__name__', kind)}, got {value!r}", file=str(file), field=key
        )
    return value


def _positive(value: int, key: str, file: Path) -> int:
    if value < 1:
        raise InputError(f"must be >= 1, got {value}", file=str(file), field=key)
    return value


def _load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """State dict of a module folder: model.safetensors, else pytorch_model.bin (weights_only)."""
    safetensors_file, bin_file = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        if safetensors_file.is_file():
            from safetensors.torch import load_file

            return load_file(str(safetensors_file)), safetensors_file
        if bin_file.is_file():
            return torch.load(bin_file, map_location="cpu", weights_only=True), bin_file
    except Exception as e:  # corrupt or unsafe file: report which one
        file = safetensors_file if safetensors_file.is_file() else bin_file
        raise InputError(f"cannot read weights: {e}", file=str(file)) from e
    raise InputError("no weights file (model.safetensors or pytorch_model.bin)", file=str(folder))


def _fingerprint(files: list[Path], root: Path) -> str:
    """sha256 over (relative path, size, content) of every file, in sorted path order."""
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(f"{path.relative_to(root).as_posix()}\x00{path.stat().st_size}\x00".encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------- modules


class DenseLayer(nn.Module):
    """PyLate / sentence-transformers Dense: ``y = act(W x + b)``, plus ``x`` or ``R x`` if use_residual."""

    def __init__(
        self, linear: nn.Linear, activation: nn.Module, use_residual: bool, residual: nn.Linear | None
    ):
        super().__init__()
        self.linear, self.activation, self.use_residual, self.residual = (
            linear,
            activation,
            use_residual,
            residual,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.linear(x))
        if self.use_residual:
            y = y + (self.residual(x) if self.residual is not None else x)
        return y

    @classmethod
    def load(cls, folder: Path, in_dim: int) -> DenseLayer:
        """Read ``folder/config.json`` and its weights; ``in_dim`` is the previous layer's width."""
        cfg_file = folder / "config.json"
        cfg = _read_json(cfg_file)
        if not isinstance(cfg, dict):
            raise InputError("expected a JSON object", file=str(cfg_file))
        in_features = _positive(_get(cfg, "in_features", int, None, cfg_file) or 0, "in_features", cfg_file)
        out_features = _positive(
            _get(cfg, "out_features", int, None, cfg_file) or 0, "out_features", cfg_file
        )
        if in_features != in_dim:
            raise InputError(
                f"is {in_features} but the previous layer outputs {in_dim}",
                file=str(cfg_file),
                field="in_features",
            )
        bias = _get(cfg, "bias", bool, True, cfg_file)
        use_residual = _get(cfg, "use_residual", bool, False, cfg_file)
        activation_name = _get(cfg, "activation_function", str, "torch.nn.modules.activation.Tanh", cfg_file)
        short = activation_name.rsplit(".", 1)[-1]
        if not activation_name.startswith("torch.nn") or short not in _ACTIVATIONS:
            raise InputError(
                f"unsupported activation {activation_name!r} (allowed: torch.nn {sorted(_ACTIVATIONS)})",
                file=str(cfg_file),
                field="activation_function",
            )

        state, weights_file = _load_weights(folder)
        expected = {"linear.weight": (out_features, in_features)}
        if bias:
            expected["linear.bias"] = (out_features,)
        if use_residual and in_features != out_features:
            expected["residual.weight"] = (out_features, in_features)
        for key in sorted(set(expected) | set(state)):
            if key not in state:
                raise InputError("tensor is missing", file=str(weights_file), field=key)
            if key not in expected:
                raise InputError("unexpected tensor for this config.json", file=str(weights_file), field=key)
            if tuple(state[key].shape) != expected[key]:
                raise InputError(
                    f"shape {tuple(state[key].shape)} != expected {expected[key]} (from config.json)",
                    file=str(weights_file),
                    field=key,
                )
        linear = nn.Linear(in_features, out_features, bias=bias)
        residual = nn.Linear(in_features, out_features, bias=False) if "residual.weight" in expected else None
        layer = cls(linear, _ACTIVATIONS[short](), use_residual, residual)
        layer.load_state_dict(state, strict=True)
        return layer


def _module_kind(entry: Any, file: Path, index: int) -> tuple[str, str]:
    """(kind, path) of one modules.json entry; kind in transformer|dense|pooling|normalize."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise InputError(f"entry {index} has no 'type' string", file=str(file), field="type")
    type_name = entry["type"]
    short = type_name.rsplit(".", 1)[-1]
    kinds = {"Transformer": "transformer", "Dense": "dense", "Pooling": "pooling", "Normalize": "normalize"}
    if not type_name.startswith(("sentence_transformers.", "pylate.")) or short not in kinds:
        raise InputError(
            f"unsupported module type {type_name!r} (entry {index})", file=str(file), field="type"
        )
    path = entry.get("path", "")
    if not isinstance(path, str) or ".." in Path(path).parts or Path(path).is_absolute():
        raise InputError(f"bad module path {path!r} (entry {index})", file=str(file), field="path")
    return kinds[short], path


def _load_backbone(
    folder: Path, dtype: torch.dtype, trust_remote_code: bool, attn_implementation: str | None
):
    """transformers AutoModel + AutoTokenizer from ``folder`` (default attention, like PyLate)."""
    from transformers import AutoModel, AutoTokenizer

    if not (folder / "config.json").is_file():
        raise InputError("backbone config is missing", file=str(folder / "config.json"))
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(folder, dtype=dtype, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"cannot load the transformers backbone: {e}", file=str(folder)) from e
    return model.eval(), tokenizer


def resolve_checkpoint(path_or_id: str | Path) -> Path:
    """A local folder as is; otherwise a Hugging Face Hub id fetched with ``snapshot_download``."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_id)
    if (
        path.exists()
        or path.is_absolute()
        or text.startswith(".")
        or not re.fullmatch(r"[\w.-]+/[\w.-]+", text)
    ):
        raise InputError("no such checkpoint folder (and not a Hub id 'org/name')", file=text)
    try:
        from huggingface_hub import snapshot_download

        ignore = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "flax_model*", "tf_model*", "*.ot"]
        return Path(snapshot_download(repo_id=text, ignore_patterns=ignore))
    except Exception as e:  # offline, unknown repo, network: the Hub raises many types
        raise HarnessError(
            f"cannot fetch model '{text}' from the Hugging Face Hub ({type(e).__name__}: {e}). "
            "Pass a local checkpoint folder, or download it first where the Hub is reachable."
        ) from e


# ---------------------------------------------------------------------------------------- encoders


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

    def __init__(
        self,
        *,
        name: str,
        folder: Path,
        module_dirs: list[Path],
        backbone,
        tokenizer,
        dense: list[DenseLayer],
        dtype: str,
        device: str,
        do_lower_case: bool,
        max_tokens_per_batch: int,
    ) -> None:
        self.name, self.folder, self._module_dirs = name, folder, module_dirs
        self.model, self.tokenizer = backbone.to(device), tokenizer
        self.dense = nn.Sequential(*dense).to(device=device, dtype=DTYPES[dtype]).eval()
        self.dtype, self.device, self.do_lower_case = dtype, torch.device(device), do_lower_case
        self.max_tokens_per_batch = max_tokens_per_batch
        self.dim = dense[-1].linear.out_features if dense else backbone.config.hidden_size

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the weight, tokenizer and config files of every module folder (computed once)."""
        files = {
            p
            for d in self._module_dirs
            if d.is_dir()  # a module without parameters (Normalize) may ship no folder at all
            for p in d.iterdir()
            if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
        }
        return _fingerprint(sorted(files), self.folder)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters()) + sum(
            p.numel() for p in self.dense.parameters()
        )

    def _prepare(self, texts: Sequence[str], prompt: str) -> list[str]:
        out = [(prompt + str(t)).strip() for t in texts]
        return [t.lower() for t in out] if self.do_lower_case else out

    def _tokenize(self, texts: list[str], max_length: int) -> list[list[int]]:
        if not texts:
            return []
        enc = self.tokenizer(
            texts,
            truncation="longest_first",
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return enc["input_ids"]

    def _hidden(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids.to(self.device), attention_mask=attention.to(self.device))
        return out[0]

    def _run(
        self,
        ids_list: list[np.ndarray],
        widths: np.ndarray,
        counts: np.ndarray,
        batch_size: int,
        show_progress: bool,
        forward,
    ) -> TokenEmbeddings:
        """Batch, call ``forward(ids [B,T], lengths [B]) -> float32 rows of the batch``, place the rows.

        ``widths[i]``: padded width text i needs; ``counts[i]``: rows it emits (known before the forward).
        """
        offsets = np.zeros(len(ids_list) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        vectors = np.empty((int(offsets[-1]), self.dim), np.float32)
        pad_id = self._pad_id
        with (
            torch.inference_mode(),
            tqdm(
                total=len(ids_list), desc=f"encode {self.name}", disable=not show_progress, unit="text"
            ) as bar,
        ):
            for batch in plan_batches(widths, batch_size, self.max_tokens_per_batch):
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
                bar.update(len(batch))
        return TokenEmbeddings(vectors, offsets)


class ColBERTEncoder(_TransformerEncoder):
    """PyLate ColBERT checkpoint; ``encode`` returns one L2-normalised vector per kept token."""

    multi_vector = True

    def __init__(self, *, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        c = config
        self.query_prefix, self.document_prefix = c["query_prefix"], c["document_prefix"]
        self.query_length, self.document_length = c["query_length"], c["document_length"]
        self.do_query_expansion = c["do_query_expansion"]
        self.attend_to_expansion_tokens = c["attend_to_expansion_tokens"] and self.do_query_expansion
        self.skiplist_words, self.prompt = c["skiplist_words"], c["prompt"]
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
        self._prefix_ids = {
            True: self._prefix_id(self.query_prefix, "query_prefix"),
            False: self._prefix_id(self.document_prefix, "document_prefix"),
        }
        self._skiplist = np.array(
            sorted({int(tok.convert_tokens_to_ids(w)) for w in self.skiplist_words}), np.int64
        )

    def _prefix_id(self, prefix: str, field: str) -> int | None:
        if not prefix:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(prefix)
        rows = self.model.get_input_embeddings().num_embeddings
        if token_id is None or token_id == self.tokenizer.unk_token_id or token_id >= rows:
            raise InputError(
                f"prefix token {prefix!r} is not in the tokenizer/embeddings; PyLate would add it with a "
                "random embedding, which cannot be reproduced (load and save it with PyLate once)",
                file=str(self.folder / "config_sentence_transformers.json"),
                field=field,
            )
        return int(token_id)

    def settings(self) -> dict[str, Any]:
        return {
            "encoder": "colbert",
            "pipeline_version": PIPELINE_VERSION,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "query_length": self.query_length,
            "document_length": self.document_length,
            "do_query_expansion": self.do_query_expansion,
            "attend_to_expansion_tokens": self.attend_to_expansion_tokens,
            "skiplist_words": list(self.skiplist_words),
            "do_lower_case": self.do_lower_case,
            "prompt": self.prompt,
            "strip": True,
            "normalize": True,
            "dim": self.dim,
            "dtype": self.dtype,
        }

    def _token_ids(
        self, texts: Sequence[str], is_query: bool
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Per text: ids with the prefix inserted (unpadded), padded width, number of output vectors."""
        prefix_id = self._prefix_ids[is_query]
        length = self.query_length if is_query else self.document_length
        raw = self._tokenize(
            self._prepare(texts, self.prompt), length - 1 if prefix_id is not None else length
        )
        if prefix_id is None:
            ids_list = [np.asarray(ids, np.int64) for ids in raw]
        else:
            ids_list = [np.asarray(ids[:1] + [prefix_id] + ids[1:], np.int64) for ids in raw]
        lengths = np.array([len(ids) for ids in ids_list], np.int64)
        if is_query and self.do_query_expansion:
            widths = np.maximum(lengths, length)
            return ids_list, widths, widths.copy()
        if is_query:
            return ids_list, lengths, lengths.copy()
        counts = np.array([len(ids) - np.isin(ids, self._skiplist).sum() for ids in ids_list], np.int64)
        return ids_list, lengths, counts

    def count_tokens(self, texts: Sequence[str], *, is_query: bool) -> int:
        """Tokens the backbone processes (prefix and query expansion included, batch padding excluded)."""
        return int(self._token_ids(texts, is_query)[1].sum())

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings:
        """Token embeddings exactly as PyLate ``ColBERT.encode``; float32, input order."""
        ids_list, widths, counts = self._token_ids(texts, is_query)
        expansion = is_query and self.do_query_expansion
        skiplist = torch.from_numpy(self._skiplist)

        def forward(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            attended = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            attention = (
                torch.ones_like(attended) if expansion and self.attend_to_expansion_tokens else attended
            )
            if expansion:
                keep = torch.ones_like(attended)
            elif is_query:
                keep = attended
            else:
                keep = attended & ~torch.isin(ids, skiplist)
            hidden = self._hidden(ids, attention.long())
            rows = self.dense(hidden[keep.to(hidden.device)]).float()
            return torch.nn.functional.normalize(rows, p=2, dim=1).cpu()

        return self._run(ids_list, widths, counts, batch_size, show_progress, forward)


class DenseEncoder(_TransformerEncoder):
    """sentence-transformers model (Transformer + Pooling [+ Dense] [+ Normalize]); one row per text."""

    multi_vector = False

    def __init__(self, *, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_seq_length, self.pooling = config["max_seq_length"], config["pooling"]
        self.normalize, self.prompts = config["normalize"], config["prompts"]
        tok = self.tokenizer
        self._pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)

    def settings(self) -> dict[str, Any]:
        return {
            "encoder": "dense",
            "pipeline_version": PIPELINE_VERSION,
            "max_seq_length": self.max_seq_length,
            "do_lower_case": self.do_lower_case,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "query_prompt": self.prompts[True],
            "document_prompt": self.prompts[False],
            "strip": True,
            "dim": self.dim,
            "dtype": self.dtype,
        }

    def _token_ids(self, texts: Sequence[str], is_query: bool) -> list[np.ndarray]:
        raw = self._tokenize(self._prepare(texts, self.prompts[is_query]), self.max_seq_length)
        return [np.asarray(ids, np.int64) for ids in raw]

    def count_tokens(self, texts: Sequence[str], *, is_query: bool) -> int:
        """Tokens the backbone processes (special tokens included, batch padding excluded)."""
        return sum(len(ids) for ids in self._token_ids(texts, is_query))

    def encode(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 32, show_progress: bool = True
    ) -> TokenEmbeddings:
        """Sentence embeddings exactly as sentence-transformers ``encode`` (one row per text), float32."""
        ids_list = self._token_ids(texts, is_query)
        widths = np.array([len(ids) for ids in ids_list], np.int64)

        def forward(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            hidden = self._hidden(ids, mask.long())
            pooled = _pool(hidden, mask.to(hidden.device), self.pooling)
            pooled = self.dense(pooled).float()
            return (torch.nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled).cpu()

        return self._run(
            ids_list, widths, np.ones(len(ids_list), np.int64), batch_size, show_progress, forward
        )


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


# ---------------------------------------------------------------------------------------- loading

_COMMON_OVERRIDES = {"do_lower_case", "max_tokens_per_batch", "name", "attn_implementation"}
_COLBERT_OVERRIDES = {
    "query_prefix",
    "document_prefix",
    "query_length",
    "document_length",
    "do_query_expansion",
    "attend_to_expansion_tokens",
    "skiplist_words",
    "prompt",
}
_DENSE_OVERRIDES = {"max_seq_length"}


def _colbert_config(folder: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """PyLate precedence: override > config_sentence_transformers.json > PyLate default."""
    file = folder / "config_sentence_transformers.json"
    cfg = _read_json(file, required=False) or {}
    if not isinstance(cfg, dict):
        raise InputError("expected a JSON object", file=str(file))
    cfg = {**cfg, **overrides}
    prompts = _get(cfg, "prompts", dict, {}, file)
    prompt_name = _get(cfg, "default_prompt_name", str, None, file)
    skiplist = _get(cfg, "skiplist_words", list, PUNCTUATION, file)
    if not all(isinstance(w, str) for w in skiplist):
        raise InputError("expected a list of strings", file=str(file), field="skiplist_words")
    return {
        "query_prefix": _get(cfg, "query_prefix", str, "[Q] ", file),
        "document_prefix": _get(cfg, "document_prefix", str, "[D] ", file),
        "query_length": _positive(_get(cfg, "query_length", int, 32, file), "query_length", file),
        "document_length": _positive(_get(cfg, "document_length", int, 180, file), "document_length", file),
        "do_query_expansion": _get(cfg, "do_query_expansion", bool, True, file),
        "attend_to_expansion_tokens": _get(cfg, "attend_to_expansion_tokens", bool, False, file),
        "skiplist_words": skiplist,
        "prompt": _get(cfg, "prompt", str, (prompts.get(prompt_name) or "") if prompt_name else "", file),
    }


_LEGACY_POOLING = {  # sentence-transformers < 6 writes one boolean per mode
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}


def _dense_config(folder: Path, backbone_dir: Path, modules: list[tuple[str, Path]], overrides: dict) -> dict:
    """Pooling mode, Normalize presence, query/document prompts (as ``encode_query``/``encode_document``)."""
    file = next(path for kind, path in modules if kind == "pooling") / "config.json"
    cfg = _read_json(file)
    if not isinstance(cfg, dict):
        raise InputError("expected a JSON object", file=str(file))
    if "pooling_mode" in cfg:  # sentence-transformers >= 6
        modes = [cfg["pooling_mode"]] if isinstance(cfg["pooling_mode"], str) else cfg["pooling_mode"]
    else:
        modes = [mode for mode, key in _LEGACY_POOLING.items() if cfg.get(key)]
    if not isinstance(modes, list) or len(modes) != 1 or modes[0] not in _POOLING_MODES:
        raise InputError(
            f"exactly one pooling mode of {_POOLING_MODES} is supported, got {modes}",
            file=str(file),
            field="pooling_mode",
        )

    st_file = folder / "config_sentence_transformers.json"
    st_cfg = _read_json(st_file, required=False) or {}
    if not isinstance(st_cfg, dict):
        raise InputError("expected a JSON object", file=str(st_file))
    prompts = _get(st_cfg, "prompts", dict, {}, st_file)
    default_name = _get(st_cfg, "default_prompt_name", str, None, st_file)
    default = prompts.get(default_name, "") if default_name else ""
    doc_name = next((n for n in ("document", "passage", "corpus") if n in prompts), None)
    query_prompt = prompts.get("query", default) or ""
    document_prompt = (prompts[doc_name] if doc_name else default) or ""
    if (query_prompt or document_prompt) and cfg.get("include_prompt", True) is False:
        raise InputError(
            "include_prompt=false with a prompt is not supported", file=str(file), field="include_prompt"
        )

    sbert_file = backbone_dir / "sentence_bert_config.json"
    sbert = {**(_read_json(sbert_file, required=False) or {}), **overrides}
    max_seq_length = _get(sbert, "max_seq_length", int, None, sbert_file)
    return {
        "pooling": modes[0],
        "normalize": any(kind == "normalize" for kind, _ in modules),
        "prompts": {True: query_prompt, False: document_prompt},
        "max_seq_length": None
        if max_seq_length is None
        else _positive(max_seq_length, "max_seq_length", sbert_file),
    }


def load_encoder(
    path_or_id: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    trust_remote_code: bool = False,
    **overrides: Any,
) -> ColBERTEncoder | DenseEncoder:
    """Load a PyLate ColBERT (Transformer + Dense layers) or sentence-transformers (Transformer + Pooling
    [+ Dense] [+ Normalize]) checkpoint from a folder or a Hub id.

    ``overrides`` replace config values the way PyLate/sentence-transformers constructor arguments do:
    ColBERT: query_prefix, document_prefix, query_length, document_length, do_query_expansion,
    attend_to_expansion_tokens, skiplist_words, prompt; dense: max_seq_length; both: do_lower_case,
    max_tokens_per_batch, name, attn_implementation.
    """
    if dtype not in DTYPES:
        raise InputError(f"unsupported dtype {dtype!r} (choose from {sorted(DTYPES)})", field="dtype")
    folder = resolve_checkpoint(path_or_id)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        raise InputError(
            "modules.json is missing: not a PyLate or sentence-transformers checkpoint "
            "(Stanford ColBERT checkpoints are not supported)",
            file=str(modules_file),
        )
    entries = _read_json(modules_file)
    if not isinstance(entries, list) or not entries:
        raise InputError("expected a non-empty list of modules", file=str(modules_file))
    modules = [_module_kind(e, modules_file, i) for i, e in enumerate(entries)]
    modules = [(kind, folder / path) for kind, path in modules]
    kinds = [kind for kind, _ in modules]
    is_dense_model = "pooling" in kinds
    if kinds[0] != "transformer" or kinds.count("transformer") != 1:
        raise InputError("the first module (and only that one) must be a Transformer", file=str(modules_file))
    allowed = r"transformer pooling (dense )*(normalize )?" if is_dense_model else r"transformer (dense )+"
    if not re.fullmatch(allowed, " ".join(kinds) + " "):
        raise InputError(
            f"unsupported module layout {kinds} (ColBERT: Transformer, Dense...; dense: Transformer, "
            "Pooling, [Dense...], [Normalize])",
            file=str(modules_file),
        )

    allowed_keys = _COMMON_OVERRIDES | (_DENSE_OVERRIDES if is_dense_model else _COLBERT_OVERRIDES)
    for key in overrides:
        if key not in allowed_keys:
            raise InputError(f"unknown override (allowed: {sorted(allowed_keys)})", field=key)
    common = {k: overrides.pop(k) for k in list(overrides) if k in _COMMON_OVERRIDES}

    backbone_dir = modules[0][1]
    backbone, tokenizer = _load_backbone(
        backbone_dir, DTYPES[dtype], trust_remote_code, common.get("attn_implementation")
    )
    dense, width = [], backbone.config.hidden_size
    for kind, path in modules:
        if kind == "dense":
            dense.append(DenseLayer.load(path, width))
            width = dense[-1].linear.out_features

    sbert_file = backbone_dir / "sentence_bert_config.json"
    sbert = _read_json(sbert_file, required=False) or {}
    if not isinstance(sbert, dict):
        raise InputError("expected a JSON object", file=str(sbert_file))
    do_lower_case = _get({**sbert, **common}, "do_lower_case", bool, False, sbert_file)
    max_tokens = _get(common, "max_tokens_per_batch", int, DEFAULT_MAX_TOKENS_PER_BATCH, Path("<overrides>"))
    is_local = Path(path_or_id).expanduser().is_dir()
    kwargs = {
        "name": common.get("name") or (folder.resolve().name if is_local else str(path_or_id)),
        "folder": folder,
        "module_dirs": sorted({path for _, path in modules}),
        "backbone": backbone,
        "tokenizer": tokenizer,
        "dense": dense,
        "dtype": dtype,
        "device": device,
        "do_lower_case": do_lower_case,
        "max_tokens_per_batch": _positive(max_tokens, "max_tokens_per_batch", Path("<overrides>")),
    }
    if is_dense_model:
        config = _dense_config(folder, backbone_dir, modules, overrides)
        if config["max_seq_length"] is None:  # sentence-transformers' fallback
            limit = getattr(backbone.config, "max_position_embeddings", None) or tokenizer.model_max_length
            config["max_seq_length"] = int(min(limit, tokenizer.model_max_length))
        return DenseEncoder(config=config, **kwargs)
    return ColBERTEncoder(config=_colbert_config(folder, overrides), **kwargs)
