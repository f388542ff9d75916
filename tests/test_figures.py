"""Leaderboard figures: the metric named on the axes, no overlapping text, a colour per model across
figures, readable log ticks, throughput only from measured timings, both sizes written, byte-stable."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.text import Text

from harness.report import figures, style
from harness.report.figures import build_figures, leaderboard_figures, si
from harness.report.style import PAGE, PAPER, model_colours
from harness.report.tables import Cell, Row, Table, leaderboard_tables
from harness.results import ModelRecord, Result, RetrievalRecord, SubsetScores, TaskRecord, load_results

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "published"
BEIR = ("BEIR/msmarco", "BEIR/scifact", "BEIR/webis-touche2020", "BEIR/fiqa", "BEIR/trec-covid", "BEIR/nq",
        "BEIR/dbpedia-entity")  # fmt: skip


def run(
    model: str, task: str, parameters: int, seed: int, source: str = "measured", card: bool = False
) -> Result:
    """A harness-run result with per-query scores and an encode timing measured (or from ``source``)."""
    per_query = {f"q{i}": float(v) for i, v in enumerate(np.random.default_rng(seed).uniform(0.3, 1.0, 40))}
    table = {"ndcg@10": float(np.mean(list(per_query.values())))}
    subset = SubsetScores(
        task.split("/")[-1], 40, table if card else None, None if card else table, per_query
    )
    return Result(
        model=ModelRecord(model, parameters=parameters),
        task=TaskRecord(task, "card" if card else "trec", "ndcg@10", "test"),
        retrieval=RetrievalRecord("exact"),
        subsets=[subset],
        timings={"encode_documents_s": 2.0 + seed, "sources": {"encode_documents_s": source}},
        tokens={"documents": 100_000},
    )


def small_results() -> list[Result]:
    """Two runs of the card's BEIR tasks, one timed by this run, one with cached timings; one NanoBEIR run."""
    out = [run("run-a", t, 17_000_000, i) for i, t in enumerate(BEIR)]
    out += [run("run-cached", t, 33_000_000, 10 + i, source="cache") for i, t in enumerate(BEIR)]
    return out + [run("run-a", "NanoSciFact", 17_000_000, 20, card=True)]


@pytest.fixture(scope="module")
def tables() -> list[Table]:
    return leaderboard_tables(load_results([PUBLISHED]) + small_results(), n_resamples=50)


@pytest.fixture(scope="module")
def built(tables) -> dict[str, list]:
    return {size.name: build_figures(tables, size) for size in (PAGE, PAPER)}


def crowded() -> list[Table]:
    """12 models with near-equal scores and sizes, long names, every BEIR card column."""
    columns = ["MS MARCO", "SciFact", "Touche", "FiQA", "TREC-COVID", "NQ", "DBPedia"]
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        values = list(0.45 + 0.01 * rng.random(7))
        cells = [Cell(v, 3, (v - 0.02, v + 0.02) if i % 3 == 0 else None) for v in values]
        cells.append(Cell(float(np.mean(values))))
        rows.append(
            Row(f"organisation/retriever-model-{i:02d}", i % 2 == 0, "g", cells, 20_000_000 + 400_000 * i,
                1900.0 + 15 * i, cells[-1].value)
        )  # fmt: skip
    return [Table("BEIR", [*columns, "Mean"], 7, rows)]


def texts(fig) -> list[Text]:
    """Every visible, non-empty text of a figure: tick and axis labels, annotations, legends."""
    found = []
    for ax in fig.axes:
        found += [*ax.texts, *ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]
        found += [ax.title] + ([*ax.get_legend().get_texts()] if ax.get_legend() else [])
    found += [t for legend in fig.legends for t in legend.get_texts()] + list(fig.texts)
    return [t for t in found if t.get_visible() and t.get_text().strip()]


def assert_no_overlap(fig, name: str) -> None:
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), Text.get_window_extent(t, renderer)) for t in texts(fig)]  # text only, no arrow
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            assert not box_a.overlaps(box_b), f"{name}: {a!r} overlaps {b!r}"
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        for t in ax.texts:
            box = Text.get_window_extent(t, renderer)
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (
                name
            )


def model_of(artist) -> str | None:
    gid = artist.get_gid()
    return gid.partition(":")[2] if gid else None


def styled(fig) -> list[tuple[str, tuple, str]]:
    """(model id, face RGB, hatch or marker path) of each bar and point drawn for a model."""
    ax = fig.axes[0]
    out = [(model_of(p), to_rgb(p.get_facecolor()), p.get_hatch() or "") for p in ax.patches if model_of(p)]
    for c in ax.collections:
        if model_of(c):
            out.append((model_of(c), to_rgb(c.get_facecolor()[0]), str(c.get_paths()[0].vertices.round(2))))
    return out


# --------------------------------------------------------------------------- what is drawn


def test_one_figure_set_per_benchmark(built):
    stems = [stem for stem, _, _ in built["page"]]
    assert stems == [stem for stem, _, _ in built["paper"]]
    assert stems == [
        "nanobeir_per_dataset",
        "nanobeir_score_vs_parameters",  # the published row only: run-a has no Mean (1 of 13 datasets)
        "beir_per_dataset",
        "beir_score_vs_parameters",
        "beir_score_vs_throughput",  # run-a only: run-cached's timings were not measured
        "longembed_average",  # average-only: a bar per model
        "longembed_score_vs_parameters",
        "bright_per_dataset",  # MTEB's published rows (results/published/transcribe_mteb.py)
        "bright_score_vs_parameters",
        "lotte_per_dataset",
        "lotte_score_vs_parameters",
    ]


def test_axes_name_benchmark_and_metric(built):
    for size, figs in built.items():
        for stem, caption, fig in figs:
            ax = fig.axes[0]
            value_axis = (ax.get_ylabel() if "score_vs" in stem else ax.get_xlabel()).replace("\n", " ")
            family = {"nanobeir": "NanoBEIR", "beir": "BEIR", "longembed": "LongEmbed", "bright": "BRIGHT",
                      "lotte": "LoTTE"}[stem.split("_")[0]]  # fmt: skip
            metric = "Success@5" if family == "LoTTE" else "nDCG@10"  # LoTTE's official metric
            assert value_axis.startswith(family) and metric in value_axis, (size, stem, value_axis)
            assert "main score" not in value_axis and metric in caption
    longembed = dict((s, f) for s, _, f in built["page"])["longembed_average"].axes[0].get_xlabel()
    assert "nDCG@1: passkey, needle" in longembed.replace("\n", " ")  # the registry's exceptions
    scatter = dict((s, f) for s, _, f in built["page"])["beir_score_vs_parameters"].axes[0]
    assert scatter.get_ylabel() == "BEIR mean nDCG@10" and scatter.get_xlabel() == "parameters"


def test_no_text_overlaps(built):
    for size, figs in built.items():
        for stem, _, fig in figs:
            assert_no_overlap(fig, f"{size}/{stem}")


@pytest.mark.parametrize("size", [PAGE, PAPER], ids=lambda s: s.name)
def test_no_text_overlaps_when_crowded(size):
    figs = build_figures(crowded(), size)
    assert [s for s, _, _ in figs] == [
        "beir_per_dataset",
        "beir_score_vs_parameters",
        "beir_score_vs_throughput",
    ]
    for stem, _, fig in figs:
        assert_no_overlap(fig, f"{size.name}/{stem}")
        if "score_vs" in stem:  # every point labelled, or named in a legend under the axes
            named = [t.get_text() for t in fig.axes[0].texts]
            named += [t.get_text() for legend in fig.legends for t in legend.get_texts()]
            assert sorted(named) == sorted(r.label for r in crowded()[0].rows)
            assert len(fig.axes[0].texts) >= (8 if size is PAGE else 0)
    bars = figs[0][2]
    assert len(bars.legends[0].get_texts()) == 12 and min(t.get_fontsize() for t in texts(bars)) >= 7


def test_place_labels_moves_labels_apart():
    """Twelve points at one spot: labels are spread out with leader lines, never stacked."""
    fig = figures._figure(PAGE, 4.0)
    ax = fig.add_subplot()
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    figures._freeze(fig)
    assert figures.place_labels(ax, [(0.5, 0.5, f"model {i}") for i in range(12)], 3, 7) == []
    assert len(ax.texts) == 12
    assert sum(t.arrow_patch is not None for t in ax.texts) >= 4
    assert_no_overlap(fig, "stacked")


def test_values_on_bars_only_where_they_fit(built):
    page = dict((s, f) for s, _, f in built["page"])
    for stem, fig in page.items():
        ax = fig.axes[0]
        values = [t for t in ax.texts if re.fullmatch(r"\d\.\d{3}", t.get_text())]
        renderer = fig.canvas.get_renderer()
        pitch = max(
            (p.get_window_extent(renderer).height / 0.86 for p in ax.patches if model_of(p)), default=0
        )
        assert all(Text.get_window_extent(t, renderer).height <= pitch for t in values), stem
        if stem == "nanobeir_per_dataset":  # 2 models: room for values (card precision)
            assert "0.321" in [t.get_text() for t in values]
        if stem == "beir_per_dataset":  # 11 models x 7 datasets: no room
            assert not values


# --------------------------------------------------------------------------- colours, ticks, throughput


def test_a_model_has_one_colour_in_every_figure(tables, built):
    colours = model_colours(tables)
    assert set(colours.values()) <= set(style.PALETTE)
    seen: dict[str, set] = {}
    for figs in built.values():
        for stem, _, fig in figs:
            drawn = styled(fig)
            assert drawn, stem
            for model, rgb, _ in drawn:
                seen.setdefault(model, set()).add(rgb)
            # models sharing a colour in one figure differ by hatch / marker (run hatch aside)
            looks = {(rgb, shape.replace(figures.RUN_HATCH, "")): set() for _, rgb, shape in drawn}
            for model, rgb, shape in drawn:
                looks[(rgb, shape.replace(figures.RUN_HATCH, ""))].add(model)
            assert all(len(models) == 1 for models in looks.values()), (stem, looks)
    assert {"run-a", "GTE-ModernColBERT-v1", "mxbai-edge-colbert-v0-17m"} <= set(seen)
    assert all(rgbs == {to_rgb(colours[m])} for m, rgbs in seen.items()), seen


def test_colours_of_models_seen_together_differ_when_the_palette_allows():
    rows = [Row(f"m{i}", True, "g", [Cell(0.5)], 10**7, None, 0.5) for i in range(12)]
    tables = [
        Table("Other", ["x"], 1, rows[:5]),
        Table("Other", ["y"], 1, rows[4:9]),
        Table("Other", ["z"], 1, rows[9:]),
    ]
    styles = figures.model_styles(tables)
    for table in tables:
        assert len({styles[r.model_id].colour for r in table.rows}) == len(table.rows)


def test_si_numbers():
    assert [si(17e6), si(1.5e9), si(149_000_000), si(999)] == ["17M", "1.5B", "149M", "999"]
    assert [si(500, "tok/s"), si(2000, "tok/s"), si(20_000, "tok/s")] == [
        "500 tok/s",
        "2k tok/s",
        "20k tok/s",
    ]


def test_tick_labels_are_plain_numbers(built):
    for size, figs in built.items():
        for stem, _, fig in figs:
            fig.draw_without_rendering()
            ax = fig.axes[0]
            for t in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
                assert not re.search(r"\$|\\times|×|10\^|e[+-]\d", t.get_text()), (size, stem, t.get_text())
            xticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
            if stem.endswith("parameters"):
                assert len(xticks) >= 2 and all(re.fullmatch(r"\d+(\.\d+)?[kMB]", x) for x in xticks), xticks
            if stem.endswith("throughput"):
                assert xticks and all(re.fullmatch(r"\d+(\.\d+)?k? tok/s", x) for x in xticks), xticks
    page = dict((s, f) for s, _, f in built["page"])
    assert {"20M", "50M", "100M"} <= {
        t.get_text() for t in page["beir_score_vs_parameters"].axes[0].get_xticklabels()
    }


def test_throughput_only_from_measured_timings():
    tables = leaderboard_tables(small_results(), n_resamples=20)
    beir = next(t for t in tables if t.family == "BEIR")
    assert {r.model_id: r.throughput is not None for r in beir.rows} == {"run-a": True, "run-cached": False}
    figs = dict((s, f) for s, _, f in build_figures(tables))
    assert {model_of(c) for c in figs["beir_score_vs_throughput"].axes[0].collections} == {"run-a"}
    assert {model_of(c) for c in figs["beir_score_vs_parameters"].axes[0].collections} == {
        "run-a",
        "run-cached",
    }
    only_cached = leaderboard_tables(
        [r for r in small_results() if r.model_id == "run-cached"], n_resamples=20
    )
    assert not [s for s, _, _ in build_figures(only_cached) if "throughput" in s]


# --------------------------------------------------------------------------- files


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def test_files_in_both_sizes_byte_stable(tmp_path):
    def beir() -> list[Table]:
        return [t for t in leaderboard_tables(small_results(), n_resamples=20) if t.family == "BEIR"]

    first, second = leaderboard_figures(beir(), tmp_path / "a"), leaderboard_figures(beir(), tmp_path / "b")
    stems = ["beir_per_dataset", "beir_score_vs_parameters", "beir_score_vs_throughput"]
    assert [name for name, _, _ in first] == [f"{s}.png" for s in stems]
    files = sorted(
        p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert files == sorted([f"{s}.{e}" for s in stems for e in ("png", "svg")] + [
        f"paper/{s}.{e}" for s in stems for e in ("pdf", "png", "svg")
    ])  # fmt: skip
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for (name, _, png), again in zip(first, second, strict=True):
        assert png == again[2] == (tmp_path / "a" / name).read_bytes()
    for stem in stems:  # 7 in at 150 dpi for the page, 3.5 in at 300 dpi for a paper column
        assert 0.8 * 1050 <= png_width((tmp_path / "a" / f"{stem}.png").read_bytes()) <= 1070
        assert 0.8 * 1050 <= png_width((tmp_path / "a" / "paper" / f"{stem}.png").read_bytes()) <= 1070
        assert (tmp_path / "a" / "paper" / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in (tmp_path / "a" / f"{stem}.svg").read_bytes()[:1000]
