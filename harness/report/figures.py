"""Leaderboard figures (matplotlib object API: no pyplot state, no GUI), one set per benchmark table.

Per table ``<slug>`` (``Table.slug``):

* ``<slug>_per_dataset``: horizontal grouped bars, a group per dataset column, the best
  ``max_models`` rows by headline score; CI whiskers where cells have them; the value printed
  at a bar's end when the text fits in the bar's pitch. A table without dataset columns (only a
  reported average, e.g. LongEmbed) gets ``<slug>_average`` instead: a bar per model.
* ``<slug>_score_vs_parameters`` and ``<slug>_score_vs_throughput``: the headline score (``Row.summary``)
  against parameters / measured document tokens per second (``Row.throughput``, which tables only
  derive from measured timings), log x axis with ticks like ``17M`` / ``2k tok/s``. Points are
  labelled where a label fits without overlapping another label or marker (``geometry.place_labels``:
  beside the marker, else further out with a leader line); the others, or all of them when more
  than a third find no place, are named in a legend under the axes.
* ``<task>_quality_vs_cost`` (a ``TradeoffTable``): the task's main score (CI whiskers) against bytes
  per document token, QPS and p95 latency, a panel each (those known), the runs of one model joined by
  a line in its colour, each point named by how its run differs where the label fits.

Axes name the benchmark and its metric (from the task registry: ``BEIR mean nDCG@10``). A model has
one colour (Paul Tol's colour-blind-safe "muted" palette) in every figure of a report, assigned once
from all tables (``style.model_styles``); models of one figure sharing a colour (more than 9 models)
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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.fileio import write_bytes_atomic
from harness.metrics import metric_label
from harness.report.catalogue import family as family_of
from harness.report.geometry import legend_columns, log_ticks, place_labels, renderer, text_size
from harness.report.style import PAGE, PAPER, RUN_HATCH, SIZES, Size, Style, model_styles
from harness.report.tables import Row, Table
from harness.report.tables import TradeoffTable as Tradeoffs

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
    tables: Sequence[Table],
    size: Size | str = PAGE,
    max_models: int = 12,
    tradeoffs: Sequence[Tradeoffs] = (),
) -> list[tuple[str, str, Figure]]:
    """(file stem, caption, Figure) of every figure, labels placed; styles from all ``tables`` and the
    models of the ``tradeoffs`` (their figures last)."""
    size = SIZES[size] if isinstance(size, str) else size
    lines = [Table(t.task, [], 0, [Row(r.model, False, "", []) for r in t.rows]) for t in tradeoffs]
    styles = model_styles([*tables, *lines])
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
    return out + [_tradeoff(t, styles, size) for t in tradeoffs]


def leaderboard_figures(
    tables: Sequence[Table], out_dir: Path, max_models: int = 12, tradeoffs: Sequence[Tradeoffs] = ()
) -> list[tuple[str, str, bytes]]:
    """Write every figure in both sizes (module docstring); returns (PNG file name, caption, PNG
    bytes) of the page-size ones, in ``build_figures`` order."""
    out_dir = Path(out_dir)
    for stem, _, fig in build_figures(tables, PAPER, max_models, tradeoffs):
        _save(fig, out_dir / "paper", stem, ("png", "svg", "pdf"))
    return [
        (f"{stem}.png", caption, _save(fig, out_dir, stem, ("png", "svg"))["png"])
        for stem, caption, fig in build_figures(tables, PAGE, max_models, tradeoffs)
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
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fig = Figure(figsize=(size.width, height), dpi=size.dpi, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with
    engine = fig.get_layout_engine()
    assert isinstance(engine, ConstrainedLayoutEngine)  # layout="constrained" above
    engine.set(w_pad=2 / 72, h_pad=2 / 72)
    return fig


def _freeze(fig: Figure) -> None:
    """Lay the figure out once and keep that layout, so that text placed next can be measured."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


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
        ncol = legend_columns(_figure(size, 1.0), [r.label for r in rows], size)
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
        ci = [
            (y, v, lo_hi)
            for y, c in zip(ys, cells, strict=True)
            if (lo_hi := c.ci) and (v := c.value) is not None
        ]
        if ci:
            ax.errorbar(
                [v for _, v, _ in ci],
                [y for y, _, _ in ci],
                xerr=np.array([[v - lo, hi - v] for _, v, (lo, hi) in ci]).T,
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
    extents = [text_size(fig, t, size.tiny) for t in texts]
    if max(h for _, h in extents) > pitch * size.dpi / 72:
        return
    width = ax.get_window_extent(renderer(fig)).width
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
    from matplotlib.ticker import ScalarFormatter

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
    _log_x(ax, list(xs), unit, size)
    spread = max(0.08 * (ys.max() - ys.min()), 0.02)
    ax.set_ylim(ys.min() - spread, ys.max() + spread)
    ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    _tidy(ax, xlabel, ylabel, size)
    _freeze(fig)
    labels = [r.label + (" (reported avg)" if _reported_instead(table, r) else "") for r in rows]
    missing = place_labels(ax, list(zip(xs, ys, labels, strict=True)), math.sqrt(size.marker) / 2, size.tiny)
    if len(missing) > len(rows) / 3:  # a crowd: one legend reads better than a few labels
        for text in list(ax.texts):
            text.remove()
        missing = list(range(len(rows)))
    if missing:  # named in a legend under the axes (the layout is fixed: it goes below the x label)
        below = ax.xaxis.label.get_window_extent(renderer(fig)).y0 / fig.bbox.height - 0.01
        fig.legend(
            [handles[i] for i in missing],
            [labels[i] for i in missing],
            loc="upper center",
            bbox_to_anchor=(0.5, below),
            ncols=legend_columns(fig, [labels[i] for i in missing], size),
            fontsize=size.legend,
            frameon=False,
        )
    what = "parameters" if attr == "parameters" else "measured document encoding throughput"
    caption = f"{headline_name(table)} vs {what}"
    if not all(r.published for r in rows):
        caption += "; black edge: run here, † published figure"
    return fig, caption


def _log_x(ax: Axes, xs: Sequence[float], unit: str, size: Size) -> None:
    """A log x axis over ``xs``, padded, its ticks labelled ``si(value, unit)`` and kept apart."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    pad = max(0.12, (0.35 - (hi - lo)) / 2)
    ax.set_xscale("log")
    ax.set_xlim(10 ** (lo - pad), 10 ** (hi + pad))
    ticks = log_ticks(ax.figure, 10 ** (lo - pad), 10 ** (hi + pad), lambda t: si(t, unit), size)  # type: ignore[arg-type]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v, unit)))
    ax.xaxis.set_minor_locator(LogLocator(subs=tuple(range(2, 10))))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _tidy(ax: Axes, xlabel: str, ylabel: str, size: Size) -> None:
    ax.tick_params(labelsize=size.small)
    ax.set_xlabel(xlabel, fontsize=size.font)
    ax.set_ylabel(ylabel, fontsize=size.font)
    ax.grid(True, which="major", linewidth=0.4, color="0.88")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)


# the trade-off figure's x axes: row attribute, axis label, unit
COSTS = (("bytes_per_token", "bytes per document token", "B"), ("qps", "queries per second (batched)", "q/s"),
         ("p95_ms", "single-query p95 latency", "ms"))  # fmt: skip


def _tradeoff(table: Tradeoffs, styles: dict[str, Style], size: Size) -> tuple[str, str, Figure]:
    """``<slug>_quality_vs_cost`` (module docstring) with its caption."""
    rows = [r for r in table.rows if r.cell.value is not None]
    shown = [c for c in COSTS if any(getattr(r, c[0]) for r in rows)]
    fig = _figure(size, 0.62 * size.scatter_height * len(shown) + 0.5)
    axes, metric = fig.subplots(len(shown), 1, squeeze=False)[:, 0], metric_label(table.metric)
    handles = {}
    for ax, (attr, xlabel, unit) in zip(axes, shown, strict=True):
        drawn = sorted((r for r in rows if getattr(r, attr)), key=lambda r: getattr(r, attr))
        for model in dict.fromkeys(r.model for r in drawn):
            mine, style = [r for r in drawn if r.model == model], styles[model]
            ys = np.array([r.cell.value for r in mine], dtype=float)
            ci = np.array([r.cell.ci or (r.cell.value, r.cell.value) for r in mine], dtype=float)
            handles[model] = ax.errorbar(
                [getattr(r, attr) for r in mine], ys, yerr=np.abs(ci.T - ys), color=style.colour,
                marker=style.marker, markersize=4, lw=1.0, elinewidth=0.6, capsize=1.5, gid=f"line:{model}",
            )  # fmt: skip
        _log_x(ax, [getattr(r, attr) for r in drawn], unit, size)
        _tidy(ax, xlabel, metric, size)
    fig.legend(handles.values(), handles, loc="outside upper center", fontsize=size.legend, frameon=False,
               ncols=legend_columns(fig, list(handles), size))  # fmt: skip
    _freeze(fig)
    for ax, (attr, _, _) in zip(axes, shown, strict=True):
        points = [(getattr(r, attr), r.cell.value or 0.0, r.label) for r in rows if getattr(r, attr)]
        place_labels(ax, points, 2.5, size.tiny)
    what = "whiskers: bootstrap confidence intervals; a line per model; unlabelled points: see the table"
    return f"{table.slug}_quality_vs_cost", f"{table.task} {metric} against cost ({what})", fig
