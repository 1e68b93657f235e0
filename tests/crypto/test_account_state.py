"""Account state versions: a frozen stage-1 (version 1) state still loads, keeps its sessions,
pins and replay memory, and can become the first device of an account key."""

from __future__ import annotations

import pytest

from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.account_state import ACCOUNT_VERSION
from securechat.crypto.trust import TrustLevel
from securechat.errors import DecryptionError

from ._support import NOW, load_json

FROZEN = load_json("account_state_v1.json")
ALICE, BOB = Address("alice", 1), Address("bob", 1)


def _load(name: str) -> CryptoAccount:
    data = bytes.fromhex(FROZEN[f"{name}_state"])
    assert data[4:6] == b"\x00\x01"
    return CryptoAccount.from_bytes(data)


def test_a_stage_one_state_loads_with_its_sessions_and_pins() -> None:
    alice, bob = _load("alice"), _load("bob")
    assert bob.account_key is None
    assert bob.trust_level("alice") is TrustLevel.VERIFIED
    conversation = FROZEN["conversation"]
    in_flight = bytes.fromhex(FROZEN["in_flight"])
    assert bob.decrypt(ALICE, conversation, in_flight, now=NOW) == bytes.fromhex(
        FROZEN["in_flight_plaintext"]
    )
    reply = bob.encrypt(ALICE, conversation, b"after the upgrade")
    assert alice.decrypt(BOB, conversation, reply, now=NOW) == b"after the upgrade"
    assert bob.to_bytes()[4:6] == ACCOUNT_VERSION.to_bytes(2, "big")
    assert CryptoAccount.from_bytes(bob.to_bytes()).to_bytes() == bob.to_bytes()


def test_the_stage_one_replay_memory_survives_the_upgrade() -> None:
    bob = _load("bob")
    bob._sessions.clear()  # the session is gone: only the replay memory can refuse it
    with pytest.raises(DecryptionError):
        bob.decrypt(
            ALICE, FROZEN["conversation"], bytes.fromhex(FROZEN["replayed_first_message"]), now=NOW
        )


def test_a_stage_one_device_becomes_the_first_device_of_an_account_key() -> None:
    bob = _load("bob")
    publication = bob.devices.migrate(now=NOW)
    assert bob.account_key == publication.head.account_key
    assert publication.certificate is not None
    assert publication.certificate.names(1, bob.identity_public)
    assert publication.head.version == 1
    assert bob.devices.own_list == publication.head
    assert bob.devices.binding is not None
    bob.devices.binding.verify()
    restored = CryptoAccount.from_bytes(bob.to_bytes())
    assert restored.account_key == bob.account_key
