"""Typed server configuration: flags > SECURECHAT_* environment > TOML file > defaults.

Each section is a frozen dataclass. Every value is validated on load and an error names its key
path (``config chat.max_message_bytes: must be at least 1024``). Environment variables are
``SECURECHAT_<SECTION>_<KEY>`` (``SECURECHAT_SERVER_PORT=50052``) plus a few short aliases
(``SECURECHAT_DB``, ``SECURECHAT_BUS``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from securechat.errors import ConfigError


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("data")
    certs_dir: Path = Path("certs")
    # Seconds a graceful shutdown waits for streams to finish after the reconnect hint.
    grace_period_s: float = 5.0
    # Seconds between SIGTERM and the stop: health NOT_SERVING and /healthz 503 while new
    # connections are still served, so a load balancer drains the node (0: stop at once).
    drain_period_s: float = 0.0
    max_receive_bytes: int = 64 * 1024 + 4096
    max_concurrent_streams: int = 100
    keepalive_time_s: int = 45
    keepalive_timeout_s: int = 20
    # SO_REUSEPORT worker processes sharing the port (scale-out on one host).
    workers: int = 1
    node: str = ""


@dataclass(frozen=True)
class TlsConfig:
    # Empty means <server.certs_dir>/ca.crt, server.crt, server.key, revoked.json.
    ca: str = ""
    cert: str = ""
    key: str = ""
    revocation_list: str = ""
    bind_client_cert_to_user: bool = False
    # Seconds between checks of the certificate files for rotation.
    reload_interval_s: float = 2.0


@dataclass(frozen=True)
class AuthConfig:
    bcrypt_cost: int = 12
    # Concurrent bcrypt computations (each occupies a thread); the rest queue.
    # 0: one less than the number of cores, so chat keeps a core during a login storm.
    bcrypt_workers: int = 0
    # Password checks waiting per lane (known logins / everything else); past it RESOURCE_EXHAUSTED.
    hash_queue: int = 64
    # Of those, at most this many from one source (an IPv4 address or an IPv6 /64).
    hash_queue_per_source: int = 32
    token_ttl_s: int = 24 * 3600
    # Successful logins per account (token bucket: this many per hour, bursts of login_burst).
    logins_per_account_per_hour: int = 60
    login_burst: int = 10
    # Failures of one account from one source before that pair is locked for lockout_s.
    max_failures_per_pair: int = 10
    # Consecutive failures of one account after which it accepts logins only from sources it
    # logged in from before, until failure_window_s passes (NIST SP 800-63B: at most 100).
    max_failures_per_user: int = 100
    # Failures from one source after which its logins to accounts it never logged in to wait.
    max_failures_per_peer: int = 20
    # Consecutive failures of one account after which its logins (from unknown sources) wait.
    login_delay_after_failures: int = 3
    # The longest such growing delay.
    max_login_delay_s: float = 10.0
    failure_window_s: float = 900.0
    lockout_s: float = 300.0
    # How long a source that an account logged in from stays on its allow-list.
    known_source_days: float = 30.0
    # Who may register: open (anyone), invite (a one-use code from an admin), certificate (a
    # client certificate whose CN is the username).
    registration: str = "open"
    registrations_per_peer_per_hour: int = 30
    # For the whole server (bursts of a quarter of it), whatever the addresses.
    registrations_per_hour: int = 200
    admin_user: str = ""
    admin_password: str = dataclasses.field(default="", repr=False)


@dataclass(frozen=True)
class LimitsConfig:
    """Per-user limits on rooms and on the key directory."""

    rooms_per_user: int = 50
    room_creations_per_hour: int = 20
    room_list_page: int = 100
    prekey_claims_per_hour: int = 1200
    one_time_prekeys_per_target_per_hour: int = 60
    prekey_reclaim_window_s: float = 86400.0


@dataclass(frozen=True)
class AccountsConfig:
    """Accounts owning their devices."""

    # The most certified devices one account may have (at most 64, a signed list's limit).
    max_devices: int = 10
    # Keys the stable fake login salt served for unknown users (at least 32 characters). Empty:
    # a random secret kept in <server.data_dir>/login-salt.secret (set it on every node that
    # shares a database, so every node answers alike).
    fake_salt_secret: str = dataclasses.field(default="", repr=False)


@dataclass(frozen=True)
class ChatConfig:
    default_room: str = "lobby"
    retention_days: float = 30.0
    max_message_bytes: int = 64 * 1024
    max_recipients: int = 1000
    send_rate_per_s: float = 20.0
    send_burst: int = 60
    # Events queued for one stream before it is cut off with RESOURCE_EXHAUSTED.
    stream_queue_bound: int = 2000
    # Bytes queued for one stream before it is cut off the same way (slow_consumer).
    stream_queue_max_bytes: int = 8 * 1024 * 1024
    # Mailbox entries read per replay page on (re)connect.
    replay_page: int = 500
    # The most one batch the server sends may hold, in bytes: a Chat stream frame, a Fetch page,
    # a replay page. Below the client's receive limit; one message of max_message_bytes fits.
    max_batch_bytes: int = 1024 * 1024
    # Quotas on undelivered mailbox entries per recipient device, and on one sending user's
    # share of them (0: no limit). A send over them is refused with RESOURCE_EXHAUSTED
    # (mailbox_full) for that device.
    mailbox_max_entries: int = 20_000
    mailbox_max_bytes: int = 64 * 1024 * 1024
    mailbox_sender_max_entries: int = 5_000
    mailbox_sender_max_bytes: int = 16 * 1024 * 1024
    # A send retried with the same client_message_id from the same device within this many
    # seconds is answered with the first result instead of being stored again (0: never);
    # at most this many recent sends per device are remembered.
    dedup_window_s: float = 7 * 86_400.0
    dedup_max_per_device: int = 10_000
    # Presence changes go to co-members of rooms up to this size (and private contacts);
    # in bigger rooms they would cost every connect a message to every member.
    presence_room_limit: int = 500


@dataclass(frozen=True)
class StorageConfig:
    # Empty: SQLite at <server.data_dir>/securechat.db. Or postgresql://..., sqlite:///path.
    db: str = ""
    sqlite_synchronous: str = "FULL"


@dataclass(frozen=True)
class BusConfig:
    # "memory:" (in-process) or redis://host:port/db
    url: str = "memory:"


@dataclass(frozen=True)
class StatusConfig:
    host: str = "127.0.0.1"
    # 0 disables the status page and metrics.
    port: int = 8080
    # Required when host is not a loopback address; sent as `Authorization: Bearer ...`.
    admin_token: str = dataclasses.field(default="", repr=False)


@dataclass(frozen=True)
class LogConfig:
    format: str = "plain"
    level: str = "INFO"
    # Log file; "" = stderr, or <data_dir>/server.log while the console has the terminal.
    file: str = ""
    # Lines of one kind (same logger, level and message, or same RPC method and status) per
    # second before the rest are counted and summed up in one line; 0 = no limit.
    repeat_limit_per_s: float = 10.0


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    log: LogConfig = field(default_factory=LogConfig)

    # ---- derived paths --------------------------------------------------------------------
    def tls_path(self, name: str) -> Path:
        explicit = {"ca": self.tls.ca, "cert": self.tls.cert, "key": self.tls.key}.get(name, "")
        if name == "revocation_list":
            explicit = self.tls.revocation_list
        if explicit:
            return Path(explicit)
        default = {
            "ca": "ca.crt",
            "cert": "server.crt",
            "key": "server.key",
            "revocation_list": "revoked.json",
        }[name]
        return self.server.certs_dir / default

    @property
    def db_url(self) -> str:
        return self.storage.db or str(self.server.data_dir / "securechat.db")


ENV_ALIASES = {
    "SECURECHAT_DB": ("storage", "db"),
    "SECURECHAT_BUS": ("bus", "url"),
    "SECURECHAT_ADMIN_USER": ("auth", "admin_user"),
    "SECURECHAT_ADMIN_PASSWORD": ("auth", "admin_password"),
    "SECURECHAT_HOST": ("server", "host"),
    "SECURECHAT_PORT": ("server", "port"),
    "SECURECHAT_DATA_DIR": ("server", "data_dir"),
    "SECURECHAT_CERTS_DIR": ("server", "certs_dir"),
}

_CHOICES = {
    ("log", "format"): {"plain", "json"},
    ("log", "level"): {"DEBUG", "INFO", "WARNING", "ERROR"},
    ("storage", "sqlite_synchronous"): {"OFF", "NORMAL", "FULL", "EXTRA"},
    ("auth", "registration"): {"open", "invite", "certificate"},
}


def _convert(path: str, raw: object, kind: type) -> object:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return raw.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(path, f"expected true or false, got {raw!r}")
    if kind is int:
        if isinstance(raw, bool):
            raise ConfigError(path, f"expected an integer, got {raw!r}")
        try:
            return int(str(raw), 10) if isinstance(raw, str) else int(raw)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ConfigError(path, f"expected an integer, got {raw!r}") from None
    if kind is float:
        if isinstance(raw, bool):
            raise ConfigError(path, f"expected a number, got {raw!r}")
        try:
            return float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(path, f"expected a number, got {raw!r}") from None
    if kind is Path:
        if not isinstance(raw, str | Path) or not str(raw):
            raise ConfigError(path, f"expected a path, got {raw!r}")
        return Path(raw)
    if kind is str:
        if not isinstance(raw, str):
            raise ConfigError(path, f"expected a string, got {raw!r}")
        return raw
    raise ConfigError(path, f"unsupported type {kind}")  # pragma: no cover


def _validate(cfg: Config) -> None:
    def need(ok: bool, path: str, problem: str) -> None:
        if not ok:
            raise ConfigError(path, problem)

    need(0 <= cfg.server.port <= 65535, "server.port", "must be between 0 and 65535")
    need(0 <= cfg.status.port <= 65535, "status.port", "must be between 0 and 65535")
    need(cfg.server.grace_period_s >= 0, "server.grace_period_s", "must not be negative")
    need(cfg.server.drain_period_s >= 0, "server.drain_period_s", "must not be negative")
    need(cfg.log.repeat_limit_per_s >= 0, "log.repeat_limit_per_s", "must not be negative")
    need(cfg.server.max_receive_bytes >= 1024, "server.max_receive_bytes", "must be at least 1024")
    need(cfg.server.workers >= 1, "server.workers", "must be at least 1")
    need(cfg.server.keepalive_time_s >= 10, "server.keepalive_time_s", "must be at least 10")
    need(4 <= cfg.auth.bcrypt_cost <= 31, "auth.bcrypt_cost", "must be between 4 and 31")
    need(cfg.auth.bcrypt_workers >= 0, "auth.bcrypt_workers", "must be 0 (auto) or more")
    need(cfg.auth.token_ttl_s >= 1, "auth.token_ttl_s", "must be at least 1")
    _validate_auth(cfg.auth, need)
    _validate_limits(cfg.limits, need)
    need(1 <= cfg.accounts.max_devices <= 64, "accounts.max_devices", "must be between 1 and 64")
    need(
        not cfg.accounts.fake_salt_secret or len(cfg.accounts.fake_salt_secret.encode()) >= 32,
        "accounts.fake_salt_secret",
        "must be empty (generated) or at least 32 characters",
    )
    need(cfg.chat.max_message_bytes >= 256, "chat.max_message_bytes", "must be at least 256")
    need(cfg.chat.send_rate_per_s > 0, "chat.send_rate_per_s", "must be positive")
    need(cfg.chat.send_burst >= 1, "chat.send_burst", "must be at least 1")
    need(cfg.chat.stream_queue_bound >= 10, "chat.stream_queue_bound", "must be at least 10")
    _validate_batches(cfg.chat, need)
    need(cfg.chat.retention_days > 0, "chat.retention_days", "must be positive")
    need(cfg.chat.max_recipients >= 1, "chat.max_recipients", "must be at least 1")
    need(cfg.chat.presence_room_limit >= 0, "chat.presence_room_limit", "must not be negative")
    need(
        cfg.bus.url == "memory:" or cfg.bus.url.startswith(("redis://", "rediss://")),
        "bus.url",
        "must be memory: or redis://HOST:PORT",
    )
    for (section, key), allowed in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        need(value in allowed, f"{section}.{key}", f"must be one of {', '.join(sorted(allowed))}")


Need = Callable[[bool, str, str], None]


def _validate_auth(auth: AuthConfig, need: Need) -> None:
    at_least_one = (
        "hash_queue",
        "hash_queue_per_source",
        "logins_per_account_per_hour",
        "login_burst",
        "max_failures_per_pair",
        "max_failures_per_user",
        "max_failures_per_peer",
        "registrations_per_peer_per_hour",
        "registrations_per_hour",
    )
    for key in at_least_one:
        need(getattr(auth, key) >= 1, f"auth.{key}", "must be at least 1")
    need(
        auth.max_failures_per_user <= 100,
        "auth.max_failures_per_user",
        "must be at most 100 (NIST SP 800-63B section 5.2.2)",
    )
    need(
        auth.login_delay_after_failures >= 0,
        "auth.login_delay_after_failures",
        "must not be negative",
    )
    need(auth.max_login_delay_s >= 0, "auth.max_login_delay_s", "must not be negative")
    need(auth.failure_window_s > 0, "auth.failure_window_s", "must be positive")
    need(auth.lockout_s >= 0, "auth.lockout_s", "must not be negative")
    need(auth.known_source_days >= 0, "auth.known_source_days", "must not be negative")


def _validate_limits(limits: LimitsConfig, need: Need) -> None:
    for f in dataclasses.fields(limits):
        value = getattr(limits, f.name)
        if f.name == "prekey_reclaim_window_s":
            need(value >= 0, f"limits.{f.name}", "must not be negative")
        else:
            need(value >= 1, f"limits.{f.name}", "must be at least 1")


# The client's receive limit (client/rpc/channel.py MAX_RECEIVE_BYTES): every batch stays below.
CLIENT_RECEIVE_BYTES = 4 * 1024 * 1024
BATCH_MARGIN = 64 * 1024  # room for the envelopes of a batch's entries
ENTRY_MARGIN = 4096  # room for one entry's envelope around its ciphertext


def _validate_batches(chat: ChatConfig, need: Need) -> None:
    """Batches are bounded in bytes, a message of the maximum size fits every batch and every
    quota, and per-sender quotas lie within the device's."""
    most = CLIENT_RECEIVE_BYTES - BATCH_MARGIN
    least = chat.max_message_bytes + ENTRY_MARGIN
    need(
        least <= chat.max_batch_bytes <= most,
        "chat.max_batch_bytes",
        f"must be between {least} (chat.max_message_bytes plus {ENTRY_MARGIN}) and {most}",
    )
    need(
        chat.stream_queue_max_bytes >= 2 * chat.max_batch_bytes,
        "chat.stream_queue_max_bytes",
        "must be at least twice chat.max_batch_bytes",
    )
    for key in ("max_entries", "max_bytes", "sender_max_entries", "sender_max_bytes"):
        need(
            getattr(chat, f"mailbox_{key}") >= 0,
            f"chat.mailbox_{key}",
            "must be 0 (no limit) or more",
        )
    for key in ("max_bytes", "sender_max_bytes"):
        value = getattr(chat, f"mailbox_{key}")
        need(
            not value or value >= chat.max_message_bytes,
            f"chat.mailbox_{key}",
            "must be 0 (no limit) or at least chat.max_message_bytes",
        )
    for key in ("entries", "bytes"):
        device, sender = (
            getattr(chat, f"mailbox_max_{key}"),
            getattr(chat, f"mailbox_sender_max_{key}"),
        )
        need(
            not device or sender <= device,
            f"chat.mailbox_sender_max_{key}",
            f"must be at most chat.mailbox_max_{key}",
        )
    need(chat.dedup_window_s >= 0, "chat.dedup_window_s", "must not be negative")
    need(chat.dedup_max_per_device >= 1, "chat.dedup_max_per_device", "must be at least 1")


def load_config(
    file: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the Config. ``overrides`` maps "section.key" to values from command-line flags."""
    env = os.environ if env is None else env
    layers: dict[tuple[str, str], tuple[str, object]] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(str(file), "file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(file), f"cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"invalid TOML: {exc}") from None
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(section, "expected a [section] table")
            for key, value in values.items():
                layers[(section, key)] = (f"{section}.{key}", value)
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = get_type_hints(Config)
    for section_name in sections:
        section_cls = hints[section_name]
        for f in dataclasses.fields(section_cls):
            var = f"SECURECHAT_{section_name.upper()}_{f.name.upper()}"
            if var in env:
                layers[(section_name, f.name)] = (var, env[var])
    for var, target in ENV_ALIASES.items():
        if var in env and env[var] != "":
            layers[target] = (var, env[var])
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        layers[(section, key)] = (dotted, value)

    built: dict[str, Any] = {}
    for section_name in sections:
        section_cls = hints[section_name]
        section_hints = get_type_hints(section_cls)
        section_values: dict[str, object] = {}
        for (section, key), (source, raw) in layers.items():
            if section != section_name:
                continue
            if key not in section_hints:
                raise ConfigError(f"{section}.{key}", f"unknown setting (from {source})")
            kind = section_hints[key]
            if isinstance(kind, types.UnionType):  # pragma: no cover - no optional fields yet
                kind = next(a for a in kind.__args__ if a is not type(None))
            section_values[key] = _convert(f"{section}.{key}", raw, kind)
        built[section_name] = section_cls(**section_values)
    for section, _key in layers:
        if section not in sections:
            raise ConfigError(section, "unknown section")
    cfg = Config(**built)
    _validate(cfg)
    return cfg
