"""``modules.json`` -> :class:`Layout`: which kind of model a folder holds and where its modules are.

PyLate ColBERT: Transformer, Dense... (one vector per token). sentence-transformers: Transformer,
Pooling, [Dense...], [Normalize] (one vector per text). Module types come from a fixed list of
``sentence_transformers.`` / ``pylate.`` classes; nothing named in a file is ever imported.
Stanford ColBERT (``colbert-ir/colbertv2.0``, ``answerai-colbert-small-v1``): no ``modules.json``,
``config.json`` names the architecture ``HF_ColBERT``; one weights file holds the BERT backbone
(under ``bert.``) and the projection ``linear.weight``; ``artifact.metadata`` the ColBERT settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.checkpoints.files import read_json
from harness.errors import InputError

_KINDS = {"Transformer": "transformer", "Dense": "dense", "Pooling": "pooling", "Normalize": "normalize"}
_PATTERNS = {
    "colbert": r"transformer (dense )+",
    "dense": r"transformer pooling (dense )*(normalize )?",
}


@dataclass(frozen=True)
class Layout:
    """A checkpoint folder's modules, in order: (kind, folder) with kind in transformer | dense |
    pooling | normalize."""

    folder: Path
    kind: Literal["colbert", "dense"]
    modules: tuple[tuple[str, Path], ...]
    stanford: bool = False  # a Stanford ColBERT checkpoint: the projection lives in the backbone's file

    @property
    def backbone_dir(self) -> Path:
        return self.modules[0][1]

    def dirs(self, kind: str) -> list[Path]:
        """Folders of the modules of one kind, in order."""
        return [path for k, path in self.modules if k == kind]

    @property
    def module_dirs(self) -> list[Path]:
        """Every module folder once, sorted (what the fingerprint covers)."""
        return sorted({path for _, path in self.modules})


def read_layout(folder: Path) -> Layout:
    """Parse and check ``folder/modules.json``; InputError naming the file otherwise."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        if is_stanford_colbert(folder):
            return Layout(folder, "colbert", (("transformer", folder),), stanford=True)
        raise InputError(
            "modules.json is missing, and config.json does not name the HF_ColBERT architecture: not a "
            "PyLate, sentence-transformers or Stanford ColBERT checkpoint",
            file=str(modules_file),
        )
    entries = read_json(modules_file)
    if not isinstance(entries, list) or not entries:
        raise InputError("expected a non-empty list of modules", file=str(modules_file))
    modules = tuple(
        (kind, folder / path) for kind, path in (_module(e, modules_file, i) for i, e in enumerate(entries))
    )
    kinds = [kind for kind, _ in modules]
    if kinds[0] != "transformer" or kinds.count("transformer") != 1:
        raise InputError("the first module (and only that one) must be a Transformer", file=str(modules_file))
    kind: Literal["colbert", "dense"] = "dense" if "pooling" in kinds else "colbert"
    if not re.fullmatch(_PATTERNS[kind], " ".join(kinds) + " "):
        raise InputError(
            f"unsupported module layout {kinds} (ColBERT: Transformer, Dense...; dense: Transformer, "
            "Pooling, [Dense...], [Normalize])",
            file=str(modules_file),
        )
    return Layout(folder, kind, modules)


def is_stanford_colbert(folder: Path) -> bool:
    """Whether ``folder/config.json`` names the ``HF_ColBERT`` architecture (what PyLate checks)."""
    config = read_json(folder / "config.json", required=False)
    architectures = config.get("architectures") if isinstance(config, dict) else None
    return isinstance(architectures, list) and architectures[:1] == ["HF_ColBERT"]


def _module(entry: object, file: Path, index: int) -> tuple[str, str]:
    """(kind, relative path) of one modules.json entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise InputError(f"entry {index} has no 'type' string", file=str(file), field="type")
    type_name = entry["type"]
    short = type_name.rsplit(".", 1)[-1]
    if not type_name.startswith(("sentence_transformers.", "pylate.")) or short not in _KINDS:
        raise InputError(
            f"unsupported module type {type_name!r} (entry {index})", file=str(file), field="type"
        )
    path = entry.get("path", "")
    if not isinstance(path, str) or ".." in Path(path).parts or Path(path).is_absolute():
        raise InputError(f"bad module path {path!r} (entry {index})", file=str(file), field="path")
    return _KINDS[short], path
