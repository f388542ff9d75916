"""MTEB interop: MTEB results files in as published rows (``importer``), harness runs out in MTEB's
layout (``exporter``); what both read (metric keys, the registry's MTEB task and model names) in
``mapping``."""

from harness.mteb.exporter import ExportPlan, MtebExport, export_mteb, plan_export
from harness.mteb.importer import MtebImport, dropped_keys, import_mteb_results
from harness.mteb.mapping import SOURCE_PREFIX, MappedTask, mteb_tasks, mteb_tasks_for, registered_model

__all__ = [
    "SOURCE_PREFIX",
    "ExportPlan",
    "MappedTask",
    "MtebExport",
    "MtebImport",
    "dropped_keys",
    "export_mteb",
    "import_mteb_results",
    "mteb_tasks",
    "mteb_tasks_for",
    "plan_export",
    "registered_model",
]
