"""The systemd unit: it loads cleanly, its sandbox rates 2.0 or better on
``systemd-analyze security``, it keeps the settings the daemon relies on, and what it hands
the daemon (credential name, state directory) is what ``config.py`` reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchwatch.config import load_settings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "batchwatch.service"
UNIT_README = REPO / "systemd" / "README.md"
MAX_EXPOSURE = 2.0
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (package: systemd)"
)


def directives(text: str) -> list[tuple[str, str]]:
    """``(key, value)`` for every setting line, in order; comments and sections skipped."""
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for key, value in directives(UNIT.read_text(encoding="utf-8")):
        settings.setdefault(key, []).append(value)
    return settings


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    # No colours, no pager: the output is parsed.
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def complaints_about(unit: Path, result: subprocess.CompletedProcess[str]) -> list[str]:
    # systemd-analyze exits 0 even when it ignores a bad line ("Unknown key", "Failed to
    # parse"), so every line naming our unit counts as a failure, whatever the exit code.
    return [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if unit.name in line and "Overall exposure" not in line
    ]


def installed_batchwatch() -> Path:
    """The ``batchwatch`` console script of the environment running the tests."""
    beside = Path(sys.executable).parent / "batchwatch"
    if beside.is_file():
        return beside
    found = shutil.which("batchwatch")
    if found is None:
        pytest.skip("no installed batchwatch script to point ExecStart= at (pip install -e .)")
    return Path(found)


def test_unit_keeps_the_settings_the_daemon_relies_on() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] and s["WatchdogSec"][-1] not in ("", "0")
    assert s["DynamicUser"] == ["yes"]
    assert s["StateDirectory"] == ["batchwatch"]
    assert s["LoadCredential"] == ["mistral-api-key:/etc/batchwatch/mistral-api-key"]
    assert s["Restart"] == ["on-failure"]
    assert s["KillSignal"] == ["SIGTERM"]
    assert s["TimeoutStopSec"] == ["15s"]
    (exec_start,) = s["ExecStart"]
    assert exec_start.split()[1:] == ["serve"]
    # No config file is required: a BATCHWATCH_CONFIG naming a missing file stops start-up.
    assert not any(v.startswith("BATCHWATCH_CONFIG=") for v in s.get("Environment", []))


def test_every_unit_setting_is_explained_in_the_readme() -> None:
    readme = UNIT_README.read_text(encoding="utf-8")
    missing = sorted(
        {key for key, _ in directives(UNIT.read_text(encoding="utf-8"))}
        - set(re.findall(r"`([A-Za-z]+)=", readme))
    )
    assert missing == [], f"systemd/README.md does not explain: {missing}"


def test_daemon_reads_what_the_unit_hands_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under the unit: no config file, $STATE_DIRECTORY from StateDirectory=, the key in
    # $CREDENTIALS_DIRECTORY under the name LoadCredential= gives it.
    name = unit_settings()["LoadCredential"][0].split(":", 1)[0]
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / name).write_text("sk-from-credential\n", encoding="utf-8")
    state = tmp_path / "state"
    monkeypatch.chdir(tmp_path)  # no ./batchwatch.toml here
    env = {"STATE_DIRECTORY": str(state), "CREDENTIALS_DIRECTORY": str(credentials)}
    monkeypatch.setenv("STATE_DIRECTORY", str(state))  # read by the state_dir default
    settings = load_settings(None, env)
    assert settings.mistral.api_key == "sk-from-credential"
    assert settings.state_dir == state
    assert settings.database_url == f"sqlite:///{state / 'batchwatch.db'}"
    assert settings.token_file == state / "api-token"


@needs_systemd_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart= names an executable, and /opt/batchwatch does not exist
    # here: verify a copy whose ExecStart= program is this environment's batchwatch, every
    # other byte unchanged.
    original = UNIT.read_text(encoding="utf-8")
    program = installed_batchwatch()
    copy = tmp_path / UNIT.name
    text, count = re.subn(
        r"^ExecStart=\S+", f"ExecStart={program}", original, count=1, flags=re.MULTILINE
    )
    assert count == 1
    copy.write_text(text, encoding="utf-8")
    changed = [
        (a, b) for a, b in zip(original.splitlines(), text.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 1 and changed[0][0].startswith("ExecStart=")

    result = analyze("verify", str(copy))

    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints_about(copy, result) == []


@needs_systemd_analyze
def test_unit_exposure_is_at_most_two() -> None:
    result = analyze("security", "--offline=true", "--no-pager", str(UNIT))

    assert result.returncode == 0, result.stderr
    assert complaints_about(UNIT, result) == []
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, result.stdout[-2000:]
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout
