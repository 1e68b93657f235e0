"""Atomic writes keep exact permissions, never leave temporary files and never clobber by
accident."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from securechat.atomicfile import write_atomically


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_by_default_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_public_mode_is_exact(tmp_path: Path) -> None:
    target = tmp_path / "cert.pem"
    write_atomically(target, b"pem", mode=0o644)
    assert mode(target) == 0o644


def test_refuses_to_overwrite_when_asked_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_atomically(target, b"original")
    with pytest.raises(FileExistsError):
        write_atomically(target, b"new", overwrite=False)
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
