"""Users with account keys who sign room events over the raw API (the test plays the client).

``RoomUser`` holds a logged-in device that published its account key and bundle, and its
account key pair; ``roster_of`` verifies a room's roster as a client would (with the keys of
the users the test knows), so the next event can be signed onto its head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.keystore import Argon2Params
from securechat.crypto.room_membership import (
    create_event,
    join_event,
    leave_event,
    new_room_salt,
    remove_event,
)
from securechat.crypto.room_policy import OPEN_POLICY, RoomPasswordKeys
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import EventKind, RosterEvent
from securechat_proto.v1 import chat_pb2, common_pb2, rooms_pb2
from tests.support.accounts import AccountDevice, account_request, now
from tests.support.net import Api

TINY = Argon2Params(iterations=1, lanes=1, memory_cost=8)


@dataclass
class Keys:
    """The account keys a test's clients have pinned, by user."""

    pins: dict[str, bytes] = field(default_factory=dict)

    def lookup(self, user: str) -> bytes | None:
        return self.pins.get(user)


@dataclass
class RoomUser:
    device: AccountDevice
    key: AccountKeyPair

    @property
    def api(self) -> Api:
        return self.device.api

    @property
    def user(self) -> str:
        return self.api.user

    @property
    def public(self) -> bytes:
        return self.key.public.to_bytes()

    def create(self, room: str, password_keys: RoomPasswordKeys | None = None) -> bytes:
        policy = OPEN_POLICY if password_keys is None else password_keys.policy(TINY)
        salt = SALTS.setdefault(room, new_room_salt())
        return create_event(room, self.key, self.user, self.public, room_salt=salt, policy=policy)

    def join(self, roster: Roster, password_keys: RoomPasswordKeys | None = None) -> bytes:
        return join_event(roster, self.key, self.user, self.public, password_keys)

    def leave(self, roster: Roster) -> bytes:
        return leave_event(roster, self.key, self.user, self.public)

    def remove(self, roster: Roster, subject: str) -> bytes:
        return remove_event(roster, self.key, self.user, self.public, subject)

    def raw(
        self, roster: Roster, kind: EventKind, subject: str = "", *, key: bytes = b"",
        proof: bytes | None = None,
    ) -> bytes:  # fmt: skip
        """The next event signed by this user without the client's own checks (bad input)."""
        version = roster.version
        return (
            RosterEvent(kind, roster.room, version.sequence + 1, version.head, self.user,
                        key or self.public, subject or self.user, proof=proof)
            .sign(self.key)
            .to_bytes()
        )  # fmt: skip


SALTS: dict[str, bytes] = {}


async def room_user(api: Api, keys: Keys) -> RoomUser:
    """``api`` (logged in without keys) becomes the first device of a new account key."""
    key = AccountKeyPair.generate()
    crypto = CryptoAccount.create(
        api.user, api.device_id, now=now(), one_time_count=2, kem_one_time_count=2,
        account_key=key,
    )  # fmt: skip
    await api.keys.PublishAccount(account_request(crypto), metadata=api.md)
    device = AccountDevice(api, crypto)
    await device.publish_bundle()
    keys.pins[api.user] = key.public.to_bytes()
    return RoomUser(device, key)


async def roster_of(api: Api, room: str, keys: Keys) -> Roster:
    reply = await api.rooms.GetRoster(rooms_pb2.GetRosterRequest(name=room), metadata=api.md)
    roster, _ = Roster.from_events(room, list(reply.events))
    return roster


def password_keys(room: str, password: str) -> RoomPasswordKeys:
    return RoomPasswordKeys.derive(password, room, SALTS.setdefault(room, new_room_salt()), TINY)


def room_message(
    room: str, body: bytes, distributions: dict[tuple[str, int], bytes] | None = None,
    client_id: str = "",
) -> chat_pb2.SendRequest:  # fmt: skip
    """A sender-key send: one room message (opaque to the server) and pairwise distributions."""
    return chat_pb2.SendRequest(
        conversation=common_pb2.Conversation(room=room),
        client_message_id=client_id,
        room_message=body,
        ciphertexts=[
            chat_pb2.RecipientCiphertext(
                device=common_pb2.DeviceAddress(user=u, device_id=d), ciphertext=c
            )
            for (u, d), c in (distributions or {}).items()
        ],
    )
