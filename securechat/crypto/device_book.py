"""This device's place in its account, and the device lists it has verified for every user.

The book holds the account key pair (every device of an account holds it), this device's own
certificate, the newest signed device list of the own account, and one
:class:`~securechat.crypto.device_list.DeviceListMemory` per user whose list was verified. The
account facade asks :meth:`DeviceBook.certified` before encrypting to any device of a user
whose account key it knows: the own account's devices are judged under the own account key,
which is never taken from the server.

Changing the own device set (certify a linked device, remove one) signs a new list version and
returns a :class:`DevicePublication` to upload; :meth:`DeviceBook.commit` records it once the
server has stored it (a server refusing it, e.g. because another device published the same
version first, leaves the book unchanged: refresh and try again).
"""

from __future__ import annotations

from dataclasses import dataclass

from securechat.crypto.account_key import AccountKeyPair, AccountPublic
from securechat.crypto.certificates import (
    DeviceCertificate,
    DeviceListHead,
    DeviceRemoval,
    identity_digest,
)
from securechat.crypto.device_list import (
    DeviceListing,
    DeviceListMemory,
    DeviceListResult,
    verify_device_list,
)
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IdentityPublic
from securechat.errors import InvalidArgument

DEFAULT_MAX_DEVICES = 10


@dataclass(frozen=True)
class DevicePublication:
    """A signed change of the own device set: upload all of it, then :meth:`DeviceBook.commit`."""

    head: DeviceListHead
    devices: dict[int, IdentityPublic]
    certificate: DeviceCertificate | None = None
    removal: DeviceRemoval | None = None


class DeviceBook:
    """Account key, own certificate and verified device lists of one device."""

    def __init__(self, user: str, device_id: int, identity: IdentityPublic) -> None:
        self.user = user
        self.device_id = device_id
        self.identity = identity
        self.account: AccountKeyPair | None = None
        self.certificate: DeviceCertificate | None = None
        self.own_head: DeviceListHead | None = None
        self.lists: dict[str, DeviceListMemory] = {}

    @property
    def account_key(self) -> AccountPublic | None:
        return None if self.account is None else self.account.public

    def require_account(self) -> AccountKeyPair:
        if self.account is None:
            raise InvalidArgument(
                "this device has no account key yet: link it from another device, or migrate it"
            )
        return self.account

    def establish(self, account: AccountKeyPair, *, now: int) -> DevicePublication:
        """Become the first device of ``account`` (a new account, or a stage-1 migration)."""
        if self.account is not None:
            raise InvalidArgument("this device already belongs to an account key")
        self.account = account
        self.certificate = DeviceCertificate.issue(
            account, self.user, self.device_id, self.identity, now
        )
        devices = {self.device_id: self.identity}
        head = DeviceListHead.issue(account, self.user, 1, now, devices)
        publication = DevicePublication(head, devices, certificate=self.certificate)
        self.commit(publication)
        return publication

    def join(
        self, account: AccountKeyPair, certificate: DeviceCertificate, head: DeviceListHead
    ) -> None:
        """Install what a link grant carried (already checked by the link protocol)."""
        if self.account is not None:
            raise InvalidArgument("this device already belongs to an account key")
        if not certificate.names(self.device_id, self.identity) or certificate.user != self.user:
            raise InvalidArgument("the certificate is for another device")
        self.account, self.certificate, self.own_head = account, certificate, head
        memory = DeviceListMemory(account.public, head.version, head.digest())
        memory.devices[self.device_id] = self.identity
        self.lists[self.user] = memory

    def _own(self) -> tuple[AccountKeyPair, DeviceListMemory]:
        account = self.require_account()
        memory = self.lists.get(self.user)
        if memory is None or memory.account_key != account.public:
            memory = self.lists[self.user] = DeviceListMemory(account.public)
        return account, memory

    def certify(
        self, device_id: int, identity: IdentityPublic, *, now: int, max_devices: int
    ) -> DevicePublication:
        """Sign a certificate for a new own device and the list version that adds it."""
        account, own = self._own()
        if device_id in own.devices or device_id == self.device_id:
            raise InvalidArgument(f"device id {device_id} is already one of your devices")
        if own.is_removed(device_id, identity):
            raise InvalidArgument("that device was removed: link it again to get a new identity")
        if len(own.devices) >= max_devices:
            raise InvalidArgument(
                f"your account already has {len(own.devices)} devices, the most allowed: "
                "remove one first"
            )
        certificate = DeviceCertificate.issue(account, self.user, device_id, identity, now)
        devices = {**own.devices, device_id: identity}
        head = DeviceListHead.issue(account, self.user, own.version + 1, now, devices)
        return DevicePublication(head, devices, certificate=certificate)

    def remove(self, device_id: int, *, now: int) -> DevicePublication:
        """Sign the removal of another own device and the list version without it."""
        if device_id == self.device_id:
            raise InvalidArgument(
                "you cannot remove the device you are using: remove it from another device"
            )
        account, own = self._own()
        identity = own.devices.get(device_id)
        if identity is None:
            raise InvalidArgument(f"device {device_id} is not one of your verified devices")
        removal = DeviceRemoval.issue(account, self.user, device_id, identity, now)
        devices = {i: d for i, d in own.devices.items() if i != device_id}
        head = DeviceListHead.issue(account, self.user, own.version + 1, now, devices)
        return DevicePublication(head, devices, removal=removal)

    def commit(self, publication: DevicePublication) -> None:
        """Record a publication the server has stored as the newest own device list."""
        account, own = self._own()
        head = publication.head
        if head.account_key != account.public or head.version <= own.version:
            raise InvalidArgument("this device list is older than the one already known")
        removal = publication.removal
        if removal is not None:
            own.removed[(removal.device_id, identity_digest(removal.identity))] = None
        own.version, own.digest, own.devices = (
            head.version,
            head.digest(),
            dict(publication.devices),
        )
        self.own_head = head

    def check(
        self, user: str, account_key: AccountPublic, listing: DeviceListing
    ) -> DeviceListResult:
        """Verify ``listing`` under ``account_key`` and remember the result for ``user``."""
        memory = self.lists.get(user)
        if memory is not None and memory.account_key != account_key:
            memory = None
        result = verify_device_list(user, account_key, listing, memory)
        if memory is None:
            memory = self.lists[user] = DeviceListMemory(account_key)
        memory.apply(result)
        if user == self.user and result.problem is None and result.head is not None:
            self.own_head = result.head
        return result

    def certified(self, user: str, device_id: int, identity: IdentityPublic) -> bool:
        memory = self.lists.get(user)
        return memory is not None and memory.devices.get(device_id) == identity

    def verified_devices(self, user: str) -> dict[int, IdentityPublic]:
        memory = self.lists.get(user)
        return {} if memory is None else dict(memory.devices)

    def forget(self, user: str) -> None:
        """Drop what was verified under a key that is no longer pinned for ``user``."""
        self.lists.pop(user, None)

    def write(self, writer: Writer) -> Writer:
        writer.optional_bytes(None if self.account is None else self.account.to_bytes())
        writer.optional_bytes(None if self.certificate is None else self.certificate.to_bytes())
        writer.optional_bytes(None if self.own_head is None else self.own_head.to_bytes())
        writer.u32(len(self.lists))
        for user, memory in sorted(self.lists.items()):
            memory.write(writer.text(user))
        return writer

    def read(self, reader: Reader) -> None:
        account, certificate, head = (reader.optional_bytes() for _ in range(3))
        self.account = None if account is None else AccountKeyPair.from_bytes(account)
        self.certificate = (
            None if certificate is None else DeviceCertificate.from_bytes(certificate)
        )
        self.own_head = None if head is None else DeviceListHead.from_bytes(head)
        for _ in range(reader.u32()):
            user = reader.text()
            self.lists[user] = DeviceListMemory.read(reader)
