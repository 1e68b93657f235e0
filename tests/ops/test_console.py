"""The server console: commands over a pipe in-process, and in a real server on a pipe or pty."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from securechat.node import Node
from securechat.ops.console import Console, LineReader
from securechat.pki import DevPki
from securechat_proto.v1 import rooms_pb2
from tests.conftest import ApiFactory
from tests.ops.conftest import open_stream
from tests.support.process import ServerProcess


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):
            os.close(fd)


async def test_console_commands_over_a_pipe(
    server: Node, connect: ApiFactory, pipe: tuple[int, int]
) -> None:
    bob = await open_stream(await connect("bob"))
    await bob.api.rooms.CreateRoom(rooms_pb2.CreateRoomRequest(name="ops", password="door key 1"),
                                   metadata=bob.api.md)  # fmt: skip
    output: list[str] = []
    stops: list[str] = []
    console = Console(server.view, lambda: stops.append("stop"), output.append)
    read_fd, write_fd = pipe
    session = asyncio.create_task(console.run(LineReader(read_fd)))
    os.write(write_fd, b"/help\n/clients\n/rooms\n/stats\n")
    os.write(
        write_fd, b"/kick bob 'flooding the lobby'\n/kick nobody\n/bogus\n\n/shutdown\n/help\n"
    )
    await asyncio.wait_for(session, 30)

    text = "\n".join(output)
    assert output[0] == "console ready: /help lists the commands"
    assert "  /kick USER [REASON] end USER's streams and sessions" in output
    assert "1 connected:" in output
    assert any(line.startswith("  bob/1  ipv") and "CN=client" in line for line in output)
    assert "  lobby  1 member" in output and "  ops  1 member  (password)" in output
    assert any(line.startswith("  streams 1  users 1  rooms 2") for line in output)
    assert "kicked bob: 1 stream(s) ended, 1 session(s) revoked" in output
    assert "error: no user named 'nobody'" in output
    assert "unknown command '/bogus': /help lists the commands" in output
    assert output[-1] == "shutting down" and stops == ["stop"]  # nothing runs after /shutdown
    assert "door key 1" not in text
    error = await bob.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("terminal", ["pty", "pipe"])
async def test_server_console_in_a_real_process(pki: DevPki, tmp_path: Path, terminal: str) -> None:
    """On a terminal the console starts by itself; on a pipe `--console` forces it on."""
    if terminal == "pty":
        controller, stdin = pty.openpty()
        args: tuple[str, ...] = ()
    else:
        stdin, controller = os.pipe()
        args = ("--console",)
    try:
        server = ServerProcess(pki.directory, tmp_path / "data", args=args, stdin=stdin)
        os.write(controller, b"/clients\n/rooms\n/shutdown\n")
        code = await asyncio.to_thread(server.wait, 60)
    finally:
        os.close(stdin)
        os.close(controller)
    assert code == 0, server.logs()[-2000:]
    assert server.lines[1:5] == ["console ready: /help lists the commands", "no clients connected",
                                 "no rooms", "shutting down"]  # fmt: skip
    assert "received /shutdown: shutting down gracefully" in server.logs()
