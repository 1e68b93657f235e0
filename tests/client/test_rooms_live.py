"""Signed rooms end to end on the real test server: chat sessions with their streams.

Roster events arrive on the stream and are shown with who made them; one room ciphertext per
message is stored once and reaches every member; a removed member's client gets nothing it
can read afterwards; room positions are acknowledged and survive a restart of the session.
"""

from __future__ import annotations

import asyncio

from securechat.client.events import Target
from securechat.client.rpc import ROOM_ACK_EVERY_S
from securechat.client.rpc.sender import Sender
from securechat.domain.model import DeviceRef
from securechat.node import Node
from securechat_proto.v1 import chat_pb2
from tests.client.conftest import MakeDevice
from tests.client.live import WAIT_S, Device

ROOM = "ops"


async def _never() -> str:
    raise AssertionError("an open room asks for no password")


async def _started(make_device: MakeDevice, *names: str) -> list[Device]:
    devices = [await make_device(name) for name in names]
    for device in devices:
        await device.start()
    return devices


def _spy(sender: Sender) -> list[chat_pb2.SendRequest]:
    """Every request the shared send path writes."""
    written: list[chat_pb2.SendRequest] = []
    transmit = sender.outlet.transmit

    def spy(request: chat_pb2.SendRequest) -> None:
        written.append(request)
        transmit(request)

    sender.outlet.transmit = spy  # type: ignore[method-assign]
    return written


async def test_signed_room_end_to_end(make_device: MakeDevice, server: Node) -> None:
    alice, bob, carol = await _started(make_device, "alice", "bob", "carol")
    assert alice.session and bob.session and carol.session
    await alice.session.messenger.actions.create(ROOM)
    await bob.session.messenger.actions.join(ROOM, _never)
    await carol.session.messenger.actions.join(ROOM, _never)
    await alice.watch.until(lambda: "#ops: carol joined" in alice.watch.notices())
    await bob.watch.until(lambda: "#ops: carol joined" in bob.watch.notices())
    assert "#ops: bob joined" in alice.watch.notices()

    written = _spy(alice.session.sender)
    await alice.session.send(Target.room(ROOM), "hello signed room")
    await alice.session.send(Target.room(ROOM), "second")
    for member in (bob, carol):
        await member.watch.until(
            lambda m=member: m.watch.texts() == ["hello signed room", "second"]
        )  # type: ignore[misc]
    first, second = written
    assert first.room_message and second.room_message
    assert len(first.ciphertexts) == 2 and len(second.ciphertexts) == 0  # keys went out once

    await bob.session.send(Target.room(ROOM), "bob here")
    await alice.watch.until(lambda: alice.watch.texts() == ["bob here"])
    await carol.watch.until(lambda: "bob here" in carol.watch.texts())

    # acknowledged room positions are kept in the keystore
    await bob.watch.until(lambda: bob.vault.state.room_acks.get(ROOM, 0) >= 2)

    await alice.session.messenger.actions.remove(ROOM, "carol")
    await bob.watch.until(lambda: "#ops: alice removed carol" in bob.watch.notices())
    await carol.watch.until(lambda: "#ops: alice removed carol" in carol.watch.notices())
    await alice.session.send(Target.room(ROOM), "after carol")
    await bob.watch.until(lambda: "after carol" in bob.watch.texts())
    assert [c.device.user for c in written[-1].ciphertexts] == ["bob"]  # a fresh chain, bob only
    assert "after carol" not in carol.watch.texts()
    assert carol.vault.state.room_keys[ROOM].receiving_chains(alice.vault.account.address) == []  # type: ignore[arg-type]


async def test_room_positions_resume_after_a_restart(make_device: MakeDevice) -> None:
    alice, bob = await _started(make_device, "alice", "bob")
    assert alice.session and bob.session
    await alice.session.messenger.actions.create(ROOM)
    await bob.session.messenger.actions.join(ROOM, _never)
    await alice.watch.until(lambda: "#ops: bob joined" in alice.watch.notices())
    await alice.session.send(Target.room(ROOM), "one")
    await bob.watch.until(lambda: bob.watch.texts() == ["one"])
    await bob.watch.until(lambda: bob.vault.state.room_acks.get(ROOM, 0) >= 1)
    assert bob.runner is not None
    bob.session.stop()
    await bob.runner

    await alice.session.send(Target.room(ROOM), "two while away")
    await bob.start()  # a new session on the same keystore: resumes after the acked position
    await bob.watch.until(lambda: bob.watch.texts() == ["one", "two while away"])
    await bob.watch.until(lambda: bob.vault.state.room_acks.get(ROOM, 0) >= 2)


async def _acked_on_server(server: Node, device: DeviceRef, position: int) -> int:
    """The device's room position as the server stores it, once it reaches ``position`` (or
    the wait runs out)."""
    for _ in range(int(WAIT_S / 0.05)):
        stored = (await server.store.room_starts(device)).get(ROOM, 0)
        if stored >= position:
            return stored
        await asyncio.sleep(0.05)
    return (await server.store.room_starts(device)).get(ROOM, 0)


async def _until_mailbox_acked(server: Node, device: DeviceRef) -> bool:
    for _ in range(int(WAIT_S / 0.05)):
        if await server.store.pending_count(device, 0) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_room_positions_alone_wait_for_their_own_cadence(
    make_device: MakeDevice, server: Node
) -> None:
    """Room positions alone are acked at most every ROOM_ACK_EVERY_S (the server deletes
    nothing for them; in a 1,000-member room they were most of its acks); a mailbox ack, at
    its own shorter cadence, carries the positions due with it."""
    alice, bob = await _started(make_device, "alice", "bob")
    assert alice.session and bob.session
    link = bob.session.link
    assert link.room_ack_every_s == ROOM_ACK_EVERY_S > link.ack_every_s > 0
    await alice.session.messenger.actions.create(ROOM)
    await bob.session.messenger.actions.join(ROOM, _never)
    await alice.watch.until(lambda: "#ops: bob joined" in alice.watch.notices())
    bob_device = DeviceRef("bob", bob.vault.account.address.device_id)

    await alice.session.send(Target.room(ROOM), "one")
    await bob.watch.until(lambda: bob.watch.texts() == ["one"])
    first = bob.vault.state.room_acks.get(ROOM, 0)
    assert first > 0
    assert await _acked_on_server(server, bob_device, first) == first  # after a quiet spell

    link.room_ack_every_s, link.ack_every_s = 3600.0, 0.0  # rooms wait; the mailbox does not
    await alice.session.send(Target.room(ROOM), "two")
    await bob.watch.until(lambda: bob.vault.state.room_acks.get(ROOM, 0) > first)
    second = bob.vault.state.room_acks[ROOM]
    # processed and saved by the device, but the ack waits (the link decided as it processed)
    assert link._acked_rooms.get(ROOM) == first
    assert (await server.store.room_starts(bob_device)).get(ROOM) == first
    await alice.session.send(Target.user("bob"), "direct")  # a mailbox delivery: acked at once
    await bob.watch.until(lambda: "direct" in bob.watch.texts())
    assert await _until_mailbox_acked(server, bob_device)
    assert await _acked_on_server(server, bob_device, second) == second  # it went along
