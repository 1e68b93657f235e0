"""A stand-in for the server's key directory, and devices that use it as the client would.

The directory stores exactly what the real server will store (opaque certificates, removals,
signed device lists, prekey uploads); a test plays a malicious server by editing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.account_key import AccountPublic
from securechat.crypto.certificates import AccountBinding, DeviceListHead
from securechat.crypto.device_book import DevicePublication
from securechat.crypto.device_list import DeviceListing, DeviceListResult, ListedDevice
from securechat.crypto.linking import LinkJoiner
from securechat.crypto.prekeys import PreKeyBundle

from ._support import NOW, bundle_from, make_account


@dataclass
class Directory:
    account_keys: dict[str, AccountPublic] = field(default_factory=dict)
    certificates: dict[Address, bytes | None] = field(default_factory=dict)
    bindings: dict[Address, bytes] = field(default_factory=dict)
    removals: dict[str, list[bytes]] = field(default_factory=dict)
    heads: dict[str, bytes] = field(default_factory=dict)
    bundles: dict[Address, PreKeyBundle] = field(default_factory=dict)

    def publish(self, user: str, publication: DevicePublication) -> None:
        """Store a device change (refusing an older list, as the server will)."""
        stored = self.heads.get(user)
        if stored is not None and DeviceListHead.from_bytes(stored).version >= (
            publication.head.version
        ):
            raise AssertionError("the directory refuses a list that is not newer")
        self.heads[user] = publication.head.to_bytes()
        self.account_keys[user] = publication.head.account_key
        if publication.certificate is not None:
            certificate = publication.certificate
            self.certificates[Address(user, certificate.device_id)] = certificate.to_bytes()
        if publication.removal is not None:
            removal = publication.removal
            self.removals.setdefault(user, []).append(removal.to_bytes())
            self.certificates.pop(Address(user, removal.device_id), None)

    def upload(self, account: CryptoAccount) -> None:
        upload = account.upload_bundle(include_published=True)
        if account.devices.binding is not None:
            self.bindings[account.address] = account.devices.binding.to_bytes()
        self.bundles[account.address] = bundle_from(upload, one_time_index=None, kem_index=None)

    def listing(self, user: str) -> DeviceListing:
        devices = [
            ListedDevice(address.device_id, certificate)
            for address, certificate in sorted(self.certificates.items())
            if address.user == user
        ]
        return DeviceListing(devices, tuple(self.removals.get(user, [])), self.heads.get(user))

    def devices(self, user: str) -> list[Address]:
        return sorted(a for a in self.certificates if a.user == user)


@dataclass
class Device:
    """One device running the client's crypto flow against the directory."""

    account: CryptoAccount
    directory: Directory
    inbox: list[tuple[Address, bytes]] = field(default_factory=list)

    @property
    def address(self) -> Address:
        return self.account.address

    def refresh(self, user: str) -> DeviceListResult:
        if user != self.address.user:
            bindings = [
                AccountBinding.from_bytes(b)
                for a, b in self.directory.bindings.items()
                if a.user == user
            ]
            self.account.observe_account(user, self.directory.account_keys[user], bindings)
        return self.account.devices.check(user, self.directory.listing(user))

    def recipients(self, user: str) -> list[Address]:
        """Every device the server lists for the peer and for ourselves (but this device)."""
        listed = self.directory.devices(user) + self.directory.devices(self.address.user)
        return sorted({a for a in listed if a != self.address})

    def send(self, to: str, text: bytes, conversation: str = "dm") -> dict[Address, bytes]:
        """Encrypt to every *verified* device of ``to`` and of ourselves, like the client will."""
        targets = []
        for user in sorted({to, self.address.user}):
            self.refresh(user)
            verified = self.account.devices.verified(user)
            targets += [
                Address(user, i) for i in sorted(verified) if Address(user, i) != self.address
            ]
        for target in targets:
            if not self.account.has_session(target):
                self.account.start_session(self.directory.bundles[target], now=NOW)
        return self.account.encrypt_for_devices(targets, conversation, text)


def register(directory: Directory, user: str, device_id: int = 1) -> Device:
    account = make_account(user, device_id)
    publication = account.devices.own_list
    assert publication is not None and account.devices.certificate is not None
    directory.heads[user] = publication.to_bytes()
    directory.account_keys[user] = publication.account_key
    directory.certificates[account.address] = account.devices.certificate.to_bytes()
    directory.upload(account)
    return Device(account, directory)


def link(existing: Device, device_id: int, *, now: int = NOW) -> Device:
    """Link a new device of ``existing``'s user through the directory's relay."""
    directory = existing.directory
    new = Device(make_account(existing.address.user, device_id, linked=True), directory)
    offer = existing.account.devices.link_offer(now=now)
    joiner = LinkJoiner.from_text(offer.code.text())  # what the user reads and types
    request = new.account.devices.link_request(joiner, offer.offer_message())
    grant, publication = existing.account.devices.grant_link(offer, request, now=now + 1)
    directory.publish(existing.address.user, publication)
    existing.account.devices.published(publication)
    new.account.devices.complete_link(joiner, grant)
    directory.upload(new.account)
    return new


def deliver(envelopes: dict[Address, bytes], sender: Address, devices: list[Device]) -> None:
    for device in devices:
        envelope = envelopes.get(device.address)
        if envelope is not None:
            device.inbox.append((sender, device.account.decrypt(sender, "dm", envelope, now=NOW)))
