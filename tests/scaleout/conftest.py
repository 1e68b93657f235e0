"""Fixtures for scale-out tests: a fresh PostgreSQL database and a Redis key prefix per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.bus.redis_server import shared_redis_url
from tests.scaleout.procs import fresh_database


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async for dsn in fresh_database():
        yield dsn


@pytest.fixture
def redis_url() -> str:
    return shared_redis_url()
