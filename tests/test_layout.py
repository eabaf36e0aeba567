"""The layering the architecture notes promise (docs/architecture.md), checked on the source:
the domain never imports the Dagster layer, the edge is imported by nothing, and every asset
stays a few lines that hand the domain's work to ``run_step``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LAYER_ABOVE_DOMAIN = ("dagster", "assets", "resources", "definitions")
MAX_ASSET_LINES = 40


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", sources("pipeline"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_domain_imports_no_dagster_layer(path: Path) -> None:
    wrong = sorted(m for m in imported_modules(path)
                   if m.split(".")[0] in LAYER_ABOVE_DOMAIN or m.startswith("dagster_"))
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_nothing_imports_the_edge() -> None:
    importers = [p.relative_to(ROOT) for p in sources("pipeline", "assets", "resources")
                 if "definitions" in imported_modules(p)]
    assert not importers


def asset_functions(path: Path) -> list[ast.FunctionDef]:
    """Functions decorated with ``@asset(...)`` or ``@versioned_asset(...)``, nested ones (asset
    factories) included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call)
                and getattr(d.func, "id", None) in ("asset", "versioned_asset")
                for d in node.decorator_list):
            found.append(node)
    return found


def test_every_asset_module_defines_assets_and_each_asset_is_short() -> None:
    long = {}
    for module in ("corpus", "questions", "retrieval", "rankings", "answering"):
        path = ROOT / "assets" / f"{module}.py"
        functions = asset_functions(path)
        assert functions, f"no @asset in {path.relative_to(ROOT)}"
        long |= {f"{module}.{f.name}": f.end_lineno - f.lineno + 1 for f in functions
                 if f.end_lineno - f.lineno + 1 > MAX_ASSET_LINES}
    assert not long, f"assets longer than {MAX_ASSET_LINES} lines: {long}"
