"""Accounts own their devices: publish an account key, certify and remove devices, serve it all.

The statements (crypto/certificates.py) are made by clients with the account private key, which
the server never holds. The server checks each one on upload (signature under the stored
account key, the right user, device and identity, a device list exactly one version above the
stored one that adds or drops exactly the device concerned) so that an honest server never
stores anything a client would refuse; clients verify everything again and never rely on these
checks. A removed device loses its keys, mailbox and sessions at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

from securechat.bus.port import Bus
from securechat.crypto.account_key import AccountPublic
from securechat.crypto.certificates import (
    AccountBinding,
    DeviceCertificate,
    DeviceListHead,
    DeviceRemoval,
    identity_digest,
)
from securechat.crypto.identity import IdentityPublic
from securechat.domain import names
from securechat.domain.events import DeviceRemoved, MembershipChanged, MembershipKind
from securechat.domain.model import (
    AccountRecord,
    Certification,
    Device,
    DeviceRef,
    Removal,
)
from securechat.errors import BadSignature, FailedPrecondition, InvalidArgument, NotFound
from securechat.services.clock import Clock
from securechat.storage.port import Store

log = logging.getLogger("securechat.devices")


@dataclass(frozen=True, slots=True)
class AccountListing:
    """What GetAccount serves: the account (None: no account key yet), its devices that
    published keys or hold a certificate, every removal, and the server's device limit."""

    user: str
    account: AccountRecord | None
    devices: list[Device]
    removals: list[bytes]
    max_devices: int


Statement = TypeVar("Statement", DeviceCertificate, DeviceRemoval, DeviceListHead)


def _verified(statement: Statement, user: str, key: AccountPublic, what: str) -> Statement:
    if statement.account_key != key:
        raise InvalidArgument(f"the {what} is signed by another account key than {user}'s")
    try:
        statement.verify()
    except BadSignature as exc:
        raise InvalidArgument(f"the {what} has a bad signature") from exc
    if statement.user != user:
        raise InvalidArgument(f"the {what} is for another user than {user}")
    return statement


def parse_certificate(data: bytes, user: str, key: AccountPublic) -> DeviceCertificate:
    return _verified(DeviceCertificate.from_bytes(data), user, key, "device certificate")


def parse_list(data: bytes, user: str, key: AccountPublic) -> DeviceListHead:
    return _verified(DeviceListHead.from_bytes(data), user, key, "signed device list")


def check_binding(data: bytes, device: DeviceRef, identity: bytes, key: AccountPublic) -> None:
    """The device's binding must name its user, id, identity and the account key, signed."""
    binding = AccountBinding.from_bytes(data)
    if (binding.user, binding.device_id) != (device.user, device.device_id):
        raise InvalidArgument("the binding is for another device")
    if binding.identity.to_bytes() != identity or binding.account_key != key:
        raise InvalidArgument("the binding names another identity or account key")
    try:
        binding.verify()
    except BadSignature as exc:
        raise InvalidArgument("the binding has a bad signature") from exc


def _entry(device_id: int, identity: IdentityPublic) -> tuple[int, bytes]:
    return device_id, identity_digest(identity)


class AccountDevices:
    """The account-key side of the key directory (see the module docstring)."""

    def __init__(self, store: Store, bus: Bus, clock: Clock, max_devices: int) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.max_devices = max_devices

    async def announce(self, user: str, kind: MembershipKind) -> None:
        """Tell the user's contacts and the user's own devices that the device set changed."""
        audience = await self.store.contacts_of(user)
        audience.add(user)
        await self.bus.publish(
            MembershipChanged("", user, kind, self.clock.now_ms(), tuple(sorted(audience)))
        )

    async def listing(self, user: str) -> AccountListing:
        names.check_name(user)
        if await self.store.get_user(user) is None:
            raise NotFound(f"no user named {user!r}")
        account = await self.store.get_account(user)
        devices = [
            d
            for d in await self.store.list_devices(user)
            if d.identity_key is not None or d.certificate is not None
        ]
        removals = await self.store.list_removals(user) if account is not None else []
        return AccountListing(user, account, devices, removals, self.max_devices)

    async def publish_account(
        self,
        device: DeviceRef,
        account_key: bytes,
        certificate: bytes,
        binding: bytes,
        device_list: bytes,
        *,
        reset: bool,
    ) -> None:
        """Make ``device`` the first device of its account key (see KeyService.PublishAccount)."""
        user = device.user
        key = AccountPublic.from_bytes(account_key)
        cert = parse_certificate(certificate, user, key)
        if cert.device_id != device.device_id:
            raise InvalidArgument("the certificate is for another device than the calling one")
        check_binding(binding, device, cert.identity.to_bytes(), key)
        head = parse_list(device_list, user, key)
        if head.version != 1 or head.devices != (_entry(device.device_id, cert.identity),):
            raise InvalidArgument("a new account's device list is version 1 naming this device")
        current = await self.store.get_device(user, device.device_id)
        if current is None:
            raise NotFound(f"device {device.device_id} of {user} is not registered")
        if current.identity_key not in (None, cert.identity.to_bytes()):
            raise InvalidArgument("the certificate names another identity than this device's keys")
        had_account = await self.store.get_account(user) is not None
        record = AccountRecord(user, account_key, 1, device_list)
        removed = await self.store.create_account(
            record, device, certificate, binding, self.clock.now_ms(), reset=reset
        )
        for gone in removed:
            await self.bus.publish(DeviceRemoved(gone))
        log.info("account key published user=%s device=%d reset=%s removed=%d",
                 user, device.device_id, reset and had_account, len(removed))  # fmt: skip
        if had_account:
            await self.announce(user, MembershipKind.IDENTITY_CHANGED)
        elif current.identity_key is not None:
            await self.announce(user, MembershipKind.DEVICE_ADDED)

    async def change(
        self,
        device: DeviceRef,
        device_list: bytes,
        certificate: bytes | None,
        removal: bytes | None,
    ) -> AccountListing | None:
        """Apply one certification or removal; None when stored, else (a version clash) the
        account as it is now, for the client to verify and sign again."""
        user = device.user
        account = await self.store.get_account(user)
        if account is None:
            raise FailedPrecondition(
                f"{user} has no account key yet: log in with a securechat client first"
            )
        key = AccountPublic.from_bytes(account.account_key)
        stored = DeviceListHead.from_bytes(account.device_list)
        if device.device_id not in {i for i, _ in stored.devices}:
            raise FailedPrecondition(
                "only a certified device of the account can change its devices"
            )
        head = parse_list(device_list, user, key)
        if head.version != account.list_version + 1:
            return await self.listing(user)
        if (certificate is None) == (removal is None):
            raise InvalidArgument("a device change is one certificate or one removal")
        old = set(stored.devices)
        if certificate is not None:
            cert = parse_certificate(certificate, user, key)
            certified: Certification | None = await self._certification(cert, old, head)
            gone: Removal | None = None
        else:
            assert removal is not None
            certified, gone = None, self._removal(removal, device, key, old, head)
        record = AccountRecord(user, account.account_key, head.version, device_list)
        now = self.clock.now_ms()
        if not await self.store.change_devices(
            user, account.list_version, record, certified, gone, now
        ):
            return await self.listing(user)
        if gone is not None:
            log.info("device removed user=%s device=%d by=%d", user, gone.device_id,
                     device.device_id)  # fmt: skip
            await self.bus.publish(DeviceRemoved(DeviceRef(user, gone.device_id)))
            await self.announce(user, MembershipKind.DEVICE_REMOVED)
        elif certified is not None:
            log.info("device certified user=%s device=%d by=%d", user, certified.device_id,
                     device.device_id)  # fmt: skip
            target = await self.store.get_device(user, certified.device_id)
            if target is not None and target.identity_key is not None:
                await self.announce(user, MembershipKind.DEVICE_ADDED)
        return None

    async def _certification(
        self, cert: DeviceCertificate, old: set[tuple[int, bytes]], head: DeviceListHead
    ) -> Certification:
        if cert.device_id in {i for i, _ in old}:
            raise InvalidArgument(f"device {cert.device_id} is already in the device list")
        if set(head.devices) != old | {_entry(cert.device_id, cert.identity)}:
            raise InvalidArgument("the new device list must be the stored one plus this device")
        if len(head.devices) > self.max_devices:
            raise FailedPrecondition(
                f"an account may have at most {self.max_devices} devices on this server: "
                "remove one first (`securechat devices remove N`)"
            )
        target = await self.store.get_device(cert.user, cert.device_id)
        if target is None:
            raise NotFound(
                f"device {cert.device_id} of {cert.user} never logged in: log in on it first"
            )
        if target.identity_key not in (None, cert.identity.to_bytes()):
            raise InvalidArgument("the certificate names another identity than the device's keys")
        return Certification(cert.device_id, cert.to_bytes())

    @staticmethod
    def _removal(
        data: bytes,
        device: DeviceRef,
        key: AccountPublic,
        old: set[tuple[int, bytes]],
        head: DeviceListHead,
    ) -> Removal:
        removal = _verified(DeviceRemoval.from_bytes(data), device.user, key, "device removal")
        if removal.device_id == device.device_id:
            raise FailedPrecondition(
                "you cannot remove the device you are using: remove it from another device"
            )
        entry = _entry(removal.device_id, removal.identity)
        if entry not in old:
            raise InvalidArgument(
                f"device {removal.device_id} is not in the device list (already removed?)"
            )
        if set(head.devices) != old - {entry}:
            raise InvalidArgument("the new device list must be the stored one minus this device")
        return Removal(removal.device_id, entry[1], removal.to_bytes())
