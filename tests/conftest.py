"""Fixtures more than one test module uses: session-wide test models (built once into a temp folder;
see tests/model_fixtures.py), offline Hub; and Hypothesis's files kept out of the working tree."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.model_fixtures import (
    build_bert_checkpoint,
    build_ettin_like_checkpoint,
    build_granite_like_checkpoint,
    build_gte_like_checkpoint,
    build_minilm_colbert_checkpoint,
    build_stanford_checkpoint,
    minilm_model_dir,
)


@pytest.fixture(scope="session")
def ettin_like_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random ModernBERT (ettin-17m shape, 4096-token byte BPE) PyLate ColBERT: Dense 256->512->48,
    query_length 48, document_length 512, lowercase, no query expansion."""
    return build_ettin_like_checkpoint(tmp_path_factory.mktemp("ettin_like") / "model")


@pytest.fixture(scope="session")
def bert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random BERT PyLate ColBERT: one Dense 64->24 with bias and residual, query expansion on
    (query_length 24, document_length 64), lowercase."""
    return build_bert_checkpoint(tmp_path_factory.mktemp("bert_colbert") / "model")


@pytest.fixture(scope="session")
def minilm_dense_model() -> Path:
    """The real all-MiniLM-L6-v2 folder (Transformer + mean Pooling + Normalize, max_seq_length 256)."""
    return minilm_model_dir()


@pytest.fixture(scope="session")
def minilm_colbert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 backbone + one random Dense 384->128 (torch seed 0) as a PyLate
    ColBERT: query_length 32 with expansion, document_length 180, cased."""
    return build_minilm_colbert_checkpoint(tmp_path_factory.mktemp("minilm_colbert") / "model")


@pytest.fixture(scope="session")
def stanford_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 backbone + a random projection 384->96 in the Stanford ColBERT layout
    (HF_ColBERT, artifact.metadata: query 24, document 120 tokens)."""
    return build_stanford_checkpoint(tmp_path_factory.mktemp("stanford") / "colbertv2-like")


@pytest.fixture(scope="session")
def gte_like_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GTE-ModernColBERT-v1's layout (ModernBERT + one Dense, added_tokens.json, model_args), small."""
    return build_gte_like_checkpoint(tmp_path_factory.mktemp("gte_like") / "GTE-ModernColBERT-like")


@pytest.fixture(scope="session")
def granite_like_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """granite-embedding-small-english-r2's layout (ModernBERT + CLS pooling + Normalize), small."""
    return build_granite_like_checkpoint(tmp_path_factory.mktemp("granite_like") / "granite-like")


@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode as a user sets it; the libraries read the env at import, so patch them too."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


_HYPOTHESIS_HOME: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis writes its example database and caches under ``.hypothesis/`` of the working
    directory: send them to a temporary folder of this session (unless HYPOTHESIS_STORAGE_DIRECTORY
    names one), removed at the end."""
    global _HYPOTHESIS_HOME
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    from hypothesis.configuration import set_hypothesis_home_dir

    _HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="hypothesis-")
    set_hypothesis_home_dir(_HYPOTHESIS_HOME)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _HYPOTHESIS_HOME is not None:
        shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)
