"""Leaderboard figures (matplotlib object API: no pyplot state, no GUI), one set per benchmark table.

Per table ``<slug>`` (``Table.slug``):

* ``<slug>_per_dataset``: horizontal grouped bars, a group per dataset column, the best
  ``max_models`` rows by headline score; CI whiskers where cells have them; the value printed
  at a bar's end when the text fits in the bar's pitch. A table without dataset columns (only a
  reported average, e.g. LongEmbed) gets ``<slug>_average`` instead: a bar per model.
* ``<slug>_score_vs_parameters`` and ``<slug>_score_vs_throughput``: the headline score (``Row.summary``)
  against parameters / measured document tokens per second (``Row.throughput``, which tables only
  derive from measured timings), log x axis with ticks like ``17M`` / ``2k tok/s``. Points are
  labelled where a label fits without overlapping another label or marker (``place_labels``:
  beside the marker, else further out with a leader line); the others, or all of them when more
  than a third find no place, are named in a legend under the axes.

Axes name the benchmark and its metric (from the task registry: ``BEIR mean nDCG@10``). A model has
one colour (Paul Tol's colour-blind-safe "muted" palette) in every figure of a report, assigned once
from all tables (``model_styles``); models of one figure sharing a colour (more than 9 models)
differ by hatch (bars) and marker (points). Rows run here (not published figures, †) have hatched
bars / black-edged points. Artists drawing a model carry ``gid = "<kind>:<model id>"`` (kind without ``:``).

Files, byte-stable (same input, same bytes): page size (7 in wide, 150 dpi) as ``<stem>.png`` and
``<stem>.svg`` in ``out_dir``; paper-column size (3.5 in wide, 300 dpi) as ``paper/<stem>.png``,
``.svg`` and ``.pdf``.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.fileio import write_bytes_atomic
from harness.metrics import metric_label
from harness.report.catalogue import family as family_of
from harness.report.tables import Row, Table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


# --------------------------------------------------------------------------- names and numbers


def metric_phrase(table: Table) -> str:
    """The main metric of a table's datasets (registry), exceptions named: ``nDCG@10`` or
    ``nDCG@10 (nDCG@1: passkey, needle)``; ``main metric`` when the registry does not know them."""
    from harness.tasks import list_tasks

    tasks = [t for t in list_tasks() if family_of(t.name) == table.family]
    by_label = {t.short_label: metric_label(t.main_metric) for t in tasks}
    columns = table.columns[: table.datasets] or [t.short_label for t in tasks]
    known = {c: by_label[c] for c in columns if c in by_label}
    if not known:
        return "main metric"
    counts = Counter(known.values())
    main = max(counts, key=lambda m: (counts[m], -list(known.values()).index(m)))
    others = {m: [c for c, v in known.items() if v == m] for m in counts if m != main}
    return main + "".join(f" ({m}: {', '.join(cs)})" for m, cs in others.items())


def headline_name(table: Table) -> str:
    """What ``Row.summary`` is for this table: ``BEIR mean nDCG@10``."""
    kind = "mean " if "Mean" in table.columns else "reported average " if table.datasets == 0 else ""
    return f"{table.family} {kind}{metric_phrase(table)}"


def _reported_instead(table: Table, row: Row) -> bool:
    """The row's headline is the reported average although the table's headline is its Mean."""
    if "Mean" not in table.columns or "Reported AVG" not in table.columns:
        return False
    return row.cells[table.columns.index("Mean")].value is None


def si(value: float, unit: str = "") -> str:
    """``17e6`` -> ``17M``, ``1.5e9`` -> ``1.5B``, ``2000, "tok/s"`` -> ``2k tok/s`` (3 digits at most)."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, "")):
        if abs(value) >= scale or scale == 1.0:
            text = f"{value / scale:.3g}{suffix}"
            return f"{text} {unit}" if unit else text
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- figures


def build_figures(
    tables: Sequence[Table], size: Size | str = PAGE, max_models: int = 12
) -> list[tuple[str, str, Figure]]:
    """(file stem, caption, Figure) of every figure, labels placed; styles from all ``tables``."""
    size = SIZES[size] if isinstance(size, str) else size
    styles = model_styles(tables)
    out = []
    for table in tables:
        shown = list(range(table.datasets)) or list(range(len(table.columns)))
        rows = _ranked([r for r in table.rows if any(r.cells[i].value is not None for i in shown)])
        if rows and shown:
            stem = f"{table.slug}_per_dataset" if table.datasets else f"{table.slug}_average"
            fig, caption = _bars(table, rows[:max_models], shown, styles, size)
            out.append((stem, caption + _capped(len(rows), max_models), fig))
        for attr in ("parameters", "throughput"):
            rows = _ranked([r for r in table.rows if getattr(r, attr) and r.summary is not None])
            if rows:
                fig, caption = _scatter(table, rows[:max_models], attr, styles, size)
                out.append((f"{table.slug}_score_vs_{attr}", caption + _capped(len(rows), max_models), fig))
    return out


def leaderboard_figures(
    tables: Sequence[Table], out_dir: Path, max_models: int = 12
) -> list[tuple[str, str, bytes]]:
    """Write every figure in both sizes (module docstring); returns (PNG file name, caption, PNG
    bytes) of the page-size ones, in ``build_figures`` order."""
    out_dir = Path(out_dir)
    for stem, _, fig in build_figures(tables, PAPER, max_models):
        _save(fig, out_dir / "paper", stem, ("png", "svg", "pdf"))
    return [
        (f"{stem}.png", caption, _save(fig, out_dir, stem, ("png", "svg"))["png"])
        for stem, caption, fig in build_figures(tables, PAGE, max_models)
    ]


def _save(fig: Figure, folder: Path, stem: str, formats: Sequence[str]) -> dict[str, bytes]:
    """Write ``folder/stem.<fmt>`` atomically, without dates or random ids; returns the bytes."""
    import matplotlib

    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    outputs = {}
    with matplotlib.rc_context({"svg.hashsalt": "harness"}):
        for fmt in formats:
            buffer = io.BytesIO()
            fig.savefig(
                buffer, format=fmt, dpi=fig.dpi, bbox_inches="tight", pad_inches=0.03, metadata=metadata[fmt]
            )
            outputs[fmt] = buffer.getvalue()
            write_bytes_atomic(folder / f"{stem}.{fmt}", outputs[fmt])
    return outputs


def _ranked(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.summary is None, -(r.summary or 0.0), r.label))


def _capped(n: int, max_models: int) -> str:
    return f" (best {max_models} of {n} models)" if n > max_models else ""


def _figure(size: Size, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size.width, height), dpi=size.dpi, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with
    fig.get_layout_engine().set(w_pad=2 / 72, h_pad=2 / 72)
    return fig


def _freeze(fig: Figure) -> None:
    """Lay the figure out once and keep that layout, so that text placed next can be measured."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def _text_size(fig: Figure, text: str, fontsize: float) -> tuple[float, float]:
    """(width, height) in pixels of ``text`` as drawn."""
    from matplotlib.text import Text
    from matplotlib.transforms import IdentityTransform

    probe = Text(0, 0, text, fontsize=fontsize, transform=IdentityTransform())
    probe.set_figure(fig)
    box = probe.get_window_extent(fig.canvas.get_renderer())
    return box.width, box.height


def _legend_columns(fig: Figure, labels: list[str], size: Size) -> int:
    """How many legend columns of these labels fit across the figure."""
    widest = max(_text_size(fig, label, size.legend)[0] for label in labels) * 72 / size.dpi
    return max(1, min(len(labels), int((size.width * 72 - 10) // (widest + 4.5 * size.legend))))


def _bar_style(row: Row, style: Style) -> dict:
    hatch = style.hatch + ("" if row.published else RUN_HATCH)
    return {"color": style.colour, "hatch": hatch or None, "edgecolor": "0.15" if hatch else "white"}


def _bars(
    table: Table, rows: list[Row], shown: list[int], styles: dict[str, Style], size: Size
) -> tuple[Figure, str]:
    """Horizontal bars: a group per shown column (or a bar per model when one column is shown)."""
    n, groups = len(rows), len(shown)
    per_model = groups == 1  # models on the y axis, no legend
    gap = 0.8
    units = (n if per_model else n * groups + gap * (groups - 1)) + 1.0
    lo, hi = size.bar_pitch
    pitch = min(hi, max(lo, size.bars_height * 72 / units))
    tick_room = 1.5 * size.small  # tick labels must not touch
    pitch = max(pitch, tick_room if per_model else tick_room / (n + gap))
    legend_lines = ncol = 0
    if not per_model:
        ncol = _legend_columns(_figure(size, 1.0), [r.label for r in rows], size)
        legend_lines = math.ceil(n / ncol)
    label = headline_name(table) if table.datasets == 0 else f"{table.family} {metric_phrase(table)}"
    label = textwrap.fill(label, size.wrap)
    overhead = 3.2 * size.font + 1.3 * size.font * label.count("\n") + 1.45 * size.legend * legend_lines + 16
    fig = _figure(size, (pitch * units + overhead) / 72)
    ax = fig.add_subplot()
    step = 1 if per_model else n + gap
    ends = []  # (y, value, x where the bar or its whisker ends, decimals)
    for i, r in enumerate(rows):
        ys = np.array([i if per_model else j * step + i for j in range(groups)], dtype=float)
        cells = [r.cells[c] for c in shown]
        values = np.array([np.nan if c.value is None else c.value for c in cells])
        bars = ax.barh(ys, values, 0.86, label=r.label, linewidth=0.4, **_bar_style(r, styles[r.model_id]))
        for j, patch in enumerate(bars.patches):
            patch.set_gid(f"bar-{j}-{'pub' if r.published else 'run'}:{r.model_id}")
        ci = [(y, c) for y, c in zip(ys, cells, strict=True) if c.ci and c.value is not None]
        if ci:
            ax.errorbar(
                [c.value for _, c in ci],
                [y for y, _ in ci],
                xerr=np.array([[c.value - c.ci[0], c.ci[1] - c.value] for _, c in ci]).T,
                fmt="none",
                ecolor="black",
                elinewidth=0.6,
                capsize=1.5,
                capthick=0.6,
            )
        for y, c in zip(ys, cells, strict=True):
            if c.value is not None:
                ends.append((y, c.value, max(c.value, c.ci[1] if c.ci else c.value), min(c.decimals, 3)))
    if per_model:
        ax.set_yticks(range(n), [r.label for r in rows])
    else:
        ax.set_yticks([j * step + (n - 1) / 2 for j in range(groups)], [table.columns[c] for c in shown])
        ax.tick_params(axis="y", length=0)
        fig.legend(loc="outside upper center", ncols=ncol, fontsize=size.legend, frameon=False)
    ax.set_ylim(units - 1.5, -0.5)  # first row / dataset on top
    ax.tick_params(labelsize=size.small)
    ax.set_xlabel(label, fontsize=size.font)
    ax.grid(True, axis="x", linewidth=0.4, color="0.88")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    top = max(e for _, _, e, _ in ends)
    ax.set_xlim(0, top * 1.04)
    _freeze(fig)
    _values_on_bars(ax, ends, pitch, size)
    caption = label.replace("\n", " ") + ("" if per_model else " per dataset")
    if any(c.ci for r in rows for c in r.cells):
        caption += "; whiskers: bootstrap confidence intervals"
    if not all(r.published for r in rows):
        caption += "; hatched: run here, † published figure"
    return fig, caption


def _values_on_bars(ax: Axes, ends: list[tuple[float, float, float, int]], pitch: float, size: Size) -> None:
    """Print each value after its bar (or whisker) when the text fits in the bar pitch; widen the
    x range so that every value fits inside the axes."""
    fig = ax.figure
    texts = [f"{v:.{d}f}" for _, v, _, d in ends]
    extents = [_text_size(fig, t, size.tiny) for t in texts]
    if max(h for _, h in extents) > pitch * size.dpi / 72:
        return
    width = ax.get_window_extent(fig.canvas.get_renderer()).width
    pad = 2 * size.dpi / 72
    need = max(e * width / (width - w - 2 * pad) for (_, _, e, _), (w, _) in zip(ends, extents, strict=True))
    ax.set_xlim(0, max(need, ax.get_xlim()[1]))
    for (y, _, end, _), text in zip(ends, texts, strict=True):
        ax.annotate(
            text,
            (end, y),
            xytext=(2, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=size.tiny,
        )


def _scatter(
    table: Table, rows: list[Row], attr: str, styles: dict[str, Style], size: Size
) -> tuple[Figure, str]:
    """Headline score vs ``attr`` (parameters / throughput), log x, every point labelled if room."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

    unit = "tok/s" if attr == "throughput" else ""
    xlabel = "parameters" if attr == "parameters" else "document tokens encoded per second (measured)"
    ylabel = textwrap.fill(headline_name(table), max(24, size.wrap * 2 // 3))
    fig = _figure(size, size.scatter_height)
    ax = fig.add_subplot()
    xs = np.array([float(getattr(r, attr)) for r in rows])
    ys = np.array([r.summary for r in rows])
    handles = []
    for r, x, y in zip(rows, xs, ys, strict=True):
        style = styles[r.model_id]
        point = ax.scatter(
            [x],
            [y],
            s=size.marker,
            marker=style.marker,
            color=style.colour,
            edgecolors="white" if r.published else "black",
            linewidths=0.6 if r.published else 1.0,
            zorder=3,
            gid=f"point-{'pub' if r.published else 'run'}:{r.model_id}",
        )
        handles.append(point)
    lo, hi = math.log10(xs.min()), math.log10(xs.max())
    pad = max(0.12, (0.35 - (hi - lo)) / 2)
    ax.set_xscale("log")
    ax.set_xlim(10 ** (lo - pad), 10 ** (hi + pad))
    ticks = _log_ticks(fig, 10 ** (lo - pad), 10 ** (hi + pad), unit, size)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v, unit)))
    ax.xaxis.set_minor_locator(LogLocator(subs=tuple(range(2, 10))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    spread = max(0.08 * (ys.max() - ys.min()), 0.02)
    ax.set_ylim(ys.min() - spread, ys.max() + spread)
    ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax.tick_params(labelsize=size.small)
    ax.set_xlabel(xlabel, fontsize=size.font)
    ax.set_ylabel(ylabel, fontsize=size.font)
    ax.grid(True, which="major", linewidth=0.4, color="0.88")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    _freeze(fig)
    labels = [r.label + (" (reported avg)" if _reported_instead(table, r) else "") for r in rows]
    points = list(zip(xs, ys, labels, strict=True))
    missing = place_labels(ax, points, math.sqrt(size.marker) / 2, size.tiny)
    if len(missing) > len(points) / 3:  # a crowd: one legend reads better than a few labels
        for text in list(ax.texts):
            text.remove()
        missing = list(range(len(points)))
    if missing:  # named in a legend under the axes (the layout is fixed: it goes below the x label)
        renderer = fig.canvas.get_renderer()
        below = ax.xaxis.label.get_window_extent(renderer).y0 / fig.bbox.height - 0.01
        fig.legend(
            [handles[i] for i in missing],
            [labels[i] for i in missing],
            loc="upper center",
            bbox_to_anchor=(0.5, below),
            ncols=_legend_columns(fig, [labels[i] for i in missing], size),
            fontsize=size.legend,
            frameon=False,
        )
    what = "parameters" if attr == "parameters" else "measured document encoding throughput"
    caption = f"{headline_name(table)} vs {what}"
    if not all(r.published for r in rows):
        caption += "; black edge: run here, † published figure"
    return fig, caption


def _log_ticks(fig: Figure, lo: float, hi: float, unit: str, size: Size) -> list[float]:
    """The densest of 1-2-3-5-style tick sets in [lo, hi] whose labels keep a gap between them on
    an axis about ``size.width - 1.3`` inches long; the sparsest non-empty one failing that."""
    axis_px = (size.width - 1.3) * size.dpi
    span = math.log10(hi / lo)
    choices = []
    for subs in ((1, 1.5, 2, 3, 5, 7), (1, 2, 3, 5), (1, 2, 5), (1, 3), (1,)):
        ticks = [
            s * 10.0**e
            for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            for s in subs
            if lo <= s * 10.0**e <= hi
        ]
        if not ticks:
            continue
        choices.append(ticks)
        pos = [math.log10(t / lo) / span * axis_px for t in ticks]
        half = [_text_size(fig, si(t, unit), size.small)[0] / 2 for t in ticks]
        gap = size.small * size.dpi / 72
        if all(pos[i + 1] - pos[i] >= half[i] + half[i + 1] + gap for i in range(len(ticks) - 1)):
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
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72
    frame = ax.get_window_extent(renderer).padded(-2)
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
            box = probe.get_window_extent(renderer)
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
