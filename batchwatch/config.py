"""Settings: built once at start-up from defaults, the TOML file, the environment and secret files.

The sections below are the one list of keys: the file's, the environment's
(``BATCHWATCH_<SECTION>_<KEY>``) and ``config check``'s. They are plain frozen dataclasses,
so this module imports no third-party library: a query command such as ``batchwatch jobs``
reads ``api.host``, ``api.port`` and ``api.token_file`` with the standard library alone
(``load_client_settings``), and pydantic (about 100 ms to import) is loaded only to validate
a whole file, by ``load_settings``, ``config check`` and a file the fast path cannot vouch for.

Every problem is reported as a ``ConfigError`` whose message names the offending key, so the
CLI can print one line and exit instead of a traceback.
"""

import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Gt, Le, MaxLen, MinLen

from batchwatch.config_events import AlertSettings, HookSettings, WebhookSettings, with_secrets
from batchwatch.config_providers import (
    AnthropicSettings,
    MistralSettings,
    OpenAISettings,
    with_key,
)
from batchwatch.errors import ConfigError

ENV_CONFIG = "BATCHWATCH_CONFIG"
ENV_PREFIX = "BATCHWATCH_"

#: pydantic's settings for every section: a key it does not know is an error, not ignored.
_STRICT_KEYS: dict[str, Any] = {"extra": "forbid"}
#: Field metadata of a value that is not a key of the file (resolved, not configured).
_NOT_A_KEY = {"key": False}


@dataclass(frozen=True, slots=True)
class TrackingSettings:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    poll_interval_seconds: Annotated[float, Gt(0), Le(86400)] = 60.0
    discover: Literal["all", "mine", "none"] = "all"
    page_size: Annotated[int, Ge(1), Le(1000)] = 100
    #: How many list pages are fetched at once once the first page gave the total.
    concurrency: Annotated[int, Ge(1), Le(32)] = 4


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    url: str | None = None


@dataclass(frozen=True, slots=True)
class ApiSettings:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    host: str = "127.0.0.1"
    port: Annotated[int, Ge(0), Le(65535)] = 8765
    token_file: Path | None = None


@dataclass(frozen=True, slots=True)
class LogSettings:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["json", "console", "auto"] = "auto"


@dataclass(frozen=True, slots=True)
class ResultsSettings:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    #: Download every ended job's files and build its ledger.
    download: bool = True
    #: Where: ``{dir}/{job_id}/``; the state directory's ``results`` by default.
    dir: Path | None = None
    #: Jobs whose results are fetched at the same time.
    concurrency: Annotated[int, Ge(1), Le(16)] = 2


@dataclass(frozen=True, slots=True)
class TeamSettings:
    """Team mode: several daemons on one PostgreSQL database, one of them polling."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    #: How this daemon is named to the others (``/healthz`` ``leader``, the dashboard); each
    #: daemon on a database needs its own. Default: ``<host>-<pid>``.
    instance_name: Annotated[str, MinLen(1), MaxLen(200)] | None = None
    #: How long the leader's lease lasts unrenewed: a leader that stopped (killed, frozen,
    #: cut off) is replaced after at most this, plus one poll interval.
    lease_seconds: Annotated[float, Ge(1), Le(3600)] = 15.0

    def name(self) -> str:
        return self.instance_name or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class PriceSettings:
    """``[prices."MODEL"]``: list prices in the account's currency per million tokens."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    input_per_million: Annotated[float, Ge(0)]
    output_per_million: Annotated[float, Ge(0)]
    #: The fraction taken off list prices for batch requests (Mistral bills them at half).
    batch_discount: Annotated[float, Ge(0), Le(1)] = 0.5


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` under systemd, else the platform's per-user data directory."""
    systemd_dir = os.environ.get("STATE_DIRECTORY")
    if systemd_dir:
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(systemd_dir.split(":")[0])
    import platformdirs

    return Path(platformdirs.user_data_dir("batchwatch", appauthor=False))


def api_url(host: str, port: int) -> str:
    """The URL a client reaches the local API at, listening on ``host``:``port``."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass(frozen=True, slots=True)
class Settings:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    mistral: MistralSettings = field(default_factory=MistralSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    anthropic: AnthropicSettings = field(default_factory=AnthropicSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    log: LogSettings = field(default_factory=LogSettings)
    results: ResultsSettings = field(default_factory=ResultsSettings)
    team: TeamSettings = field(default_factory=TeamSettings)
    #: Prices by model name: a table of tables, not a section of fixed keys.
    prices: dict[str, PriceSettings] = field(default_factory=dict, metadata={"table": True})
    alerts: AlertSettings = field(default_factory=AlertSettings)
    #: Arrays of tables (``[[webhooks]]``, ``[[hooks]]``), not sections of fixed keys.
    webhooks: tuple[WebhookSettings, ...] = field(default=(), metadata={"table": True})
    hooks: tuple[HookSettings, ...] = field(default=(), metadata={"table": True})
    state_dir: Path = field(default_factory=default_state_dir, metadata=_NOT_A_KEY)

    def providers(self) -> dict[str, MistralSettings]:
        """The providers tracked: each one with a key, and Mistral when none has one (a
        daemon set up before there were providers keeps polling Mistral, and warns)."""
        sections = {"mistral": self.mistral, "openai": self.openai, "anthropic": self.anthropic}
        on = {name: section for name, section in sections.items() if section.api_key}
        return on or {"mistral": self.mistral}

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_dir / 'batchwatch.db'}"

    @property
    def results_dir(self) -> Path:
        return self.results.dir or self.state_dir / "results"

    @property
    def token_file(self) -> Path:
        return self.api.token_file or self.state_dir / "api-token"

    @property
    def api_url(self) -> str:
        return api_url(self.api.host, self.api.port)


def _keys(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls) if f.metadata.get("key", True))


#: Each section of the file and its keys: the one list every reader of the file goes by.
SECTION_KEYS: dict[str, frozenset[str]] = {
    f.name: _keys(f.default_factory)  # type: ignore[arg-type]
    for f in fields(Settings)
    if f.metadata.get("key", True) and not f.metadata.get("table")
}


def env_override_name(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key``: BATCHWATCH_<SECTION>_<KEY>."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


# Environment overrides: BATCHWATCH_<SECTION>_<KEY>, e.g. BATCHWATCH_TRACKING_DISCOVER=mine.
_ENV_KEYS: dict[str, tuple[str, str]] = {
    env_override_name(section, key): (section, key)
    for section, keys in SECTION_KEYS.items()
    for key in sorted(keys)
}


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


# ---- the daemon's settings: every section validated (pydantic) ---------------------------


def load_settings(config_path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings; raise ``ConfigError`` naming the key on any problem."""
    env = os.environ if env is None else env
    path = find_config_file(config_path, env)
    settings = validate_settings(read_toml(path) if path else {}, env, path)
    return replace(
        settings,
        mistral=with_key(settings.mistral, "mistral", env),
        openai=with_key(settings.openai, "openai", env),
        anthropic=with_key(settings.anthropic, "anthropic", env),
        webhooks=with_secrets(settings.webhooks),
    )


def validate_settings(data: dict[str, Any], env: Mapping[str, str], path: Path | None) -> Settings:
    """The settings of a file's ``data`` with the environment applied (changing ``data``),
    without the secrets; ``ConfigError`` naming the first bad key."""
    _apply_env_overrides(data, env)
    errors = _validation_errors(data)
    if isinstance(errors, Settings):
        return errors
    where = f" in {path}" if path else ""
    more = len(errors) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''}; run `batchwatch config check`)"
    raise ConfigError(f"invalid configuration{where}: {errors[0]}" + (tail if more else ""))


def config_problems(path: str) -> list[str]:
    """Every problem in one file (for ``config check``), one message per key."""
    try:
        data = read_toml(Path(path))
    except ConfigError as exc:
        return [str(exc)]
    errors = _validation_errors(data)
    if not isinstance(errors, Settings):
        return errors
    try:
        with_secrets(errors.webhooks)  # each secret file: there, private, a secret
    except ConfigError as exc:
        return [str(exc)]
    return []


@cache
def _validator() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(Settings)


def _validation_errors(data: dict[str, Any]) -> Settings | list[str]:
    """The settings ``data`` describes, or one message per problem."""
    from pydantic import ValidationError

    try:
        return _validator().validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        return [_one_error(err) for err in exc.errors()]


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, (section, key) in _ENV_KEYS.items():
        if name in env:
            target = data.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = env[name]


def _one_error(err: Any) -> str:
    key = ".".join(str(part) for part in err["loc"])
    # A section is a dataclass to pydantic: an unknown key in it is an unexpected argument.
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{key}: unknown key (see config.example.toml for the keys)"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "dataclass_type":  # a section that is not a table, in the usual words
        message = f"Input should be a valid dictionary or instance of {err['ctx']['class_name']}"
    given = err.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{key}: {message}{shown}"


# ---- a query command's settings: the api section, standard library only ------------------


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
    """``api.host``, ``api.port`` and the token file, equal to ``load_settings``'s;
    ``ConfigError`` naming the key when the file or the environment is wrong.

    The other sections are the daemon's business: they are not validated here, nor is the
    Mistral API key read (``config check`` and ``serve`` do that)."""
    env = os.environ if env is None else env
    path = find_config_file(config_path, env)
    data = read_toml(path) if path else {}
    plain = _plain_api(data, env)
    if plain is None:
        # Something to convert or to refuse: the full validation decides, in its words.
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
    api.update(
        (key, env[name]) for name, (sec, key) in _ENV_KEYS.items() if sec == "api" and name in env
    )
    defaults = ApiSettings()
    host = api.get("host", defaults.host)
    port = _port(api.get("port", defaults.port))
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
