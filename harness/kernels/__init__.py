"""CPU kernels the encoders run instead of torch's and transformers' defaults, each giving the same
numbers (bit for bit, or to float rounding) and each recorded in the results (``model.kernels``):

- :mod:`~harness.kernels.packed`: oneDNN's linear on prepacked weights, with fused post-ops.
- :mod:`~harness.kernels.fusion`: feed-forward GELU (BERT) and GLU (ModernBERT: GELU and the gate
  product) fused into the linear layer before them.
- :mod:`~harness.kernels.linear`: which of torch's and oneDNN's the linear layers run (by the
  instruction set under ``--kernels auto``: the same choice every run).
- :mod:`~harness.kernels.rotary`: ModernBERT's rotary embedding in one compiled pass.
- :mod:`~harness.kernels.tables`: ModernBERT's rotary cos/sin tables computed once at load (the same
  bits in every forward of every process).
"""

from harness.kernels.linear import KERNELS, MODES, KernelChoice, fast_linear
from harness.kernels.packed import PackedLinear, onednn_unavailable
from harness.kernels.rotary import ROTARY, fast_rotary, rotary_compiled, rotary_halves
from harness.kernels.tables import tabulate_rotary

__all__ = [
    "KERNELS",
    "MODES",
    "ROTARY",
    "KernelChoice",
    "PackedLinear",
    "fast_linear",
    "fast_rotary",
    "onednn_unavailable",
    "rotary_compiled",
    "rotary_halves",
    "tabulate_rotary",
]
