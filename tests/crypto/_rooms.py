"""A small room world for the rooms crypto tests: users, devices, the server's event log."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.crypto.account import Address
from securechat.crypto.keystore import Argon2Params
from securechat.crypto.room_keys import RoomKeys
from securechat.crypto.room_membership import (
    admin_event,
    create_event,
    join_event,
    leave_event,
    policy_event,
    remove_event,
)
from securechat.crypto.room_policy import OPEN_POLICY, RoomPasswordKeys, RoomPolicy
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import RosterChange

from ._support import NOW, DeterministicRandomness

TINY = Argon2Params(iterations=1, lanes=1, memory_cost=8)
ROOM = "lobby"
SALT = bytes(range(16))


def account_key(user: str) -> Ed25519PrivateKey:
    """A fixed account key per user name (deterministic, so vectors can be frozen)."""
    return DeterministicRandomness(b"account:" + user.encode()).ed25519()


def public(user: str) -> bytes:
    return account_key(user).public_key().public_bytes_raw()


def reset_key(user: str, generation: int) -> Ed25519PrivateKey:
    """The account key ``user`` has after ``generation`` resets (0: :func:`account_key`)."""
    if generation == 0:
        return account_key(user)
    return DeterministicRandomness(b"account:%s:%d" % (user.encode(), generation)).ed25519()


@dataclass
class Device:
    address: Address
    roster: Roster | None = None
    keys: RoomKeys | None = None
    changes: list[RosterChange] = field(default_factory=list)

    @property
    def r(self) -> Roster:
        assert self.roster is not None
        return self.roster

    @property
    def k(self) -> RoomKeys:
        assert self.keys is not None
        return self.keys


class RoomWorld:
    """An honest server's view of one room plus every device's own verified state."""

    def __init__(self, room: str = ROOM, *, seed: bytes = b"world") -> None:
        self.room = room
        self.events: list[bytes] = []
        self.devices: dict[Address, Device] = {}
        self.pins: dict[str, bytes] = {}
        self.randomness = DeterministicRandomness(seed)
        self.password_keys: RoomPasswordKeys | None = None
        self.generations: dict[str, int] = {}  # account-key resets per user

    def key(self, user: str) -> Ed25519PrivateKey:
        """``user``'s current account key (after any resets)."""
        return reset_key(user, self.generations.get(user, 0))

    def pub(self, user: str) -> bytes:
        return self.key(user).public_key().public_bytes_raw()

    def reset(self, user: str) -> None:
        """``user`` makes a new account key; every client accepts it (the pins follow)."""
        self.generations[user] = self.generations.get(user, 0) + 1
        self.pins[user] = self.pub(user)

    # -- people ------------------------------------------------------------------------------

    def device(self, user: str, device_id: int = 1) -> Device:
        address = Address(user, device_id)
        if address not in self.devices:
            self.devices[address] = Device(address)
            self.pins[user] = self.pub(user)
        return self.devices[address]

    def lookup(self, user: str) -> bytes | None:
        return self.pins.get(user)

    def member_devices(self) -> list[Address]:
        return sorted(a for a, d in self.devices.items() if d.roster is not None)

    # -- membership ----------------------------------------------------------------------------

    def create(self, creator: str, password: str | None = None) -> Device:
        device = self.device(creator)
        policy: RoomPolicy = OPEN_POLICY
        if password is not None:
            self.password_keys = RoomPasswordKeys.derive(password, self.room, SALT, TINY)
            policy = self.password_keys.policy(TINY)
        event = create_event(
            self.room,
            self.key(creator),
            creator,
            self.pub(creator),
            room_salt=SALT,
            policy=policy,
        )
        self.events.append(event)
        self._sync(device)
        return device

    def keys_for(self, password: str) -> RoomPasswordKeys:
        roster = self.any_roster()
        assert roster.policy.argon2 is not None
        return RoomPasswordKeys.derive(password, self.room, roster.room_salt, roster.policy.argon2)

    def new_policy(self, password: str) -> RoomPolicy:
        roster = self.any_roster()
        keys = RoomPasswordKeys.derive(password, self.room, roster.room_salt, TINY)
        return keys.policy(TINY)

    def join(self, user: str, password: str | None = None, device_id: int = 1) -> bytes:
        device = self.device(user, device_id)
        roster = self.any_roster()
        keys = self.keys_for(password) if password is not None else None
        event = join_event(roster, self.key(user), user, self.pub(user), keys)
        self.append(event)
        self._sync(device)
        return event

    def leave(self, user: str) -> bytes:
        return self.append(leave_event(self.any_roster(), self.key(user), user, self.pub(user)))

    def remove(self, admin: str, subject: str) -> bytes:
        roster = self.any_roster()
        return self.append(remove_event(roster, self.key(admin), admin, self.pub(admin), subject))

    def make_admin(self, admin: str, subject: str, *, make_admin: bool = True) -> bytes:
        event = admin_event(
            self.any_roster(),
            self.key(admin),
            admin,
            self.pub(admin),
            subject,
            make_admin=make_admin,
        )
        return self.append(event)

    def set_policy(self, admin: str, policy: RoomPolicy) -> bytes:
        roster = self.any_roster()
        return self.append(policy_event(roster, self.key(admin), admin, self.pub(admin), policy))

    def append(self, event: bytes) -> bytes:
        """The server appends ``event``; every device holding a roster applies it."""
        self.events.append(event)
        for device in self.devices.values():
            if device.roster is not None:
                change = device.roster.apply(event)
                device.roster.mark_shown(change.version.sequence)
                device.changes.append(change)
                assert device.keys is not None
                device.keys.on_roster_change(change)
        return event

    def _sync(self, device: Device) -> None:
        roster, changes = Roster.from_events(self.room, self.events)
        roster.mark_shown(roster.version.sequence)
        device.roster, device.changes = roster, changes
        device.keys = RoomKeys(self.room, device.address)

    def any_roster(self) -> Roster:
        roster = self.any_roster_or_none()
        assert roster is not None, "nobody is in the room"
        return roster

    def any_roster_or_none(self) -> Roster | None:
        """The roster of any device whose user is still a member."""
        for device in self.devices.values():
            if device.roster is not None and device.roster.is_member(device.address.user):
                return device.roster
        return None

    # -- messages ------------------------------------------------------------------------------

    def send(self, user: str, text: bytes, *, device_id: int = 1, now: int = NOW) -> bytes:
        """Distribute the sender's chain to the devices lacking it, then encrypt once."""
        sender = self.devices[Address(user, device_id)]
        devices = [a for a in self.member_devices() if self.devices[a].r.is_member(a.user)]
        plan = sender.k.prepare_send(
            sender.r, devices, now=now, accepted=self.lookup, randomness=self.randomness
        )
        for address in plan.recipients:
            receiver = self.devices[address]
            receiver.k.receive_distribution(
                receiver.r, sender.address, plan.distribution, now=now, accepted=self.lookup
            )
        sender.k.mark_distributed(plan.recipients)
        return sender.k.encrypt(sender.r, text, now=now, accepted=self.lookup)

    def open(self, user: str, message: bytes, *, device_id: int = 1, now: int = NOW) -> bytes:
        device = self.devices[Address(user, device_id)]
        return device.k.decrypt(device.r, message, now=now, accepted=self.lookup).plaintext


def open_room(*members: str) -> RoomWorld:
    """An open room created by alice, which ``members`` joined in order."""
    world = RoomWorld()
    world.create("alice")
    for user in members:
        world.join(user)
    return world
