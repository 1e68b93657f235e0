"""Who a message must be encrypted for, and whether a send's device list is current."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from securechat.crypto.certificates import DeviceListHead
from securechat.crypto.identity import IdentityPublic
from securechat.domain.model import AccountRecord, Device, DeviceRef
from securechat.errors import InvalidArgument, StaleDevices


def receiving_devices(devices: Iterable[Device], account: AccountRecord | None) -> list[DeviceRef]:
    """The devices of one user that receive messages: those that published keys and, once the
    user has an account key, hold a certificate and are named (id and identity) by the stored
    signed device list. A device that logged in without keys, or that no list names, never
    blocks anyone's send."""
    keyed = [d for d in devices if d.identity_key is not None]
    if account is None:
        return [DeviceRef(d.user, d.device_id) for d in keyed]
    try:
        head = DeviceListHead.from_bytes(account.device_list)
    except InvalidArgument:
        return []
    found = []
    for device in keyed:
        assert device.identity_key is not None
        try:
            identity = IdentityPublic.from_bytes(device.identity_key)
        except (InvalidArgument, ValueError):
            continue
        if device.certificate is not None and head.names(device.device_id, identity):
            found.append(DeviceRef(device.user, device.device_id))
    return found


def expected_recipients(sender: DeviceRef, member_devices: Iterable[DeviceRef]) -> list[DeviceRef]:
    """Every device in the conversation except the sending device, in a stable order."""
    return sorted((d for d in member_devices if d != sender), key=lambda d: (d.user, d.device_id))


def check_recipients(given: Sequence[DeviceRef], expected: Sequence[DeviceRef]) -> None:
    """The send must carry exactly one ciphertext per expected device.

    Duplicates are a client bug (InvalidArgument); any other difference means the client's view
    of the device list is stale (StaleDevices with the current list, so it can re-encrypt).
    """
    seen: set[DeviceRef] = set()
    for device in given:
        if device in seen:
            raise InvalidArgument(
                f"two ciphertexts for device {device.user}/{device.device_id}: send one per device"
            )
        seen.add(device)
    if seen != set(expected):
        raise StaleDevices([(d.user, d.device_id) for d in expected])
