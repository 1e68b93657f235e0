"""Clients that appear to come from other loopback addresses (127.0.0.2, 127.0.0.3, ...).

gRPC cannot choose a client's source address, so :class:`SourceProxy` listens on 127.0.0.1 and
forwards every connection to the server from the address it was given: TLS passes through
untouched (the server still sees the client certificate), only the peer address changes.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from securechat.pki import DevPki
from tests.support.net import Api, credentials


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class SourceProxy:
    def __init__(self, server_port: int, source: str) -> None:
        self.server_port = server_port
        self.source = source
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> SourceProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.server_port, local_addr=(self.source, 0)
            )
        except OSError:
            writer.close()
            return
        for task in (
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def api(self, pki: DevPki, cert: str = "client") -> Api:
        """An Api whose calls reach the server from this proxy's source address."""
        paths = pki.client(cert)
        channel = grpc.aio.secure_channel(
            f"localhost:{self.port}",
            credentials(pki.ca_cert, paths.cert, paths.key),
            options=[("grpc.use_local_subchannel_pool", 1)],
        )
        return Api(channel)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
