"""A signed room of 1,000 members on the real test server (issue 15's must-show).

alice is the full client (a ChatSession with its stream and keystore); the 1,000 others are
stand-ins made with direct API calls: a registered account, a published account key and key
bundle, and a signed JOIN each (they only need keys). alice's client verifies all 1,000 joins
from the stream, distributes her chain once (in as many requests as it takes), and then:

- one message reaches every member (each stand-in fetches and decrypts it);
- the message's send is one request, far under the request limit;
- the store gains one row and the message's bytes for it, exactly as for a 2-member room;
- after a removal, the removed member cannot read the next message.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from securechat.client.bundles import publish_request
from securechat.client.credentials import new_keys
from securechat.client.events import Target
from securechat.client.linking import account_request
from securechat.client.rpc import Api
from securechat.client.vault import TEST_ARGON2, now_s
from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.account_password import LoginParameters
from securechat.crypto.room_keys import RoomKeys
from securechat.crypto.room_membership import join_event
from securechat.crypto.room_message import distribution_conversation
from securechat.crypto.roster import Roster
from securechat.errors import DecryptionError
from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import content_pb2
from tests.client.conftest import MakeDevice
from tests.client.test_rooms_live import _spy
from tests.conftest import server_config
from tests.storage.test_store_rooms import _footprint
from tests.support.net import secure_channel

ROOM = "big"
SMALL = "two"  # the same name length: the same message size
# 1,000 for the must-show (about 15 minutes on the shared 2-core machine: run it with
# ROOM_TEST_MEMBERS=1000); the suite runs the same test with fewer stand-ins.
MEMBERS = int(os.environ.get("ROOM_TEST_MEMBERS", "40"))
# The suite's 120 s per test fits the 40 stand-ins; 1,000 take 2-3 minutes unloaded.
pytestmark = pytest.mark.timeout(120 if MEMBERS <= 100 else 1800)
REQUEST_LIMIT = 64 * 1024 + 4 * 1024


@dataclass
class StandIn:
    api: Api
    crypto: CryptoAccount

    @property
    def address(self) -> Address:
        return self.crypto.address

    def key(self) -> bytes:
        key = self.crypto.account_key_of(self.address.user)
        assert key is not None
        return key

    async def read(self, roster: Roster, keys: RoomKeys) -> list[str]:
        """Fetch everything waiting; install key distributions, open room messages."""
        texts = []
        deliveries = await self.api.fetch(0, 1000)
        sender = None
        for delivery in sorted(deliveries, key=lambda d: d.room_seq):  # keys (seq) first
            if delivery.room_seq:
                continue
            sender = Address(delivery.sender.user, delivery.sender.device_id)
            plaintext = self.crypto.decrypt(
                sender, distribution_conversation(ROOM), delivery.ciphertext, now=now_s()
            )
            keys.receive_distribution(
                roster, sender, plaintext, now=now_s(), accepted=_as_pinned(roster)
            )
        for delivery in deliveries:
            if delivery.room_seq:
                opened = keys.decrypt(
                    roster, delivery.ciphertext, now=now_s(), accepted=_as_pinned(roster)
                )
                texts.append(content_pb2.MessageContent.FromString(opened.plaintext).body)
        return texts


def _as_pinned(roster: Roster) -> Callable[[str], bytes | None]:
    """Every member's key as if pinned (the stand-ins know each other's keys)."""
    return lambda user: member.account_key if (member := roster.member(user)) else None


async def _stand_ins(server: Node, pki: DevPki, count: int) -> list[StandIn]:
    keys = await new_keys("stand-in password", TEST_ARGON2)
    login = LoginParameters(keys.salt, keys.params)
    secret = keys.authenticator_text()
    channel = secure_channel(pki, server.port, "client")
    limit = asyncio.Semaphore(16)

    async def one(i: int) -> StandIn:
        async with limit:
            api = Api(channel)
            user = f"member{i:04d}"
            await api.register(user, secret, login)
            result = await api.login(user, secret)
            crypto = CryptoAccount.create(
                user, result.device_id, now=now_s(), one_time_count=2, kem_one_time_count=2
            )
            await api.publish_account(account_request(crypto))
            await api.publish_bundle(
                publish_request(crypto.upload_bundle(), crypto.devices.binding)
            )
            return StandIn(api, crypto)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _join_all(stand_ins: list[StandIn], roster: Roster) -> None:
    pins = {s.address.user: s.key() for s in stand_ins}
    pins.update({user: member.account_key for user, member in roster.members.items()})
    for stand_in in stand_ins:
        user = stand_in.address.user
        event = join_event(roster, stand_in.crypto.devices.signer, user, pins[user])
        await stand_in.api.join_room(ROOM, join_event=event)
        roster.apply(event)


@pytest.fixture
async def big_server(pki: DevPki, tmp_path: Path) -> AsyncIterator[Node]:
    """The test server, with a key-claim limit that lets one client claim 1,000 bundles at
    once (the default, 1,200 an hour in bursts of 300, makes a 1,000-member room's first key
    distribution reach the first 300 devices only; the others get the key with later messages
    as the limit allows: a server-side limit to revisit for big rooms)."""
    node = Node(server_config(pki, tmp_path / "data", **{"limits.prekey_claims_per_hour": 10**6}))
    await node.start()
    yield node
    await node.stop(grace=0.5)


async def test_a_room_of_a_thousand(make_device: MakeDevice, big_server: Node, pki: DevPki) -> None:
    server = big_server
    alice = await make_device("alice", port=server.port)
    chat = await alice.start()
    await chat.messenger.actions.create(ROOM)
    t0 = time.perf_counter()
    stand_ins = await _stand_ins(server, pki, MEMBERS)
    reply = await stand_ins[0].api.get_roster(ROOM)
    pins = {"alice": alice.vault.account.account_key_of("alice")}
    pins.update({s.address.user: s.key() for s in stand_ins})
    roster, _ = Roster.from_events(ROOM, list(reply.events))
    await _join_all(stand_ins, roster)
    verified = chat.messenger.rosters
    await alice.watch.until(
        lambda: len(verified.roster(ROOM).members) == MEMBERS + 1,  # type: ignore[union-attr]
        timeout=300,
    )
    assert verified.roster(ROOM).version == roster.version  # type: ignore[union-attr]
    print(f"{MEMBERS} members made, joined and verified in {time.perf_counter() - t0:.0f} s")

    written = _spy(chat.sender)
    t0 = time.perf_counter()
    await chat.send(Target.room(ROOM), "keys go out with this one")
    print(f"first send (keys to {MEMBERS} devices): {time.perf_counter() - t0:.2f} s, "
          f"{len(written)} requests")  # fmt: skip
    distribution_sends = written[:-1]
    assert all(not r.room_message for r in distribution_sends)
    assert sum(len(r.ciphertexts) for r in written) == MEMBERS  # one key per member device
    assert all(r.ByteSize() < REQUEST_LIMIT for r in written)

    before = await _footprint(server.store)
    t0 = time.perf_counter()
    await chat.send(Target.room(ROOM), "to a thousand")
    print(f"next send: {(time.perf_counter() - t0) * 1e3:.0f} ms")
    after = await _footprint(server.store)
    message = written[-1]
    assert len(written) == len(distribution_sends) + 2
    assert message.room_message and not message.ciphertexts  # one request, one ciphertext
    assert message.ByteSize() < 1024
    stored = (after[0] - before[0], after[1] - before[1])
    # one row of the room log (plus the send's dedup row, per send, whatever the room)
    assert stored[0] <= 2 and stored[1] == len(message.room_message)

    member_keys = {s.address: RoomKeys(ROOM, s.address) for s in stand_ins}
    for stand_in in stand_ins:
        texts = await stand_in.read(roster, member_keys[stand_in.address])
        assert texts == ["keys go out with this one", "to a thousand"]

    # the same for a room of two (its other member offline too, as the stand-ins are)
    await chat.messenger.actions.create(SMALL)
    small_reply = await stand_ins[1].api.get_roster(SMALL)
    small, _ = Roster.from_events(SMALL, list(small_reply.events))
    key = stand_ins[1].key()
    event = join_event(small, stand_ins[1].crypto.devices.signer, stand_ins[1].address.user, key)
    await stand_ins[1].api.join_room(SMALL, join_event=event)
    await alice.watch.until(
        lambda: len(verified.roster(SMALL).members) == 2  # type: ignore[union-attr]
    )
    await chat.send(Target.room(SMALL), "keys go out with this one")
    before = await _footprint(server.store)
    await chat.send(Target.room(SMALL), "to a thousand")
    after = await _footprint(server.store)
    assert (after[0] - before[0], after[1] - before[1]) == stored

    # a removed member cannot read the next message
    removed = stand_ins[0]
    await chat.messenger.actions.remove(ROOM, removed.address.user)
    mark = len(written)
    await chat.send(Target.room(ROOM), "after the removal")
    rotated = written[-1]
    assert rotated.room_message
    keys_after = [d.device.user for r in written[mark:] for d in r.ciphertexts]
    assert len(keys_after) == MEMBERS - 1  # a fresh chain for everyone left
    assert removed.address.user not in keys_after
    old_keys = member_keys[removed.address]
    try:
        old_keys.decrypt(roster, rotated.room_message, now=now_s(), accepted=_as_pinned(roster))
    except DecryptionError:
        pass
    else:
        raise AssertionError("the removed member read the next message")
