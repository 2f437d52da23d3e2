"""What a command that talks to the running daemon needs from the configuration: where the
local API listens (``api.host``, ``api.port``) and its token (``api.token_file``).

Standard library only. The full ``Settings`` (``config.py``) is built with pydantic, whose
import alone costs about 100 ms, and a query command such as ``batchwatch jobs`` must
answer in a fraction of a second. This module finds the same file, applies the same
environment overrides (``BATCHWATCH_API_HOST`` ...) and gives the same three values as
``config.load_settings``. When the file holds anything it cannot vouch for (an unknown key,
a value that would need converting or refusing), it asks ``config.py`` to validate the
whole file, so the user sees the daemon's own one-line error, naming the key.

The other sections are the daemon's business: a query command does not read them, nor
the Mistral API key (``batchwatch config check`` and ``batchwatch serve`` validate them).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchwatch.errors import ConfigError

ENV_CONFIG = "BATCHWATCH_CONFIG"
ENV_PREFIX = "BATCHWATCH_"

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8765

#: The keys of each section of the file, as ``config.Settings`` declares them (a test
#: holds the two equal): an unknown one sends the file to the full validation.
SECTION_KEYS: dict[str, frozenset[str]] = {
    "mistral": frozenset({"server_url", "api_key_file", "timeout_seconds", "max_retries"}),
    "tracking": frozenset({"poll_interval_seconds", "discover", "page_size", "concurrency"}),
    "database": frozenset({"url"}),
    "api": frozenset({"host", "port", "token_file"}),
    "log": frozenset({"level", "format"}),
}




def env_override_name(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key``: BATCHWATCH_<SECTION>_<KEY>."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


_API_ENV = {env_override_name("api", key): key for key in sorted(SECTION_KEYS["api"])}


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` under systemd, else the platform's per-user data directory."""
    systemd_dir = os.environ.get("STATE_DIRECTORY")
    if systemd_dir:
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(systemd_dir.split(":")[0])
    import platformdirs

    return Path(platformdirs.user_data_dir("batchwatch", appauthor=False))


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """``--config``, else ``$BATCHWATCH_CONFIG``, else ``./batchwatch.toml`` when present."""
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    local = Path("batchwatch.toml")
    return local if local.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def api_url(host: str, port: int) -> str:
    """The URL a client reaches the local API at, listening on ``host``:``port``."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The daemon's address and token file, as ``Settings`` gives them."""

    host: str
    port: int
    token_file: Path

    @property
    def api_url(self) -> str:
        return api_url(self.host, self.port)


def load_client_settings(
    config_path: str | None = None, env: Mapping[str, str] | None = None
) -> ClientSettings:
    """``api.host``, ``api.port`` and the token file, equal to ``config.load_settings``'s;
    ``ConfigError`` naming the key when the file or the environment is wrong."""
    env = os.environ if env is None else env
    path = find_config_file(config_path, env)
    data = read_toml(path) if path else {}
    plain = _plain_api(data, env)
    if plain is None:
        # Something to convert or to refuse: the daemon's validation decides, in its words.
        from batchwatch.config import validate_settings

        settings = validate_settings(data, env, path)
        return ClientSettings(settings.api.host, settings.api.port, settings.token_file)
    host, port, token_file = plain
    return ClientSettings(
        host,
        port,
        Path(token_file) if token_file is not None else default_state_dir() / "api-token",
    )


def _plain_api(
    data: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[str, int, str | None] | None:
    """The api values when the file's layout is known and they are valid as they stand
    (what pydantic would accept unchanged); else None."""
    for section, values in data.items():
        keys = SECTION_KEYS.get(section)
        if keys is None or not isinstance(values, dict) or not values.keys() <= keys:
            return None
    api: dict[str, Any] = dict(data.get("api", {}))
    api.update((key, env[name]) for name, key in _API_ENV.items() if name in env)
    host = api.get("host", DEFAULT_API_HOST)
    port = _port(api.get("port", DEFAULT_API_PORT))
    token_file = api.get("token_file")
    if type(host) is not str or port is None:
        return None
    if token_file is not None and type(token_file) is not str:
        return None
    return host, port, token_file


def _port(value: object) -> int | None:
    """A port as an int, or a string of at most five ASCII digits, within 0-65535."""
    if type(value) is str and len(value) <= 5 and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is int and 0 <= value <= 65535:
        return value
    return None
