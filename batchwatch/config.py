"""Settings: built once at start-up from defaults, the TOML file, the environment and secret files.

Every problem is reported as a ``ConfigError`` whose message names the offending key, so the
CLI can print one line and exit instead of a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from batchwatch.errors import ConfigError

# The file, the environment names and the error type are shared with the standard-library
# reader of the query commands (settings_lite.py), which must find the same values.
from batchwatch.settings_lite import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    ENV_CONFIG,
    ENV_PREFIX,
    api_url,
    default_state_dir,
    env_override_name,
    find_config_file,
    read_toml,
)

__all__ = [
    "ENV_CONFIG",
    "ENV_PREFIX",
    "ApiSettings",
    "ConfigError",
    "DatabaseSettings",
    "LogSettings",
    "MistralSettings",
    "Settings",
    "TrackingSettings",
    "config_problems",
    "default_state_dir",
    "env_override_name",
    "find_config_file",
    "load_settings",
    "validate_settings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MistralSettings(_Section):
    server_url: str = "https://api.mistral.ai"
    api_key_file: Path | None = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: Retries of one request on 429/5xx/connection errors, with exponential backoff.
    max_retries: int = Field(default=4, ge=0, le=10)
    #: Not a file key: resolved from api_key_file, $CREDENTIALS_DIRECTORY or $MISTRAL_API_KEY.
    api_key: str | None = Field(default=None, exclude=True, repr=False)

    @field_validator("server_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class TrackingSettings(_Section):
    poll_interval_seconds: float = Field(default=60.0, gt=0, le=86400)
    discover: Literal["all", "mine", "none"] = "all"
    page_size: int = Field(default=100, ge=1, le=1000)
    #: How many list pages are fetched at once once the first page gave the total.
    concurrency: int = Field(default=4, ge=1, le=32)


class DatabaseSettings(_Section):
    url: str | None = None


class ApiSettings(_Section):
    host: str = DEFAULT_API_HOST
    port: int = Field(default=DEFAULT_API_PORT, ge=0, le=65535)
    token_file: Path | None = None


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["json", "console", "auto"] = "auto"


class Settings(_Section):
    mistral: MistralSettings = MistralSettings()
    tracking: TrackingSettings = TrackingSettings()
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    state_dir: Path = Field(default_factory=default_state_dir, exclude=True)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_dir / 'batchwatch.db'}"

    @property
    def token_file(self) -> Path:
        return self.api.token_file or self.state_dir / "api-token"

    @property
    def api_url(self) -> str:
        return api_url(self.api.host, self.api.port)


def load_settings(config_path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings; raise ``ConfigError`` naming the key on any problem."""
    env = os.environ if env is None else env
    path = find_config_file(config_path, env)
    settings = validate_settings(read_toml(path) if path else {}, env, path)
    api_key = _resolve_api_key(settings.mistral, env)
    mistral = settings.mistral.model_copy(update={"api_key": api_key})
    return settings.model_copy(update={"mistral": mistral})


def validate_settings(data: dict[str, Any], env: Mapping[str, str], path: Path | None) -> Settings:
    """The settings of a file's ``data`` with the environment applied (changing ``data``),
    without the secrets; ``ConfigError`` naming the first bad key."""
    _apply_env_overrides(data, env)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def config_problems(path: str) -> list[str]:
    """Every problem in one file (for ``config check``), one message per key."""
    try:
        data = read_toml(Path(path))
    except ConfigError as exc:
        return [str(exc)]
    try:
        Settings.model_validate(data)
    except ValidationError as exc:
        return [_one_error(err) for err in exc.errors()]
    return []


# Environment overrides: BATCHWATCH_<SECTION>_<KEY>, e.g. BATCHWATCH_TRACKING_DISCOVER=mine.
_ENV_KEYS: dict[str, tuple[str, str]] = {
    env_override_name(section, key): (section, key)
    for section, model in Settings.model_fields.items()
    if isinstance(model.default, BaseModel)
    for key, info in type(model.default).model_fields.items()
    if not info.exclude
}


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, (section, key) in _ENV_KEYS.items():
        if name in env:
            target = data.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = env[name]


def _resolve_api_key(mistral: MistralSettings, env: Mapping[str, str]) -> str | None:
    if mistral.api_key_file is not None:
        return _read_secret(mistral.api_key_file, "mistral.api_key_file")
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / "mistral-api-key").is_file():
        return _read_secret(Path(credentials) / "mistral-api-key", "$CREDENTIALS_DIRECTORY")
    return env.get("MISTRAL_API_KEY") or None


def _read_secret(path: Path, key: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    return value


def _one_error(err: Any) -> str:
    key = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key (see config.example.toml for the keys)"
    given = err.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}{shown}"


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    first = _one_error(exc.errors()[0])
    more = exc.error_count() - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''}; run `batchwatch config check`)"
    return f"invalid configuration{where}: {first}" + (tail if more else "")
