"""The providers' sections of the settings (``[mistral]``, ``[openai]``, ``[anthropic]``):
where each API is, and how its key is found."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from annotated_types import Ge, Gt, Le

from batchwatch.errors import ConfigError

_STRICT_KEYS: dict[str, Any] = {"extra": "forbid"}
_NOT_A_KEY = {"key": False}


class HttpUrl:
    """pydantic's check of ``mistral.server_url``: an http(s) URL, kept without a final
    slash. Declared here without importing pydantic, which calls the hook when it validates."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Callable[[Any], Any]) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(cls.check, handler(source))

    @staticmethod
    def check(value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class MistralSettings:
    """A provider's section (``[mistral]``, ``[openai]``, ``[anthropic]``): where its API
    is and how its key is found."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    server_url: Annotated[str, HttpUrl] = "https://api.mistral.ai"
    api_key_file: Path | None = None
    timeout_seconds: Annotated[float, Gt(0), Le(600)] = 30.0
    #: Retries of one request on 429/5xx/connection errors, with exponential backoff.
    max_retries: Annotated[int, Ge(0), Le(10)] = 4
    #: Not a file key: resolved from api_key_file, $CREDENTIALS_DIRECTORY/<provider>-api-key
    #: or the provider's variable ($MISTRAL_API_KEY, $OPENAI_API_KEY, $ANTHROPIC_API_KEY).
    api_key: str | None = field(default=None, repr=False, metadata=_NOT_A_KEY)


@dataclass(frozen=True, slots=True)
class OpenAISettings(MistralSettings):
    server_url: Annotated[str, HttpUrl] = "https://api.openai.com"


@dataclass(frozen=True, slots=True)
class AnthropicSettings(MistralSettings):
    server_url: Annotated[str, HttpUrl] = "https://api.anthropic.com"


_Section = TypeVar("_Section", bound=MistralSettings)


def with_key(section: _Section, name: str, env: Mapping[str, str]) -> _Section:
    return replace(section, api_key=_resolve_api_key(section, name, env))


def _resolve_api_key(section: MistralSettings, name: str, env: Mapping[str, str]) -> str | None:
    """``[name] api_key_file``, else systemd's credential ``<name>-api-key``, else the
    provider's environment variable."""
    if section.api_key_file is not None:
        return _read_secret(section.api_key_file, f"{name}.api_key_file")
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / f"{name}-api-key").is_file():
        return _read_secret(Path(credentials) / f"{name}-api-key", "$CREDENTIALS_DIRECTORY")
    return env.get(f"{name.upper()}_API_KEY") or None


def _read_secret(path: Path, key: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    return value
