"""A run never writes into the installed package: numba's compiled kernels are cached under the
harness cache folder (or, where none can be written, compiled per process), and a read-only copy of
the package works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# imports both numba modules, compiles and runs the rotary embedding
_SCRIPT = """
import numpy as np, torch
import harness, harness.jit
from harness.kernels import rotary_compiled
import harness.plaid.kernels  # decorated at import: must write nothing either
assert harness.__file__.startswith(__import__("sys").argv[1]), harness.__file__
q = torch.randn(1, 2, 5, 8)
cos, sin = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
rotary_compiled(q, q.clone(), cos, sin)
print(harness.jit.jit_cache_dir())
"""


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _run(copy: Path, cache: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env |= {"PYTHONPATH": str(copy), "HARNESS_CACHE_DIR": str(cache), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(copy)], env=env, cwd=copy, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.mark.slow
def test_a_read_only_package_copy_runs_and_is_left_as_it_was(tmp_path: Path) -> None:
    copy = tmp_path / "site"
    for package in ("harness", "tasks"):
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _files(copy)
    cache = tmp_path / "cache"
    assert _run(copy, cache) == str(cache / "numba")
    assert any(cache.rglob("*.nbi")) and any(cache.rglob("*.nbc")), "numba cached nothing"
    assert _run(copy, cache) == str(cache / "numba")  # a second process loads the cached code
    # a cache folder that cannot be created (its parent is a file): compiled per process, nothing written
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert _run(copy, blocker / "cache") == "None"
    assert _files(copy) == before, "a run wrote into the package"
