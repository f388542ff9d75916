"""Models outside the card's tables whose published figures the harness ships for the benchmarks
beyond the card (``results/published/``, transcribed by ``results/published/transcribe_mteb.py``),
registered so those rows sit beside harness runs of the same model (group ``harness.models``).

* Reason-ModernColBERT: GTE-ModernColBERT-v1 fine-tuned on ReasonIR data, the late-interaction model
  of the BRIGHT comparisons (its card: https://huggingface.co/lightonai/Reason-ModernColBERT).
  Parameters: ``n_parameters`` of its ``model_meta.json`` in MTEB's results repository. No loader
  overrides: query and document lengths come from the checkpoint's own PyLate config.
"""

from __future__ import annotations

from harness.models import ModelInfo
from tasks.card_models import LARGE


def register() -> list[ModelInfo]:
    return [
        ModelInfo(
            "Reason-ModernColBERT",
            "lightonai/Reason-ModernColBERT",
            "colbert",
            parameters=149_015_808,
            size_group=LARGE,
            source="MTEB results repository model_meta.json (n_parameters); ModernBERT-base backbone",
        ),
    ]
