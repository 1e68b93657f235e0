"""The SQLite data folder (0700) and database files (0600) readable by the server's user only,
whatever the umask.

Ciphertexts, password hashes and session-token hashes live in these files. The folder is created
0700, or tightened when it already exists and is the server's own (not a shared folder such as
/tmp, which keeps its mode: a warning says so). The database file is created 0600 before SQLite
opens it; SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode, and
existing ones are tightened too.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("securechat.storage")

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int, what: str) -> None:
    info = path.stat()
    current = stat.S_IMODE(info.st_mode)
    if current & ~mode == 0:
        return
    if info.st_uid != os.geteuid() or (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
        log.warning("%s %s is readable by others (mode %o) and not the server's own: "
                    "keep the database in a folder of its own", what, path, current)  # fmt: skip
        return
    os.chmod(path, current & mode)
    log.info("restricted %s %s to its owner (mode %o, was %o)", what, path, current & mode,
             current)  # fmt: skip


def make_private(database: Path) -> None:
    """Create the database's folder and file for the owner alone (OSError when impossible)."""
    folder = database.parent
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    _tighten(folder, FOLDER_MODE, "data folder")
    os.close(os.open(database, os.O_CREAT | os.O_RDWR, FILE_MODE))
    for path in (database, *(database.with_name(database.name + s) for s in SIDE_FILES)):
        if path.exists():
            _tighten(path, FILE_MODE, "database file")
