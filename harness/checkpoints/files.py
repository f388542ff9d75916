"""Reading checkpoint files: JSON with typed fields, weights (safetensors, or ``.bin`` through
``torch.load(weights_only=True)``), Hub resolution and the fingerprint of a model's files. Every
error names the file (and the field)."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, InputError, positive_int
from harness.hashing import update_with_file
from harness.hub import hub_access, hub_failure, hub_state

if TYPE_CHECKING:
    import torch

_PICKLED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# Files whose bytes can change embeddings: weights, configs, tokenizer files, and a checkpoint's own
# modelling code (run with --trust-remote-code).
WEIGHT_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model", ".tiktoken", ".py")


def read_json(path: Path, *, required: bool = True) -> Any:
    """The decoded JSON of ``path``; None when it is absent and not ``required``."""
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


def read_json_object(path: Path, *, required: bool = True) -> dict[str, Any]:
    """:func:`read_json` that must be an object ({} when absent and not ``required``)."""
    data = read_json(path, required=required)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", file=str(path))
    return data


def typed(cfg: dict, key: str, kind: type | tuple[type, ...], default: Any, file: Path) -> Any:
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


def positive(value: int, key: str, file: Path) -> int:
    return positive_int(value, key, file=str(file))


def load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """State dict of a module folder: model.safetensors, else pytorch_model.bin (weights_only)."""
    import torch

    safetensors_file, bin_file = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        if safetensors_file.is_file():
            from safetensors.torch import load_file

            return load_file(str(safetensors_file)), safetensors_file
        if bin_file.is_file():
            return torch.load(bin_file, map_location="cpu", weights_only=True), bin_file
    except Exception as e:  # corrupt or unsafe file: report which one
        file = safetensors_file if safetensors_file.is_file() else bin_file
        raise weights_error("cannot read weights", e, file) from e
    raise InputError("no weights file (model.safetensors or pytorch_model.bin)", file=str(folder))


def weights_error(what: str, exc: BaseException, file: Path) -> InputError:
    """InputError ``what: why`` naming ``file``, a weights file that cannot be read. A pickle holding
    more than tensors gets the harness's advice (convert it to safetensors), not torch's (load it
    with ``weights_only=False`` or allow its globals: either runs the pickle's code)."""
    refusal = next((e for e in _chain(exc) if "Weights only load failed" in str(e)), None)
    if not isinstance(refusal, pickle.UnpicklingError):
        return InputError(f"{what}: {first_line(exc)}", file=str(file))
    named = _PICKLED_GLOBAL.search(str(refusal))
    return InputError(
        f"{what}: a pickle holding more than tensors{f' (it names {named[1]})' if named else ''}; "
        "the harness reads only plain weights and never runs a pickle's code: convert the checkpoint "
        "to safetensors where you trust its source (load it and save it with "
        "save_pretrained(..., safe_serialization=True), or a state dict with safetensors.torch.save_file)",
        file=str(file),
    )


def _chain(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and the exceptions it was raised from or during, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (transformers' and torch's messages run to tens of lines)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def files_fingerprint(folders: Iterable[Path], root: Path) -> str:
    """sha256 over (relative path, size, content) of the weight, tokenizer and config files
    (``WEIGHT_SUFFIXES``) directly in ``folders``, in sorted path order."""
    files = {
        p
        for d in folders
        if d.is_dir()  # a module without parameters (Normalize) may ship no folder at all
        for p in d.iterdir()
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES
    }
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(f"{path.relative_to(root).as_posix()}\x00{path.stat().st_size}\x00".encode())
        update_with_file(h, path)
    return h.hexdigest()


_SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<sha>[0-9a-f]{40})/?$")
# folder names that say nothing about the model: a result is filed under the parent's name instead
GENERIC_FOLDER_NAMES = frozenset(
    {
        "model",
        "models",
        "checkpoint",
        "checkpoints",
        "final",
        "best",
        "output",
        "outputs",
        "snapshot",
        "weights",
    }
)
_TITLE = re.compile(r"# +([\w.\-/]+)")
# one-word headings the libraries' model card templates write when the model was saved without a
# name (PyLate's ``hf_hub/model_card.py``: "PyLate"; sentence-transformers' template): not a name
TEMPLATE_TITLES = frozenset({"pylate", "sentencetransformer", "sentence-transformers", "colbert"})
_USAGE = re.compile(
    r"(?:SentenceTransformer|ColBERT)\(\s*(?:model_name_or_path\s*=\s*)?[\"']([\w.-]+/[\w.-]+)[\"']"
)


def hub_snapshot(folder: Path) -> tuple[str, str] | None:
    """(Hub id, commit sha) when ``folder`` (links resolved) is a Hugging Face cache snapshot
    (``.../models--org--name/snapshots/<sha>``), else None."""
    match = _SNAPSHOT.search(Path(folder).resolve().as_posix())
    return (f"{match['org']}/{match['name']}", match["sha"]) if match else None


def checkpoint_name(folder: Path) -> str:
    """The name a local checkpoint's results are filed under: its Hub id when it is a Hub snapshot;
    else its model card's title (the README's first heading, when it is one word and not a library's
    template heading such as PyLate's "# PyLate", ``TEMPLATE_TITLES``); else the folder's
    name; a generic one (``model``, ``checkpoint``, ...) gives way to the Hub id of the card's usage
    example, else to the parent folder's name. (A usage example can name a base model, so it is
    trusted only when the folder says nothing.)"""
    folder = Path(folder).resolve()
    if snapshot := hub_snapshot(folder):
        return snapshot[0]
    readme = folder / "README.md"
    card = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else ""
    if card.startswith("---") and card.count("---") >= 2:
        card = card.split("---", 2)[2]  # past the YAML front matter
    first_heading = next((line for line in card.splitlines() if line.startswith("# ")), "")
    if (title := _TITLE.fullmatch(first_heading.strip())) and title.group(1).lower() not in TEMPLATE_TITLES:
        return title.group(1)
    if folder.name.lower() not in GENERIC_FOLDER_NAMES:
        return folder.name
    if usage := _USAGE.search(card):
        return usage.group(1)
    return folder.parent.name or folder.name


def resolve_checkpoint(path_or_id: str | Path, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a Hugging Face Hub id fetched with ``snapshot_download`` at
    ``revision`` (a branch, tag or commit; default the main branch)."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if revision is not None:
            raise InputError("a revision applies to a Hub id, not to a local folder", file=str(path))
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
        with hub_access():
            return Path(snapshot_download(repo_id=text, revision=revision, ignore_patterns=ignore))
    except Exception as e:  # offline, unknown repo, network: the Hub raises many types
        raise HarnessError(
            f"cannot fetch model '{text}' from the Hugging Face Hub{hub_state()} ({hub_failure(e)}). "
            "Put the model in a local checkpoint folder and pass its path, or download it first where "
            "the Hub is reachable."
        ) from e
