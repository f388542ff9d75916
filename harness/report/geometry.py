"""Where text goes on a laid-out figure (pixels and points, no data): a text's drawn size, how many
legend columns fit, log-axis ticks whose labels keep apart, and point labels placed without
overlapping each other, the markers or the leader lines (``place_labels``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING

from harness.report.style import Size

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure, SubFigure


def renderer(fig: Figure | SubFigure) -> RendererBase:
    """The renderer that measures text on ``fig``: every figure here is drawn on an Agg canvas
    (``FigureCanvasAgg``), whose ``get_renderer`` the base canvas type does not declare."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg), type(canvas)
    return canvas.get_renderer()


def text_size(fig: Figure | SubFigure, text: str, fontsize: float) -> tuple[float, float]:
    """(width, height) in pixels of ``text`` as drawn."""
    from matplotlib.text import Text
    from matplotlib.transforms import IdentityTransform

    probe = Text(0, 0, text, fontsize=fontsize, transform=IdentityTransform())
    probe.set_figure(fig)
    box = probe.get_window_extent(renderer(fig))
    return box.width, box.height


def legend_columns(fig: Figure, labels: list[str], size: Size) -> int:
    """How many legend columns of these labels fit across the figure."""
    widest = max(text_size(fig, label, size.legend)[0] for label in labels) * 72 / size.dpi
    return max(1, min(len(labels), int((size.width * 72 - 10) // (widest + 4.5 * size.legend))))


def log_ticks(fig: Figure, lo: float, hi: float, label: Callable[[float], str], size: Size) -> list[float]:
    """The densest of 1-2-3-5-style tick sets in [lo, hi] whose labels keep a gap between them on
    an axis about ``size.width - 1.3`` inches long; the sparsest non-empty one failing that. A tick
    whose label would stick out past an end of the axis (into the other axis's labels) is left out
    where another tick remains."""
    axis_px = (size.width - 1.3) * size.dpi
    span = math.log10(hi / lo)

    def place(t: float) -> tuple[float, float, float]:  # tick, its label's centre and half width, px
        return t, math.log10(t / lo) / span * axis_px, text_size(fig, label(t), size.small)[0] / 2

    gap = size.small * size.dpi / 72
    choices = []
    for subs in ((1, 1.5, 2, 3, 5, 7), (1, 2, 3, 5), (1, 2, 5), (1, 3), (1,)):
        placed = [
            place(s * 10.0**e)
            for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            for s in subs
            if lo <= s * 10.0**e <= hi
        ]
        placed = [p for p in placed if p[2] <= p[1] <= axis_px - p[2]] or placed
        if not placed:
            continue
        ticks = [t for t, _, _ in placed]
        choices.append(ticks)
        if all(b[1] - a[1] >= a[2] + b[2] + gap for a, b in pairwise(placed)):
            return ticks
    return choices[-1]


def _candidates(near: float, step: float) -> list[tuple[float, float, str, str, bool]]:
    """Label offsets (points) from a point, best first, with the text alignment that puts the label's
    near side there: (dx, dy, ha, va, leader line?). Beside, above or below the marker first; then
    the rows of columns left and right of the point (their leader lines cannot cross each other's
    labels), rows above and below it, and columns further out."""
    d = 0.7 * near
    beside = [
        (near, 0, "left", "center", False),
        (-near, 0, "right", "center", False),
        (0, near, "center", "bottom", False),
        (0, -near, "center", "top", False),
        (d, d, "left", "bottom", False),
        (-d, d, "right", "bottom", False),
        (d, -d, "left", "top", False),
        (-d, -d, "right", "top", False),
    ]
    rows, sides = [0] + [k * sign for k in range(1, 9) for sign in (1, -1)], ((1, "left"), (-1, "right"))
    columns = [
        [(x * side, k * step, ha, "center", True) for k in rows for side, ha in sides]
        for x in (12, 24, 40, 60)
    ]
    above = []
    for j in range(10):
        for dy, va in ((near + 4 + j * step, "bottom"), (-near - 4 - j * step, "top")):
            above += [(dx, dy, ha, va, True) for dx, ha in ((0, "center"), (8, "left"), (-8, "right"))]
    return beside + columns[0] + columns[1] + above + columns[2] + columns[3]


def place_labels(
    ax: Axes, points: list[tuple[float, float, str]], radius: float, fontsize: float
) -> list[int]:
    """Annotate each (x, y, text) in order at the first candidate offset where the text stays in the
    axes and overlaps no placed label, no marker (``radius`` points) and no leader line, and its
    own leader line crosses no label (it passes under markers); a point with others close by gets a
    leader line (so that its neighbours' lines stay free). Returns the indices of the points left unlabelled.
    Call on a laid-out figure (the positions are measured)."""
    from matplotlib.path import Path as MplPath
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox, IdentityTransform

    fig = ax.figure
    drawn_on = renderer(fig)
    px = fig.dpi / 72
    frame = ax.get_window_extent(drawn_on).padded(-2)
    where = ax.transData.transform([(x, y) for x, y, _ in points])
    r = (radius + 1) * px
    markers = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in where]
    probe = Text(0, 0, "", fontsize=fontsize, transform=IdentityTransform())
    probe.set_figure(fig)
    placed: list[Bbox] = []
    leaders: list[MplPath] = []
    missing = []
    candidates = _candidates(radius + 2, 1.3 * fontsize)
    for k, ((x, y, text), (u, v)) in enumerate(zip(points, where, strict=True)):
        clear = r + 2 * fontsize * px
        crowded = any(math.hypot(u - a, v - b) < clear for j, (a, b) in enumerate(where) if j != k)
        for dx, dy, ha, va, leader in candidates:
            if crowded and not leader:
                continue
            probe.update({"text": text, "position": (u + dx * px, v + dy * px), "ha": ha, "va": va})
            box = probe.get_window_extent(drawn_on)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if not inside or any(box.overlaps(b) for b in placed + markers):
                continue
            if any(line.intersects_bbox(box, filled=False) for line in leaders):
                continue
            line = MplPath([(u, v), (u + dx * px, v + dy * px)])
            if leader and any(line.intersects_bbox(b, filled=False) for b in placed):
                continue
            relpos = ({"left": 0, "center": 0.5, "right": 1}[ha], {"bottom": 0, "center": 0.5, "top": 1}[va])
            arrow = {
                "arrowstyle": "-",
                "color": "0.45",
                "linewidth": 0.5,
                "shrinkB": radius,
                "relpos": relpos,
            }
            ax.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=fontsize,
                arrowprops=arrow if leader else None,
                zorder=2.5,  # leader lines pass under the markers
            )
            placed.append(box.padded(1.5 * px))
            if leader:
                leaders.append(line)
            break
        else:
            missing.append(k)
    return missing
