"""Atomic file writes with exact permissions: the keystore, profiles and the PKI share this.

The data goes to a temporary file in the same directory created with the final mode (0600 by
default, so a secret is never readable by others, not even briefly), is fsynced, then moved into
place: replaced, or linked when the name must not already exist. The directory is fsynced so the
new name survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600


def write_atomically(
    path: Path, data: bytes, *, mode: int = PRIVATE_MODE, overwrite: bool = True
) -> None:
    """Write ``data`` to ``path``. Without ``overwrite``, FileExistsError if ``path`` exists
    (and nothing changes). Other failures raise OSError."""
    directory = path.parent
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        if overwrite:
            os.replace(temporary, path)
        else:
            _link_new(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    _sync_directory(directory)


def _link_new(temporary: Path, path: Path) -> None:
    try:
        os.link(temporary, path)  # fails atomically when the name is taken
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: check, then rename (a narrow race, same result).
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temporary, path)


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
