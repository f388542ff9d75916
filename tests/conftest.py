"""Session-wide test models (built once into a temp folder; see tests/model_fixtures.py)."""

from __future__ import annotations

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
