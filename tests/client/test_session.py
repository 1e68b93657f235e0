"""The chat client's stream code in process, against the real test server over mTLS.

ChatSession = ChatLink (the stream) + Sender (pipelined sends) + Messenger (encryption); these
tests drive real devices of real accounts and look only at what a user would see (events) and
what the server answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from securechat.client.events import ConnectionEvent, Target
from securechat.client.rpc import ACK_EVERY_S, ChatLink, Receipt
from securechat.domain.model import DeviceRef
from securechat.errors import (
    FailedPrecondition,
    InvalidArgument,
    Unauthenticated,
    Unavailable,
)
from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2
from tests.client.conftest import MakeDevice
from tests.client.live import WAIT_S, Relay, device
from tests.conftest import server_config


def count_calls(obj: Any, name: str) -> list[object]:
    """Record every call of ``obj.name`` (a spy: the call still goes to the server)."""
    calls: list[object] = []
    real = getattr(obj, name)

    async def spy(*args: object) -> object:
        calls.append(args)
        return await real(*args)

    setattr(obj, name, spy)
    return calls


async def test_sends_are_pipelined_and_answered_by_client_message_id(
    make_device: MakeDevice,
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    lobby = Target.room("lobby")
    texts = [f"message {i}" for i in range(12)]

    answers = [await chat.submit(lobby, text) for text in texts]
    # Every submit returned before any answer was read: twelve sends in flight at once.
    assert not any(answer.done() for answer in answers)
    assert chat.sender.in_flight == len(texts)

    receipts: list[Receipt] = list(await asyncio.gather(*answers))
    assert len({r.client_message_id for r in receipts}) == len(texts)
    assert len({r.message_id for r in receipts}) == len(texts)
    assert all(r.devices == ((bob.vault.account.address),) for r in receipts)
    assert chat.sender.in_flight == 0
    await bob.watch.until(lambda: len(bob.watch.texts()) == len(texts))
    assert bob.watch.texts() == texts  # in the order typed, each once


async def test_recipients_are_listed_once_then_kept(make_device: MakeDevice) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    listed = count_calls(alice.api, "list_members")
    for text in ("one", "two", "three"):
        await chat.send(Target.room("lobby"), text)
    assert len(listed) == 1  # not one ListMembers per message
    await bob.watch.until(lambda: bob.watch.texts() == ["one", "two", "three"])


async def test_a_member_who_joined_gets_the_next_message_after_a_stale_answer(
    make_device: MakeDevice,
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    ops = Target.room("ops")
    await alice.api.create_room("ops")
    await bob.api.join_room("ops")
    await chat.send(ops, "before carol")
    listed = count_calls(alice.api, "list_members")

    carol = await make_device("carol")
    await carol.api.join_room("ops")
    await carol.start()
    receipt = await chat.send(ops, "hello carol")

    assert listed == []  # the server's stale_devices answer carried the new list
    assert carol.vault.account.address in receipt.devices
    assert "carol joined #ops: encrypting for them too" in alice.watch.notices()
    await carol.watch.until(lambda: "hello carol" in carol.watch.texts())
    assert carol.watch.texts() == ["hello carol"]  # no history from before the join
    await bob.watch.until(lambda: bob.watch.texts() == ["before carol", "hello carol"])


async def test_a_linked_device_of_the_peer_is_told_and_gets_the_next_message(
    make_device: MakeDevice,
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await chat.send(Target.user("bob"), "to the first device")
    number = alice.vault.account.safety_number("bob")

    laptop = await make_device("bob", register=False, link_from=bob)
    await laptop.start()
    receipt = await chat.send(Target.user("bob"), "to both devices")
    assert set(receipt.devices) == {bob.vault.account.address, laptop.vault.account.address}
    await alice.watch.until(lambda: "bob added a device (device 2)" in alice.watch.notices())
    await laptop.watch.until(lambda: laptop.watch.texts() == ["to both devices"])
    assert alice.vault.account.safety_number("bob") == number  # devices come and go: same key


async def test_a_send_is_refused_when_its_room_keeps_changing(make_device: MakeDevice) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    chat.sender.max_attempts = 1  # one try: the stale answer is final
    await chat.send(Target.room("lobby"), "learn the list")
    await make_device("carol")  # joins the lobby on registration
    with pytest.raises(FailedPrecondition, match="kept changing"):
        await chat.send(Target.room("lobby"), "not sent")


async def test_sends_while_disconnected_fail_at_once_with_a_clear_error(
    make_device: MakeDevice, relay: Relay
) -> None:
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    await bob.start()
    chat = await alice.start()
    relay.hold()  # the network is gone and stays gone
    await alice.watch.until(lambda: chat.state == "reconnecting")
    with pytest.raises(Unavailable, match="not connected to the server") as info:
        await chat.submit(Target.room("lobby"), "typed while offline")
    assert "send it again" in info.value.message
    assert chat.sender.in_flight == 0  # nothing half-sent is left behind
    assert bob.watch.texts() == []


async def test_a_send_in_flight_when_the_connection_drops_is_sent_again_once(
    make_device: MakeDevice, relay: Relay
) -> None:
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    chat = await alice.start()  # bob stays offline: his mailbox shows what was stored
    await chat.send(Target.room("lobby"), "learn the list")
    answers = [await chat.submit(Target.room("lobby"), f"in flight {n}") for n in range(20)]
    relay.cut()  # some reached the server, some did not: their answers are lost either way
    receipts = [await asyncio.wait_for(answer, WAIT_S) for answer in answers]
    assert alice.watch.onlines() == 2  # written again on the new stream
    stored = await bob.api.fetch(0, 1000)
    assert len(stored) == 21  # each once, retried or not
    assert {r.message_id for r in receipts} == {d.message_id for d in stored[1:]}
    await bob.start()
    expected = ["learn the list", *(f"in flight {n}" for n in range(20))]
    await bob.watch.until(lambda: len(bob.watch.texts()) == len(expected))
    assert bob.watch.texts() == expected


async def test_a_send_cut_off_for_good_fails_clearly(make_device: MakeDevice) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    await bob.start()
    chat = await alice.start()
    await chat.send(Target.room("lobby"), "learn the list")
    chat.sender.max_resends = 0  # no second try: the loss is final
    answer = await chat.submit(Target.room("lobby"), "lost")
    chat.sender.disconnected(Unavailable("the network went away"))
    with pytest.raises(Unavailable, match=r"before the server confirmed.*same id"):
        await asyncio.wait_for(answer, WAIT_S)


async def test_reconnects_and_resumes_after_the_last_ack_without_duplicates(
    make_device: MakeDevice, relay: Relay
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob", port=relay.port)
    sender = await alice.start()
    await bob.start()
    await sender.send(Target.room("lobby"), "first")
    await bob.watch.until(lambda: bob.watch.texts() == ["first"])
    relay.hold()
    await bob.watch.until(lambda: bob.session is not None and bob.session.state != "online")
    await sender.send(Target.room("lobby"), "while bob was away")
    relay.release()
    await bob.watch.until(lambda: bob.watch.onlines() == 2)
    await bob.watch.until(lambda: len(bob.watch.texts()) == 2)
    assert bob.watch.texts() == ["first", "while bob was away"]
    lost = [e for e in bob.watch.states() if e.state == "reconnecting" and e.code]
    assert lost and lost[0].code == "unavailable"
    back = [e for e in bob.watch.states() if e.state == "online"][1]
    assert back.detail == "1 waiting"  # resumed after "first": only the new one is replayed
    assert bob.vault.state.last_ack == 2


async def test_a_message_sent_twice_with_one_id_is_shown_once(make_device: MakeDevice) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    lobby = Target.room("lobby")
    first = await (await chat.submit(lobby, "only once", message_id="m-1"))
    again = await (await chat.submit(lobby, "only once", message_id="m-1"))  # e.g. an outbox retry
    assert first.message_id == again.message_id  # the server stored it once
    assert (first.duplicate, again.duplicate) == (False, True)
    await chat.send(lobby, "next")
    await bob.watch.until(lambda: "next" in bob.watch.texts())
    assert bob.watch.texts() == ["only once", "next"]


async def test_the_server_ending_the_stream_for_shutdown_is_followed_by_a_reconnect(
    pki: DevPki, tmp_path: Path
) -> None:
    first = Node(server_config(pki, tmp_path / "data"))
    await first.start()
    relay = Relay(first.port)
    await relay.start()
    bob = await device(relay.port, pki, tmp_path, "bob")
    alice = await device(relay.port, pki, tmp_path, "alice")
    second: Node | None = None
    try:
        await bob.start()
        chat = await alice.start()
        await chat.send(Target.room("lobby"), "before the restart")
        await bob.watch.until(lambda: bob.watch.texts() == ["before the restart"])

        await first.stop(grace=0.5)  # every stream gets a reconnect hint, then ends
        hint = "server: server shutting down: reconnect"
        await bob.watch.until(lambda: hint in bob.watch.notices())
        relay.hold()  # (the old port may be anyone's now: never forward to it)
        second = Node(server_config(pki, tmp_path / "data"))
        await second.start()
        relay.release(second.port)  # the same address now leads to the new server
        await bob.watch.until(lambda: bob.watch.onlines() == 2)
        await alice.watch.until(lambda: alice.watch.onlines() == 2)
        await chat.send(Target.room("lobby"), "after the restart")
        await bob.watch.until(lambda: len(bob.watch.texts()) == 2)
        assert bob.watch.texts() == ["before the restart", "after the restart"]
    finally:
        await relay.close()
        for each in (alice, bob):
            await each.stop()
        for srv in (first, second):
            if srv is not None:
                await srv.stop(grace=0.2)


async def test_a_revoked_session_stops_the_loop_for_good(make_device: MakeDevice) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    await alice.api.logout()  # unrelated: alice's session only
    await bob.api.logout()  # revokes bob's session: the server ends his stream
    assert bob.runner is not None
    with pytest.raises(Unauthenticated, match="logged out"):
        await asyncio.wait_for(asyncio.shield(bob.runner), WAIT_S)
    assert chat.state == "offline"
    assert chat.link.reconnects == 0  # no retry with a dead session
    last = bob.watch.states()[-1]
    assert (last.state, last.code) == ("offline", "logged_out")  # the server says why it ended
    with pytest.raises(Unavailable, match="not connected"):
        await chat.submit(Target.room("lobby"), "after the end")


async def test_bad_sends_are_refused_before_anything_leaves(make_device: MakeDevice) -> None:
    alice = await make_device("alice")
    chat = await alice.start()
    with pytest.raises(InvalidArgument, match="empty"):
        await chat.submit(Target.room("lobby"), "   ")
    with pytest.raises(InvalidArgument, match="that is you"):
        await chat.submit(Target.user("alice"), "hi me")
    with pytest.raises(FailedPrecondition, match="nobody else is in #lobby"):
        await chat.submit(Target.room("lobby"), "anyone?")
    assert chat.sender.in_flight == 0


async def test_stop_ends_the_stream_cleanly(make_device: MakeDevice) -> None:
    alice = await make_device("alice")
    chat = await alice.start()
    chat.stop()
    assert alice.runner is not None
    await asyncio.wait_for(alice.runner, WAIT_S)  # returns: stopping is not an error
    assert chat.state == "offline"
    assert isinstance(alice.watch.events[-1], ConnectionEvent)


async def test_a_bare_link_opens_with_start_and_refuses_a_dead_token(
    make_device: MakeDevice,
) -> None:
    alice = await make_device("alice")
    batches: list[int] = []

    async def handle(events: Sequence[chat_pb2.ServerEvent]) -> int:
        batches.append(len(events))
        return 0

    link = ChatLink(alice.api, alice.vault.account.address.device_id, resume_after=0, handle=handle)
    runner = await link.start()  # returns once the server's `opened` arrived
    assert link.state == "online" and batches
    link.stop()
    await asyncio.wait_for(runner, WAIT_S)

    await alice.api.logout()
    dead = ChatLink(alice.api, alice.vault.account.address.device_id, resume_after=0, handle=handle)
    with pytest.raises(Unauthenticated):
        await asyncio.wait_for(dead.start(), WAIT_S)
    assert dead.state == "offline"


async def _pending(server: Node, device: DeviceRef) -> int:
    return await server.store.pending_count(device, 0)


async def _until_pending(server: Node, device: DeviceRef, count: int) -> int:
    for _ in range(int(WAIT_S / 0.05)):
        if await _pending(server, device) == count:
            break
        await asyncio.sleep(0.05)
    return await _pending(server, device)


async def test_acks_are_folded_and_a_clean_stop_sends_the_last_one(
    make_device: MakeDevice, server: Node
) -> None:
    """Acks leave at most once per ACK_EVERY_S (one frame per delivery cost the server a third
    of its CPU per delivery at chat rates); the one still waiting goes out on a clean stop, so
    the server keeps nothing the device already processed."""
    alice, bob = await make_device("alice"), await make_device("bob")
    sender = await alice.start()
    chat = await bob.start()
    assert chat.link.ack_every_s == ACK_EVERY_S > 0
    bob_device = DeviceRef("bob", bob.vault.account.address.device_id)
    await sender.send(Target.user("bob"), "first")
    await bob.watch.until(lambda: bob.watch.texts() == ["first"])
    # the first ack after a quiet spell leaves at once
    assert await _until_pending(server, bob_device, 0) == 0

    chat.link.ack_every_s = 3600.0  # the next ack waits its turn for the rest of the test
    for text in ("second", "third", "fourth"):
        await sender.send(Target.user("bob"), text)
    await bob.watch.until(lambda: len(bob.watch.texts()) == 4)
    assert bob.vault.state.last_ack == 4  # processed and saved by the device ...
    assert await _pending(server, bob_device) == 3  # ... but not yet acknowledged

    await bob.stop()
    assert await _until_pending(server, bob_device, 0) == 0  # the clean stop sent the waiting ack


async def test_an_ack_leaves_at_once_when_ack_after_deliveries_wait(
    make_device: MakeDevice, server: Node
) -> None:
    """However long the cadence, at most ``ack_after`` processed deliveries wait for an ack:
    the rows a device leaves on the server stay bounded at any rate."""
    alice, bob = await make_device("alice"), await make_device("bob")
    sender = await alice.start()
    chat = await bob.start()
    bob_device = DeviceRef("bob", bob.vault.account.address.device_id)
    await sender.send(Target.user("bob"), "first")  # the first ack after a quiet spell
    await bob.watch.until(lambda: bob.watch.texts() == ["first"])
    assert await _until_pending(server, bob_device, 0) == 0

    chat.link.ack_every_s, chat.link.ack_after = 3600.0, 3
    for text in ("second", "third"):
        await sender.send(Target.user("bob"), text)
    await bob.watch.until(lambda: len(bob.watch.texts()) == 3)
    assert await _pending(server, bob_device) == 2  # below ack_after: waiting for the cadence
    await sender.send(Target.user("bob"), "fourth")
    await bob.watch.until(lambda: len(bob.watch.texts()) == 4)
    assert await _until_pending(server, bob_device, 0) == 0  # the third unacked one sent it
