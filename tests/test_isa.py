"""Which CPUs the suite covers, and how.

The kernels the encoders run are chosen by rules on what the code detects (``harness.kernels``):
oneDNN's linear layers (with the feed-forward's GELU/GLU fused in) under ``--kernels auto`` where
torch dispatches to AVX-512 kernels and oneDNN can run the layers' dtype, torch's own elsewhere; the
compiled rotary embedding (numba) for ModernBERT unless ``--kernels default``; the rotary tables
computed at load on every CPU; the memory-linear attention by model type; PLAID's bf16 screen where
the CPU has bf16 dot products (tests/test_plaid.py runs both screens on any CPU). The tests derive
what they expect from those rules, never from the CPU they were written on.

- **The machine's own ISA**: the whole suite (Intel Xeon AVX-512 + AMX, AMD EPYC Zen 4/5 AVX-512,
  AMD EPYC Zen 3 AVX2 have run it).
- **AVX2 on an AVX-512 machine** (what an AMD EPYC Zen 3 chooses): the kernel and parity tests run
  again in a subprocess with torch's dispatch capped at AVX2 (``ATEN_CPU_CAPABILITY=avx2``), oneDNN
  capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``: no bf16/AMX kernels either), MKL capped at AVX2
  (``MKL_ENABLE_INSTRUCTIONS=AVX2``) and numba compiling for Haswell (``NUMBA_CPU_NAME=haswell``):
  the choices follow the rules for AVX2 and the embeddings equal PyLate's (run under the same caps)
  to 1e-5 and transformers' rotary bit for bit.
- **AVX-512 without AMX on an AMX machine** (what an AMD EPYC Zen 4/5 chooses): the same tests with
  oneDNN capped at ``AVX512_CORE_BF16``.

A capped run on a machine that is already at or below the cap repeats the suite's own run: skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
EMULATED = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "NUMBA_CPU_NAME": "haswell",
    },
    "avx512-no-amx": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
}
# the tests whose expectations follow the kernel rules, and PyLate / transformers parity under them
SELECTION = [
    "tests/test_kernels.py::test_choice_is_recorded",
    "tests/test_kernels.py::test_unavailable_onednn_is_an_error_when_forced",
    "tests/test_kernels.py::test_onednn_matches_default_and_fallback_is_identical",
    "tests/test_kernels.py::test_rotary_is_transformers_rotary_bit_for_bit",
    "tests/test_kernels.py::test_rotary_tables_are_transformers_tables_bit_for_bit",
    "tests/test_encode.py::test_colbert_parity_with_pylate",
]


def _above(name: str) -> str | None:
    """Why a run capped at ``name`` would repeat this machine's own run (None: it would not)."""
    if name == "avx2" and torch.backends.cpu.get_cpu_capability() not in ("AVX512",):
        return f"torch already runs {torch.backends.cpu.get_cpu_capability()} kernels here"
    if name == "avx512-no-amx" and not torch.cpu._is_amx_tile_supported():
        return "this CPU has no AMX"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EMULATED))
def test_the_kernel_rules_and_parity_hold_on_a_smaller_isa(name: str, tmp_path: Path) -> None:
    if reason := _above(name):
        pytest.skip(f"{name}: {reason}; the suite itself covers this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | EMULATED[name]
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability(), "
         "torch.ops.mkldnn._is_mkldnn_bf16_supported())"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    capability, onednn_bf16 = probe.stdout.split()
    if name == "avx2":  # the caps took effect: else the run below would prove nothing
        assert (capability, onednn_bf16) == ("AVX2", "False"), probe.stdout
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"]
    command += ["--basetemp", str(tmp_path / "pytest"), "-m", "not slow", *SELECTION]
    proc = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.splitlines()[-1], proc.stdout[-2000:]
