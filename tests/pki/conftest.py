"""Fixtures for the PKI tests: a fixed clock and a throwaway PKI per test."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from securechat.pki import DevPki, make_dev_pki

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def dev_pki(tmp_path: Path) -> DevPki:
    return make_dev_pki(
        tmp_path / "certs",
        clients=("client", "mallory"),
        hosts=("chat.example.com", "10.0.0.5"),
        now=NOW,
        expired=("old",),
        foreign=("stranger",),
        revoked=("mallory",),
    )
