"""Micro-benchmarks of room sender keys, for ``make bench`` to report; prints nothing itself.

Plain ``time.perf_counter`` loops, no assertions: one room message encrypted and decrypted
(with a message of 200 bytes, whatever the room size), a whole send (rotation check, the
"who lacks the chain" check and the encryption) in rooms of 10/100/1,000 member devices once keys
are distributed, and the one-time distribution of a fresh chain to that many devices over the
existing pairwise sessions (``CryptoAccount.encrypt`` per device), plus the byte sizes.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.bench import NOW, _pair
from securechat.crypto.room_keys import RoomKeys
from securechat.crypto.room_membership import create_event, join_event, new_room_salt
from securechat.crypto.room_message import distribution_conversation
from securechat.crypto.roster import AccountKeyLookup, Roster

ROOM = "bench-room"
SIZES = (10, 100, 1000)
QUICK_SIZES = (3, 10)
BODY = b"m" * 200


def _room(members: int) -> tuple[Roster, list[Address]]:
    """A verified open room of ``sender`` plus ``members`` users with one device each."""
    keys = {"sender": Ed25519PrivateKey.generate()}
    keys.update({f"member{i}": Ed25519PrivateKey.generate() for i in range(members)})
    pins = {user: key.public_key().public_bytes_raw() for user, key in keys.items()}
    first = create_event(ROOM, keys["sender"], "sender", pins["sender"], room_salt=new_room_salt())
    roster, _ = Roster.from_events(ROOM, [first])
    for user in list(keys)[1:]:
        roster.apply(join_event(roster, keys[user], user, pins[user]))
    roster.mark_shown(roster.version.sequence)
    return roster, [Address(user, 1) for user in keys]


def _members_as_pinned(roster: Roster) -> AccountKeyLookup:
    """Every member's key as the client's accepted key (nobody is stale in the bench)."""
    return lambda user: member.account_key if (member := roster.member(user)) else None


def bench_room_message(rounds: int) -> dict[str, float]:
    """Microseconds to encrypt (send path) and to decrypt one room message; message bytes."""
    roster, devices = _room(1)
    pinned = _members_as_pinned(roster)
    sender, receiver = RoomKeys(ROOM, devices[0]), RoomKeys(ROOM, devices[1])
    plan = sender.prepare_send(roster, devices, now=NOW, accepted=pinned)
    receiver.receive_distribution(roster, devices[0], plan.distribution, now=NOW, accepted=pinned)
    sender.mark_distributed(plan.recipients)
    start = time.perf_counter()
    messages = []
    for _ in range(rounds):
        sender.prepare_send(roster, devices, now=NOW, accepted=pinned)
        messages.append(sender.encrypt(roster, BODY, now=NOW, accepted=pinned))
    encrypt = time.perf_counter() - start
    start = time.perf_counter()
    for message in messages:
        receiver.decrypt(roster, message, now=NOW, accepted=pinned)
    decrypt = time.perf_counter() - start
    return {
        "room_encrypt_us": encrypt / rounds * 1e6,
        "room_decrypt_us": decrypt / rounds * 1e6,
        "room_message_bytes": float(len(messages[0])),
        "room_distribution_bytes": float(len(plan.distribution)),
    }


def bench_room_send(members: int, rounds: int) -> float:
    """Milliseconds for one send in a room of ``members`` other devices, keys distributed."""
    roster, devices = _room(members)
    pinned = _members_as_pinned(roster)
    sender = RoomKeys(ROOM, devices[0])
    plan = sender.prepare_send(roster, devices, now=NOW, accepted=pinned)
    sender.mark_distributed(plan.recipients)
    start = time.perf_counter()
    for _ in range(rounds):
        sender.prepare_send(roster, devices, now=NOW, accepted=pinned)
        sender.encrypt(roster, BODY, now=NOW, accepted=pinned)
    return (time.perf_counter() - start) / rounds * 1e3


def bench_room_distribution(members: int) -> float:
    """Milliseconds to hand a fresh chain to ``members`` devices over their pairwise sessions."""
    roster, devices = _room(members)
    pinned = _members_as_pinned(roster)
    account = CryptoAccount.create("sender", 1, now=NOW, one_time_count=1, kem_one_time_count=1)
    for address in devices[1:]:
        member = CryptoAccount.create(
            address.user, 1, now=NOW, one_time_count=1, kem_one_time_count=1
        )
        _pair(account, member)
    sender = RoomKeys(ROOM, devices[0])
    conversation = distribution_conversation(ROOM)
    start = time.perf_counter()
    plan = sender.prepare_send(roster, devices, now=NOW, accepted=pinned)
    for address in plan.recipients:
        account.encrypt(address, conversation, plan.distribution)
    sender.mark_distributed(plan.recipients)
    return (time.perf_counter() - start) * 1e3


def run_room_bench(*, quick: bool = False) -> dict[str, float]:
    """Every rooms measurement; ``quick`` uses fewer rounds and smaller rooms (smoke tests)."""
    sizes = QUICK_SIZES if quick else SIZES
    results = bench_room_message(20 if quick else 900)  # under ROTATE_AFTER_MESSAGES
    for members in sizes:
        results[f"room_send_{members}_ms"] = bench_room_send(members, 5 if quick else 200)
        results[f"room_distribution_{members}_ms"] = bench_room_distribution(members)
    return results
