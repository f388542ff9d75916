"""How figures look: the two sizes (page, paper column), Paul Tol's colour-blind-safe "muted"
palette, and each model's style (colour, then hatch / marker), the same in every figure of a report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from harness.report.tables import Table

# Paul Tol's "muted" qualitative scheme (https://personal.sron.nl/~pault/), in his order.
PALETTE = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499")
HATCHES = ("", "..", "xx", "oo", "++")  # one per pass through the palette
MARKERS = ("o", "s", "D", "^", "v")
RUN_HATCH = "////"  # rows run here, as opposed to published († ) figures


@dataclass(frozen=True)
class Size:
    name: str
    width: float  # inches
    dpi: int
    font: float  # axis labels
    small: float  # tick labels
    tiny: float  # values on bars, point labels
    legend: float
    bar_pitch: tuple[float, float]  # points per bar, (min, max)
    bars_height: float  # inches of bars before the pitch shrinks
    scatter_height: float  # inches
    marker: float  # scatter marker area, points²
    wrap: int  # characters per axis-label line


PAGE = Size("page", 7.0, 150, 9, 8, 7, 8, (5, 12), 7.5, 4.6, 36, 70)
PAPER = Size("paper", 3.5, 300, 8, 7, 6, 8, (4, 9), 6.0, 2.9, 20, 42)
SIZES = {s.name: s for s in (PAGE, PAPER)}


@dataclass(frozen=True)
class Style:
    colour: str
    hatch: str
    marker: str


def model_styles(tables: Sequence[Table]) -> dict[str, Style]:
    """Model id -> its style in every figure of these tables. Ids in sorted order each take the
    palette colour least used by the ids already styled that share a table with it (then the least
    used overall, then palette order), and the first hatch / marker no such id of that colour has."""
    ids = sorted({r.model_id for t in tables for r in t.rows}, key=lambda s: (s.casefold(), s))
    peers: dict[str, set[str]] = {m: set() for m in ids}
    for t in tables:
        members = {r.model_id for r in t.rows}
        for m in members:
            peers[m] |= members - {m}
    chosen: dict[str, tuple[int, int]] = {}  # id -> (colour index, pass)
    for m in ids:
        near = [chosen[p] for p in peers[m] if p in chosen]
        overall = Counter(c for c, _ in chosen.values())
        colour = min(range(len(PALETTE)), key=lambda c: (sum(n == c for n, _ in near), overall[c], c))
        taken = {k for n, k in near if n == colour}
        chosen[m] = colour, next(k for k in range(len(ids) + 1) if k not in taken)
    return {
        m: Style(PALETTE[c], HATCHES[k % len(HATCHES)], MARKERS[k % len(MARKERS)])
        for m, (c, k) in chosen.items()
    }


def model_colours(tables: Sequence[Table]) -> dict[str, str]:
    """Model id -> hex colour, the same in every figure of these tables."""
    return {m: s.colour for m, s in model_styles(tables).items()}
