"""The client's configuration file: connection, notifications, look and history retention.

TOML, read from ``--config FILE``, else ``$SECURECHAT_CONFIG``, else
``$SECURECHAT_HOME/config.toml`` (a missing default file means defaults). Precedence, highest
first: command-line flags > ``SECURECHAT_*`` environment > this file (a ``[profiles.NAME]``
table over the top level) > what the profile remembered at login > built-in defaults::

    server = "chat.example.org:50051"     # also ca, cert, key (paths; ~ is expanded)
    ca = "~/.config/securechat/example-ca.crt"

    [notifications]
    bell = true            # ring the terminal bell for what highlights
    private = true         # private messages highlight
    mentions = true        # @yourname highlights
    keywords = ["deploy"]  # these words highlight too
    title = true           # unread count in the terminal title

    [ui]
    theme = "textual-dark"
    room = "lobby"         # the room the chat opens in
    members = true         # show the member list of rooms

    [history]
    retention_days = 365   # 0 keeps everything

    [profiles.work]        # overrides for --profile work
    server = "chat.work.example:50051"

Environment: ``SECURECHAT_SERVER``/``_CA``/``_CERT``/``_KEY`` and ``SECURECHAT_<SECTION>_<KEY>``
(``SECURECHAT_HISTORY_RETENTION_DAYS=30``, ``SECURECHAT_NOTIFICATIONS_BELL=false``). Every
error names the key path and what is wrong.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from securechat.client.events import check_room
from securechat.config import _convert as convert_value  # the server's value rules
from securechat.errors import ConfigError, InvalidArgument

CONFIG_ENV = "SECURECHAT_CONFIG"
CONNECTION_KEYS = ("server", "ca", "cert", "key")


@dataclass(frozen=True)
class NotificationsConfig:
    bell: bool = True
    private: bool = True
    mentions: bool = True
    keywords: tuple[str, ...] = ()
    title: bool = True


@dataclass(frozen=True)
class UiConfig:
    theme: str = "textual-dark"
    room: str = "lobby"
    members: bool = True


@dataclass(frozen=True)
class HistoryConfig:
    retention_days: float = 365.0


@dataclass(frozen=True)
class ClientConfig:
    """What the file (and the environment) said; connection values empty when not given."""

    server: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    source: str = ""  # the file read, if one was


def config_path(explicit: str | None, home: Path, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The file to read and whether it must exist (named by the user)."""
    named = explicit or env.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser(), True
    return home / "config.toml", False


def load_client_config(
    path: Path, *, required: bool, profile: str, env: Mapping[str, str] = os.environ
) -> ClientConfig:
    """Read ``path`` (defaults when it is missing and not ``required``), then the environment."""
    data: dict[str, Any] = {}
    source = ""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        source = str(path)
    except FileNotFoundError:
        if required:
            raise ConfigError(str(path), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML: {exc}") from None
    profiles = data.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError("profiles", "expected [profiles.NAME] tables")
    chosen = profiles.get(profile, {})
    if not isinstance(chosen, dict):
        raise ConfigError(f"profiles.{profile}", "expected a table")
    merged = _merge(data, chosen)
    for name in CONNECTION_KEYS:
        value = env.get(f"SECURECHAT_{name.upper()}")
        if value:
            merged[name] = value
    for section in ("notifications", "ui", "history"):
        for key in _fields(section):
            value = env.get(f"SECURECHAT_{section.upper()}_{key.upper()}")
            if value is not None:
                merged.setdefault(section, {})[key] = value
    return _build(merged, source)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _fields(section: str) -> list[str]:
    kind = get_type_hints(ClientConfig)[section]
    return [f.name for f in dataclasses.fields(kind)]


def _build(data: dict[str, Any], source: str) -> ClientConfig:
    values: dict[str, Any] = {"source": source}
    for name in CONNECTION_KEYS:
        if name in data:
            values[name] = _convert(name, data.pop(name), str)
    hints = get_type_hints(ClientConfig)
    for section in ("notifications", "ui", "history"):
        raw = data.pop(section, {})
        if not isinstance(raw, dict):
            raise ConfigError(section, "expected a [section] table")
        kind = hints[section]
        types = get_type_hints(kind)
        known = {f.name for f in dataclasses.fields(kind)}
        for key in raw:
            if key not in known:
                known_keys = ", ".join(sorted(known))
                raise ConfigError(f"{section}.{key}", f"unknown key (known: {known_keys})")
        values[section] = kind(
            **{k: _convert(f"{section}.{k}", v, types[k]) for k, v in raw.items()}
        )
    for key in data:
        raise ConfigError(key, "unknown key (see docs/client.md, 'Configuration file')")
    config = ClientConfig(**values)
    _validate(config)
    return config


def _convert(path: str, raw: object, kind: object) -> object:
    """The server configuration's rules for one value, plus lists of words."""
    if kind == tuple[str, ...]:
        if isinstance(raw, str):
            raw = [word for word in raw.split(",") if word.strip()]
        if not isinstance(raw, list) or not all(isinstance(w, str) and w.strip() for w in raw):
            raise ConfigError(path, f"expected a list of words, got {raw!r}")
        return tuple(w.strip() for w in raw)
    assert isinstance(kind, type)
    return convert_value(path, raw, kind)


def _validate(config: ClientConfig) -> None:
    if config.history.retention_days < 0:
        raise ConfigError("history.retention_days", "must be 0 (keep everything) or positive")
    if not config.ui.theme.strip():
        raise ConfigError("ui.theme", "must name a theme")
    try:
        check_room(config.ui.room)
    except InvalidArgument as exc:
        raise ConfigError("ui.room", exc.message) from None
