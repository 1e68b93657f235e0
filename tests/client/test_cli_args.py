"""Argument handling and the error dispatcher, without a server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from securechat.client.cli import dispatch
from securechat.client.passwords import SecretSource
from securechat.client.rpc.channel import check_server, resolve_path
from securechat.errors import InvalidArgument


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PASSWORD", "SERVER", "CA", "CERT", "KEY", "PROFILE", "ROOM_PASSWORD"):
        monkeypatch.delenv(f"SECURECHAT_{name}", raising=False)
    monkeypatch.setenv("SECURECHAT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["send", "hi"], 2, "exactly one of --to USER or --room ROOM"),
        (["send", "--to", "bob", "--room", "lobby", "hi"], 2, "exactly one of"),
        (["send", "--to", "Bob!", "hi"], 64, "username 'Bob!' is not allowed"),
        (["--server", "nohost", "who"], 64, "bad --server 'nohost'"),
        (["--profile", "../x", "who"], 64, "bad profile name"),
        (["who"], 77, "CA certificate"),  # no ./certs here
        (["inbox", "--wait", "-1"], 2, "--wait"),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_bad_invocations_fail_with_one_line_and_a_code(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dispatch(args) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert dispatch(["--debug", "--server", "nohost", "who"]) == 64
    assert "Traceback" in capsys.readouterr().err


def test_help_needs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert dispatch(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("register", "login", "logout", "send", "inbox", "rooms", "who", "keys", "chat"):
        assert command in out


def test_certificate_paths_follow_option_env_profile_default(tmp_path: Path) -> None:
    env = {"SECURECHAT_CA": "/env/ca.crt"}
    assert resolve_path("ca", "/opt/ca.crt", "/prof/ca.crt", env) == Path("/opt/ca.crt")
    assert resolve_path("ca", None, "/prof/ca.crt", env) == Path("/env/ca.crt")
    assert resolve_path("ca", None, "/prof/ca.crt", {}) == Path("/prof/ca.crt")
    assert resolve_path("key", None, "", {}) == tmp_path / "certs" / "client.key"


@pytest.mark.parametrize("server", ["localhost:50051", "10.0.0.1:1", "[::1]:443"])
def test_valid_server_addresses(server: str) -> None:
    assert check_server(server) == server


def test_password_comes_from_env_then_stdin_never_argv() -> None:
    assert SecretSource(env={"SECURECHAT_PASSWORD": "from-env"}).account_password() == "from-env"
    piped = SecretSource(password_stdin=True, env={}, stdin=io.StringIO("from-stdin\nrest\n"))
    assert piped.account_password() == "from-stdin"
    assert piped.account_password() == "from-stdin"  # read once
    with pytest.raises(InvalidArgument, match="SECURECHAT_PASSWORD"):
        SecretSource(env={}, stdin=io.StringIO("")).account_password()
    with pytest.raises(InvalidArgument, match="SECURECHAT_ROOM_PASSWORD"):
        SecretSource(env={}, stdin=io.StringIO("")).room_password("vault")
