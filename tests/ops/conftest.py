"""Fixtures for the operations tests: a status side-server on the test server, HTTP, streams."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from securechat.config import StatusConfig
from securechat.node import Node
from securechat.ops.status import StatusServer
from securechat.pki import CertificatePaths, DevPki
from tests.support.chat import ChatClient
from tests.support.net import Api, credentials


@pytest.fixture
async def status(server: Node) -> AsyncIterator[StatusServer]:
    """The status side-server of the `server` fixture, on a free loopback port."""
    side = StatusServer(server.view, server.metrics, StatusConfig(host="127.0.0.1", port=0))
    await side.start()
    yield side
    await side.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def open_stream(api: Api) -> ChatClient:
    """A Chat stream that the server has attached (its `opened` event has arrived)."""
    client = ChatClient(api)
    await client.wait_until(lambda: any(e.WhichOneof("event") == "opened" for e in client.events))
    return client


def copy_pki(pki: DevPki, target: Path) -> DevPki:
    """A private copy of the session PKI, for tests that change files in the certs folder."""
    shutil.copytree(pki.directory, target)
    moved = {name: CertificatePaths(target / p.cert.name, target / p.key.name)
             for name, p in pki.clients.items()}  # fmt: skip
    return DevPki(
        directory=target,
        ca_cert=target / pki.ca_cert.name,
        ca_key=target / pki.ca_key.name,
        server_cert=target / pki.server_cert.name,
        server_key=target / pki.server_key.name,
        revocation_list=target / pki.revocation_list.name,
        clients=moved,
        foreign_ca_cert=None,
    )


def fresh_channel(port: int, ca: Path, cert: Path, key: Path) -> grpc.aio.Channel:
    """A channel with its own connection (no subchannel shared with earlier channels)."""
    return grpc.aio.secure_channel(
        f"localhost:{port}",
        credentials(ca, cert, key),
        options=[("grpc.use_local_subchannel_pool", 1)],
    )


def free_port() -> int:
    """A loopback port free right now (for the status port of a server process, which cannot
    be 0: 0 turns the status page off)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
