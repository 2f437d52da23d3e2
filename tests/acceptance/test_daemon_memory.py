"""What keeps the daemon's resident memory down (benchmark figure 5): modules it never loads
when it does not need them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batchwatch.store import Store

# A daemon started in a fresh interpreter, as `batchwatch serve` starts it (logs configured,
# then the daemon), on a database already at the latest revision; prints what it loaded.
SERVE_AND_LIST_MODULES = """
import sys, threading, urllib.error, urllib.request
from pathlib import Path
from batchwatch import logs
from batchwatch.daemon import Daemon
from tests.helpers import daemon_settings
logs.configure("warning", "json")
tmp = Path(sys.argv[1])
d = Daemon(daemon_settings(tmp, "http://127.0.0.1:9"), threading.Event())
d.start()
try:
    auth = {"Authorization": "Bearer " + (tmp / "token").read_text().strip()}
    for path in ("/healthz", "/v1/batch/jobs?status=RUNNING", "/metrics"):
        asked = urllib.request.Request(d.api_url + path, headers=auth)
        try:
            urllib.request.urlopen(asked, timeout=10).read()
        except urllib.error.HTTPError:
            pass  # /healthz is 503 here (no upstream): answered all the same
    loaded = sorted(sys.modules)
finally:
    d.close()
print(",".join(loaded))
"""


def _run(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_running_daemon_loads_neither_alembic_nor_websockets(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bw.db'}")
    store.migrate()  # at the latest revision: start-up has nothing to upgrade
    store.close()
    modules = set(_run(SERVE_AND_LIST_MODULES, str(tmp_path)).split(","))
    loaded = {name.split(".")[0] for name in modules}
    assert "fastapi" in loaded  # it did start
    assert not loaded & {"alembic", "mako", "websockets"}, loaded


def test_a_migrated_database_is_checked_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bw.db'}"
    code = (
        "import sys\n"
        "from batchwatch.store import Store\n"
        "store = Store(sys.argv[1]); store.migrate(); store.close()\n"
        "print('alembic' in sys.modules)\n"
    )
    assert _run(code, url) == "True"  # a new database: Alembic creates the tables
    assert _run(code, url) == "False"  # then at every start: one read of alembic_version
