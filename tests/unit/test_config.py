"""Settings: defaults, the file, the environment, secret files, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchwatch.config import Settings, config_problems, load_settings
from batchwatch.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "batchwatch.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_example_file_loads_and_equals_the_defaults() -> None:
    example = load_settings(str(REPO / "config.example.toml"), env={})
    defaults = load_settings(None, env={})
    assert example.model_dump() == defaults.model_dump()
    assert example.mistral.server_url == "https://api.mistral.ai"
    assert example.tracking.poll_interval_seconds == 60
    assert example.api.host == "127.0.0.1" and example.api.port == 8765


def test_example_file_documents_every_key() -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    for section, model in Settings.model_fields.items():
        if model.exclude:
            continue
        assert f"[{section}]" in text
        sub = type(model.default).model_fields
        for key, info in sub.items():
            if not info.exclude:
                assert f"{key} =" in text, f"{section}.{key} is not documented"


def test_file_values_and_sub_second_interval(tmp_path: Path) -> None:
    path = write(tmp_path, '[tracking]\npoll_interval_seconds = 0.25\ndiscover = "mine"\n')
    settings = load_settings(path, env={})
    assert settings.tracking.poll_interval_seconds == 0.25
    assert settings.tracking.discover == "mine"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tracking]\npoll_interval_seconds = 5\n")
    env = {"BATCHWATCH_TRACKING_POLL_INTERVAL_SECONDS": "7.5", "BATCHWATCH_API_PORT": "9000"}
    settings = load_settings(path, env=env)
    assert settings.tracking.poll_interval_seconds == 7.5
    assert settings.api.port == 9000


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = 9100\n")
    assert load_settings(None, env={"BATCHWATCH_CONFIG": path}).api.port == 9100


def test_api_key_sources_in_order(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mistral-api-key").write_text("from-credentials")
    path = write(tmp_path, f'[mistral]\napi_key_file = "{key_file}"\n')
    env = {"MISTRAL_API_KEY": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    assert load_settings(path, env=env).mistral.api_key == "from-file"
    assert load_settings(None, env=env).mistral.api_key == "from-credentials"
    assert load_settings(None, env={"MISTRAL_API_KEY": "from-env"}).mistral.api_key == "from-env"
    assert load_settings(None, env={}).mistral.api_key is None


def test_api_key_never_in_a_dump_or_repr(tmp_path: Path) -> None:
    settings = load_settings(None, env={"MISTRAL_API_KEY": "secret-key-value"})
    assert "secret-key-value" not in repr(settings)
    assert "secret-key-value" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tracking]\npoll_interval_seconds = 0\n", "tracking.poll_interval_seconds"),
        ('[tracking]\ndiscover = "everything"\n', "tracking.discover"),
        ("[tracking]\npoll_interval = 5\n", "tracking.poll_interval: unknown key"),
        ("[nonsense]\nx = 1\n", "nonsense: unknown key"),
        ('[mistral]\nserver_url = "api.mistral.ai"\n', "mistral.server_url"),
        ("[api]\nport = 70000\n", "api.port"),
        ('[log]\nlevel = "loud"\n', "log.level"),
        ("[tracking\n", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as info:
        load_settings(write(tmp_path, text), env={})
    assert "\n" not in str(info.value)


def test_missing_file_and_unreadable_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(str(tmp_path / "absent.toml"), env={})
    path = write(tmp_path, f'[mistral]\napi_key_file = "{tmp_path / "nokey"}"\n')
    with pytest.raises(ConfigError, match=r"mistral\.api_key_file"):
        load_settings(path, env={})


def test_bad_environment_value_names_the_variable_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tracking\.poll_interval_seconds"):
        load_settings(None, env={"BATCHWATCH_TRACKING_POLL_INTERVAL_SECONDS": "soon"})


def test_config_problems_lists_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, '[tracking]\ndiscover = "x"\npoll_interval_seconds = -1\n[zzz]\n')
    problems = config_problems(path)
    assert len(problems) == 3
    assert any(p.startswith("zzz: unknown key") for p in problems)
    assert config_problems(str(REPO / "config.example.toml")) == []
