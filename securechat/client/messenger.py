"""End-to-end messaging: seal a message for every recipient device, open deliveries.

Sending goes through the shared :class:`~securechat.client.rpc.sender.Sender` (the one send
path); this module supplies what is end-to-end about it: the plaintext content, sessions with
every recipient device, and the ratchet state saved before a ciphertext leaves.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

from google.protobuf.message import DecodeError

from securechat.client.bundles import bundle_from_proto
from securechat.client.events import (
    Event,
    IdentityEvent,
    MessageEvent,
    Target,
    UndecryptableEvent,
)
from securechat.client.recipients import RecipientBook
from securechat.client.rpc.api import Api
from securechat.client.rpc.sender import Receipt, Seal, Sender
from securechat.client.vault import Vault, now_s
from securechat.crypto.account import Address
from securechat.crypto.trust import TrustLevel
from securechat.errors import (
    DecryptionError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from securechat_proto.v1 import chat_pb2, content_pb2

# A send travels as one request the server reads whole (64 KiB + 4 KiB by default): the text
# and all its ciphertexts (one per recipient device) must fit, or the stream would be cut.
MAX_BODY_BYTES = 60_000
MAX_SEND_BYTES = 64 * 1024


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

    def __init__(self, api: Api, vault: Vault) -> None:
        self.api = api
        self.vault = vault
        self.me = vault.account.address
        self.book = RecipientBook(api, self.me)

    # -- sending ---------------------------------------------------------------------------

    async def ensure_sessions(self, devices: Iterable[Address]) -> None:
        """Claim a bundle and start a session for every device that has none."""
        account = self.vault.account
        missing: dict[str, list[int]] = {}
        for device in devices:
            if not account.has_session(device):
                missing.setdefault(device.user, []).append(device.device_id)
        for user, device_ids in sorted(missing.items()):
            try:
                bundles = await self.api.claim_bundles(user, device_ids)
            except NotFound:
                bundles = []
            for message in bundles:
                account.start_session(bundle_from_proto(message), now=now_s())
            self.vault.save()
            unserved = [d for d in device_ids if not account.has_session(Address(user, d))]
            if unserved:
                raise FailedPrecondition(
                    f"{user} has a device without published keys ({unserved[0]}), so it cannot "
                    f"receive encrypted messages: ask {user} to log in again"
                )

    async def introduce(self, user: str) -> None:
        """Start sessions with every device of ``user`` (pinning their identity key)."""
        await self.ensure_sessions(await self.book.devices(Target.user(user)))

    def seal(self, target: Target, content: content_pb2.MessageContent) -> Seal:
        """Encrypts ``content`` for the devices the sender names; saved before it leaves."""
        plaintext = content.SerializeToString()
        conversation = target.conversation_id(self.me.user)

        async def seal(devices: Sequence[Address]) -> Mapping[Address, bytes]:
            await self.ensure_sessions(devices)
            envelopes = self.vault.account.encrypt_for_devices(devices, conversation, plaintext)
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
        """Encrypt ``text`` for every device of ``target`` and send it through ``sender``.

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
        content = content_pb2.MessageContent(
            message_id=message_id or uuid.uuid4().hex,
            sent_at_ms=now_ms(),
            body=text,
            reply_to=reply_to,
        )
        return await sender.submit(target, self.seal(target, content), content.message_id)

    # -- receiving -------------------------------------------------------------------------

    def open(self, delivery: chat_pb2.Delivery) -> list[Event]:
        """Decrypt one delivery: [] for a duplicate, else message/notice events (not saved)."""
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
            )
        )
        return events
