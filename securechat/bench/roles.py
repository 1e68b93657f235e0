"""What a load process does: chat in a room, hold idle streams, storm logins, fill a mailbox.

Each role is built from a plain-dict spec and answers ``cmd_*`` commands with plain dicts
(see workers.py). Specs carry the port and the client certificate paths. Every securechat
client here sends through the client library's Sender (clients.py), as the chat client does.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path
from typing import Any

from securechat.bench.churn import ChurnRole
from securechat.bench.clients import (
    PASSWORD,
    Recorder,
    ReferenceMember,
    SecureMember,
    Tls,
    opaque_seal,
    pace,
)
from securechat.bench.recipients import ServerListedRecipients
from securechat.bench.signed_room import SharedRoster, SignedMember
from securechat.bench.workers import gather_limited
from securechat.client.events import Target
from securechat.client.rpc import ACK_EVERY_S, ROOM_ACK_EVERY_S, Sender, UnaryOutlet
from securechat.crypto.account import Address
from securechat.errors import SecureChatError

SETUP_CONCURRENCY = 16


def tls_of(spec: dict[str, Any]) -> Tls:
    return Tls.load(spec["port"], Path(spec["ca"]), Path(spec["cert"]), Path(spec["key"]))


class RoomRole:
    """Members of one room (securechat or reference) sending at a fixed rate each."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.tls = tls_of(spec)
        self.recorder = Recorder()
        self.reference = spec["system"] == "reference"
        self.members: list[Any] = []
        self.sent_total = 0

    async def cmd_setup(self) -> dict[str, Any]:
        if self.reference:
            self.members = [ReferenceMember(self.tls, self.recorder) for _ in self.spec["users"]]
        else:
            room = self.spec["room"]
            acks = (
                self.spec.get("ack_every_s", ACK_EVERY_S),
                self.spec.get("room_ack_every_s", ROOM_ACK_EVERY_S),
            )
            # a signed room (issue 15): signed joins, one room message per send
            kind = SignedMember if self.spec.get("signed") else SecureMember
            self.members = [
                kind(self.tls, u, room, self.recorder, *acks) for u in self.spec["users"]
            ]

            async def account(member: SecureMember) -> None:
                await member.register()
                await member.login()
                if kind is SecureMember:
                    await member.enter_room()

            await gather_limited([partial(account, m) for m in self.members], SETUP_CONCURRENCY)
            if kind is SignedMember:  # one signed join at a time: each takes the roster's head
                shared = SharedRoster()
                for member in self.members:
                    member.shared = shared
                    await member.enter_room()
        await gather_limited([m.open for m in self.members], SETUP_CONCURRENCY)
        return {"members": len(self.members)}

    def phase(self, pattern: str, position: int, senders: int | None = None) -> float | None:
        """Where in the send period a member sends: ``spread`` evenly over the room's senders
        (sender i of n at i/n), ``burst`` (everyone at the same instant), ``random``."""
        if pattern == "burst":
            return 0.0
        if pattern == "spread":
            size: int = senders or self.spec.get("room_size", len(self.members))
            return self._index(position) / size
        return None

    def _index(self, position: int) -> int:
        """The room-wide index of this process's member at ``position``."""
        indexes: list[int] = self.spec.get("indexes", list(range(len(self.members))))
        return indexes[position]

    async def cmd_run(
        self,
        rate: float,
        start_ns: int,
        stop_ns: int,
        window: tuple[int, int],
        pattern: str = "random",
        senders: int | None = None,
    ) -> dict[str, Any]:
        """Send at ``rate`` per sending member from start to stop (``senders``: only the room's
        first that many members send, None: every member); record deliveries inside
        ``window``."""
        sending = [
            (i, m)
            for i, m in enumerate(self.members)
            if senders is None or self._index(i) < senders
        ]
        if not self.reference:
            await asyncio.gather(*(m.load_recipients() for _, m in sending))
        self.recorder.window(*window)
        self.recorder.errors.clear()
        sent = await asyncio.gather(
            *(
                pace(rate, start_ns, stop_ns, m.send_one, self.phase(pattern, i, senders))
                for i, m in sending
            )
        )
        self.sent_total += sum(sent)
        await asyncio.sleep(max(0.0, (window[1] - time.time_ns()) / 1e9) + 0.2)
        r = self.recorder
        return {
            "sent": sum(sent),
            "delivered": r.in_window,
            "delivery_frames": r.frames_in_window,
            "at_ms": list(r.at_ms),
            "latency_ms": list(r.latency_ms),
            "errors": dict(r.errors),
            "reconnects": sum(m.reconnects for m in self.members),
        }

    async def cmd_counts(self) -> dict[str, Any]:
        """Messages sent and deliveries received so far by this process's members. A send that
        failed is not counted (nothing of it is due: the drains would wait for it in vain)."""
        sent = self.sent_total - self.recorder.failed_sends
        return {"sent": sent, "received": self.recorder.received}

    async def cmd_drain(self, quiet_s: float, max_s: float) -> dict[str, Any]:
        """Wait until no delivery has arrived for ``quiet_s`` (at most ``max_s``)."""
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            if time.time_ns() - self.recorder.last_receive_ns > quiet_s * 1e9:
                return {"drained": True}
            await asyncio.sleep(0.1)
        return {"drained": False}

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in self.members), return_exceptions=True)


class IdleRole:
    """Many Chat streams that do nothing (the memory-per-client scenario): authenticated
    securechat streams, or the reference server's bare streams (``system`` "reference"), each
    on its own connection."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.tls = tls_of(spec)
        self.recorder = Recorder()
        self.reference = spec.get("system") == "reference"
        self.members: list[SecureMember | ReferenceMember] = []

    async def cmd_register(self) -> dict[str, Any]:
        """Create the accounts over one shared channel, then close it (the reference has no
        accounts)."""
        if self.reference:
            return {"registered": 0, "s": 0.0}
        member = SecureMember(self.tls, "", "", self.recorder)

        async def register(user: str) -> None:
            await member.api.register(user, PASSWORD)

        started = time.perf_counter()
        await gather_limited([partial(register, u) for u in self.spec["users"]], 32)
        await member.api.close()
        return {"registered": len(self.spec["users"]), "s": time.perf_counter() - started}

    async def cmd_connect(self) -> dict[str, Any]:
        """Each user: its own connection, a login, an open stream; then stay idle (the
        reference: its own connection and a stream greeted by the server)."""
        started = time.perf_counter()
        users = self.spec["users"]
        if self.reference:
            self.members = [ReferenceMember(self.tls, self.recorder) for _ in users]
            opens = [m.open for m in self.members]
        else:
            secure = [SecureMember(self.tls, u, "", self.recorder) for u in users]
            self.members = list(secure)

            async def connect(member: SecureMember) -> None:
                await member.login()
                await member.open()

            opens = [partial(connect, m) for m in secure]
        await gather_limited(opens, SETUP_CONCURRENCY)
        return {"connected": len(self.members), "s": time.perf_counter() - started}

    async def close(self) -> None:
        await gather_limited([m.close for m in self.members], 256)


class StormRole:
    """A crowd of accounts that all log in at once, each on a new connection."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.tls = tls_of(spec)

    async def cmd_register(self) -> dict[str, Any]:
        members = [SecureMember(self.tls, u, "", Recorder()) for u in self.spec["users"]]
        await gather_limited([m.register for m in members], SETUP_CONCURRENCY)
        await asyncio.gather(*(m.api.close() for m in members))
        return {"registered": len(members)}

    async def cmd_storm(self, at_ns: int) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, (at_ns - time.time_ns()) / 1e9))
        members = [SecureMember(self.tls, u, "", Recorder()) for u in self.spec["users"]]
        started = time.time_ns()
        ends: list[int] = []
        failures = 0

        async def login(member: SecureMember) -> None:
            nonlocal failures
            try:
                await member.login()
            except SecureChatError:
                failures += 1
            ends.append(time.time_ns())

        await asyncio.gather(*(login(m) for m in members))
        await asyncio.gather(*(m.api.close() for m in members))
        return {
            "start_ns": started,
            "end_ns": max(ends),
            "failures": failures,
            "login_s": [(e - started) / 1e9 for e in ends],
        }

    async def close(self) -> None:
        return None


class CatchupRole:
    """Fill one offline device's mailbox through private messages, then time its catch-up."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.tls = tls_of(spec)
        self.recorder = Recorder()
        self.target = SecureMember(self.tls, spec["target"], "", self.recorder)
        self.senders = [SecureMember(self.tls, u, "", self.recorder) for u in spec["senders"]]

    async def cmd_setup(self) -> dict[str, Any]:
        everyone = [self.target, *self.senders]
        await gather_limited([m.register for m in everyone], SETUP_CONCURRENCY)
        await gather_limited([m.login for m in everyone], SETUP_CONCURRENCY)
        return {"device_id": self.target.device_id}

    async def cmd_fill(self, messages: int, concurrency: int) -> dict[str, Any]:
        """Send ``messages`` private messages to the target, many in flight, with the Sender
        over the unary Send (the one-shot `securechat send` path); a refusal fails the step."""
        conversation = Target.user(self.target.user)
        senders = [
            Sender(UnaryOutlet(m.api), ServerListedRecipients(m.api, Address(m.user, m.device_id)))
            for m in self.senders
        ]
        started = time.perf_counter()

        async def send(index: int) -> None:
            sender = senders[index % len(senders)]
            await sender.send(conversation, opaque_seal(time.time_ns()), str(index))

        await gather_limited([partial(send, i) for i in range(messages)], concurrency)
        return {"fill_s": time.perf_counter() - started}

    async def cmd_drain(self, messages: int, timeout_s: float) -> dict[str, Any]:
        """Reconnect the target device and time until every message has arrived."""
        self.recorder.window(0, 1 << 62)
        started = time.perf_counter()
        await self.target.open()
        deadline = time.monotonic() + timeout_s
        # Poll: the count is bumped by the stream's reader callbacks.
        while self.recorder.received < messages and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        return {
            "received": self.recorder.received,
            "drain_s": elapsed,
            "errors": dict(self.recorder.errors),
        }

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in [self.target, *self.senders]))


ROLES: dict[str, type[Any]] = {
    "churn": ChurnRole,
    "room": RoomRole,
    "idle": IdleRole,
    "storm": StormRole,
    "catchup": CatchupRole,
}
