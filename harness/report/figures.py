"""Figures (matplotlib, object API: no global state, no GUI): per-dataset bars with CI whiskers,
headline score vs parameters and vs encoding throughput; written as PNG and SVG, byte-stable."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.fileio import write_bytes_atomic
from harness.report.tables import Table


def _save_figure(fig: Any, out_dir: Path, stem: str) -> bytes:
    """Write ``stem.png`` and ``stem.svg`` atomically; returns the PNG bytes."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "harness"}):
        outputs = {}
        for fmt in ("png", "svg"):
            buffer = io.BytesIO()
            fig.savefig(
                buffer,
                format=fmt,
                dpi=110,
                bbox_inches="tight",
                metadata={"Software": None} if fmt == "png" else {"Date": None},
            )
            outputs[fmt] = buffer.getvalue()
            write_bytes_atomic(out_dir / f"{stem}.{fmt}", outputs[fmt])
    return outputs["png"]


def leaderboard_figures(
    tables: Sequence[Table], out_dir: Path, max_models: int = 12
) -> list[tuple[str, str, bytes]]:
    """Per-dataset bars (with CI whiskers), headline score vs parameters and vs encoding throughput.

    Returns (PNG file name, caption, PNG bytes) for each figure written (PNG + SVG) under ``out_dir``.
    """
    import matplotlib
    from matplotlib.figure import Figure  # the OO API: no pyplot state, no GUI backend

    figures = []
    for table in tables:
        rows = [r for r in table.rows if any(c.value is not None for c in r.cells[: table.datasets])]
        if not rows or not table.datasets:
            continue
        rows = sorted(rows, key=lambda r: -(r.summary or 0.0))[:max_models]
        fig = Figure(figsize=(max(6.0, 0.6 * table.datasets * max(1, len(rows)) ** 0.5 + 3), 4.5))
        ax = fig.subplots()
        width = 0.8 / len(rows)
        x = np.arange(table.datasets)
        colors = matplotlib.colormaps["tab10" if len(rows) <= 10 else "tab20"].colors
        for i, r in enumerate(rows):
            cells = r.cells[: table.datasets]
            offsets = x + (i - (len(rows) - 1) / 2) * width
            values = [np.nan if c.value is None else c.value for c in cells]
            ax.bar(offsets, values, width, label=r.label, color=colors[i % len(colors)])
            whiskers = [(o, c) for o, c in zip(offsets, cells, strict=True) if c.ci and c.value is not None]
            if whiskers:  # 95% CI where per-query scores exist
                ax.errorbar(
                    [o for o, _ in whiskers],
                    [c.value for _, c in whiskers],
                    yerr=np.array([[c.value - c.ci[0], c.ci[1] - c.value] for _, c in whiskers]).T,
                    fmt="none",
                    ecolor="black",
                    capsize=2,
                    linewidth=0.8,
                )
        ax.set_xticks(x, table.columns[: table.datasets], rotation=45, ha="right")
        ax.set_ylabel("main score (per task)")
        ax.set_title(f"{table.family}: per-dataset scores")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        stem = f"{table.slug}_per_dataset"
        figures.append(
            (f"{stem}.png", f"{table.family} per-dataset scores", _save_figure(fig, out_dir, stem))
        )
    for attr, stem, xlabel in (
        ("parameters", "score_vs_parameters", "parameters"),
        ("throughput", "score_vs_throughput", "document tokens encoded per second"),
    ):
        points = [(t.family, r) for t in tables for r in t.rows if getattr(r, attr) and r.summary is not None]
        if not points:
            continue
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for fam in dict.fromkeys(f for f, _ in points):
            mine = [r for f, r in points if f == fam]
            ax.scatter([getattr(r, attr) for r in mine], [r.summary for r in mine], label=fam)
            for r in mine:
                ax.annotate(
                    r.label,
                    (getattr(r, attr), r.summary),
                    fontsize=6,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean score (or reported AVG)")
        ax.set_title(f"Average score vs {xlabel}")
        ax.legend(fontsize=8)
        figures.append((f"{stem}.png", f"average score vs {xlabel}", _save_figure(fig, out_dir, stem)))
    return figures
