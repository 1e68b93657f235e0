"""One device's sender keys in one room: its sending chain, the chains it received, rotation.

On each send the client calls :meth:`RoomKeys.prepare_send` (rotates the chain when
:func:`needs_rotation` says so and lists the member devices that still lack it; the client seals
``plan.distribution`` to each of them with ``CryptoAccount.encrypt`` under
``distribution_conversation(room)``), then :meth:`RoomKeys.encrypt` (one ciphertext for the whole
room), saves the keystore, uploads, and calls :meth:`RoomKeys.mark_distributed` once the server
acknowledged. On receipt it calls :meth:`receive_distribution` for a pairwise-delivered
distribution and :meth:`decrypt` for a room message; both raise only ``DecryptionError`` and leave
the state unchanged on failure. :meth:`on_roster_change` forgets the chains of a member who
left or was removed (or rejoined under a new account key). ``accepted`` is the client's lookup of
the account key it accepts for each user: a member whose member key is not that key is stale,
neither sent to nor accepted from. Verification order and limits: docs/e2e-wire-rooms.md §2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from securechat.crypto.account import Address
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.crypto.room_message import (
    ChainPosition,
    RoomMessage,
    SenderKeyDistribution,
)
from securechat.crypto.roster import AccountKeyLookup, Roster, RosterRelation
from securechat.crypto.roster_event import RosterChange, RosterVersion
from securechat.crypto.sender_chain import ReceivingChain, SendingChain
from securechat.errors import DecryptionError, InvalidArgument

ROTATE_AFTER_MESSAGES = 1000
ROTATE_AFTER_SECONDS = 7 * 24 * 3600
MAX_CHAINS_PER_SENDER = 4
MAX_SKIPPED_PER_ROOM = 5000
STATE_MAGIC = b"SCRK"
STATE_VERSION = 1
_USABLE = (RosterRelation.SAME, RosterRelation.OLDER)


class RotationReason(Enum):
    NO_CHAIN = "no chain yet"
    ROSTER_DIVERGED = "the chain was made for a roster version that is not ours"
    MEMBER_REMOVED = "a member left or was removed"
    DEVICE_REMOVED = "a device that had the chain is gone"
    MESSAGE_LIMIT = "the chain encrypted its maximum number of messages"
    AGE_LIMIT = "the chain reached its maximum age"


def needs_rotation(
    chain: SendingChain | None,
    roster: Roster,
    now: int,
    devices: Iterable[Address] | None = None,
) -> RotationReason | None:
    """Why ``chain`` must be replaced by a fresh one before the next send, or None."""
    if chain is None:
        return RotationReason.NO_CHAIN
    if roster.relation(chain.made_for) not in _USABLE:
        return RotationReason.ROSTER_DIVERGED
    if roster.removed_since(chain.made_for.sequence, roster.version.sequence):
        return RotationReason.MEMBER_REMOVED
    if devices is not None and chain.distributed_to - set(devices):
        return RotationReason.DEVICE_REMOVED
    if chain.iteration >= ROTATE_AFTER_MESSAGES:
        return RotationReason.MESSAGE_LIMIT
    if now - chain.created_at >= ROTATE_AFTER_SECONDS:
        return RotationReason.AGE_LIMIT
    return None


@dataclass(frozen=True)
class SendPlan:
    """What a send needs besides the room ciphertext."""

    rotated: RotationReason | None
    distribution: bytes  # the same plaintext for every device in ``recipients`` (or empty)
    recipients: list[Address]  # member devices lacking the current chain
    ignored: list[Address]  # listed devices of users who are not shown members: never used


@dataclass(frozen=True)
class OpenedRoomMessage:
    sender: Address
    plaintext: bytes
    version: RosterVersion
    relation: RosterRelation  # SAME, or OLDER: the sender had not seen our latest changes


class RoomKeys:
    """Sender-key state of one device (``own``) in one room. Not thread-safe."""

    def __init__(
        self,
        room: str,
        own: Address,
        sending: SendingChain | None = None,
        receiving: dict[Address, list[ReceivingChain]] | None = None,
    ) -> None:
        self.room = room
        self.own = own
        self.sending = sending
        self._receiving = receiving if receiving is not None else {}
        self.unsaved = False  # the sending chain moved past what the keystore holds

    def saved(self) -> None:
        """The keystore now holds this state (see :attr:`unsaved`)."""
        self.unsaved = False

    # -- sending ---------------------------------------------------------------------------

    def prepare_send(
        self,
        roster: Roster,
        devices: Iterable[Address],
        *,
        now: int,
        accepted: AccountKeyLookup,
        randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    ) -> SendPlan:
        """Rotate if needed; ``devices``: every certified device of every member, as known."""
        self._require_member(roster, accepted)
        listed = set(devices)
        shown = set(roster.recipients(accepted))
        valid = {d for d in listed if d.user in shown and d != self.own}
        reason = needs_rotation(self.sending, roster, now, valid)
        if reason is not None:
            self.sending = SendingChain.create(roster.version, now=now, randomness=randomness)
            self.unsaved = True
        chain = self.sending
        assert chain is not None
        lacking = sorted(valid - chain.distributed_to)
        distribution = b""
        if lacking:
            distribution = self.distribution()
        return SendPlan(
            reason, distribution, lacking, sorted(d for d in listed if d.user not in shown)
        )

    def distribution(self) -> bytes:
        """The current chain's distribution message (at its current iteration)."""
        if self.sending is None:
            raise InvalidArgument("no sending chain yet: call prepare_send")
        chain = self.sending
        return SenderKeyDistribution.of(chain, self.room, self.own, chain.made_for).to_bytes()

    def mark_distributed(self, devices: Iterable[Address]) -> None:
        """The server accepted the distribution envelopes for ``devices``."""
        if self.sending is not None:
            self.sending.distributed_to.update(devices)

    def encrypt(
        self, roster: Roster, plaintext: bytes, *, now: int, accepted: AccountKeyLookup
    ) -> bytes:
        """One room ciphertext for every member device (call :meth:`prepare_send` first)."""
        self._require_member(roster, accepted)
        chain = self.sending
        if chain is None or needs_rotation(chain, roster, now) is not None:
            raise InvalidArgument("the room's sending chain must be rotated: call prepare_send")
        if chain.reserve():
            self.unsaved = True  # save before this message leaves
        iteration, message_key = chain.next_message_key()
        header = ChainPosition(self.room, roster.version, self.own, chain.chain_id, iteration)
        return RoomMessage.seal(header, message_key, chain, plaintext).to_bytes()

    def _require_member(self, roster: Roster, accepted: AccountKeyLookup) -> None:
        if roster.room != self.room or not roster.is_member(self.own.user):
            raise InvalidArgument(f"you are not a member of room {self.room!r}")
        if roster.current_member(self.own.user, accepted) is None:
            raise InvalidArgument(
                f"your membership of room {self.room!r} is under another account key than "
                "yours: join it again"
            )

    # -- receiving -------------------------------------------------------------------------

    def receive_distribution(
        self, roster: Roster, sender: Address, data: bytes, *, now: int,
        accepted: AccountKeyLookup,
    ) -> bool:  # fmt: skip
        """Install a chain that ``sender`` sent over its pairwise session.

        Returns False for a chain already known (nothing changes); raises DecryptionError for a
        distribution from a non-member or a stale member, for another room or roster history,
        or one whose signature or bytes do not hold.
        """
        distribution = SenderKeyDistribution.parse(data)
        position = distribution.position
        if (
            position.room != self.room
            or roster.room != self.room
            or position.sender != sender
            or sender == self.own
            or roster.current_member(sender.user, accepted) is None
            or roster.relation(position.version) not in _USABLE
            or not distribution.signature_valid()
        ):
            raise DecryptionError()
        chains = self._receiving.get(sender, [])
        for known in chains:
            if known.chain_id == position.chain_id:
                if known.signing_public != distribution.signing_public:
                    raise DecryptionError()
                return False
        chain = ReceivingChain(
            sender,
            position.chain_id,
            distribution.signing_public,
            position.iteration,
            distribution.chain_key,
            position.version,
            now,
        )
        self._receiving[sender] = [chain, *chains][:MAX_CHAINS_PER_SENDER]
        return True

    def decrypt(
        self, roster: Roster, data: bytes, *, now: int, accepted: AccountKeyLookup
    ) -> OpenedRoomMessage:
        """Verify and open one room message, exactly once, or raise DecryptionError."""
        message = RoomMessage.parse(data)
        header = message.header
        relation = roster.relation(header.version)
        member = roster.current_member(header.sender.user, accepted)
        chain = self._chain(header.sender, header.chain_id)
        if (
            header.room != self.room
            or roster.room != self.room
            or relation not in _USABLE
            or member is None
            or member.joined_at > header.version.sequence
            or chain is None
            or chain.made_for.sequence > header.version.sequence
            or roster.removed_since(chain.made_for.sequence, header.version.sequence)
            or not message.signature_valid(chain.signing_public)
        ):
            raise DecryptionError()
        message_key, advanced = chain.message_key(header.iteration, now)
        plaintext = message.open(message_key)
        chains = self._receiving[header.sender]
        chains[next(i for i, known in enumerate(chains) if known is chain)] = advanced
        self._bound_skipped_keys()
        return OpenedRoomMessage(header.sender, plaintext, header.version, relation)

    def _chain(self, sender: Address, chain_id: int) -> ReceivingChain | None:
        for chain in self._receiving.get(sender, []):
            if chain.chain_id == chain_id:
                return chain
        return None

    def _bound_skipped_keys(self) -> None:
        stored = [
            (stored_at, number, chain)
            for chains in self._receiving.values()
            for chain in chains
            for number, (_, stored_at) in chain.skipped.items()
        ]
        if len(stored) <= MAX_SKIPPED_PER_ROOM:
            return
        stored.sort(key=lambda item: (item[0], item[1]))
        for _, number, chain in stored[: len(stored) - MAX_SKIPPED_PER_ROOM]:
            del chain.skipped[number]

    # -- membership and devices --------------------------------------------------------------

    def on_roster_change(self, change: RosterChange) -> None:
        """Forget a departed member's chains; if we were removed, forget everything."""
        if not change.removes_member:
            return
        if change.subject == self.own.user:
            self.sending = None
            self._receiving.clear()
            return
        for sender in [s for s in self._receiving if s.user == change.subject]:
            del self._receiving[sender]

    def forget_sending_chain(self) -> None:
        """After a keystore rollback: never reuse a chain position; the next send rotates."""
        self.sending = None

    def forget_device(self, device: Address) -> None:
        """A removed device: its chains are dropped (our chain rotates at the next send)."""
        self._receiving.pop(device, None)

    def receiving_chains(self, sender: Address) -> list[ReceivingChain]:
        return list(self._receiving.get(sender, []))

    # -- persistence -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        writer = Writer().raw(STATE_MAGIC).u16(STATE_VERSION).text(self.room)
        writer.text(self.own.user).u32(self.own.device_id)
        writer.boolean(self.sending is not None)
        if self.sending is not None:
            self.sending.write(writer)
        chains = [chain for sender in sorted(self._receiving) for chain in self._receiving[sender]]
        writer.u32(len(chains))
        for chain in chains:
            chain.write(writer)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> RoomKeys:
        """Restore saved room keys (InvalidArgument if malformed or of an unknown version)."""
        try:
            reader = Reader(data)
            if reader.fixed(4) != STATE_MAGIC or reader.u16() != STATE_VERSION:
                raise InvalidArgument("not a room key state of a supported version")
            room, own = reader.text(), Address(reader.text(), reader.u32())
            sending = SendingChain.read(reader) if reader.boolean() else None
            receiving: dict[Address, list[ReceivingChain]] = {}
            for _ in range(reader.u32()):
                chain = ReceivingChain.read(reader)
                receiving.setdefault(chain.sender, []).append(chain)
            reader.finish()
        except ValueError as exc:
            raise InvalidArgument("malformed room key state") from exc
        return cls(room, own, sending, receiving)
