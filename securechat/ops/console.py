"""The server console: operator commands typed into the server's terminal (/clients, /kick, …).

``securechat-server`` starts it when stdin is a terminal (or with ``--console``). Lines are read
without blocking the event loop: the loop watches the file descriptor and each ready read takes
what is there, so the descriptor's blocking mode (shared with stdout on a terminal) is never
changed. Output goes through a ``write`` callable, one line at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import time
from collections.abc import Awaitable, Callable

from securechat.errors import SecureChatError
from securechat.ops.snapshot import format_duration
from securechat.services.view import NodeView

log = logging.getLogger("securechat.console")

HELP = """commands:
  /clients            connected clients (user, device, peer, certificate, since)
  /rooms              rooms with member counts
  /stats              uptime, streams, users, messages
  /kick USER [REASON] end USER's streams and sessions
  /shutdown           stop the server gracefully
  /help               this list"""


class LineReader:
    """Lines from a file descriptor, read as the event loop reports it readable."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._buffer = b""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._ready)

    def _ready(self) -> None:
        try:
            chunk = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            if self._buffer:
                self._lines.put_nowait(self._buffer.decode("utf-8", "replace"))
                self._buffer = b""
            self._lines.put_nowait(None)
            self.close()
            return
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            self._lines.put_nowait(raw.decode("utf-8", "replace").rstrip("\r"))

    async def readline(self) -> str | None:
        """The next line, or None at end of input."""
        return await self._lines.get()

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.fd)


class Console:
    """Runs operator commands against a running node."""

    def __init__(
        self,
        view: NodeView,
        shutdown: Callable[[], object],
        write: Callable[[str], object],
    ) -> None:
        self.view = view
        self.shutdown = shutdown
        self.write = write
        self.commands: dict[str, Callable[[list[str]], Awaitable[None]]] = {
            "/clients": self.clients,
            "/rooms": self.rooms,
            "/stats": self.stats,
            "/kick": self.kick,
            "/shutdown": self.stop_server,
            "/help": self.help,
        }

    async def run(self, reader: LineReader) -> None:
        """Serve commands until end of input or /shutdown."""
        self.write("console ready: /help lists the commands")
        try:
            while (line := await reader.readline()) is not None:
                if not await self.execute(line):
                    break
        finally:
            reader.close()

    async def execute(self, line: str) -> bool:
        """Run one line; False once the console should stop (after /shutdown)."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            self.write(f"cannot parse that line: {exc}")
            return True
        if not words:
            return True
        name, args = words[0].lower(), words[1:]
        command = self.commands.get(name)
        if command is None:
            self.write(f"unknown command {words[0][:40]!r}: /help lists the commands")
            return True
        try:
            await command(args)
        except SecureChatError as err:
            self.write(f"error: {err.message}")
        except Exception:
            log.exception("console command %s failed", name)
            self.write(f"error: {name} failed (see the server log)")
        return name != "/shutdown"

    async def help(self, args: list[str]) -> None:
        for line in HELP.splitlines():
            self.write(line)

    async def clients(self, args: list[str]) -> None:
        clients = self.view.clients()
        if not clients:
            self.write("no clients connected")
            return
        now_ms = self.view.now_ms()
        self.write(f"{len(clients)} connected:")
        for c in clients:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.connected_ms / 1000))
            ago = format_duration((now_ms - c.connected_ms) // 1000)
            self.write(f"  {c.device.user}/{c.device.device_id}  {c.peer}  {c.cert_subject}  "
                       f"since {since} UTC ({ago})  sent {c.messages_sent}")  # fmt: skip

    async def rooms(self, args: list[str]) -> None:
        rooms = await self.view.rooms()
        if not rooms:
            self.write("no rooms")
            return
        for r in rooms:
            lock = "  (password)" if r.protected else ""
            self.write(f"  {r.name}  {r.member_count} member{'s' * (r.member_count != 1)}{lock}")

    async def stats(self, args: list[str]) -> None:
        s = await self.view.stats()
        self.write(f"securechat {s.version} node {s.node} up {format_duration(s.uptime_s)}")
        self.write(f"  streams {s.connected_streams}  users {s.users}  rooms {s.rooms}  "
                   f"accepted {s.messages_accepted}  deliveries {s.deliveries}  "
                   f"pending {s.pending_messages}")  # fmt: skip

    async def kick(self, args: list[str]) -> None:
        if not args:
            self.write("usage: /kick USER [REASON]")
            return
        user, reason = args[0], " ".join(args[1:]) or "disconnected by the operator"
        streams, sessions = await self.view.kick(user, reason)
        log.info("console: kicked user=%s streams=%d sessions=%d", user, streams, sessions)
        self.write(f"kicked {user}: {streams} stream(s) ended, {sessions} session(s) revoked")

    async def stop_server(self, args: list[str]) -> None:
        self.write("shutting down")
        self.shutdown()


async def run_console(
    view: NodeView, shutdown: Callable[[], object], fd: int = 0,
    write: Callable[[str], object] | None = None,
) -> None:  # fmt: skip
    """Read commands from ``fd`` (stdin) until end of input or /shutdown."""

    def echo(text: str) -> None:
        print(text, flush=True)

    try:
        reader = LineReader(fd)
    except (PermissionError, ValueError, OSError) as exc:  # e.g. stdin is a regular file
        log.warning("console disabled: cannot watch stdin (%s)", type(exc).__name__)
        return
    await Console(view, shutdown, write or echo).run(reader)
