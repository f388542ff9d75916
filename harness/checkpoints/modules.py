"""A checkpoint's modules as torch modules: the transformers backbone and the Dense layers.

Security: Dense weights come from safetensors, or ``.bin`` through ``torch.load(weights_only=True)``
(what transformers does for the backbone too); activation functions come from a fixed list, never
from imports named in a config file; ``trust_remote_code`` is off unless asked for, and a checkpoint
that ships its own code is refused without it (transformers would load its built-in class instead).

transformers' load report (a styled table of missing / unexpected weights) goes to the debug log; a
backbone weight the checkpoint lacks, which the model would use randomly initialised, is one warning.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from harness import attention
from harness.checkpoints.files import (
    first_line,
    load_weights,
    positive,
    read_json_object,
    typed,
    weights_error,
)
from harness.checkpoints.layout import Layout
from harness.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

ACTIVATIONS = {"Identity": nn.Identity, "Tanh": nn.Tanh, "ReLU": nn.ReLU, "GELU": nn.GELU}
ACTIVATIONS.update({"Sigmoid": nn.Sigmoid, "SiLU": nn.SiLU, "LeakyReLU": nn.LeakyReLU})
# auto_map entries that make transformers run a checkpoint's own code for what the harness loads
CODE_ENTRIES = ("AutoConfig", "AutoModel", "AutoTokenizer")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNUSED_WEIGHTS = ("pooler.",)  # the backbone's pooler: encoders read its hidden states only


class DenseLayer(nn.Module):
    """PyLate / sentence-transformers Dense: ``y = act(W x + b)``, plus ``x`` or ``R x`` if use_residual."""

    linear: nn.Linear

    def __init__(
        self, linear: nn.Linear, activation: nn.Module, use_residual: bool, residual: nn.Linear | None
    ):
        super().__init__()
        self.linear, self.activation = linear, activation
        self.use_residual, self.residual = use_residual, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.linear(x))
        if self.use_residual:
            y = y + (self.residual(x) if self.residual is not None else x)
        return y

    @classmethod
    def load(cls, folder: Path, in_dim: int) -> DenseLayer:
        """Read ``folder/config.json`` and its weights; ``in_dim`` is the previous layer's width."""
        cfg_file = folder / "config.json"
        cfg = read_json_object(cfg_file)
        in_features = positive(typed(cfg, "in_features", int, None, cfg_file) or 0, "in_features", cfg_file)
        out_features = positive(
            typed(cfg, "out_features", int, None, cfg_file) or 0, "out_features", cfg_file
        )
        if in_features != in_dim:
            raise InputError(
                f"is {in_features} but the previous layer outputs {in_dim}",
                file=str(cfg_file),
                field="in_features",
            )
        bias = typed(cfg, "bias", bool, True, cfg_file)
        use_residual = typed(cfg, "use_residual", bool, False, cfg_file)
        activation_name = typed(cfg, "activation_function", str, "torch.nn.modules.activation.Tanh", cfg_file)
        short = activation_name.rsplit(".", 1)[-1]
        if not activation_name.startswith("torch.nn") or short not in ACTIVATIONS:
            raise InputError(
                f"unsupported activation {activation_name!r} (allowed: torch.nn {sorted(ACTIVATIONS)})",
                file=str(cfg_file),
                field="activation_function",
            )

        state, weights_file = load_weights(folder)
        expected: dict[str, tuple[int, ...]] = {"linear.weight": (out_features, in_features)}
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
        layer = cls(linear, ACTIVATIONS[short](), use_residual, residual)
        layer.load_state_dict(state, strict=True)
        return layer


def stanford_projection(folder: Path, width: int) -> DenseLayer:
    """A Stanford ColBERT checkpoint's projection as PyLate's ``Dense.from_stanford_weights`` makes
    it: ``linear.weight`` [dim, width] from the backbone's weights file, no bias, identity."""
    safetensors_file, bin_file = folder / "model.safetensors", folder / "pytorch_model.bin"
    file = safetensors_file if safetensors_file.is_file() else bin_file
    try:
        if file is safetensors_file:
            from safetensors import safe_open

            with safe_open(str(file), framework="pt", device="cpu") as f:
                weight = f.get_tensor("linear.weight") if "linear.weight" in set(f.keys()) else None
        else:
            weight = torch.load(file, map_location="cpu", weights_only=True).get("linear.weight")
    except FileNotFoundError:
        raise InputError(
            "no weights file (model.safetensors or pytorch_model.bin)", file=str(folder)
        ) from None
    except Exception as e:  # corrupt or unsafe file
        raise weights_error("cannot read weights", e, file) from e
    if weight is None:
        raise InputError(
            "the projection of a Stanford ColBERT checkpoint is missing",
            file=str(file),
            field="linear.weight",
        )
    if weight.ndim != 2 or weight.shape[1] != width:
        raise InputError(
            f"shape {tuple(weight.shape)} does not project the backbone's width {width}",
            file=str(file),
            field="linear.weight",
        )
    linear = nn.Linear(width, weight.shape[0], bias=False)
    linear.weight.data.copy_(weight)
    return DenseLayer(linear, nn.Identity(), False, None)


def load_dense_layers(layout: Layout, width: int) -> list[DenseLayer]:
    """The Dense modules of ``layout`` in order; ``width`` is the backbone's output width."""
    if layout.stanford:
        return [stanford_projection(layout.folder, width)]
    layers = []
    for folder in layout.dirs("dense"):
        layers.append(DenseLayer.load(folder, width))
        width = layers[-1].linear.out_features
    return layers


def load_backbone(
    folder: Path, dtype: torch.dtype, trust_remote_code: bool, attn_implementation: str | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """transformers AutoModel (eval mode) + AutoTokenizer from ``folder``.

    ``attn_implementation`` None: :mod:`harness.attention`'s memory-linear attention where the
    architecture is one it supports, else the library's default (what PyLate gets); a name forces one.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    require_trusted_code(folder, trust_remote_code)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if attn_implementation in (None, attention.NAME):
        try:
            config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        except Exception as e:  # a config transformers cannot read: say which file
            raise InputError(
                f"cannot read the backbone config: {first_line(e)}", file=str(folder / "config.json")
            ) from e
        if attention.supports(config):
            attn_implementation = attention.register()
        elif attn_implementation == attention.NAME:
            raise InputError(
                f"blockwise attention supports {sorted(attention.SUPPORTED)} encoders, not "
                f"{getattr(config, 'model_type', '?')!r}: use --attention auto or sdpa",
                field="--attention",
            )
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers raises many types for a bad tokenizer folder
        raise InputError(f"cannot load the tokenizer: {first_line(e)}", file=str(folder)) from e
    try:
        with _load_report_to_debug():
            model, info = AutoModel.from_pretrained(folder, dtype=dtype, output_loading_info=True, **kwargs)
    except Exception as e:  # truncated safetensors, a pickle in a .bin, a config that does not fit, ...
        raise weights_error("cannot load the backbone", e, _weights_file(folder)) from e
    missing = sorted(k for k in info["missing_keys"] if not k.startswith(_UNUSED_WEIGHTS))
    if missing:
        log.warning(
            "%s: %d backbone weight(s) not in the checkpoint, randomly initialised (%s%s): "
            "its embeddings are not the trained model's",
            _weights_file(folder),
            len(missing),
            ", ".join(missing[:3]),
            ", ..." if len(missing) > 3 else "",
        )
    return model.eval(), tokenizer


def require_trusted_code(folder: Path, trust_remote_code: bool) -> None:
    """Before transformers reads ``folder``: its config.json must exist; without
    ``trust_remote_code``, an ``auto_map`` in config.json or tokenizer_config.json naming code for
    :data:`CODE_ENTRIES` is an InputError naming ``--trust-remote-code`` and that file, and so is
    (naming ``model_type``) a model type this transformers does not know."""
    import transformers

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InputError("backbone config is missing", file=str(config_file))
    if trust_remote_code:
        return
    config = read_json_object(config_file)
    tokenizer_file = folder / "tokenizer_config.json"
    for file, data in (
        (config_file, config),
        (tokenizer_file, read_json_object(tokenizer_file, required=False)),
    ):
        auto_map = data.get("auto_map")
        if not isinstance(auto_map, dict):
            continue
        entry = next((k for k in CODE_ENTRIES if auto_map.get(k)), None)
        if entry is not None:
            raise InputError(
                f"the checkpoint ships its own code ({entry}: {auto_map[entry]!r}), which runs only "
                "with --trust-remote-code: pass it if you trust the model's source (the code runs on this "
                "machine)",
                file=str(file),
                field="auto_map",
            )
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type not in transformers.CONFIG_MAPPING:
        raise InputError(
            f"transformers {transformers.__version__} does not know the model type {model_type!r}, and "
            "the checkpoint ships no code for it (no auto_map entry for AutoConfig or AutoModel, so "
            "--trust-remote-code cannot help): a newer transformers may know it",
            file=str(config_file),
            field="model_type",
        )


@contextlib.contextmanager
def _load_report_to_debug() -> Iterator[None]:
    """transformers' load report (a table with ANSI styles, tens of lines, on stderr even under
    ``--quiet``) goes to this module's debug log instead, plain; other library messages pass."""

    def divert(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        log.debug("%s", _ANSI.sub("", message))
        return False

    library = logging.getLogger("transformers.modeling_utils")
    library.addFilter(divert)
    try:
        yield
    finally:
        library.removeFilter(divert)


_BACKBONE_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _weights_file(folder: Path) -> Path:
    """The weights file transformers reads first in ``folder`` (the folder when there is none)."""
    return next((folder / name for name in _BACKBONE_WEIGHTS if (folder / name).is_file()), folder)
