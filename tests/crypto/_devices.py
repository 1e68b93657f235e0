"""Helpers for device-list tests: an account with devices, its certificates and signed lists."""

from __future__ import annotations

from dataclasses import dataclass, field

from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import DeviceCertificate, DeviceListHead, DeviceRemoval
from securechat.crypto.device_list import DeviceListing, ListedDevice
from securechat.crypto.identity import IdentityKeyPair, IdentityPublic

from ._support import NOW


@dataclass
class FakeAccount:
    """An account as its devices would publish it; the tests play the server with its bytes."""

    user: str = "alice"
    account: AccountKeyPair = field(default_factory=AccountKeyPair.generate)
    devices: dict[int, IdentityPublic] = field(default_factory=dict)
    version: int = 0

    def add(self, device_id: int) -> IdentityPublic:
        identity = IdentityKeyPair.generate().public
        self.devices[device_id] = identity
        return identity

    def certificate(self, device_id: int) -> bytes:
        return DeviceCertificate.issue(
            self.account, self.user, device_id, self.devices[device_id], NOW
        ).to_bytes()

    def removal(self, device_id: int) -> bytes:
        return DeviceRemoval.issue(
            self.account, self.user, device_id, self.devices[device_id], NOW
        ).to_bytes()

    def head(self) -> bytes:
        self.version += 1
        return DeviceListHead.issue(
            self.account, self.user, self.version, NOW, self.devices
        ).to_bytes()

    def listing(self, *, removals: tuple[bytes, ...] = ()) -> DeviceListing:
        return DeviceListing(
            [ListedDevice(i, self.certificate(i), d) for i, d in sorted(self.devices.items())],
            removals,
            self.head(),
        )


def with_devices(*device_ids: int, user: str = "alice") -> FakeAccount:
    fake = FakeAccount(user)
    for device_id in device_ids:
        fake.add(device_id)
    return fake
