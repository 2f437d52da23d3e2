"""Settings: defaults, the file, the environment, secret files, and errors that name the key;
and the query commands' standard-library reader (``load_client_settings``) against the full
validation: the same api.host, api.port and token file over any file and environment, or the
same one-line error."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchwatch.config import (
    SECTION_KEYS,
    ClientSettings,
    Settings,
    config_problems,
    load_client_settings,
    load_settings,
    validate_settings,
)
from batchwatch.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "batchwatch.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_example_file_loads_and_equals_the_defaults() -> None:
    example = load_settings(str(REPO / "config.example.toml"), env={})
    defaults = load_settings(None, env={})
    assert example == defaults
    assert example.mistral.server_url == "https://api.mistral.ai"
    assert example.tracking.poll_interval_seconds == 60
    assert example.api.host == "127.0.0.1" and example.api.port == 8765


def test_example_file_documents_every_key() -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    for section, keys in SECTION_KEYS.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"{key} =" in text, f"{section}.{key} is not documented"


def test_the_keys_are_the_settings_fields_less_the_resolved_ones() -> None:
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    # prices is a table of tables (one per model), webhooks and hooks arrays of tables: not
    # sections of fixed keys.
    assert set(SECTION_KEYS) == set(sections) - {"state_dir", "prices", "webhooks", "hooks"}
    mistral = {f.name for f in dataclasses.fields(type(Settings().mistral))}
    assert SECTION_KEYS["mistral"] == mistral - {"api_key"}


def test_prices_are_read_per_model_and_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[prices."mistral-small-latest"]\ninput_per_million = 0.1\noutput_per_million = 0.3\n',
    )
    price = load_settings(path, env={}).prices["mistral-small-latest"]
    assert (price.input_per_million, price.output_per_million, price.batch_discount) == (
        0.1,
        0.3,
        0.5,
    )
    bad = write(tmp_path, "[prices.m]\ninput_per_million = -1\noutput_per_million = 0.3\n")
    with pytest.raises(ConfigError, match=r"prices\.m\.input_per_million"):
        load_settings(bad, env={})


def _secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_webhooks_and_hooks_are_arrays_of_tables_with_their_secrets(tmp_path: Path) -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    key = _secret(tmp_path / "whsec", secret)
    path = write(
        tmp_path,
        f'[[webhooks]]\nurl = "https://example.com/hook"\nsecret_file = "{key}"\n'
        'events = ["job.finished", "job.stalled"]\n'
        '[[hooks]]\ncommand = ["notify-send", "batch"]\ntimeout_seconds = 5\n'
        "[alerts]\nstall_minutes = 10\n",
    )
    settings = load_settings(path, env={})
    (hook,) = settings.webhooks
    assert (hook.url, hook.events, hook.secret) == (
        "https://example.com/hook",
        ("job.finished", "job.stalled"),
        secret,
    )
    assert secret not in repr(settings)
    assert settings.hooks[0].command == ("notify-send", "batch")
    assert settings.hooks[0].name == "hook:notify-send batch"
    assert (settings.alerts.stall_minutes, settings.alerts.queued_minutes) == (10, 120)


OK = "whsec_QUJDREVGR0hJSktMTU5PUFFS"


@pytest.mark.parametrize(
    ("hook", "mode", "secret", "message"),
    [
        (
            'events = ["job.done"]',
            0o600,
            OK,
            r"webhooks\.0\.events\.0",
        ),
        ("", 0o644, OK, r"webhooks\[0\]\.secret_file: .*chmod 600"),
        ("", 0o600, "not-a-secret", r"webhooks\[0\]\.secret_file: .* does not hold"),
        ('url = "ftp://x/y"', 0o600, OK, r"webhooks\[0\]\.url"),
    ],
)
def test_a_bad_webhook_names_its_key(
    tmp_path: Path, hook: str, mode: int, secret: str, message: str
) -> None:
    key = _secret(tmp_path / "whsec", secret, mode)
    url = "" if hook.startswith("url") else 'url = "http://127.0.0.1:9/hook"\n'
    path = write(tmp_path, f'[[webhooks]]\n{url}secret_file = "{key}"\n{hook}\n')
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})
    assert any(re.search(message, p) for p in config_problems(path))


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


def test_api_key_never_in_a_repr(tmp_path: Path) -> None:
    settings = load_settings(None, env={"MISTRAL_API_KEY": "secret-key-value"})
    assert settings.mistral.api_key == "secret-key-value"
    assert "secret-key-value" not in repr(settings)


def test_server_url_is_checked_and_loses_its_final_slash(tmp_path: Path) -> None:
    path = write(tmp_path, '[mistral]\nserver_url = "http://127.0.0.1:9/"\n')
    assert load_settings(path, env={}).mistral.server_url == "http://127.0.0.1:9"


def test_a_section_that_is_not_a_table_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"api: Input should be a valid dictionary or instance"):
        load_settings(write(tmp_path, "api = 5\n"), env={})


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


# ---- the query commands' reader against the full validation ---------------------------


# ---- writing TOML (the standard library only reads it) ---------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def toml_text(data: Mapping[str, Any]) -> str:
    lines = [f"{key} = {toml_value(v)}" for key, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{key} = {toml_value(v)}" for key, v in values.items()]
    return "\n".join(lines) + "\n"


# ---- the two readers, as one comparable outcome -----------------------------------------


def full(path: str | None, env: Mapping[str, str]) -> tuple[Any, ...]:
    try:
        s = load_settings(path, env=env)
    except ConfigError as exc:
        return ("error", str(exc))
    return (s.api.host, s.api.port, s.token_file, s.api_url)


def lite(path: str | None, env: Mapping[str, str]) -> tuple[Any, ...]:
    try:
        c = load_client_settings(path, env=env)
    except ConfigError as exc:
        return ("error", str(exc))
    return (c.host, c.port, c.token_file, c.api_url)


# ---- what a file and an environment may hold --------------------------------------------

texts = st.text(max_size=12)
numbers = st.one_of(
    st.integers(-3, 70_000),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 8765, 65535, 65536, -1, 8765.0, 8765.5]),
)
port_texts = st.one_of(
    st.sampled_from(
        [
            *("8765", "0", "00", "08765", "65535", "65536", "000008765", " 8765", "8765 "),
            *("+8765", "-1", "8_765", "8765.0", "1e3", "", " ", "0x10", "99999999999"),
            *("\u0663", "\uff18\uff17\uff16\uff15"),  # an Arabic-Indic 3, a fullwidth 8765
        ]
    ),
    st.from_regex(r"\A[ +\-]?[0-9_]{0,7}(\.[0-9]*)?[ ]?\Z"),
)
HOSTS = ("0.0.0.0", "::", "", "::1", "localhost", "10.0.0.1")  # noqa: S104 - not a bind
hosts = st.one_of(texts, st.sampled_from(HOSTS))
anything = st.one_of(texts, numbers, st.booleans(), st.lists(st.integers(0, 9), max_size=2))
api_values = {
    "host": st.one_of(hosts, anything),
    "port": st.one_of(numbers, port_texts, anything),
    "token_file": st.one_of(texts, st.sampled_from(["/run/bw/token", "~/token", ""]), anything),
}
#: Valid values of the other sections: those are the daemon's, but the file must still parse.
OTHER: dict[str, dict[str, Any]] = {
    "mistral": {"server_url": "http://127.0.0.1:1", "timeout_seconds": 5, "max_retries": 1},
    "tracking": {"poll_interval_seconds": 0.5, "discover": "mine", "page_size": 10},
    "database": {"url": "sqlite:///x.db"},
    "log": {"level": "debug", "format": "json"},
}


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(OTHER)), unique=True)):
        keys = draw(st.lists(st.sampled_from(sorted(OTHER[section])), unique=True))
        data[section] = {key: OTHER[section][key] for key in keys}
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(sorted(api_values)), unique=True))
        data["api"] = {key: draw(api_values[key]) for key in keys}
    if draw(st.integers(0, 9)) == 0:  # a typo, a key of the wrong section, a strange layout
        where = draw(st.sampled_from(["api", "tracking", "top"]))
        # (never a known key of the other sections: their values are the daemon's business)
        key = draw(st.sampled_from(["prot", "port", "zzz", "state_dir", "api", "log_level"]))
        value = draw(st.one_of(st.sampled_from(["/tmp/state", "x"]), st.integers(0, 9)))
        if where == "top":
            data[key] = value
        else:
            data.setdefault(where, {})[key] = value
    return data


def environments() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "BATCHWATCH_API_HOST": hosts,
            "BATCHWATCH_API_PORT": port_texts,
            "BATCHWATCH_API_TOKEN_FILE": st.one_of(texts, st.just("/run/bw/token")),
            "BATCHWATCH_TRACKING_DISCOVER": st.just("none"),
            "BATCHWATCH_LOG_LEVEL": st.just("error"),
        },
    )


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=configs(), env=environments(), via_env=st.booleans())
@example(data={}, env={}, via_env=False)
@example(data={"api": {"port": True}}, env={}, via_env=False)
@example(data={"api": {"port": 8765.0}}, env={}, via_env=True)
@example(data={"state_dir": "/tmp/state"}, env={}, via_env=False)
@example(data={"api": {"host": "::"}}, env={"BATCHWATCH_API_PORT": " 9000"}, via_env=False)
@example(data={"api": 5}, env={"BATCHWATCH_API_PORT": "1"}, via_env=False)
def test_lite_reader_equals_the_full_settings(
    tmp_path: Path, data: dict[str, Any], env: dict[str, str], via_env: bool
) -> None:
    path = tmp_path / "batchwatch.toml"
    path.write_text(toml_text(data), encoding="utf-8")
    if via_env:
        env = {**env, "BATCHWATCH_CONFIG": str(path)}
    given_path = None if via_env else str(path)
    assert lite(given_path, env) == full(given_path, env)


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("", {}),
        ('[api]\nhost = "0.0.0.0"\nport = 9001\ntoken_file = "/run/bw/token"\n', {}),
        ("[api]\nport = 9001\n", {"BATCHWATCH_API_PORT": "9002"}),
        ('[api]\nhost = "::1"\n', {"BATCHWATCH_API_TOKEN_FILE": "/t"}),
        ("[tracking\n", {}),
        ("[api]\nport = 70000\n", {}),
        ('[api]\nport = "80"\n', {}),
        ("[api]\nport = 80\n", {"BATCHWATCH_API_PORT": "eighty"}),
        ("[api]\nhost = 127\n", {}),
        ("[api]\ntoken_fle = 1\n", {}),
        ("[nonsense]\nx = 1\n", {}),
        ('state_dir = "/srv/bw"\n', {}),
    ],
)
def test_the_readers_agree_on_these_files(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    assert lite(str(path), env) == full(str(path), env)


def test_no_file_and_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./batchwatch.toml
    assert lite(None, {}) == full(None, {})
    assert lite(None, {}) == ("127.0.0.1", 8765, lite(None, {})[2], "http://127.0.0.1:8765")
    assert lite(str(tmp_path / "absent.toml"), {})[1].startswith("config file not found")
    (tmp_path / "batchwatch.toml").write_text("[api]\nport = 9100\n")
    assert lite(None, {})[1] == 9100 == full(None, {})[1]


def test_the_example_file_and_the_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/batchwatch:/other")
    example = str(REPO / "config.example.toml")
    assert lite(example, {}) == full(example, {})
    assert lite(example, {})[2] == Path("/var/lib/batchwatch/api-token")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[api]\nport = 70000\n", "api.port"),
        ("[api]\nport = -1\n", "api.port"),
        ("[api]\nhost = 1\n", "api.host"),
        ("[api]\ntoken_file = 1\n", "api.token_file"),
        ("[api]\ntoken_fle = 1\n", "api.token_fle: unknown key"),
        ("[tracking]\npoll_interval = 5\n", "tracking.poll_interval: unknown key"),
        ("[tracking\n", "not valid TOML"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as info:
        load_client_settings(str(path), env={})
    assert "\n" not in str(info.value)


def test_a_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"api\.port.*'soon'"):
        load_client_settings(None, env={"BATCHWATCH_API_PORT": "soon"})


def test_what_the_daemon_alone_needs_does_not_stop_a_query(tmp_path: Path) -> None:
    """A query command reads the api section: a bad tracking value or an unreadable Mistral
    key file is for `batchwatch serve` and `config check` to report."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[mistral]\napi_key_file = "{tmp_path / "nokey"}"\n[tracking]\ndiscover = "x"\n'
        "[api]\nport = 9200\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError):
        load_settings(str(path), env={})
    assert load_client_settings(str(path), env={}).port == 9200


def test_client_settings_url_is_the_settings_url() -> None:
    for host in HOSTS:
        settings = validate_settings({"api": {"host": host, "port": 1}}, {}, None)
        assert ClientSettings(host, 1, Path("t")).api_url == settings.api_url


def test_a_query_reads_its_settings_without_pydantic(tmp_path: Path) -> None:
    """The fast path imports no validation library; a file it cannot vouch for does."""
    path = tmp_path / "c.toml"
    path.write_text("[api]\nport = 9300\n", encoding="utf-8")
    code = (
        "import sys\n"
        "from batchwatch.config import load_client_settings\n"
        f"print(load_client_settings({str(path)!r}, env={{}}).port, 'pydantic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["9300", "False"]
