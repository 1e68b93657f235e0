"""Signed statements about devices: certificates, removals, signed device lists, bindings.

Every statement is an Ed25519 signature over a labelled canonical encoding (integers
big-endian, ``text`` = u32 length + UTF-8, ``identity`` = the 128-byte device identity)::

    certificate  signed by the account key over
        Writer(DEVICE_CERTIFICATE) | account_key(32) | text user | u32 device_id
                                   | identity(128) | u64 created_at
    removal      signed by the account key over
        Writer(DEVICE_REMOVAL)     | account_key(32) | text user | u32 device_id
                                   | identity(128) | u64 removed_at
    device list  signed by the account key over
        Writer(DEVICE_LIST) | account_key(32) | text user | u64 version | u64 issued_at
                            | u32 n | n x (u32 device_id | identity_digest(32)), ids ascending
    account binding  signed by the device identity's own signing key over
        Writer(DEVICE_ACCOUNT_BINDING) | text user | u32 device_id | identity(128)
                                       | account_key(32)

``identity_digest = SHA-256(Writer(DEVICE_IDENTITY_DIGEST) | identity(128))``. A removal names
the device identity as well as the id, so it can never remove a later device that reuses the id.
The wire form of each statement starts with a kind byte (1 certificate, 2 removal, 3 device
list, 4 account binding), so one can never be parsed as another; it is what the server stores and
serves, opaque to it. ``from_bytes`` raises InvalidArgument on malformed bytes and never
verifies; ``verify`` raises BadSignature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from securechat.crypto import labels
from securechat.crypto.account_key import ACCOUNT_KEY_SIZE, AccountKeyPair, AccountPublic
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import (
    IDENTITY_PUBLIC_SIZE,
    SIGNATURE_SIZE,
    IdentityKeyPair,
    IdentityPublic,
)
from securechat.errors import InvalidArgument

KIND_CERTIFICATE = 1
KIND_REMOVAL = 2
KIND_DEVICE_LIST = 3
KIND_ACCOUNT_BINDING = 4
DIGEST_SIZE = 32
MAX_LISTED_DEVICES = 64


def identity_digest(identity: IdentityPublic) -> bytes:
    """The 32-byte digest a signed device list names a device identity by."""
    return labels.sha256(Writer(labels.DEVICE_IDENTITY_DIGEST).raw(identity.to_bytes()).to_bytes())


def _open(data: bytes, kind: int, what: str) -> Reader:
    reader = Reader(data)
    if reader.u8() != kind:
        raise InvalidArgument(f"not a {what}")
    return reader


@dataclass(frozen=True)
class DeviceStatement:
    """An account-key signature about one device (user, id, identity) at one time."""

    KIND: ClassVar[int]
    LABEL: ClassVar[bytes]
    WHAT: ClassVar[str]

    account_key: AccountPublic
    user: str
    device_id: int
    identity: IdentityPublic
    issued_at: int
    signature: bytes

    @classmethod
    def signed_message(
        cls,
        account_key: AccountPublic,
        user: str,
        device_id: int,
        identity: IdentityPublic,
        issued_at: int,
    ) -> bytes:
        return (
            Writer(cls.LABEL)
            .fixed(account_key.to_bytes(), ACCOUNT_KEY_SIZE)
            .text(user)
            .u32(device_id)
            .raw(identity.to_bytes())
            .u64(issued_at)
            .to_bytes()
        )

    @classmethod
    def issue(
        cls,
        account: AccountKeyPair,
        user: str,
        device_id: int,
        identity: IdentityPublic,
        issued_at: int,
    ) -> Self:
        message = cls.signed_message(account.public, user, device_id, identity, issued_at)
        return cls(account.public, user, device_id, identity, issued_at, account.sign(message))

    def message(self) -> bytes:
        """The bytes the signature covers."""
        return self.signed_message(
            self.account_key, self.user, self.device_id, self.identity, self.issued_at
        )

    def verify(self) -> None:
        """Check the signature under the account key the statement names (BadSignature)."""
        self.account_key.verify(self.signature, self.message())

    def names(self, device_id: int, identity: IdentityPublic) -> bool:
        """Whether this statement is about exactly this device id and identity."""
        return self.device_id == device_id and labels.constant_time_equal(
            self.identity.to_bytes(), identity.to_bytes()
        )

    def to_bytes(self) -> bytes:
        return (
            Writer()
            .u8(self.KIND)
            .text(self.user)
            .u32(self.device_id)
            .raw(self.identity.to_bytes())
            .u64(self.issued_at)
            .fixed(self.account_key.to_bytes(), ACCOUNT_KEY_SIZE)
            .fixed(self.signature, SIGNATURE_SIZE)
            .to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = _open(data, cls.KIND, cls.WHAT)
        user, device_id = reader.text(), reader.u32()
        identity = IdentityPublic.from_bytes(reader.fixed(IDENTITY_PUBLIC_SIZE))
        issued_at = reader.u64()
        account_key = AccountPublic(reader.fixed(ACCOUNT_KEY_SIZE))
        signature = reader.fixed(SIGNATURE_SIZE)
        reader.finish()
        return cls(account_key, user, device_id, identity, issued_at, signature)


@dataclass(frozen=True)
class DeviceCertificate(DeviceStatement):
    """The account key vouches for a device (``issued_at`` = when it was certified)."""

    KIND = KIND_CERTIFICATE
    LABEL = labels.DEVICE_CERTIFICATE
    WHAT = "device certificate"


@dataclass(frozen=True)
class DeviceRemoval(DeviceStatement):
    """The account key removes a device for good (``issued_at`` = when it was removed)."""

    KIND = KIND_REMOVAL
    LABEL = labels.DEVICE_REMOVAL
    WHAT = "device removal"


@dataclass(frozen=True)
class DeviceListHead:
    """The account's complete device set at one version, signed by the account key.

    Versions only grow: a client that has seen version n never accepts an older list, and a
    removal is always published together with a new version that no longer names the device.
    """

    account_key: AccountPublic
    user: str
    version: int
    issued_at: int
    devices: tuple[tuple[int, bytes], ...]  # (device id, identity digest), ids ascending
    signature: bytes

    @staticmethod
    def _check_devices(devices: tuple[tuple[int, bytes], ...]) -> None:
        ids = [device_id for device_id, _ in devices]
        if ids != sorted(set(ids)):
            raise InvalidArgument("a device list names each device id once, in ascending order")
        if len(ids) > MAX_LISTED_DEVICES:
            raise InvalidArgument(f"a device list names at most {MAX_LISTED_DEVICES} devices")

    @classmethod
    def signed_message(
        cls,
        account_key: AccountPublic,
        user: str,
        version: int,
        issued_at: int,
        devices: tuple[tuple[int, bytes], ...],
    ) -> bytes:
        cls._check_devices(devices)
        writer = (
            Writer(labels.DEVICE_LIST)
            .fixed(account_key.to_bytes(), ACCOUNT_KEY_SIZE)
            .text(user)
            .u64(version)
            .u64(issued_at)
            .u32(len(devices))
        )
        for device_id, digest in devices:
            writer.u32(device_id).fixed(digest, DIGEST_SIZE)
        return writer.to_bytes()

    @classmethod
    def issue(
        cls,
        account: AccountKeyPair,
        user: str,
        version: int,
        issued_at: int,
        devices: dict[int, IdentityPublic],
    ) -> DeviceListHead:
        entries = tuple((i, identity_digest(devices[i])) for i in sorted(devices))
        message = cls.signed_message(account.public, user, version, issued_at, entries)
        return cls(account.public, user, version, issued_at, entries, account.sign(message))

    def message(self) -> bytes:
        """The bytes the signature covers."""
        return self.signed_message(
            self.account_key, self.user, self.version, self.issued_at, self.devices
        )

    def verify(self) -> None:
        self.account_key.verify(self.signature, self.message())

    def digest(self) -> bytes:
        """What two clients compare to detect two different lists with the same version."""
        return labels.sha256(self.message())

    def names(self, device_id: int, identity: IdentityPublic) -> bool:
        digest = identity_digest(identity)
        return any(
            i == device_id and labels.constant_time_equal(d, digest) for i, d in self.devices
        )

    def to_bytes(self) -> bytes:
        writer = (
            Writer()
            .u8(KIND_DEVICE_LIST)
            .text(self.user)
            .u64(self.version)
            .u64(self.issued_at)
            .u32(len(self.devices))
        )
        for device_id, digest in self.devices:
            writer.u32(device_id).fixed(digest, DIGEST_SIZE)
        writer.fixed(self.account_key.to_bytes(), ACCOUNT_KEY_SIZE)
        return writer.fixed(self.signature, SIGNATURE_SIZE).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DeviceListHead:
        reader = _open(data, KIND_DEVICE_LIST, "signed device list")
        user, version, issued_at, count = reader.text(), reader.u64(), reader.u64(), reader.u32()
        if count > MAX_LISTED_DEVICES:
            raise InvalidArgument(f"a device list names at most {MAX_LISTED_DEVICES} devices")
        devices = tuple((reader.u32(), reader.fixed(DIGEST_SIZE)) for _ in range(count))
        cls._check_devices(devices)
        account_key = AccountPublic(reader.fixed(ACCOUNT_KEY_SIZE))
        signature = reader.fixed(SIGNATURE_SIZE)
        reader.finish()
        return cls(account_key, user, version, issued_at, devices, signature)


@dataclass(frozen=True)
class AccountBinding:
    """A device identity names the account key that owns it (the device's consent).

    The certificate is the account vouching for the device; the binding is the device vouching
    for the account. Every device publishes one. A contact who pinned a device identity (a
    stage-1 pin, or one made on receiving a first message) moves the pin to the account key
    without an identity change only when the pinned identity's binding names that key: a
    server cannot make one for a device it does not control.
    """

    user: str
    device_id: int
    identity: IdentityPublic
    account_key: AccountPublic
    signature: bytes

    @staticmethod
    def signed_message(
        user: str, device_id: int, identity: IdentityPublic, account_key: AccountPublic
    ) -> bytes:
        return (
            Writer(labels.DEVICE_ACCOUNT_BINDING)
            .text(user)
            .u32(device_id)
            .raw(identity.to_bytes())
            .fixed(account_key.to_bytes(), ACCOUNT_KEY_SIZE)
            .to_bytes()
        )

    @classmethod
    def issue(
        cls, device: IdentityKeyPair, user: str, device_id: int, account_key: AccountPublic
    ) -> AccountBinding:
        message = cls.signed_message(user, device_id, device.public, account_key)
        return cls(user, device_id, device.public, account_key, device.sign(message))

    def verify(self) -> None:
        message = self.signed_message(self.user, self.device_id, self.identity, self.account_key)
        self.identity.verify_signed(self.signature, message)

    def to_bytes(self) -> bytes:
        return (
            Writer()
            .u8(KIND_ACCOUNT_BINDING)
            .text(self.user)
            .u32(self.device_id)
            .raw(self.identity.to_bytes())
            .fixed(self.account_key.to_bytes(), ACCOUNT_KEY_SIZE)
            .fixed(self.signature, SIGNATURE_SIZE)
            .to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountBinding:
        reader = _open(data, KIND_ACCOUNT_BINDING, "device account binding")
        user, device_id = reader.text(), reader.u32()
        identity = IdentityPublic.from_bytes(reader.fixed(IDENTITY_PUBLIC_SIZE))
        account_key = AccountPublic(reader.fixed(ACCOUNT_KEY_SIZE))
        signature = reader.fixed(SIGNATURE_SIZE)
        reader.finish()
        return cls(user, device_id, identity, account_key, signature)
