"""MTEB interop: MTEB results files in as published rows (``importer``), harness runs out in MTEB's
layout (``exporter``); what both read (metric keys, the registry's MTEB task names) in ``mapping``."""

from harness.mteb.exporter import export_mteb
from harness.mteb.importer import MtebImport, import_mteb_results
from harness.mteb.mapping import SOURCE_PREFIX, MappedTask, mteb_tasks, mteb_tasks_for

__all__ = [
    "SOURCE_PREFIX",
    "MappedTask",
    "MtebImport",
    "export_mteb",
    "import_mteb_results",
    "mteb_tasks",
    "mteb_tasks_for",
]
