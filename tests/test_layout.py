"""The package's shape: data flows one way (no module imports one listed after it, lazy imports
included), every module has its place in that order, and the public surface is what it says; and
the tests' shape: no test module imports another (shared code lives in tests/helpers.py,
tests/model_fixtures.py and tests/conftest.py)."""

from __future__ import annotations

import ast
import contextlib
import importlib
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1] / "harness"
TESTS = Path(__file__).resolve().parent
# The dependency order of docs/DESIGN.md: a module may import only modules above it.
ORDER = [
    "harness.version",
    "harness.errors",
    "harness.units",
    "harness.flags",
    "harness.hashing",
    "harness.fileio",
    "harness.jit",
    "harness.hub",
    "harness.console",
    "harness.types",
    "harness.ranking",
    "harness.runfile",
    "harness.metrics",
    "harness.stats",
    "harness.data.rules",
    "harness.data.beir",
    "harness.data.hub",
    "harness.data.archive",
    "harness.data",
    "harness.plugins",
    "harness.tasks",
    "harness.models",
    "harness.attention",
    "harness.kernels.packed",
    "harness.kernels.fusion",
    "harness.kernels.linear",
    "harness.kernels.rotary",
    "harness.kernels.tables",
    "harness.kernels",
    "harness.checkpoints.files",
    "harness.checkpoints.layout",
    "harness.checkpoints.config",
    "harness.checkpoints.modules",
    "harness.checkpoints",
    "harness.encode.tokenize",
    "harness.encode.batching",
    "harness.encode.pooling",
    "harness.encode.base",
    "harness.encode.colbert",
    "harness.encode.dense",
    "harness.encode",
    "harness.executor",
    "harness.cache.keys",
    "harness.cache.shards",
    "harness.cache.fill",
    "harness.cache.entry",
    "harness.cache.info",
    "harness.cache",
    "harness.plaid.params",
    "harness.plaid.kernels",
    "harness.plaid.centroids",
    "harness.plaid.codec",
    "harness.plaid.storage",
    "harness.plaid.search",
    "harness.plaid.source",
    "harness.plaid.build",
    "harness.plaid",
    "harness.retrieve.maxsim",
    "harness.retrieve.bm25",
    "harness.retrieve.stages",
    "harness.retrieve",
    "harness.records",
    "harness.results",
    "harness.settings",
    "harness.plan",
    "harness.efficiency",
    "harness.fidelity",
    "harness.run",
    "harness.export",
    "harness.mteb.mapping",
    "harness.mteb.importer",
    "harness.mteb.exporter",
    "harness.mteb",
    "harness.report.catalogue",
    "harness.report.tables",
    "harness.report.formats",
    "harness.report.style",
    "harness.report.geometry",
    "harness.report.figures",
    "harness.report.render",
    "harness.report.card",
    "harness.report",
    "harness.check.report",
    "harness.check.compare",
    "harness.check",
    "harness.explain",
    "harness.cli.common",
    "harness.cli.evaluate",
    "harness.cli.listing",
    "harness.cli.report",
    "harness.cli.check",
    "harness.cli.export",
    "harness.cli.mteb",
    "harness.cli.explain",
    "harness.cli",
    "harness.cli.__main__",
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _harness_imports(path: Path) -> set[str]:
    """Harness modules imported anywhere in the file (``from harness import x`` counts as
    ``harness.x`` when x is a module; the root's ``__version__`` is not a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            if node.module == "harness":
                found |= {
                    f"harness.{a.name}"
                    for a in node.names
                    if (ROOT / a.name).exists() or (ROOT / f"{a.name}.py").exists()
                }
            else:
                found.add(node.module)
    return found


def test_every_module_has_a_place_and_imports_only_upward() -> None:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py") if _module_name(p) != "harness"}
    assert set(modules) == set(ORDER), "place new modules in ORDER (and in docs/DESIGN.md)"
    position = {name: i for i, name in enumerate(ORDER)}
    upward = [
        f"{name} imports {target}"
        for name, path in modules.items()
        for target in _harness_imports(path)
        if target != name and position[target] > position[name]
    ]
    assert upward == []


def test_design_lists_the_modules_in_this_order() -> None:
    design = (ROOT.parent / "docs" / "DESIGN.md").read_text()
    listed = [line.split()[0] for line in design.splitlines() if line.startswith("harness/")]
    as_modules = [n.removesuffix("/").removesuffix(".py").replace("/", ".") for n in listed]
    assert [m for m in as_modules if m in ORDER] == [m for m in ORDER if m in as_modules]
    assert {m for m in ORDER if m.count(".") == 1} <= set(as_modules)  # every top-level module


def test_public_surface() -> None:
    for name in harness.__all__:
        assert getattr(harness, name) is not None
    assert harness.evaluate is importlib.import_module("harness.run").evaluate
    assert (ROOT / "py.typed").is_file()


def _imported_modules(source: str) -> set[str]:
    """Modules imported anywhere in ``source`` (lazy imports included; ``from tests import x``
    counts as ``tests.x``, ``from .x import y`` as ``tests.x``), and in any string constant that
    parses as Python with an import (the scripts tests run in subprocesses)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = f"tests.{node.module or ''}".rstrip(".") if node.level else (node.module or "")
            found.add(module)
            if module == "tests":
                found |= {f"tests.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "import" in node.value:
            with contextlib.suppress(SyntaxError):  # prose, not a script
                found |= _imported_modules(node.value)
    return found


def test_no_test_module_imports_another() -> None:
    """A test module's shared builders come from the helper modules, so running (or deleting) one
    test module never depends on another; a module uses its own names without importing itself."""
    importing = [
        f"{path.name} imports {module}"
        for path in sorted(TESTS.glob("*.py"))
        for module in sorted(_imported_modules(path.read_text()))
        if module.startswith("tests.test_")
    ]
    assert importing == [], "move what they share into tests/helpers.py (fixtures: tests/conftest.py)"


def test_modules_read_in_one_sitting_and_cite_public_sources() -> None:
    """No module of the package or the plugins over 400 lines (split it along its seams), and no
    citation of a document outside the repository (the team's reference notes, by section):
    docstrings cite papers, public code or ``docs/``."""
    sources = [*ROOT.rglob("*.py"), *(ROOT.parent / "tasks").rglob("*.py")]
    lines = {str(p.relative_to(ROOT.parent)): len(p.read_text().splitlines()) for p in sources}
    assert {name: n for name, n in lines.items() if n > 400} == {}
    texts = [*sources, *TESTS.glob("*.py"), *(ROOT.parent / "docs").glob("*.md"), ROOT.parent / "README.md"]
    outside = "REFERENCE" + " §"  # spelled apart so this file does not cite it
    citing = [str(p.relative_to(ROOT.parent)) for p in texts if outside in p.read_text()]
    assert citing == []
