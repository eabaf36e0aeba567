"""Code versions derived from source: a hash of the code an output was computed by.

A hand-written ``code_version="2"`` goes stale the first time someone edits a reader and forgets
to bump it, and then a cached result computed by the old code looks fresh. Here the version of
a module is the sha256 of its source, of every project module it imports (transitively: the
domain functions it calls live there) and of ``requirements.lock`` (the libraries it runs on).
Any edit to any of those files changes it, so no code change can go unnoticed; an edit to an
unrelated module leaves it alone. The price is coarseness: a comment edited in an imported
module recomputes too, which is the safe side of the trade.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from pipeline.paths import PROJECT_ROOT

PACKAGES = ("pipeline", "assets", "resources")
LOCK_FILE = "requirements.lock"


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(root: Path, module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports, with the packages that hold them."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for name in _imported_names(package, path.read_text()):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # the module and its packages' __init__
            if _module_file(root, ".".join(parts[:depth])):
                found.add(".".join(parts[:depth]))
    return found


@functools.cache
def _imported_names(package: str, source: str) -> tuple[str, ...]:
    """The dotted names of the project's packages that ``source`` (a module of ``package``)
    imports, each a module or a name in one. Cached by content: every asset's code version
    walks the same modules (parsing them again cost seconds at each start), and an edited file
    is a new key."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *filter(None, [node.module])])
            # ``from pipeline import contexts`` imports a module; ``from pipeline.x import f``
            # a name of one: try both.
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return tuple(name for name in names if name.split(".")[0] in PACKAGES)


def module_closure(*modules: str, root: Path = PROJECT_ROOT,
                   skip: frozenset[str] = frozenset()) -> dict[str, Path]:
    """``modules`` and every project module they import, transitively, with their files; the
    ``skip`` modules are neither included nor followed."""
    seen: dict[str, Path] = {}
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in seen or (module in skip and module not in modules):
            continue
        path = _module_file(root, module)
        if path is None:
            raise ModuleNotFoundError(f"no project module {module!r} under {root}")
        seen[module] = path
        pending.extend(_imports(root, module, path) - seen.keys())
    return seen


def source_version(*modules: str, root: Path = PROJECT_ROOT,
                   skip: frozenset[str] = frozenset()) -> str:
    """The code version of ``modules``: a hash of their sources, of the project modules they
    import (transitively, except ``skip``) and of the lock file pinning the libraries."""
    digest = hashlib.sha256()
    for module, path in sorted(module_closure(*modules, root=root, skip=skip).items()):
        digest.update(f"{module}\n".encode())
        digest.update(path.read_bytes())
    lock = root / LOCK_FILE
    if lock.is_file():
        digest.update(lock.read_bytes())
    return digest.hexdigest()[:16]
