"""Rooms from before signed rosters made end-to-end verified (client/room_upgrade.py), on the
real test server: the lobby every account is joined to at registration is upgraded by the first
member's client that opens it, the other members' clients join it again with signed JOINs, new
accounts join it themselves, a lying server's ghost gets nothing, and pairwise messages sent
before the upgrade stay readable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from securechat.client.chat_engine import ChatEngine
from securechat.client.config import ClientConfig
from securechat.client.events import Target
from securechat.client.room_upgrade import protected_notice
from securechat.client.rosters import upgrade_notice
from securechat.client.rpc.sender import Sender
from securechat.crypto.room_keys import RoomKeys
from securechat.errors import AlreadyExists, DecryptionError, InvalidArgument, PermissionDenied
from securechat.node import Node
from securechat_proto.v1 import chat_pb2
from tests.client.conftest import MakeDevice
from tests.client.live import Device
from tests.client.rooms_support import Recorder
from tests.client.tui_support import client_for

LOBBY = "lobby"


def _spy(sender: Sender) -> list[chat_pb2.SendRequest]:
    written: list[chat_pb2.SendRequest] = []
    transmit = sender.outlet.transmit

    def spy(request: chat_pb2.SendRequest) -> None:
        written.append(request)
        transmit(request)

    sender.outlet.transmit = spy  # type: ignore[method-assign]
    return written


async def _started(make_device: MakeDevice, *names: str) -> list[Device]:
    """Running sessions that have each seen the legacy lobby (remembered in the keystore)."""
    devices = [await make_device(name) for name in names]
    for device in devices:
        session = await device.start()
        await session.messenger.upgrades.settle_all()  # as the stream's start does, awaited
        assert LOBBY in device.vault.state.legacy_rooms
    return devices


async def _server_members(server: Node, room: str) -> list[str]:
    return sorted(await server.store.room_members(room))


def _members(device: Device, room: str = LOBBY) -> list[str]:
    roster = device.vault.state.rosters.get(room)
    return [] if roster is None else sorted(roster.members)


async def test_the_lobby_is_upgraded_and_its_members_join_again(
    make_device: MakeDevice, server: Node
) -> None:
    alice, bob = await _started(make_device, "alice", "bob")
    assert alice.session and bob.session
    assert await alice.api.get_roster(LOBBY) is not None
    assert (await alice.api.get_roster(LOBBY)).events == []  # legacy: no signed roster

    roster = await alice.session.messenger.upgrades.open(LOBBY)  # what opening the chat does
    assert roster is not None and roster.is_member("alice")
    told = upgrade_notice(LOBBY, "alice")
    assert "end-to-end verified" in told
    assert told in alice.watch.notices()
    # bob's client saw the signed CREATE, was a member of the old lobby, so it joins again
    await bob.watch.until(lambda: _members(bob) == ["alice", "bob"])
    assert told in bob.watch.notices()
    await alice.watch.until(lambda: "#lobby: bob joined" in alice.watch.notices())
    assert await _server_members(server, LOBBY) == ["alice", "bob"]
    assert bob.vault.state.legacy_rooms == {} and alice.vault.state.legacy_rooms == {}

    written = _spy(alice.session.sender)
    await alice.session.send(Target.room(LOBBY), "hello verified lobby")
    await bob.watch.until(lambda: "hello verified lobby" in bob.watch.texts())
    (request,) = written
    assert request.room_message  # one sender-key ciphertext, stored once
    assert [c.device.user for c in request.ciphertexts] == ["bob"]  # bob's chain, pairwise

    # a third account, registered after the upgrade: the server no longer adds it ...
    carol = await make_device("carol")
    assert "carol" not in await _server_members(server, LOBBY)
    assert not [r for r in await carol.api.list_rooms() if r.name == LOBBY and r.member]
    # a CREATE pushed for a room the client never saw it in makes it join nothing
    seen_by_carol = carol.messenger()
    create = (await carol.api.get_roster(LOBBY)).events[0]
    await seen_by_carol.rosters.receive(LOBBY, 0, create)
    assert (await seen_by_carol.upgrades.rejoin(LOBBY)) is not None
    opened = await seen_by_carol.upgrades.open(LOBBY)
    assert opened is not None and not opened.is_member("carol")
    assert "carol" not in await _server_members(server, LOBBY)
    # ... its client joins with a signed JOIN, which every member is shown
    assert await carol.messenger().upgrades.join_open(LOBBY) is True
    await alice.watch.until(lambda: "#lobby: carol joined" in alice.watch.notices())
    await bob.watch.until(lambda: "#lobby: carol joined" in bob.watch.notices())
    assert await carol.messenger().upgrades.join_open(LOBBY) is False  # a member already
    await carol.start()
    await alice.session.send(Target.room(LOBBY), "welcome carol")
    await carol.watch.until(lambda: "welcome carol" in carol.watch.texts())
    await bob.watch.until(lambda: "welcome carol" in bob.watch.texts())


async def test_pairwise_room_messages_from_before_the_upgrade_stay_readable(
    make_device: MakeDevice, server: Node
) -> None:
    alice, bob = await _started(make_device, "alice", "bob")
    assert alice.session and bob.session and bob.runner
    bob.session.stop()
    await bob.runner
    await alice.session.send(Target.room(LOBBY), "legacy, while bob is away")
    await alice.session.messenger.upgrades.open(LOBBY)
    assert await _server_members(server, LOBBY) == ["alice"]

    await bob.start()  # the pairwise delivery waits in its mailbox; the lobby was upgraded
    await bob.watch.until(lambda: "legacy, while bob is away" in bob.watch.texts())
    await bob.watch.until(lambda: _members(bob) == ["alice", "bob"])  # joined again at start
    assert upgrade_notice(LOBBY, "alice") in bob.watch.notices()
    await alice.watch.until(lambda: "#lobby: bob joined" in alice.watch.notices())
    await alice.session.send(Target.room(LOBBY), "after the upgrade")
    await bob.watch.until(lambda: "after the upgrade" in bob.watch.texts())
    assert bob.watch.texts() == ["legacy, while bob is away", "after the upgrade"]
    assert not [w for w in bob.watch.warnings() if "could not" in w]


async def test_two_members_upgrading_at_once_end_in_one_roster(
    make_device: MakeDevice, server: Node
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    first, second = alice.messenger(), bob.messenger()
    rosters = await asyncio.gather(first.upgrades.open(LOBBY), second.upgrades.open(LOBBY))
    assert all(r is not None for r in rosters)
    events = (await alice.api.get_roster(LOBBY)).events
    assert len(events) == 2  # one CREATE (the winner's), one JOIN (the other one's)
    for messenger in (first, second):
        roster = await messenger.rosters.sync(LOBBY)
        assert roster is not None and sorted(roster.members) == ["alice", "bob"]
    head = {(await m.rosters.sync(LOBBY)).version for m in (first, second)}  # type: ignore[union-attr]
    assert len(head) == 1  # the same history on both sides
    assert await _server_members(server, LOBBY) == ["alice", "bob"]
    creator = next(u for u, m in first.rosters.roster(LOBBY).members.items() if m.joined_at == 0)  # type: ignore[union-attr]
    for device in (alice, bob):
        assert upgrade_notice(LOBBY, creator) in device.watch.notices()
    with pytest.raises(AlreadyExists):
        await first.upgrades.upgrade(LOBBY)  # upgraded already: nothing to do


async def test_a_ghost_the_server_adds_to_the_upgraded_lobby_gets_nothing(
    make_device: MakeDevice, server: Node
) -> None:
    alice, bob = await _started(make_device, "alice", "bob")
    assert alice.session
    await alice.session.messenger.upgrades.open(LOBBY)
    await bob.watch.until(lambda: _members(bob) == ["alice", "bob"])
    await alice.watch.until(lambda: "#lobby: bob joined" in alice.watch.notices())

    mallory = await make_device("mallory")  # registered after the upgrade: not added
    assert await server.store.add_member(LOBBY, "mallory", 0)  # the server lies
    server.directory.invalidate()
    assert "mallory" in [m.user for m in await alice.api.list_members(LOBBY)]

    written = _spy(alice.session.sender)
    await alice.session.send(Target.room(LOBBY), "members only")
    await bob.watch.until(lambda: "members only" in bob.watch.texts())
    assert all(c.device.user != "mallory" for r in written for c in r.ciphertexts)
    assert _members(alice) == ["alice", "bob"]
    room_message = next(r.room_message for r in written if r.room_message)
    with pytest.raises(DecryptionError):  # the stored room message is not for the ghost
        RoomKeys(LOBBY, mallory.vault.account.address).decrypt(
            alice.vault.state.rosters[LOBBY],
            room_message,
            now=0,
            accepted=mallory.messenger().rosters.account_key_of,
        )
    mallory_chat = await mallory.start()
    assert not mallory_chat.messenger.rosters.roster(LOBBY) or not _members(mallory)
    assert "members only" not in mallory.watch.texts()


async def test_a_protected_legacy_room_is_not_upgraded_without_its_password(
    make_device: MakeDevice, server: Node
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    await alice.api.create_room("vault", "old-room-pass")  # a room from before rosters
    await bob.api.join_room("vault", "old-room-pass")
    messenger = alice.messenger()

    assert await messenger.upgrades.open("vault") is None  # not upgraded on its own
    assert protected_notice("vault") in alice.watch.warnings()
    assert await messenger.upgrades.open("vault") is None
    assert alice.watch.warnings().count(protected_notice("vault")) == 1  # told once
    with pytest.raises(InvalidArgument, match="needs the room password"):
        await messenger.upgrades.upgrade("vault")

    async def nothing() -> str:
        return ""

    with pytest.raises(InvalidArgument, match="no password given"):
        await messenger.upgrades.upgrade("vault", nothing)
    assert (await alice.api.get_roster("vault")).events == []  # nothing changed
    assert await _server_members(server, "vault") == ["alice", "bob"]

    mallory = await make_device("mallory")  # not a member: may not upgrade it
    with pytest.raises(PermissionDenied, match="not a member"):
        await mallory.messenger().upgrades.upgrade("vault")

    async def new_password() -> str:
        return "new-room-pass"

    roster = await messenger.upgrades.upgrade("vault", new_password)
    assert roster.policy.protected and sorted(roster.members) == ["alice"]
    # bob was a member: his client tells him to join with the password (it has none)
    bob_messenger = bob.messenger()
    bob.vault.state.legacy_rooms["vault"] = None  # as his client remembered it
    await bob_messenger.upgrades.rejoin("vault")
    assert any("has a password now" in w for w in bob.watch.warnings())

    async def wrong() -> str:
        return "old-room-pass"

    with pytest.raises(PermissionDenied, match="wrong password"):
        await bob_messenger.actions.join("vault", wrong)
    assert await bob_messenger.actions.join("vault", new_password) is not None


async def test_opening_the_chat_in_the_lobby_upgrades_it(
    make_device: MakeDevice, server: Node, tmp_path: Path
) -> None:
    """What the chat does at start (ChatEngine.prepare on its room, the lobby by default)."""
    (bob,) = await _started(make_device, "bob")
    alice = await make_device("alice")
    engine = ChatEngine(client_for(alice, tmp_path), ClientConfig(), Recorder(LOBBY))
    await engine.prepare(LOBBY)
    assert _members(alice)[:1] == ["alice"]
    await bob.watch.until(lambda: _members(bob) == ["alice", "bob"])
    assert await _server_members(server, LOBBY) == ["alice", "bob"]
    # a chat opened again later changes nothing: the room is signed, alice is in it
    await engine.prepare(LOBBY)
    assert len((await alice.api.get_roster(LOBBY)).events) == 2
