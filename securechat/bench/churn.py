"""The soak's load (issue 18): users who connect, chat a little in a room and disconnect, again
and again, each time on a new connection and a new stream, with the device of their first login
(as a returning chat client does, so the store does not grow by one device per session).

Each session: a new channel (TLS handshake), Login, `open` (the device's backlog replays and is
acked), ``messages`` room messages through the Sender one ``gap_s`` apart, then close. Users
start their first session spread over ``session_s`` so connects and disconnects are continuous.
"""

from __future__ import annotations

import asyncio
import random
import time
from functools import partial
from pathlib import Path
from typing import Any

from securechat.bench.clients import Recorder, SecureMember, Tls
from securechat.bench.workers import gather_limited
from securechat.errors import SecureChatError

SETUP_CONCURRENCY = 16


class ChurnRole:
    """``users`` members of one room, each in an endless connect/send/disconnect loop."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.tls = Tls.load(spec["port"], Path(spec["ca"]), Path(spec["cert"]), Path(spec["key"]))
        self.recorder = Recorder()
        self.devices: dict[str, int] = {}
        self.sent_by: dict[str, int] = {}
        self.sessions = 0
        self.sent = 0
        self.failures: dict[str, int] = {}

    def member(self, user: str) -> SecureMember:
        member = SecureMember(self.tls, user, self.spec["room"], self.recorder)
        # Client message ids go on across sessions: a device that sent "1" again would get the
        # first send's answer (a retry), and nothing would be stored.
        member.sent_before(self.sent_by.get(user, 0))
        return member

    async def cmd_setup(self) -> dict[str, Any]:
        """Register every user, log in its one device (keys published), join the room."""

        async def account(user: str) -> None:
            member = self.member(user)
            try:
                await member.register()
                await member.login()
                await member.enter_room()
                self.devices[user] = member.device_id
            finally:
                await member.close()

        users = self.spec["users"]
        await gather_limited([partial(account, u) for u in users], SETUP_CONCURRENCY)
        return {"users": len(users)}

    async def session(self, user: str, messages: int, gap_s: float) -> None:
        member = self.member(user)
        try:
            await member.login(self.devices[user])
            await member.open()
            await member.load_recipients()
            for _ in range(messages):
                await member.send_one()
                self.sent += 1
                self.sent_by[user] = self.sent_by.get(user, 0) + 1
                await asyncio.sleep(gap_s)
            self.sessions += 1
        except SecureChatError as exc:
            self.failures[exc.code] = self.failures.get(exc.code, 0) + 1
            await asyncio.sleep(gap_s)  # no tight loop of refused logins
        finally:
            await member.close()

    async def cmd_churn(
        self, stop_ns: int, messages: int, gap_s: float, session_s: float
    ) -> dict[str, Any]:
        """Churn until ``stop_ns``; returns sessions completed, messages sent, deliveries."""

        async def loop(user: str) -> None:
            await asyncio.sleep(random.uniform(0.0, session_s))
            while time.time_ns() < stop_ns:
                await self.session(user, messages, gap_s)

        self.recorder.window(0, 1 << 62)
        await asyncio.gather(*(loop(u) for u in self.spec["users"]))
        return {
            "sessions": self.sessions,
            "sent": self.sent,
            "received": self.recorder.received,
            "failures": dict(self.failures),
            "stream_errors": dict(self.recorder.errors),
        }

    async def close(self) -> None:
        return None  # every session closes its own member
