"""Entry-point plugins (tasks, models): each entry point of a group names a zero-argument callable
returning registry items; names are unique across plugins, case-insensitively."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint
from typing import Any

from harness.errors import HarnessError


def load_plugins(
    plugins: Iterable[EntryPoint], kinds: tuple[type, ...], names: Callable[[Any], Iterable[str]]
) -> dict[str, Any]:
    """Lower-cased name -> item over the entry points ``plugins`` (sorted by name, items in their
    order); an item of another type, a plugin that fails, or a name (``names(item)``) claimed twice
    is a HarnessError naming the plugins."""
    found: dict[str, Any] = {}
    owner: dict[str, str] = {}
    what = " / ".join(k.__name__ for k in kinds)
    for ep in sorted(plugins, key=lambda e: e.name):
        try:
            items = list(ep.load()())
        except Exception as e:
            raise HarnessError(f"plugin {ep.name!r} ({ep.value}) failed to load: {e}") from e
        for item in items:
            if not isinstance(item, kinds):
                raise HarnessError(f"plugin {ep.name!r} returned {type(item).__name__}, not {what}")
            for name in names(item):
                key = name.lower()
                if key in owner:
                    raise HarnessError(f"name {name!r} is registered by both {owner[key]!r} and {ep.name!r}")
                owner[key], found[key] = ep.name, item
    return found
