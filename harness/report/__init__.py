"""Reports from results files: the model card (``card``) and the leaderboard (``tables`` ->
``render`` markdown / HTML, ``figures``), with its quality against cost section (``tradeoff_tables``),
over the catalogue and groupings of ``catalogue``."""

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
from harness.report.formats import TABLE_FORMATS, format_table, latex_table, table_frame
from harness.report.render import (
    leaderboard_html,
    leaderboard_markdown,
    render_leaderboard,
    tradeoff_markdown,
)
from harness.report.tables import (
    Cell,
    Row,
    Table,
    TradeoffRow,
    TradeoffTable,
    bytes_per_token,
    leaderboard_tables,
    tradeoff_tables,
)

__all__ = [
    "AVERAGE_METRIC",
    "AVERAGE_SUBSET",
    "DEFAULT_SIZE_GROUPS",
    "FAMILIES",
    "TABLE_FORMATS",
    "Cell",
    "Row",
    "Table",
    "TradeoffRow",
    "TradeoffTable",
    "beir_card_columns",
    "bytes_per_token",
    "card_model_index",
    "family",
    "format_table",
    "is_average_only",
    "is_published",
    "latex_table",
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
    "tradeoff_markdown",
    "tradeoff_tables",
]
