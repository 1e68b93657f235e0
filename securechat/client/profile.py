"""The client profile: a private folder holding settings, the session token and the keystore.

Layout (the folder is mode 0700, every file 0600)::

    $SECURECHAT_HOME/profiles/<name>/
        settings.json   server address, certificate paths, user, device id
        session.json    the session token and its expiry
        keystore.bin    the encrypted end-to-end state (securechat.crypto.keystore)
        lock            held (flock) by the one client process using the profile

``SECURECHAT_HOME`` defaults to ``$XDG_CONFIG_HOME/securechat`` (``~/.config/securechat``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from securechat.atomicfile import write_atomically
from securechat.errors import FailedPrecondition, InvalidArgument

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DIR_MODE = 0o700
FILE_MODE = 0o600


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    """Where profiles live: SECURECHAT_HOME, else the user's config folder."""
    explicit = env.get("SECURECHAT_HOME")
    if explicit:
        return Path(explicit).expanduser()
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "securechat"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600."""
    write_atomically(path, data, mode=FILE_MODE)


@dataclass
class Settings:
    """What the profile remembers between runs (no secrets)."""

    server: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    user: str = ""
    device_id: int = 0


@dataclass
class SessionToken:
    token: str
    expires_at_ms: int
    user: str
    device_id: int
    role: str = "user"


@dataclass
class Profile:
    """One named profile folder; create it with :meth:`open`."""

    name: str
    directory: Path
    settings: Settings = field(default_factory=Settings)
    _lock: IO[bytes] | None = None

    @classmethod
    def open(cls, name: str, home: Path | None = None) -> Profile:
        """Open (creating if needed) the profile ``name`` with private permissions."""
        if not PROFILE_NAME.match(name):
            raise InvalidArgument(
                f"bad profile name {name!r}: use letters, digits, '_', '-' or '.' (max 64)"
            )
        root = home if home is not None else default_home()
        directory = root / "profiles" / name
        directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        for folder in (root, root / "profiles", directory):
            os.chmod(folder, DIR_MODE)
        profile = cls(name, directory)
        profile.settings = profile._read_settings()
        return profile

    # -- files ---------------------------------------------------------------------------

    @property
    def settings_path(self) -> Path:
        return self.directory / "settings.json"

    @property
    def session_path(self) -> Path:
        return self.directory / "session.json"

    @property
    def keystore_path(self) -> Path:
        return self.directory / "keystore.bin"

    @property
    def lock_path(self) -> Path:
        return self.directory / "lock"

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(
                f"{path} is unreadable or damaged ({exc.__class__.__name__}): delete it and "
                "log in again"
            ) from exc
        if not isinstance(data, dict):
            raise FailedPrecondition(f"{path} is damaged: delete it and log in again")
        return data

    def _read_settings(self) -> Settings:
        data = self._read_json(self.settings_path) or {}
        known = {k: v for k, v in data.items() if k in Settings.__dataclass_fields__}
        try:
            return Settings(**known)
        except TypeError as exc:
            raise FailedPrecondition(f"{self.settings_path} is damaged: delete it") from exc

    def save_settings(self) -> None:
        payload = json.dumps(asdict(self.settings), indent=2, sort_keys=True) + "\n"
        write_private(self.settings_path, payload.encode("utf-8"))

    def load_session(self) -> SessionToken | None:
        data = self._read_json(self.session_path)
        if data is None:
            return None
        try:
            return SessionToken(**data)
        except TypeError as exc:
            raise FailedPrecondition(
                f"{self.session_path} is damaged: run `securechat login USER`"
            ) from exc

    def save_session(self, session: SessionToken) -> None:
        write_private(self.session_path, json.dumps(asdict(session)).encode("utf-8"))

    def clear_session(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.session_path.unlink()

    def has_keystore(self) -> bool:
        return self.keystore_path.exists()

    # -- the one-client lock ---------------------------------------------------------------

    def lock(self) -> None:
        """Take the profile for this process, or fail clearly if another client holds it."""
        if self._lock is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        handle = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = handle.read().decode("ascii", "replace").strip() or "?"
            handle.close()
            raise FailedPrecondition(
                f"profile {self.name!r} is in use by another securechat process (pid {holder}): "
                "close it, or use another --profile"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode("ascii"))
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
