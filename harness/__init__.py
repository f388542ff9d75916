"""colbert-eval-harness: evaluation of retrieval models, late-interaction first.

The names a notebook needs, loaded on first use (``import harness`` stays light)::

    from harness import evaluate, load_result
    results = evaluate("path/to/model", ["BEIR/scifact"], data_dir="data", output_dir=None)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.version import __version__

_EXPORTS = {
    "evaluate": "harness.run",
    "EvalSettings": "harness.plan",
    "load_encoder": "harness.encode",
    "Result": "harness.results",
    "SubsetScores": "harness.results",
    "load_result": "harness.results",
    "load_results": "harness.results",
    "card_metrics": "harness.metrics",
    "trec_metrics": "harness.metrics",
    "resolve_tasks": "harness.tasks",
    "check": "harness.check",
    "Dataset": "harness.types",
    "TokenEmbeddings": "harness.types",
    "HarnessError": "harness.errors",
    "InputError": "harness.errors",
}
__all__ = [
    "Dataset",
    "EvalSettings",
    "HarnessError",
    "InputError",
    "Result",
    "SubsetScores",
    "TokenEmbeddings",
    "__version__",
    "card_metrics",
    "check",
    "evaluate",
    "load_encoder",
    "load_result",
    "load_results",
    "resolve_tasks",
    "trec_metrics",
]
assert set(__all__) == {"__version__", *_EXPORTS}

if TYPE_CHECKING:
    from harness.check import check
    from harness.encode import load_encoder
    from harness.errors import HarnessError, InputError
    from harness.metrics import card_metrics, trec_metrics
    from harness.plan import EvalSettings
    from harness.results import Result, SubsetScores, load_result, load_results
    from harness.run import evaluate
    from harness.tasks import resolve_tasks
    from harness.types import Dataset, TokenEmbeddings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
