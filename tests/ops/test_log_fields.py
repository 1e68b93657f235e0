"""Logs an operator can use: access lines as fields, floods summed up, a clean console screen."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from securechat.ops.lograte import RepeatLimiter
from securechat.pki import DevPki
from securechat_proto.v1 import rooms_pb2
from tests.ops.conftest import fresh_channel
from tests.support.net import Api
from tests.support.process import FAST_SERVER_ENV, ServerProcess, clean_env

FLOOD = 600


def record(msg: str, *args: object, **fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("securechat.access", logging.INFO, __file__, 1, msg, args, None)
    for key, value in fields.items():
        setattr(rec, key, value)
    return rec


def test_repeat_limiter_counts_what_it_drops_and_reports_it() -> None:
    now = [0.0]
    reported: list[logging.LogRecord] = []
    limiter = RepeatLimiter(2.0, reported.append, clock=lambda: now[0])
    passed = sum(limiter.filter(record("rpc %s", "/x/A", code="UNAUTHENTICATED"))
                 for _ in range(100))  # fmt: skip
    assert passed == 4  # the burst: twice the rate
    # Another kind (another status) has its own bucket.
    assert limiter.filter(record("rpc %s", "/x/A", code="OK"))
    now[0] += 0.5  # one token back: the next line of the kind passes, after its summary
    assert limiter.filter(record("rpc %s", "/x/A", code="UNAUTHENTICATED"))
    assert [r.suppressed for r in reported] == [96]  # type: ignore[attr-defined]
    assert "96 similar lines suppressed" in reported[0].getMessage()
    assert reported[0].code == "UNAUTHENTICATED"  # type: ignore[attr-defined]
    for _ in range(10):
        limiter.filter(record("rpc %s", "/x/A", code="UNAUTHENTICATED"))
    now[0] += 1.5  # quiet for a while: any line sweeps the pending count out
    assert limiter.filter(record("other %s", 1))
    assert [r.suppressed for r in reported] == [96, 10]  # type: ignore[attr-defined]
    limiter.filter(record("rpc %s", "/x/A", code="UNAUTHENTICATED"))
    assert RepeatLimiter(0, reported.append).filter(record("x"))  # 0: no limit


async def flood(pki: DevPki, port: int, calls: int) -> None:
    """Calls without a token as fast as the server answers: each one is an access line."""
    paths = pki.client("client")
    api = Api(fresh_channel(port, pki.ca_cert, paths.cert, paths.key))

    async def one() -> None:
        with pytest.raises(grpc.aio.AioRpcError):
            await api.rooms.ListRooms(rooms_pb2.ListRoomsRequest())

    for _ in range(calls // 50):
        await asyncio.gather(*(one() for _ in range(50)))
    await api.channel.close()


async def test_a_flood_of_access_lines_is_summed_up_and_lines_carry_fields(
    pki: DevPki, tmp_path: Path
) -> None:
    server = ServerProcess(
        pki.directory,
        tmp_path / "data",
        env={"SECURECHAT_LOG_FORMAT": "json", "SECURECHAT_LOG_REPEAT_LIMIT_PER_S": "10"},
    )
    try:
        await flood(pki, server.port, FLOOD)
    finally:
        assert server.terminate() == 0
    entries = [json.loads(line) for line in server.logs().splitlines() if line.strip()]
    refused = [e for e in entries if e.get("method") == "/securechat.v1.RoomService/ListRooms"]
    written = [e for e in refused if "suppressed" not in e]
    summaries = [e for e in refused if "suppressed" in e]
    # Every call is accounted for: written as a line or counted in a summary.
    assert len(written) + sum(e["suppressed"] for e in summaries) == FLOOD
    assert summaries and len(written) < FLOOD / 2, (len(written), len(summaries))
    assert all("similar lines suppressed" in e["msg"] for e in summaries)
    line = written[0]
    assert line["code"] == "UNAUTHENTICATED" and line["user"] == "-"
    assert line["peer"].startswith("ipv") and isinstance(line["duration_ms"], float)
    assert len(line["request_id"]) == 12 and line["msg"].startswith("rpc ")


def read_screen(fd: int, until: bytes, timeout: float = 60) -> bytes:
    """Terminal output until ``until`` appears (or end of output)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while until not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{until!r} never appeared on the screen: {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


async def test_the_console_keeps_the_terminal_and_logs_go_to_a_file(
    pki: DevPki, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # GRPC_* of the test process left out (the client CLI sets GRPC_VERBOSITY in-process): the C
    # core must log at its INFO level, as a server started from a shell does.
    env = clean_env(tmp_path / "home", {**FAST_SERVER_ENV, "GRPC_VERBOSITY": "INFO"})
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "securechat-server"), "--port", "0",
         "--status-port", "0", "--data-dir", str(data), "--certs-dir", str(pki.directory)],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env,
    )  # fmt: skip
    os.close(terminal)
    try:
        screen = read_screen(controller, b"console ready")
        port = int(screen.split(b"listening on 127.0.0.1:")[1].split()[0])
        # A foreign certificate: gRPC's C core logs the failed handshake on its own.
        foreign = pki.client("foreign")
        stranger = Api(fresh_channel(port, pki.ca_cert, foreign.cert, foreign.key))
        with pytest.raises(grpc.aio.AioRpcError):
            await stranger.rooms.ListRooms(rooms_pb2.ListRoomsRequest())
        await stranger.channel.close()
        client = pki.client("client")
        refused = Api(fresh_channel(port, pki.ca_cert, client.cert, client.key))
        with pytest.raises(grpc.aio.AioRpcError):
            await refused.rooms.ListRooms(rooms_pb2.ListRoomsRequest())
        await refused.channel.close()
        os.write(controller, b"/stats\n")
        screen += read_screen(controller, b"streams 0")
        os.write(controller, b"/shutdown\n")
        screen += read_screen(controller, b"\0")  # to the end of output
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(controller)
    text = screen.decode(errors="replace")
    log_path = data / "server.log"
    assert f"logs go to {log_path} while the console has this terminal" in text
    assert "console ready" in text and "streams 0" in text and "shutting down" in text
    for noise in ("Handshake failed", "securechat.access", " INFO ", "ListRooms"):
        assert noise not in text, noise
    logs = log_path.read_text()
    assert "Handshake failed" in logs  # the C core's line, through file descriptor 2
    assert "method=/securechat.v1.RoomService/ListRooms code=UNAUTHENTICATED" in logs
    assert "received /shutdown: shutting down gracefully" in logs
    assert log_path.stat().st_mode & 0o777 == 0o600
