"""Frozen room vectors: roster events, the password split, sender-key chains, messages, states.

``build_vectors`` and ``build_states`` recompute everything from fixed keys (deterministic
randomness, Argon2id, deterministic Ed25519 and AES-GCM-SIV); the tests compare with the JSON
under tests/crypto/data/ and also open the frozen bytes independently, so another
implementation can check itself against them. Regenerate (rarely!) with
``python -m tests.crypto.make_room_vectors``.
"""

from __future__ import annotations

from typing import Any

from securechat.crypto import labels
from securechat.crypto.account import Address
from securechat.crypto.ratchet import chain_step
from securechat.crypto.room_keys import RoomKeys
from securechat.crypto.room_message import RoomMessage, SenderKeyDistribution
from securechat.crypto.room_policy import RoomPasswordKeys, join_proof_valid
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import RosterEvent, RosterVersion
from securechat.crypto.sender_chain import SendingChain, message_aead_keys

from ._rooms import ROOM, SALT, TINY, RoomWorld, public
from ._support import NOW, load_json

VECTORS_FILE = "room_vectors_v1.json"
STATES_FILE = "room_state_v1.json"
PASSWORD = "correct horse battery staple"
USERS = ("alice", "bob", "carol", "dave")
CHAIN_KEY_0 = bytes(range(32))


def _world() -> tuple[RoomWorld, list[bytes], bytes]:
    """A protected room: joins, an admin change, a removal, and alice's messages."""
    world = RoomWorld(seed=b"room vectors")
    world.create("alice", password=PASSWORD)
    world.join("bob", password=PASSWORD)
    world.join("carol", password=PASSWORD)
    world.make_admin("alice", "bob")
    world.remove("bob", "carol")
    world.join("dave", password=PASSWORD)
    alice = world.device("alice")
    plan = alice.k.prepare_send(
        alice.r, world.member_devices(), now=NOW, accepted=world.lookup,
        randomness=world.randomness,
    )  # fmt: skip
    for address in plan.recipients:
        device = world.devices[address]
        device.k.receive_distribution(
            device.r, alice.address, plan.distribution, now=NOW, accepted=world.lookup
        )
    alice.k.mark_distributed(plan.recipients)
    messages = [
        alice.k.encrypt(alice.r, f"room message {i}".encode(), now=NOW, accepted=world.lookup)
        for i in range(3)
    ]
    return world, messages, plan.distribution


def build_vectors() -> dict[str, Any]:
    world, messages, distribution = _world()
    keys = RoomPasswordKeys.derive(PASSWORD, ROOM, SALT, TINY)
    join = RosterEvent.parse(world.events[1])
    iterations = []
    chain_key = CHAIN_KEY_0
    for iteration in range(4):
        message_key, next_key = chain_step(chain_key)
        aead_key, nonce = message_aead_keys(message_key)
        iterations.append(
            {
                "iteration": iteration,
                "chain_key": chain_key.hex(),
                "message_key": message_key.hex(),
                "aead_key": aead_key.hex(),
                "nonce": nonce.hex(),
            }
        )
        chain_key = next_key
    changes = world.device("alice").changes
    return {
        "account_public_keys": {user: public(user).hex() for user in USERS},
        "room_password": {
            "password": PASSWORD,
            "room": ROOM,
            "salt": SALT.hex(),
            "argon2_iterations_lanes_memory_kib": [TINY.iterations, TINY.lanes, TINY.memory_cost],
            "authenticator": keys.authenticator.decode("ascii"),
            "proof_public_key": keys.proof_public_key.hex(),
            "bob_join_proof": (join.proof or b"").hex(),
        },
        "roster_events": [
            {
                "event": event.hex(),
                "hash": RosterEvent.parse(event).hash().hex(),
                "shown": c.describe(),
            }
            for event, c in zip(world.events, changes, strict=True)
        ],
        "roster_version": world.device("alice").r.version.to_bytes().hex(),
        "sender_chain": {"chain_key_0": CHAIN_KEY_0.hex(), "iterations": iterations},
        "distribution_from_alice": distribution.hex(),
        "room_messages_from_alice": [
            {"plaintext": f"room message {i}".encode().hex(), "message": m.hex()}
            for i, m in enumerate(messages)
        ],
    }


def build_states() -> dict[str, str]:
    """Alice's roster and sending state; dave's keys after opening message 2 (0 and 1 skipped)."""
    world, messages, _ = _world()
    dave = world.device("dave")
    dave.k.decrypt(dave.r, messages[2], now=NOW, accepted=world.lookup)
    return {
        "alice_roster": world.device("alice").r.to_bytes().hex(),
        "alice_room_keys": world.device("alice").k.to_bytes().hex(),
        "dave_roster": dave.r.to_bytes().hex(),
        "dave_room_keys": dave.k.to_bytes().hex(),
    }


def test_room_vectors_match_the_frozen_bytes() -> None:
    assert build_vectors() == load_json(VECTORS_FILE)


def test_room_states_match_the_frozen_bytes() -> None:
    assert build_states() == load_json(STATES_FILE)


def test_frozen_events_verify_from_the_account_keys_alone() -> None:
    frozen = load_json(VECTORS_FILE)
    pins = {user: bytes.fromhex(key) for user, key in frozen["account_public_keys"].items()}
    events = [bytes.fromhex(entry["event"]) for entry in frozen["roster_events"]]
    roster, changes = Roster.from_events(ROOM, events)
    assert [c.describe() for c in changes] == [e["shown"] for e in frozen["roster_events"]]
    assert roster.version.to_bytes().hex() == frozen["roster_version"]
    password = frozen["room_password"]
    assert roster.policy.proof_public_key == bytes.fromhex(password["proof_public_key"])
    head = RosterEvent.parse(events[0]).hash()
    proof = bytes.fromhex(password["bob_join_proof"])
    assert join_proof_valid(roster.policy, proof, ROOM, 1, head, "bob", pins["bob"])


def test_frozen_messages_open_from_the_frozen_distribution() -> None:
    frozen = load_json(VECTORS_FILE)
    pins = {user: bytes.fromhex(key) for user, key in frozen["account_public_keys"].items()}
    events = [bytes.fromhex(entry["event"]) for entry in frozen["roster_events"]]
    roster, _ = Roster.from_events(ROOM, events)
    keys = RoomKeys(ROOM, Address("bob", 1))
    distribution = bytes.fromhex(frozen["distribution_from_alice"])
    alice = Address("alice", 1)
    assert keys.receive_distribution(roster, alice, distribution, now=NOW, accepted=pins.get)
    parsed = SenderKeyDistribution.parse(distribution)
    assert parsed.position.version == RosterVersion.from_bytes(
        bytes.fromhex(frozen["roster_version"])
    )
    for entry in reversed(frozen["room_messages_from_alice"]):
        message = bytes.fromhex(entry["message"])
        assert RoomMessage.parse(message).to_bytes() == message
        opened = keys.decrypt(roster, message, now=NOW, accepted=pins.get)
        assert opened.plaintext.hex() == entry["plaintext"]


def test_frozen_states_load_and_keep_working() -> None:
    frozen_states = load_json(STATES_FILE)
    vectors = load_json(VECTORS_FILE)
    pins = {user: bytes.fromhex(key) for user, key in vectors["account_public_keys"].items()}
    for name in ("alice_roster", "dave_roster"):
        data = bytes.fromhex(frozen_states[name])
        assert Roster.from_bytes(data).to_bytes() == data
    dave_roster = Roster.from_bytes(bytes.fromhex(frozen_states["dave_roster"]))
    dave_keys = RoomKeys.from_bytes(bytes.fromhex(frozen_states["dave_room_keys"]))
    assert RoomKeys.from_bytes(dave_keys.to_bytes()).to_bytes() == dave_keys.to_bytes()
    skipped = bytes.fromhex(vectors["room_messages_from_alice"][0]["message"])
    opened = dave_keys.decrypt(dave_roster, skipped, now=NOW, accepted=pins.get)
    assert opened.plaintext == b"room message 0"
    alice_roster = Roster.from_bytes(bytes.fromhex(frozen_states["alice_roster"]))
    alice_keys = RoomKeys.from_bytes(bytes.fromhex(frozen_states["alice_room_keys"]))
    next_message = alice_keys.encrypt(alice_roster, b"room message 3", now=NOW, accepted=pins.get)
    opened = dave_keys.decrypt(dave_roster, next_message, now=NOW, accepted=pins.get)
    assert opened.plaintext == b"room message 3"


def test_the_sender_chain_is_libsignals_chain_kdf() -> None:
    """libsignal's SenderChainKey uses the ChainKey constants: its vector holds for our chain."""
    vector = load_json("libsignal_chain_key.json")
    chain = SendingChain.create(RosterVersion(0, bytes(32)), now=NOW)
    chain.chain_key = bytes.fromhex(vector["seed"])
    iteration, message_key = chain.next_message_key()
    expanded = labels.hkdf(message_key, None, vector["hkdf_info"].encode(), 80)
    assert iteration == 0
    assert expanded[:32].hex() == vector["message_key"]
    assert expanded[32:64].hex() == vector["mac_key"]
    assert chain.chain_key.hex() == vector["next_chain_key"]
