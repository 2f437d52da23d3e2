"""The contract suite's database: a real SQLite file, migrated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwatch.store import Store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'bw.db'}")
    store.migrate()
    yield store
    store.close()
