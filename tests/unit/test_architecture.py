"""The boundaries of STYLE.md, enforced on the package layout: one package per outside
boundary, a simulator that does not depend on the product it stands in for, no import
cycle, small modules and functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "batchwatch"


def module_name(path: Path) -> str:
    """``batchwatch/store/reads.py`` → ``batchwatch.store.reads``; a package's
    ``__init__.py`` is the package itself."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}

# Which modules may import which outside library: a library maps to module-name prefixes.
ALLOWED: dict[str, tuple[str, ...]] = {
    "requests": ("batchwatch.providers.http", "batchwatch.delivery.senders"),
    "urllib3": ("batchwatch.providers.http", "batchwatch.delivery.senders"),
    "standardwebhooks": ("batchwatch.delivery.senders",),
    "sqlalchemy": ("batchwatch.store",),
    "alembic": ("batchwatch.store.migrate",),
    "apscheduler": ("batchwatch.scheduler",),
    "uvicorn": ("batchwatch.daemon", "batchwatch.serving", "batchwatch.simulator"),
    "jinja2": ("batchwatch.ui",),
}
PURE = {"batchwatch.models", "batchwatch.transitions", "batchwatch.health", "batchwatch.errors"}
# The fake upstream takes Mistral's shapes from the provider package and the domain types,
# never anything of the product it is there to test.
SIMULATOR_MAY_USE = (
    "batchwatch.providers.mistral.wire",
    "batchwatch.providers.mistral.schemas",
    "batchwatch.models",
)


def _imports(path: Path, *, lazy: bool = True) -> Iterator[tuple[str, ast.stmt]]:
    """Every imported module name (``from X import y`` gives ``X`` and ``X.y``); with
    ``lazy`` False, only those imported at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if lazy else iter(tree.body)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node


def outside_libraries(path: Path) -> set[str]:
    return {name.split(".")[0] for name, _ in _imports(path)} - {"batchwatch"}


def own_imports(path: Path) -> set[str]:
    """The batchwatch modules ``path`` imports (lazily or not), as module names."""
    found = set()
    for imported, _ in _imports(path):
        name = imported
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("batchwatch"):
            found.add(name)
    return found - {module_name(path)}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_outside_libraries_stay_behind_their_module(name: str) -> None:
    used = outside_libraries(MODULES[name])
    for library, owners in ALLOWED.items():
        if library in used:
            assert name.startswith(owners), f"{name} imports {library}; only {owners} may"
    if name in PURE:
        outside = used - {"__future__"} - set(sys.stdlib_module_names)
        assert not outside, f"{name} must stay pure, but imports {outside}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("batchwatch.simulator")))
def test_the_simulator_does_not_depend_on_the_product(name: str) -> None:
    product = {
        m
        for m in own_imports(MODULES[name])
        if not m.startswith(("batchwatch.simulator", *SIMULATOR_MAY_USE))
        and m not in ("batchwatch", "batchwatch.providers", "batchwatch.providers.mistral")
    }
    assert not product, f"{name} imports {sorted(product)}"


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_import_cycle_lazy_or_not() -> None:
    """A cycle hidden in a function-level import is still a cycle: the two modules are one
    design split across two files. Packages are left out as nodes (importing
    ``batchwatch.store.schema`` runs ``batchwatch/store/__init__.py``, which is not a
    dependency of the caller's design on the package's other modules)."""
    graph = {
        name: {m for m in own_imports(path) if MODULES[m].name != "__init__.py"}
        for name, path in MODULES.items()
        if path.name != "__init__.py"
    }
    cycles = [c for name in sorted(graph) if (c := _cycle_from(name, graph))]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name: str) -> None:
    path = MODULES[name]
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n")
    assert lines <= 400, f"{name} has {lines} lines; split it along a responsibility"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{name}.{node.name} is {length} lines long (at most 60)"


def test_query_commands_do_not_import_the_server_stack() -> None:
    """`batchwatch jobs` must start fast: what a query command loads (the CLI, settings,
    the token, the local client, the tables) pulls in neither the web framework, nor the
    database layer, the scheduler, requests or the daemon's logging."""
    code = (
        "import sys, batchwatch.cli.main as c\n"
        "c.build_parser()\n"
        "from batchwatch import config, tokens\n"
        "from batchwatch.cli import actions, daemon_client, display\n"
        "from batchwatch.providers.mistral import wire\n"
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'apscheduler', 'uvicorn', 'alembic',"
        " 'requests', 'structlog') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
