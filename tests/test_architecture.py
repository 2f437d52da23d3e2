"""The module boundaries of STYLE.md, enforced: one module per outside boundary."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "batchwatch"

# Which modules may import which outside library (a prefix of the import path).
ALLOWED: dict[str, set[str]] = {
    "requests": {"client"},
    "urllib3": {"client"},
    "sqlalchemy": {"schema", "store", "bulk", "migrate", "intents"},
    "alembic": {"migrate"},
    "apscheduler": {"scheduler"},
    "uvicorn": {"daemon", "simulator"},
}
PURE = {"models", "transitions", "health"}  # no I/O library at all


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


MODULES = sorted(p for p in PACKAGE.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_outside_libraries_stay_behind_their_module(path: Path) -> None:
    used = imports_of(path)
    for library, owners in ALLOWED.items():
        if library in used:
            assert path.stem in owners, f"{path.stem} imports {library}; only {owners} may"
    if path.stem in PURE:
        outside = used - {"batchwatch", "__future__"} - set(sys.stdlib_module_names)
        assert not outside, f"{path.stem} must stay pure, but imports {outside}"


def test_query_commands_do_not_import_the_server_stack() -> None:
    """`batchwatch jobs` must start fast: what a query command loads (the CLI, settings,
    the token, the local client, the tables) pulls in neither the web framework, nor the
    database layer, the scheduler, requests or the daemon's logging."""
    code = (
        "import sys, batchwatch.cli as c\n"
        "c.build_parser()\n"
        "from batchwatch import cli_actions, config, display, local, tokens, wire\n"
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'apscheduler', 'uvicorn', 'alembic',"
        " 'requests', 'structlog') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
