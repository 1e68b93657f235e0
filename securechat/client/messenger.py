"""End-to-end messaging: seal a message for every verified recipient device, open deliveries.

Sending goes through the shared :class:`~securechat.client.rpc.sender.Sender` (the one send
path); this module supplies what is end-to-end about it: the plaintext content, sessions with
every recipient device (only devices the account book verified), the key each recipient was
trusted under when the message was first sealed (a message is never re-encrypted to a key that
changed since, without the user's decision), and the ratchet state saved before a ciphertext
leaves. Receiving checks that the sending device is certified by its account key; a message
from a device that is not is still shown, marked, with a warning (the strongest when it claims
to come from one of the user's own devices).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

from google.protobuf.message import DecodeError

from securechat.client.bundles import bundle_from_proto
from securechat.client.events import (
    Event,
    IdentityEvent,
    MessageEvent,
    NoticeEvent,
    Target,
    UndecryptableEvent,
)
from securechat.client.recipients import RecipientBook
from securechat.client.room_actions import RoomActions
from securechat.client.room_channel import RoomChannel
from securechat.client.room_upgrade import LegacyRooms
from securechat.client.rosters import RosterBook
from securechat.client.rpc.api import Api
from securechat.client.rpc.sender import Receipt, Seal, Sealed, Sender
from securechat.client.vault import Vault, now_s
from securechat.client.verified import AccountBook, Notify
from securechat.crypto.account import Address
from securechat.crypto.room_message import distribution_conversation
from securechat.crypto.trust import TrustLevel
from securechat.errors import (
    BadSignature,
    DecryptionError,
    DeviceNotCertified,
    FailedPrecondition,
    IdentityChanged,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SecureChatError,
)
from securechat_proto.v1 import chat_pb2, content_pb2, keys_pb2

# A send travels as one request the server reads whole (64 KiB + 4 KiB by default): the text
# and all its ciphertexts (one per recipient device) must fit, or the stream would be cut.
MAX_BODY_BYTES = 60_000
MAX_SEND_BYTES = 64 * 1024
CLAIM_CONCURRENCY = 16


def now_ms() -> int:
    return int(time.time() * 1000)


def check_fits(target: Target, envelopes: Mapping[Address, bytes]) -> None:
    """InvalidArgument when the ciphertexts for every device would not fit in one send."""
    total = sum(len(c) + len(d.user) + 16 for d, c in envelopes.items())
    if total > MAX_SEND_BYTES:
        raise InvalidArgument(
            f"the message is too long for {target} ({len(envelopes)} devices, "
            f"{total} bytes encrypted; at most {MAX_SEND_BYTES}): send it in shorter parts"
        )


class Messenger:
    """Encrypts through the account in ``vault`` and keeps the vault saved after each change."""

    def __init__(self, api: Api, vault: Vault, notify: Notify | None = None) -> None:
        self.api = api
        self.vault = vault
        self.me = vault.account.address
        self.notify = notify
        self.accounts = AccountBook(api, vault, notify)
        self.rosters = RosterBook(api, vault, self.accounts, notify)
        self.book = RecipientBook(api, self.me, self.accounts, self.rosters)
        self.rooms = RoomChannel(vault, self.rosters, self.ensure_sessions, self._certified, notify)
        self.actions = RoomActions(self.rosters)
        self.rosters.rejoin = self.actions.rejoin  # a stale own membership: join again
        self.upgrades = LegacyRooms(self.actions, notify)
        self._rechecked: set[Address] = set()

    def _warn(self, user: str, key: str, text: str) -> None:
        """Told once, in the conversation with ``user`` (none for the user's own devices)."""
        if self.notify is not None and self.vault.state.first_time(key):
            target = None if user == self.me.user else Target.user(user)
            self.notify(NoticeEvent(text, warning=True, target=target))

    # -- sending ---------------------------------------------------------------------------

    async def ensure_sessions(
        self, devices: Iterable[Address], *, partial: bool = False
    ) -> list[Address]:
        """Start a session with every device that has none (claiming its bundle); the devices
        a message can be sealed for now. A device without published keys is skipped (it is
        nobody's recipient on the server either); a bundle that is not the certified device's
        is refused and told once. ``partial`` (a room's key distribution): devices whose claim
        the server rate-limits are skipped for now instead of failing the send."""
        account = self.vault.account
        missing: dict[str, list[int]] = {}
        wanted = list(devices)
        for device in wanted:
            if not account.has_session(device):
                missing.setdefault(device.user, []).append(device.device_id)
        limit = asyncio.Semaphore(CLAIM_CONCURRENCY)

        async def claim(user: str, device_ids: list[int]) -> list[keys_pb2.PreKeyBundle]:
            async with limit:
                try:
                    return await self.api.claim_bundles(user, device_ids)
                except NotFound:
                    return []
                except ResourceExhausted:
                    if not partial:
                        raise
                    return []  # later: the room's key goes to it with a later message

        claimed = await asyncio.gather(*(claim(u, ids) for u, ids in sorted(missing.items())))
        for bundles in claimed:  # (a big room's first send claims many at once)
            for message in bundles:
                try:
                    account.start_session(bundle_from_proto(message), now=now_s())
                except (BadSignature, DeviceNotCertified) as exc:
                    served = message.device
                    self._warn(
                        served.user,
                        f"bundle:{served.user}:{served.device_id}:{exc.code}",
                        f"the keys the server serves for {served.user} device "
                        f"{served.device_id} are not the device's certified keys: nothing is "
                        "encrypted to it",
                    )
        if missing:
            self.vault.save()
        return [d for d in wanted if account.has_session(d)]

    def seal(self, target: Target, content: content_pb2.MessageContent) -> Seal:
        """Encrypts ``content`` for the devices the sender names; saved before it leaves.

        The key each recipient user is trusted under is taken the first time the message is
        sealed; a resend after a key change raises IdentityChanged instead of following it."""
        plaintext = content.SerializeToString()
        conversation = target.conversation_id(self.me.user)
        expected: dict[str, bytes] = {}

        async def seal(devices: Sequence[Address]) -> Mapping[Address, bytes] | Sealed:
            account = self.vault.account
            for user, sealed_under in expected.items():  # sealed before: no key may have moved
                if account.accepted_key(user) != sealed_under:
                    raise IdentityChanged(user, account.pinned_verified(user))
            for user in {d.user for d in devices} - set(expected):
                accepted = account.accepted_key(user)
                if accepted is not None:
                    expected[user] = accepted
            roster = self.rosters.roster(target.name) if target.kind == "room" else None
            if roster is not None:  # a signed room: sender keys, one ciphertext
                self.vault.state.remember(content.message_id)  # saved with the chain
                return await self.rooms.seal(roster, devices, plaintext, expected)
            ready = await self.ensure_sessions(devices)
            if not ready:
                raise FailedPrecondition(
                    f"no device in {target} has published keys yet, so nobody could read the "
                    "message: try again later"
                )
            envelopes = account.encrypt_for_devices(
                ready, conversation, plaintext, expected=expected
            )
            check_fits(target, envelopes)
            self.vault.state.remember(content.message_id)
            self.vault.save()  # the ratchet moved: persist before the ciphertext leaves
            return envelopes

        return seal

    async def submit(
        self,
        sender: Sender,
        target: Target,
        text: str,
        *,
        message_id: str = "",
        reply_to: str = "",
    ) -> asyncio.Future[Receipt]:
        """Encrypt ``text`` for every verified device of ``target`` and send it through
        ``sender``.

        ``message_id`` (default: a fresh one) is the id recipients drop duplicates by: a
        message sent again with the same id is shown once. An identity change raises
        IdentityChanged and nothing is sent."""
        if not text.strip():
            raise InvalidArgument("the message is empty: type some text")
        size = len(text.encode("utf-8"))
        if size > MAX_BODY_BYTES:
            raise InvalidArgument(
                f"the message is too long ({size} bytes; at most {MAX_BODY_BYTES}): send it in "
                "parts"
            )
        room = target.name if target.kind == "room" else ""
        if room in self.vault.state.legacy_rooms and not self.rosters.is_legacy(room):
            # upgraded meanwhile, maybe: join it again first (a failure, the network's above
            # all, is the send's to report: it says it in the send path's own words)
            with contextlib.suppress(SecureChatError):
                await self.upgrades.rejoin(room)
        content = content_pb2.MessageContent(
            message_id=message_id or uuid.uuid4().hex,
            sent_at_ms=now_ms(),
            body=text,
            reply_to=reply_to,
        )
        return await sender.submit(target, self.seal(target, content), content.message_id)

    # -- receiving -------------------------------------------------------------------------

    async def open(self, delivery: chat_pb2.Delivery) -> list[Event]:
        """Decrypt one delivery: [] for a duplicate, else message/notice events (not saved)."""
        if delivery.room_seq:  # (its id is its send's: the key distributions carry it too)
            return await self.rooms.open(delivery)
        state = self.vault.state
        if delivery.message_id in state.seen:
            return []
        state.remember(delivery.message_id)
        account = self.vault.account
        sender = Address(delivery.sender.user, delivery.sender.device_id)
        try:
            target = Target.from_proto(delivery.conversation)
        except InvalidArgument:
            target = Target.user(sender.user)
        if target.kind == "room" and await self._signed(target.name):
            with contextlib.suppress(DecryptionError):
                conversation = distribution_conversation(target.name)
                plaintext = account.decrypt(sender, conversation, delivery.ciphertext, now=now_s())
                return await self.rooms.distribution(sender, target.name, plaintext)
        undecryptable = UndecryptableEvent(
            delivery.message_id, sender.user, sender.device_id, target, delivery.sent_at_ms
        )
        before = account.trust_level(sender.user)
        try:
            plaintext = account.decrypt(
                sender, target.conversation_id(self.me.user), delivery.ciphertext, now=now_s()
            )
            content = content_pb2.MessageContent.FromString(plaintext)
        except (DecryptionError, DecodeError):
            return [undecryptable]
        events: list[Event] = []
        if account.trust_level(sender.user) is TrustLevel.CHANGED and before is not (
            TrustLevel.CHANGED
        ):
            events.append(
                IdentityEvent(sender.user, before is TrustLevel.VERIFIED, delivery.sent_at_ms)
            )
        certified = await self._certified(sender)
        if content.message_id and content.message_id in state.seen:
            return events
        if content.message_id:
            state.remember(content.message_id)
        events.append(
            MessageEvent(
                content.message_id or delivery.message_id,
                sender.user,
                sender.device_id,
                target,
                content.body,
                delivery.sent_at_ms,
                content.reply_to,
                certified,
            )
        )
        return events

    async def _signed(self, room: str) -> bool:
        """Whether ``room`` has a verified roster (its pairwise deliveries are key
        distributions)."""
        return (self.rosters.roster(room) or await self.rosters.sync(room)) is not None

    async def _certified(self, sender: Address) -> bool | None:
        """Whether the sending device is certified by its account key (None: a legacy contact);
        a device not (yet) known as certified makes the sender's account be fetched again."""
        account = self.vault.account
        certified = account.device_certified(sender)
        if certified is not True and sender not in self._rechecked:
            self._rechecked.add(sender)
            with contextlib.suppress(NotFound, InvalidArgument):  # a user who is gone
                await self.accounts.refresh(sender.user, save=False)
            certified = account.device_certified(sender)
        if certified is False:
            if sender.user == self.me.user:
                self._warn(
                    sender.user,
                    f"uncertified-own:{sender.device_id}",
                    f"!! a message claims to come from YOUR device {sender.device_id}, which your "
                    "account key did not certify: you did not send it from a device of yours. "
                    "The server may be trying to impersonate you.",
                )
            else:
                self._warn(
                    sender.user,
                    f"uncertified:{sender.user}:{sender.device_id}",
                    f"a message from {sender.user} comes from device {sender.device_id}, which "
                    f"{sender.user}'s account key did not certify: it is marked unverified",
                )
        return certified
