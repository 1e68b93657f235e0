"""Room passwords: the server's check and the join-proof key are separate; policies are bounded."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.crypto import labels
from securechat.crypto.keystore import Argon2Params
from securechat.crypto.room_membership import join_event
from securechat.crypto.room_policy import (
    OPEN_POLICY,
    RoomPasswordKeys,
    RoomPolicy,
    join_proof_valid,
)
from securechat.crypto.roster_event import RosterEvent
from securechat.errors import InvalidArgument, RosterRejected

from ._rooms import ROOM, SALT, TINY, RoomWorld, account_key, public


def test_derivation_is_deterministic_and_bound_to_password_room_and_salt() -> None:
    keys = RoomPasswordKeys.derive("room password", ROOM, SALT, TINY)
    again = RoomPasswordKeys.derive("room password", ROOM, SALT, TINY)
    assert (keys.authenticator, keys.proof_public_key) == (
        again.authenticator,
        again.proof_public_key,
    )
    for other in (
        RoomPasswordKeys.derive("room passwore", ROOM, SALT, TINY),
        RoomPasswordKeys.derive("room password", "other", SALT, TINY),
        RoomPasswordKeys.derive("room password", ROOM, bytes(16), TINY),
        RoomPasswordKeys.derive("room password", ROOM, SALT, Argon2Params(2, 1, 8)),
    ):
        assert other.authenticator != keys.authenticator
        assert other.proof_public_key != keys.proof_public_key


def test_the_authenticator_is_bcrypt_ready_ascii() -> None:
    keys = RoomPasswordKeys.derive("room password", ROOM, SALT, TINY)
    assert len(keys.authenticator) == 64  # within bcrypt's 72 bytes, no NUL
    assert set(keys.authenticator) <= set(b"0123456789abcdef")


def test_what_the_server_receives_cannot_make_a_join_members_accept() -> None:
    """The server holds the authenticator, the salt, the policy and every event: try them all."""
    world = RoomWorld()
    world.create("alice", password="room password")
    roster = world.device("alice").r
    authenticator = world.password_keys.authenticator if world.password_keys else b""
    seed_from_auth = labels.hkdf(
        bytes.fromhex(authenticator.decode()), None, labels.ROOM_PASSWORD_PROOF_KEY, 32
    )
    attempts = [
        RoomPasswordKeys(authenticator, Ed25519PrivateKey.from_private_bytes(seed_from_auth)),
        RoomPasswordKeys(
            authenticator,
            Ed25519PrivateKey.from_private_bytes(bytes.fromhex(authenticator.decode())),
        ),
        RoomPasswordKeys.derive(authenticator.decode(), ROOM, SALT, TINY),
    ]
    world.pins["mallory"] = public("mallory")
    for keys in attempts:
        assert keys.proof_public_key != roster.policy.proof_public_key
        with pytest.raises(RosterRejected, match="password proof"):
            join_event(roster, account_key("mallory"), "mallory", public("mallory"), keys)


def test_a_proof_binds_room_position_user_and_key() -> None:
    keys = RoomPasswordKeys.derive("room password", ROOM, SALT, TINY)
    policy = keys.policy(TINY)
    head = bytes(range(32))
    proof = keys.prove_join(ROOM, 5, head, "bob", public("bob"))
    assert join_proof_valid(policy, proof, ROOM, 5, head, "bob", public("bob"))
    for args in [
        ("other", 5, head, "bob", public("bob")),
        (ROOM, 6, head, "bob", public("bob")),
        (ROOM, 5, bytes(32), "bob", public("bob")),
        (ROOM, 5, head, "bobby", public("bob")),
        (ROOM, 5, head, "bob", public("mallory")),
    ]:
        assert not join_proof_valid(policy, proof, *args)
    assert not join_proof_valid(OPEN_POLICY, proof, ROOM, 5, head, "bob", public("bob"))


@pytest.mark.parametrize(
    "params",
    [
        Argon2Params(0, 1, 8),
        Argon2Params(11, 1, 8),
        Argon2Params(1, 0, 8),
        Argon2Params(1, 17, 8 * 17),
        Argon2Params(1, 2, 8),
        Argon2Params(1, 1, 1024 * 1024 + 1),
    ],
)
def test_out_of_bounds_argon2_parameters_are_refused(params: Argon2Params) -> None:
    with pytest.raises(InvalidArgument, match="out of bounds"):
        RoomPolicy(params, bytes(32))
    with pytest.raises(InvalidArgument, match="out of bounds"):
        RoomPasswordKeys.derive("room password", ROOM, SALT, params)


def test_bad_password_inputs_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        RoomPasswordKeys.derive("", ROOM, SALT, TINY)
    with pytest.raises(InvalidArgument, match="16 bytes"):
        RoomPasswordKeys.derive("room password", ROOM, SALT[:8], TINY)
    with pytest.raises(InvalidArgument):
        RoomPasswordKeys.derive("room password", "", SALT, TINY)
    with pytest.raises(InvalidArgument):
        RoomPolicy(TINY, None)
    with pytest.raises(InvalidArgument):
        RoomPolicy(None, bytes(32))
    with pytest.raises(InvalidArgument):
        RoomPolicy(TINY, bytes(31))


def test_a_policy_round_trips_inside_an_event() -> None:
    world = RoomWorld()
    world.create("alice", password="room password")
    event = RosterEvent.parse(world.events[0])
    assert event.policy is not None
    assert event.policy.argon2 == TINY
    assert event.policy == world.device("alice").r.policy
