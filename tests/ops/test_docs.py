"""docs/operations.md stays true: every config key is documented and the backup recipe works."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import get_type_hints

from securechat.config import ENV_ALIASES, Config
from securechat.node import Node
from tests.conftest import ApiFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_every_config_key_and_env_var_is_documented() -> None:
    text = DOC.read_text()
    hints = get_type_hints(Config)
    missing = []
    for section in dataclasses.fields(Config):
        for key in dataclasses.fields(hints[section.name]):
            row = f"| `{section.name}.{key.name}` |"
            env = f"SECURECHAT_{section.name.upper()}_{key.name.upper()}"
            if row not in text or env not in text:
                missing.append(f"{section.name}.{key.name}")
    missing += [alias for alias in ENV_ALIASES if alias not in text]
    assert not missing, f"docs/operations.md lacks {missing}"


async def test_vacuum_into_copies_a_running_servers_database(
    server: Node, connect: ApiFactory, tmp_path: Path
) -> None:
    await connect("alice")
    backup = tmp_path / "backup.db"
    with sqlite3.connect(server.config.db_url) as live:
        live.execute("VACUUM INTO ?", (str(backup),))
    live.close()
    copy = sqlite3.connect(backup)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT name FROM users").fetchall() == [("alice",)]
    finally:
        copy.close()
