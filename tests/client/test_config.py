"""The client's config file: precedence, profiles, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from securechat.client.cli import dispatch
from securechat.client.config import config_path, load_client_config
from securechat.errors import ConfigError

FILE = """
server = "file.example:1"
ca = "~/file-ca.crt"

[notifications]
bell = false
keywords = ["deploy", "outage"]

[history]
retention_days = 30

[profiles.work]
server = "work.example:2"

[profiles.work.ui]
room = "ops"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_values_and_defaults(tmp_path: Path) -> None:
    config = load_client_config(write(tmp_path, FILE), required=True, profile="default", env={})
    assert config.server == "file.example:1" and config.ca == "~/file-ca.crt"
    assert config.notifications.bell is False and config.notifications.private is True
    assert config.notifications.keywords == ("deploy", "outage")
    assert config.history.retention_days == 30.0
    assert config.ui.room == "lobby" and config.ui.theme == "textual-dark"


def test_a_profile_table_overrides_the_top_level(tmp_path: Path) -> None:
    config = load_client_config(write(tmp_path, FILE), required=True, profile="work", env={})
    assert config.server == "work.example:2" and config.ui.room == "ops"
    assert config.history.retention_days == 30.0  # inherited


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {"SECURECHAT_SERVER": "env.example:3", "SECURECHAT_NOTIFICATIONS_BELL": "yes",
           "SECURECHAT_HISTORY_RETENTION_DAYS": "7"}  # fmt: skip
    config = load_client_config(write(tmp_path, FILE), required=True, profile="work", env=env)
    assert config.server == "env.example:3"
    assert config.notifications.bell is True and config.history.retention_days == 7.0


def test_a_missing_default_file_means_defaults_but_a_named_one_is_an_error(
    tmp_path: Path,
) -> None:
    path, required = config_path(None, tmp_path, {})
    assert (path, required) == (tmp_path / "config.toml", False)
    assert load_client_config(path, required=False, profile="x", env={}).server == ""
    named, required = config_path(None, tmp_path, {"SECURECHAT_CONFIG": str(tmp_path / "n")})
    assert required
    with pytest.raises(ConfigError, match="file not found"):
        load_client_config(named, required=True, profile="x", env={})


@pytest.mark.parametrize(
    ("text", "path", "problem"),
    [
        ("[notifications]\nbell = 3", "notifications.bell", "true or false"),
        ("[notifications]\nbeep = true", "notifications.beep", "unknown key"),
        ("[history]\nretention_days = -1", "history.retention_days", "0 (keep"),
        ("[history]\nretention_days = 'long'", "history.retention_days", "a number"),
        ("[ui]\nroom = 'Bad Room!'", "ui.room", "not allowed"),
        ("[notifications]\nkeywords = [1]", "notifications.keywords", "list of words"),
        ("colour = 'red'", "colour", "unknown key"),
        ("server = 5", "server", "a string"),
        ("profiles = 1", "profiles", "tables"),
        ("this is not toml", "config.toml", "invalid TOML"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_client_config(write(tmp_path, text), required=True, profile="default", env={})
    assert path in info.value.message and problem in info.value.message


def test_the_cli_reports_a_bad_config_with_exit_78(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECURECHAT_HOME", str(tmp_path))
    monkeypatch.delenv("SECURECHAT_CONFIG", raising=False)
    write(tmp_path, "[ui]\ntheme = ''")
    assert dispatch(["who"]) == 78
    assert "ui.theme" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert dispatch(["--version"]) == 0
    assert capsys.readouterr().out.startswith("securechat, version ")


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (["--server", "flag.example:9"], {"SECURECHAT_SERVER": "env.example:8"}, "flag.example:9"),
        ([], {"SECURECHAT_SERVER": "env.example:8"}, "env.example:8"),
        ([], {}, "file.example:1"),
    ],
)
def test_flags_beat_the_environment_beat_the_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    from securechat.client import account
    from securechat.errors import Unavailable

    monkeypatch.setenv("SECURECHAT_HOME", str(tmp_path))
    for name in ("SERVER", "CONFIG", "CA", "CERT", "KEY"):
        monkeypatch.delenv(f"SECURECHAT_{name}", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    write(tmp_path, FILE)
    seen: list[str | None] = []

    def capture(options: account.Options, **kwargs: object) -> None:
        seen.append(options.server)
        raise Unavailable("stop here")

    monkeypatch.setattr(account, "connect", capture)
    assert dispatch([*flag, "who"]) == 69
    assert seen == [expected]
