"""End-to-end messaging: encrypt a message for every recipient device, open deliveries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from securechat.client.api import Api
from securechat.client.bundles import bundle_from_proto
from securechat.client.events import (
    Event,
    IdentityEvent,
    MessageEvent,
    NoticeEvent,
    Target,
    UndecryptableEvent,
)
from securechat.client.vault import Vault, now_s
from securechat.crypto.account import Address
from securechat.crypto.trust import TrustLevel
from securechat.errors import (
    DecryptionError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SecureChatError,
)
from securechat_proto.v1 import chat_pb2, content_pb2

MAX_ATTEMPTS = 4
Transport = Callable[[chat_pb2.SendRequest], Awaitable[chat_pb2.SendResult]]
Notify = Callable[[Event], None]

_RESULT_ERRORS: dict[str, type[SecureChatError]] = {
    "permission_denied": PermissionDenied,
    "not_found": NotFound,
    "invalid_argument": InvalidArgument,
    "failed_precondition": FailedPrecondition,
}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    server_message_id: str
    target: Target
    text: str
    recipients: int


class Messenger:
    """Encrypts through the account in ``vault`` and keeps the vault saved after each change."""

    def __init__(self, api: Api, vault: Vault) -> None:
        self.api = api
        self.vault = vault
        self.me = vault.account.address

    # -- sending ---------------------------------------------------------------------------

    async def recipients(self, target: Target) -> list[Address]:
        """Every device the server expects a ciphertext for (all but this device)."""
        if target.kind == "room":
            members = await self.api.list_members(target.name)
            devices = [Address(m.user, d) for m in members for d in m.device_ids]
        else:
            if target.name == self.me.user:
                raise InvalidArgument("that is you: send a private message to someone else")
            peers = await self.api.list_devices(target.name)
            own = await self.api.list_devices(self.me.user)
            devices = [Address(i.device.user, i.device.device_id) for i in [*peers, *own]]
        return sorted({d for d in devices if d != self.me})

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

    async def send(
        self,
        target: Target,
        text: str,
        transport: Transport,
        notify: Notify | None = None,
        reply_to: str = "",
    ) -> SentMessage:
        """Encrypt ``text`` for every device of ``target`` and send it through ``transport``.

        A send built on a stale device list is re-encrypted for the current list (after
        telling ``notify`` who joined); an identity change raises IdentityChanged untouched.
        """
        if not text.strip():
            raise InvalidArgument("the message is empty: type some text")
        content = content_pb2.MessageContent(
            message_id=uuid.uuid4().hex, sent_at_ms=now_ms(), body=text, reply_to=reply_to
        )
        plaintext = content.SerializeToString()
        conversation = target.conversation_id(self.me.user)
        devices = await self.recipients(target)
        for _ in range(MAX_ATTEMPTS):
            await self.ensure_sessions(devices)
            envelopes = self.vault.account.encrypt_for_devices(devices, conversation, plaintext)
            self.vault.state.remember(content.message_id)
            self.vault.save()  # the ratchet moved: persist before the ciphertext leaves
            request = chat_pb2.SendRequest(
                conversation=target.to_proto(), client_message_id=content.message_id
            )
            for device, envelope in envelopes.items():
                item = request.ciphertexts.add(ciphertext=envelope)
                item.device.user, item.device.device_id = device.user, device.device_id
            result = await transport(request)
            if result.accepted:
                return SentMessage(
                    content.message_id, result.message_id, target, text, len(devices)
                )
            if result.error_code != "stale_devices":
                raise _result_error(result)
            current = sorted({Address(d.user, d.device_id) for d in result.current_devices})
            if notify is not None:
                _tell_changes(notify, target, devices, current)
            devices = current
        raise FailedPrecondition(f"the members of {target} kept changing: send the message again")

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


def _result_error(result: chat_pb2.SendResult) -> SecureChatError:
    message = result.error_message or f"the server refused the message ({result.error_code})"
    if result.error_code == "resource_exhausted":
        return ResourceExhausted(message, float(result.retry_after_s or 1))
    return _RESULT_ERRORS.get(result.error_code, SecureChatError)(message)


def _tell_changes(
    notify: Notify, target: Target, before: list[Address], current: list[Address]
) -> None:
    old_users = {d.user for d in before}
    joined = sorted({d.user for d in current} - old_users)
    new_devices = sorted({d.user for d in set(current) - set(before)} - set(joined))
    if joined:
        notify(NoticeEvent(f"{', '.join(joined)} joined {target}: encrypting for them too"))
    if new_devices:
        notify(NoticeEvent(f"new device for {', '.join(new_devices)} in {target}: re-encrypting"))
