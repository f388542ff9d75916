"""Dataset formats, benchmark-free: BEIR folders (``beir``), Hugging Face tables and snapshot
folders (``hub``), zip download and safe extraction (``archive``), all under one rule set
(``rules``). Which benchmark reads what, from where, lives in its plugin (``tasks/``).

Every loader returns :class:`harness.types.Dataset` (or a list of them); bad input raises
:class:`harness.errors.InputError` naming file, line and field.
"""

from harness.data.archive import download_zip, safe_extract_zip
from harness.data.beir import count_beir, is_beir_folder, load_beir_folder, load_beir_tree, read_qrels_tsv
from harness.data.hub import (
    HubUnavailableError,
    Table,
    hf_table,
    hub_source,
    id_text,
    load_beir_hf,
    qrels_rows,
)
from harness.data.rules import assemble, drop_empty

__all__ = [
    "HubUnavailableError",
    "Table",
    "assemble",
    "count_beir",
    "download_zip",
    "drop_empty",
    "hf_table",
    "hub_source",
    "id_text",
    "is_beir_folder",
    "load_beir_folder",
    "load_beir_hf",
    "load_beir_tree",
    "qrels_rows",
    "read_qrels_tsv",
    "safe_extract_zip",
]
