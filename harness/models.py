"""The model registry: the models a leaderboard compares, by name (as MTEB keeps model metadata).

A :class:`ModelInfo` says where a model lives (Hub id, pinned revision where known), how to load it
(loader overrides: prompts, token lengths) and what reports show (display name, size group,
parameter count). Entries come from entry points in the group ``harness.models``, like tasks:
a zero-argument callable returning ``ModelInfo`` objects. ``harness models`` lists them;
``harness evaluate --model <name>`` loads one; leaderboards take sizes from them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from harness.plugins import load_plugins

ENTRY_POINT_GROUP = "harness.models"


@dataclass(frozen=True)
class ModelInfo:
    """One registered model. ``name`` is the id results are filed under; ``overrides`` are
    ``load_encoder`` overrides (e.g. ``document_length`` for a long-context variant, a
    ``query_prompt``); ``parameters`` and ``size_group`` feed the leaderboard."""

    name: str
    hub_id: str
    kind: Literal["colbert", "dense"]
    revision: str | None = None
    parameters: int | None = None
    size_group: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    source: str = ""  # where the facts come from


@functools.cache
def _registry() -> dict[str, ModelInfo]:
    """Lower-cased name and aliases -> entry; a name claimed twice is an error naming both plugins."""
    return load_plugins(entry_points(group=ENTRY_POINT_GROUP), (ModelInfo,), lambda m: [m.name, *m.aliases])


def list_models() -> list[ModelInfo]:
    """Every registered model once, in registration order."""
    return list({m.name: m for m in _registry().values()}.values())


def find_model(name: str) -> ModelInfo | None:
    """The model registered under ``name`` or one of its aliases (any case), or None."""
    return _registry().get(name.lower())


def find_model_by_hub_id(hub_id: str) -> ModelInfo | None:
    """The registered model of a Hub id, loaded as it is published (no loader overrides), or None."""
    return next((m for m in list_models() if m.hub_id.lower() == hub_id.lower() and not m.overrides), None)
