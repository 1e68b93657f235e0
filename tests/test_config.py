"""Configuration: flags > SECURECHAT_* environment > TOML file > defaults; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from securechat.config import Config, load_config
from securechat.errors import ConfigError


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    cfg = load_config(None, None, env={})
    assert cfg == Config()
    assert (cfg.server.host, cfg.server.port, cfg.auth.bcrypt_cost) == ("127.0.0.1", 50051, 12)
    assert cfg.tls_path("cert") == Path("certs/server.crt")
    assert cfg.db_url == str(Path("data/securechat.db"))


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    file = toml(tmp_path, "[server]\nport = 1001\nhost = '::1'\n[auth]\nbcrypt_cost = 5\n")
    env = {"SECURECHAT_SERVER_PORT": "1002", "SECURECHAT_AUTH_BCRYPT_COST": "6"}
    flags = {"server.port": 1003, "server.host": None}  # None: the flag was not given

    assert load_config(file, None, env={}).server.port == 1001  # TOML > defaults
    from_env = load_config(file, None, env=env)
    assert (from_env.server.port, from_env.auth.bcrypt_cost) == (1002, 6)  # env > TOML
    cfg = load_config(file, flags, env=env)
    assert cfg.server.port == 1003  # flags > env
    assert cfg.server.host == "::1"  # an absent flag leaves the lower layers alone
    assert cfg.auth.bcrypt_cost == 6


def test_env_aliases_and_admin_bootstrap() -> None:
    env = {
        "SECURECHAT_ADMIN_USER": "boss",
        "SECURECHAT_ADMIN_PASSWORD": "s3cret password",
        "SECURECHAT_PORT": "1234",
        "SECURECHAT_TLS_BIND_CLIENT_CERT_TO_USER": "yes",
    }
    cfg = load_config(None, None, env=env)
    assert (cfg.auth.admin_user, cfg.auth.admin_password) == ("boss", "s3cret password")
    assert cfg.server.port == 1234
    assert cfg.tls.bind_client_cert_to_user is True
    assert "s3cret" not in repr(cfg)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("env", "path", "words"),
    [
        ({"SECURECHAT_SERVER_PORT": "abc"}, "server.port", "integer"),
        ({"SECURECHAT_SERVER_PORT": "70000"}, "server.port", "between"),
        ({"SECURECHAT_AUTH_BCRYPT_COST": "3"}, "auth.bcrypt_cost", "between"),
        ({"SECURECHAT_AUTH_TOKEN_TTL_S": "0"}, "auth.token_ttl_s", "at least"),
        (
            {"SECURECHAT_TLS_BIND_CLIENT_CERT_TO_USER": "maybe"},
            "tls.bind_client_cert_to_user",
            "true",
        ),
        ({"SECURECHAT_LOG_FORMAT": "xml"}, "log.format", "one of"),
        ({"SECURECHAT_BUS_URL": "kafka://x"}, "bus.url", "redis"),
        ({"SECURECHAT_ACCOUNTS_MAX_DEVICES": "0"}, "accounts.max_devices", "between"),
        ({"SECURECHAT_ACCOUNTS_MAX_DEVICES": "65"}, "accounts.max_devices", "between"),
        ({"SECURECHAT_ACCOUNTS_FAKE_SALT_SECRET": "short"}, "accounts.fake_salt_secret", "32"),
    ],
)
def test_bad_environment_values_name_the_key(env: dict[str, str], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, None, env=env)
    assert info.value.path == path
    assert f"config {path}:" in info.value.message and words in info.value.message


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("[server]\nprot = 1\n", "server.prot", "unknown setting"),
        ("[auth]\nbcrypt_cost = 'high'\n", "auth.bcrypt_cost", "integer"),
        ("[auth]\nbcrypt_cost = true\n", "auth.bcrypt_cost", "integer"),
        ("[server]\ndata_dir = 5\n", "server.data_dir", "path"),
        ("[nosuch]\nkey = 1\n", "nosuch", "unknown section"),
        ("port = 1\n", "port", "section"),
    ],
)
def test_bad_toml_values_name_the_key(tmp_path: Path, text: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(toml(tmp_path, text), None, env={})
    assert info.value.path == path
    assert words in info.value.message


def test_bad_flag_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"status.port": -1}, env={})
    assert info.value.path == "status.port"


def test_unreadable_or_invalid_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml: file not found"):
        load_config(tmp_path / "absent.toml", None, env={})
    with pytest.raises(ConfigError, match=r"server\.toml: invalid TOML"):
        load_config(toml(tmp_path, "[server\n"), None, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path, None, env={})  # a directory (tests run as root: no chmod 000)
