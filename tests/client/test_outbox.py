"""The outbox against the real test server: typed offline, sent in order once, kept on disk."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from securechat.client.events import Target
from securechat.client.history import Entry, History
from securechat.client.outbox import Outbox
from securechat.client.rpc.sender import Receipt
from securechat.client.session import ChatSession
from securechat.errors import SecureChatError
from tests.client.conftest import MakeDevice
from tests.client.live import FAST, Device, Relay

LOBBY = Target.room("lobby")


@dataclass
class Sending:
    """A device running a chat session with its history and outbox."""

    device: Device
    history: History
    outbox: Outbox
    tasks: list[asyncio.Task[None]]
    changes: list[tuple[Entry, SecureChatError | None]] = field(default_factory=list)

    async def states(self) -> list[tuple[str, str]]:
        entries = await self.history.run(lambda s: s.recent())
        return [(e.body, e.state) for e in entries if e.outgoing]

    async def stop(self) -> None:
        assert self.device.session is not None
        self.device.session.stop()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.history.close()


Start = Callable[..., Awaitable[Sending]]


@pytest.fixture
async def start_sending(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[Sending] = []

    async def start(device: Device, *, wait_online: bool = True) -> Sending:
        path = tmp_path / f"{device.user}-{device.vault.account.address.device_id}.history"
        history = await History.open(path, device.vault.history_key())
        me = device.user

        async def record(events: object) -> None:
            await history.run(lambda s: s.record(events, me))  # type: ignore[arg-type]

        session = ChatSession(device.api, device.vault, device.watch, backoff=FAST, record=record)
        device.session = session
        sending = Sending(device, history, Outbox(history, session), [])

        def changed(entry: Entry, error: SecureChatError | None) -> None:
            sending.changes.append((entry, error))
            device.watch.poke()

        sending.outbox.changed = changed

        def online(event: object) -> None:
            device.watch(event)  # type: ignore[arg-type]
            if getattr(event, "state", "") == "online":
                sending.outbox.kick()

        session.notify = online
        session.link.notify = online
        sending.tasks = [
            asyncio.create_task(session.run()),
            asyncio.create_task(sending.outbox.run()),
        ]
        started.append(sending)
        if wait_online:
            await device.watch.until(lambda: device.watch.onlines() >= 1)
        return sending

    yield start
    for sending in started:
        await sending.stop()


async def test_messages_typed_while_offline_go_out_in_order_once_back(
    make_device: MakeDevice, relay: Relay, start_sending: Start
) -> None:
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    await bob.start()
    sending = await start_sending(alice)
    await sending.outbox.add(LOBBY, "before")
    await bob.watch.until(lambda: bob.watch.texts() == ["before"])

    relay.hold()
    await alice.watch.until(lambda: not sending.outbox.session.link.online.is_set())
    for text in ("one", "two", "three"):
        await sending.outbox.add(LOBBY, text)
    assert await sending.states() == [("before", "sent"), ("one", "pending"),
                                      ("two", "pending"), ("three", "pending")]  # fmt: skip
    relay.release()
    await bob.watch.until(lambda: len(bob.watch.texts()) == 4)
    assert bob.watch.texts() == ["before", "one", "two", "three"]
    await alice.watch.until(lambda: len([c for c in sending.changes if c[0].state == "sent"]) == 4)
    assert all(state == "sent" for _, state in await sending.states())


async def test_an_unanswered_send_goes_again_with_its_id_and_is_shown_once(
    make_device: MakeDevice, relay: Relay, start_sending: Start
) -> None:
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    await bob.start()
    sending = await start_sending(alice)
    await sending.outbox.add(LOBBY, "learn the list")
    await bob.watch.until(lambda: bob.watch.texts() == ["learn the list"])

    entry = await sending.outbox.add(LOBBY, "answer lost")
    relay.cut()  # the answer (and maybe the frame) is lost
    await alice.watch.until(lambda: alice.watch.onlines() >= 2)
    await alice.watch.until(lambda: any(c[0].state == "sent" and c[0].body == "answer lost"
                                        for c in sending.changes))  # fmt: skip
    await sending.outbox.add(LOBBY, "after")
    await bob.watch.until(lambda: "after" in bob.watch.texts())
    assert bob.watch.texts() == ["learn the list", "answer lost", "after"]
    stored = await sending.history.run(lambda s: s.get(entry.message_id))
    assert stored is not None and stored.state == "sent"


async def test_sends_unanswered_at_a_cut_are_written_again_by_the_sender_alone_and_stored_once(
    make_device: MakeDevice, relay: Relay, start_sending: Start
) -> None:
    """The Sender resends what a dead stream left unanswered; the outbox must not submit the
    same messages a second time meanwhile (each id submitted once, stored once, shown once)."""
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    sending = await start_sending(alice)  # bob stays offline: his mailbox shows what was stored
    await sending.outbox.add(LOBBY, "learn the list")
    await alice.watch.until(lambda: len([c for c in sending.changes if c[0].state == "sent"]) == 1)
    session = sending.outbox.session
    submit, submitted = session.submit, []

    async def counted(
        target: Target, text: str, *, message_id: str = "", reply_to: str = ""
    ) -> asyncio.Future[Receipt]:
        answer = await submit(target, text, message_id=message_id, reply_to=reply_to)
        submitted.append(message_id)
        if len(submitted) == 5:
            relay.hold()  # the last one is still in the write queue: surely unanswered
        return answer

    session.submit = counted  # type: ignore[method-assign]
    for n in range(5):
        await sending.outbox.add(LOBBY, f"in flight {n}")
    await alice.watch.until(lambda: len(submitted) == 5 and not session.link.online.is_set())
    relay.release()
    await alice.watch.until(lambda: len([c for c in sending.changes if c[0].state == "sent"]) == 6)
    assert len(set(submitted)) == len(submitted) == 5  # the resends were the Sender's alone
    assert await sending.states() == [("learn the list", "sent"),
                                      *((f"in flight {n}", "sent") for n in range(5))]  # fmt: skip
    stored = await bob.api.fetch(0, 1000)
    assert len(stored) == 6 == len({d.message_id for d in stored})  # each stored once


async def test_pending_messages_survive_a_restart_of_the_client(
    make_device: MakeDevice, relay: Relay, start_sending: Start
) -> None:
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    await bob.start()
    relay.hold()
    first = await start_sending(alice, wait_online=False)
    await first.outbox.add(LOBBY, "typed offline, then the client quit")
    await first.stop()  # the process ends with the message unsent

    relay.release()
    second = await start_sending(alice)
    await bob.watch.until(lambda: bob.watch.texts() == ["typed offline, then the client quit"])
    await alice.watch.until(lambda: any(c[0].state == "sent" for c in second.changes))
    assert await second.states() == [("typed offline, then the client quit", "sent")]


async def test_a_refused_message_is_failed_kept_and_can_be_retried(
    make_device: MakeDevice, start_sending: Start
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    await bob.start()
    sending = await start_sending(alice)
    await bob.api.create_room("closed")  # alice is no member
    await sending.outbox.add(Target.room("closed"), "let me in")
    await alice.watch.until(lambda: any(c[0].state == "failed" for c in sending.changes))
    entry, error = sending.changes[-1]
    assert entry.body == "let me in" and error is not None and entry.error == error.message
    assert "member" in entry.error

    await alice.api.join_room("closed")
    again = await sending.outbox.retry("#closed")
    assert [e.message_id for e in again] == [entry.message_id]
    await bob.watch.until(lambda: bob.watch.texts() == ["let me in"])
