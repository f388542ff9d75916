"""Checkpoints on disk: where a model's files are (a folder or a Hub snapshot), which layout they
follow (PyLate ColBERT or sentence-transformers), their typed settings, and their modules.

- ``files``: JSON / weights reading with errors naming the file; Hub resolution; fingerprints.
- ``layout``: ``modules.json`` -> :class:`Layout` (which module lives where).
- ``config``: :class:`ColBERTConfig` / :class:`DenseConfig`, frozen, from the checkpoint's JSON
  files and the caller's overrides (PyLate / sentence-transformers precedence).
- ``modules``: the transformers backbone and the Dense layers as torch modules.
"""

from harness.checkpoints.config import ColBERTConfig, DenseConfig, LoadOptions
from harness.checkpoints.files import resolve_checkpoint
from harness.checkpoints.layout import Layout, read_layout

__all__ = ["ColBERTConfig", "DenseConfig", "Layout", "LoadOptions", "read_layout", "resolve_checkpoint"]
