"""colbert-eval-harness: evaluation of retrieval models, late-interaction first."""

__version__ = "0.1.0"
