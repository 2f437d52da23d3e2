"""Alembic migrations run from code, so ``batchwatch migrate`` and the daemon's start-up need
no ini file and work from an installed wheel (the scripts ship as ``batchwatch.migrations``).

Alembic (and Mako, which it imports) cost the daemon about 10 MB of resident memory for as
long as it runs, and are needed only when the database is behind. So ``upgrade`` first
compares the revision stored in ``alembic_version`` with the head named by the shipped
scripts, read as text: when they agree, Alembic is never imported. Any other case (an older
database, a new one, a revision the scripts do not know, scripts that do not name a single
head) goes to Alembic, which does what it always did.
"""

from __future__ import annotations

import ast
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, column, inspect, select, table, text

from batchwatch.store.engine import _PG_WRITE_LOCK

if TYPE_CHECKING:
    from alembic.config import Config

#: Alembic's default version table, which ``migrations/env.py`` keeps.
VERSION_TABLE = "alembic_version"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    # A real directory both in a checkout (editable install) and in an installed wheel.
    config.set_main_option("script_location", str(files("batchwatch.migrations")))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; a no-op when it is there already."""
    # Alembic and Mako stay unloaded. Figure 5 without this check: 105.9 MB peak, target
    # 100 (93.8 MB with it).
    if revision == "head" and _is_at_head(engine):
        return
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Daemons started together migrate once: the first takes the lock every write
            # takes (``Store.write``) and migrates; the others wait for it, then find the
            # database at the head and do nothing. (DDL is transactional in PostgreSQL.)
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _is_at_head(engine: Engine) -> bool:
    head = shipped_head()
    if head is None:
        return False
    with engine.connect() as connection:
        return stored_revisions(connection) == {head}


def stored_revisions(connection: Connection) -> set[str]:
    """The revisions in ``alembic_version``, read as Alembic reads them (the table in the
    connection's default schema); empty when the table does not exist yet."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return set()
    version = table(VERSION_TABLE, column("version_num"))
    return {str(row) for row in connection.execute(select(version.c.version_num)).scalars()}


@cache
def shipped_head() -> str | None:
    """The one head revision of the shipped scripts, from their ``revision`` and
    ``down_revision`` assignments; None when that is not one plain answer (no script, two
    heads, a value that is not a literal), which leaves the question to Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    versions = files("batchwatch.migrations").joinpath("versions")
    for script in versions.iterdir():
        if not script.name.endswith(".py") or script.name.startswith("_"):
            continue
        found = _assignments(script.read_text(encoding="utf-8"))
        if found is None:
            return None
        revision, down = found
        revisions.add(revision)
        parents.update(down)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _assignments(source: str) -> tuple[str, set[str]] | None:
    """``revision`` and the set of ``down_revision`` of one migration script."""
    values: dict[str, object] = {}
    targets: list[ast.expr]
    try:
        for node in ast.parse(source).body:
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            elif isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    values[target.id] = ast.literal_eval(value)
    except (SyntaxError, ValueError, TypeError):
        return None
    revision, down = values.get("revision"), values.get("down_revision", ())
    parents = (down,) if isinstance(down, str) else () if down is None else down
    if not isinstance(revision, str) or not isinstance(parents, tuple | list):
        return None
    if not all(isinstance(parent, str) for parent in parents):
        return None
    return revision, {str(parent) for parent in parents}
