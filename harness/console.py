"""Plain-text output for the terminal: the one fixed-width table, and whether bars may show."""

from __future__ import annotations

import os
from collections.abc import Sequence


def bars_allowed() -> bool:
    """False when the process asked for no progress bars: ``TQDM_DISABLE`` set true, as ``--quiet``
    does (tqdm itself honours it for every bar that does not pass ``disable``)."""
    return os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")


def plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the header, no trailing spaces."""
    lines = [header, *rows]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
