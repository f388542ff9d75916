"""Reports from results files: the model card (``card``) and the leaderboard (``tables`` ->
``render`` markdown / HTML, ``figures``), over the catalogue and groupings of ``catalogue``."""

from harness.report.card import (
    card_model_index,
    nanobeir_card_metrics,
    nanobeir_markdown_table,
    render_card_yaml,
    render_model_card,
)
from harness.report.catalogue import (
    AVERAGE_METRIC,
    AVERAGE_SUBSET,
    DEFAULT_SIZE_GROUPS,
    FAMILIES,
    beir_card_columns,
    family,
    is_average_only,
    is_published,
    longembed_tasks,
    nanobeir_datasets,
    size_group_for,
)
from harness.report.figures import leaderboard_figures
from harness.report.render import (
    TABLE_FORMATS,
    format_table,
    leaderboard_html,
    leaderboard_markdown,
    render_leaderboard,
    table_frame,
)
from harness.report.tables import Cell, Row, Table, leaderboard_tables

__all__ = [
    "AVERAGE_METRIC",
    "AVERAGE_SUBSET",
    "DEFAULT_SIZE_GROUPS",
    "FAMILIES",
    "TABLE_FORMATS",
    "Cell",
    "Row",
    "Table",
    "beir_card_columns",
    "card_model_index",
    "family",
    "format_table",
    "is_average_only",
    "is_published",
    "leaderboard_figures",
    "leaderboard_html",
    "leaderboard_markdown",
    "leaderboard_tables",
    "longembed_tasks",
    "nanobeir_card_metrics",
    "nanobeir_datasets",
    "nanobeir_markdown_table",
    "render_card_yaml",
    "render_leaderboard",
    "render_model_card",
    "size_group_for",
    "table_frame",
]
